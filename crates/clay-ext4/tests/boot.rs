//! The kernel's own verdict: a Debian cloud kernel boots (QEMU, direct kernel boot) a busybox initramfs with the
//! virtio modules, our filesystem attached as a virtio disk. Its /init mounts the disk read-write, prints what it
//! sees (which must match the tree), then writes: a new file, an append to a seeded one, a directory of many new
//! entries (so the kernel indexes it), a removal, and unmounts. Back on the host, e2fsck must still find nothing
//! to fix and debugfs must show the guest's writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clay_ext4::{write_ext4, Options};
use clay_qemu::{Boot, Firmware, RunOptions, Vm};
use clay_testkit::trees::{file, file_bytes, meta, node, noise, T0};
use clay_testkit::{busybox_initramfs_with, kernel_module_files, md5sum};
use clay_tree::{Kind, Tree};

const DONE: &str = "CLAY-EXT4-DONE";
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";
/// Generous: other boots may share the two cores under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const CLAMP: i64 = 1_750_000_000;
/// 28 block groups: two flex groups, superblock backups up to group 27, a short last group; sparse on the host.
const SIZE: u64 = (3584 << 20) - (5 << 20);
/// The modules virtio_blk needs on the cloud kernel, in load order (ext4 and crc32c are built in).
const MODULES: [&str; 6] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
];

fn tree() -> Tree {
    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    let dirs = meta(0o755, 0, 0, T0);
    let mut prog = meta(0o4755, 0, 0, T0);
    prog.xattrs.insert(b"user.test".to_vec(), b"value".to_vec());
    file(&mut t, "lib/prog", prog, b"#!/bin/sh\necho hello\n".to_vec());
    t.link(b"lib/prog2", b"lib/prog", &dirs).unwrap();
    node(&mut t, "lib/link", meta(0o777, 0, 0, T0), Kind::Symlink(b"prog".to_vec()));
    node(&mut t, "lib/long-link", meta(0o777, 0, 0, T0), Kind::Symlink(format!("/{}", "x/".repeat(40)).into_bytes()));
    file(&mut t, "log/messages", meta(0o640, 0, 4, T0), b"seeded line\n".to_vec());
    node(&mut t, "dev/sda", meta(0o660, 0, 6, T0), Kind::BlockDevice { major: 259, minor: 300_000 });
    node(&mut t, "dev/fifo", meta(0o644, 0, 0, T0 + 5), Kind::Fifo);
    node(&mut t, "tmp", meta(0o1777, 0, 0, T0), Kind::Directory(BTreeMap::new()));
    file(&mut t, "cache/future", meta(0o640, 1000, 100, CLAMP + 99), b"clamped".to_vec());
    file(&mut t, "cache/big", meta(0o644, 0, 0, T0), noise(5 << 20, 9));
    let mut striped = vec![0u8; 3000 * 4096];
    for (i, block) in striped.chunks_mut(4096).enumerate().filter(|(i, _)| i % 3 == 0) {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
    }
    file(&mut t, "cache/striped", meta(0o644, 0, 0, T0), striped);
    for i in 0..3000u32 {
        file(&mut t, &format!("many/f{i:04}"), meta(0o644, 0, 0, T0), noise((i as usize * 53) % 1500, i.into()));
    }
    t
}

fn init_script() -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\nbb=/bin/busybox\n$bb mkdir -p /proc /sys /mnt\n$bb mount -t proc proc /proc\n\
         $bb mount -t sysfs sys /sys\n$bb mount -t devtmpfs dev /dev\n",
    );
    for m in MODULES {
        s.push_str(&format!("$bb insmod /{}\n", m.rsplit('/').next().unwrap()));
    }
    s.push_str(
        "i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do $bb sleep 0.1; i=$((i+1)); done\n\
         $bb mount -t ext4 -o rw /dev/vda /mnt && cd /mnt\n\
         $bb echo \"mounts $($bb grep /mnt /proc/mounts)\"\n\
         $bb stat -c 'stat %n %f %u %g %h %s %Y %i' lib/prog lib/prog2 log/messages cache/future cache/big\n\
         $bb stat -c 'stat %n %f %u %g %h %t:%T' dev/sda dev/fifo tmp\n\
         $bb echo \"links $($bb readlink lib/link) $($bb readlink lib/long-link)\"\n\
         $bb echo \"sums $($bb cat cache/big cache/striped | $bb md5sum) $($bb cat many/* | $bb md5sum)\"\n\
         $bb echo \"count $($bb ls many | $bb wc -l)\"\n\
         $bb echo 'written in the guest' > new-file\n\
         $bb echo 'appended line' >> log/messages\n\
         $bb mkdir grown && for n in $($bb seq 1 400); do $bb echo $n > grown/entry-number-$n; done\n\
         $bb rm many/f0001\n\
         $bb dd if=/dev/zero of=cache/filler bs=1M count=8 2>/dev/null\n\
         $bb sync; cd /; $bb umount /mnt && $bb echo unmounted\n\
         $bb dmesg | $bb grep -i ext4\n",
    );
    s.push_str(&format!("$bb echo {DONE}\n$bb poweroff -f\n"));
    s
}

fn debugfs(image: &Path, command: &str) -> String {
    let out = Command::new("debugfs").args(["-R", command]).arg(image).output().expect("debugfs is needed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_kernel_mounts_our_filesystem_read_write() {
    let tree = tree();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("data.img");
    let opts = Options {
        size: SIZE,
        label: "clay-var".to_owned(),
        uuid: *b"boot-test-uuid!!",
        hash_seed: *b"boot-test-seed!!",
        timestamp: CLAMP,
        journal: true,
    };
    {
        let mut f = File::create(&image).unwrap();
        f.set_len(SIZE).unwrap();
        write_ext4(&tree, &opts, &mut f).unwrap();
    }

    let kernel = clay_testkit::example_kernel();
    let extra = kernel_module_files(&MODULES);
    let initrd = busybox_initramfs_with(&init_script(), &extra);
    let initrd_path = dir.path().join("initrd.cpio");
    std::fs::write(&initrd_path, initrd).unwrap();

    let mut run = RunOptions::new(Boot::Kernel { kernel, initrd: Some(initrd_path), cmdline: CMDLINE.to_owned() });
    run.firmware = Firmware::Bios;
    let mut drive = std::ffi::OsString::from("if=none,id=data,format=raw,file=");
    drive.push(image.as_os_str());
    run.extra_args = vec![
        "-drive".to_owned(),
        drive.into_string().unwrap(),
        "-device".to_owned(),
        "virtio-blk-pci,drive=data".to_owned(),
    ];
    let vm = Vm::prepare(&run, &mut |n| eprintln!("notice: {n}")).unwrap_or_else(|e| panic!("{e}"));
    let output = vm.run_until(DONE, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<String> = output.lines().map(|l| l.trim_end_matches('\r').to_owned()).collect();

    let mut big = file_bytes(&tree, "cache/big");
    big.extend(file_bytes(&tree, "cache/striped"));
    let many: Vec<u8> = (0..3000).flat_map(|i| file_bytes(&tree, &format!("many/f{i:04}"))).collect();
    let mut expected = vec![
        format!("links prog /{}", "x/".repeat(40)),
        format!("sums {}  - {}  -", md5sum(&big), md5sum(&many)),
        "count 3000".to_owned(),
        "unmounted".to_owned(),
    ];
    let links = tree.link_counts(&tree.walk());
    for p in ["lib/prog", "lib/prog2", "log/messages", "cache/future", "cache/big", "dev/sda", "dev/fifo", "tmp"] {
        let id = tree.lookup(p.as_bytes()).unwrap().unwrap();
        let inode = tree.inode(id);
        let m = &inode.meta;
        let head = format!("stat {p} {:x} {} {} {}", inode.st_mode(), m.uid, m.gid, links[&id]);
        expected.push(match &inode.kind {
            Kind::File(c) => format!("{head} {} {}", c.len(), m.mtime.min(CLAMP)),
            Kind::BlockDevice { major, minor } => format!("{head} {major:x}:{minor:x}"),
            _ => format!("{head} 0:0"),
        });
    }
    let missing: Vec<&String> = expected.iter().filter(|e| !lines.iter().any(|l| l.starts_with(e.as_str()))).collect();
    assert!(missing.is_empty(), "missing from the guest's output: {missing:#?}\n{output}");
    let mounts = lines.iter().find(|l| l.starts_with("mounts ")).unwrap();
    assert!(mounts.contains("/dev/vda /mnt ext4 rw"), "{mounts}");
    let complaints: Vec<&String> =
        lines.iter().filter(|l| l.contains("EXT4-fs") && (l.contains("error") || l.contains("warning"))).collect();
    assert!(complaints.is_empty(), "the kernel complained: {complaints:#?}");
    let inos: Vec<&str> =
        lines.iter().filter(|l| l.starts_with("stat lib/prog")).map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert!(inos.len() == 2 && inos[0] == inos[1], "hard links differ: {inos:?}");

    // The host's view after the guest's writes.
    let fsck = Command::new("e2fsck").arg("-fn").arg(&image).output().expect("e2fsck is needed");
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "e2fsck complains after the guest wrote:\n{report}");
    assert_eq!(debugfs(&image, "cat /new-file"), "written in the guest\n");
    assert_eq!(debugfs(&image, "cat /log/messages"), "seeded line\nappended line\n");
    assert_eq!(debugfs(&image, "cat /grown/entry-number-377"), "377\n");
    assert!(debugfs(&image, "stat /grown").contains("Flags: 0x81000"), "the kernel did not index /grown");
    assert!(!debugfs(&image, "ls /many").contains("f0001 "), "the removal is lost");
}
