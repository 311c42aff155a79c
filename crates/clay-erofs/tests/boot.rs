//! The kernel's own verdict: a Debian cloud kernel (6.1) boots (QEMU, direct kernel boot) an initramfs carrying two
//! of our images (times clamped, so compact inodes; and unclamped, so extended ones) and the erofs, libcrc32c and
//! loop modules; its /init loop-mounts each image read-only and prints what it sees, which must match the tree:
//! types, modes, owners, link counts, sizes, times, hard links sharing one inode, symlink targets, device numbers,
//! a 5000-entry directory listed and looked up, and file contents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Duration;

use clay_erofs::{write_erofs, Options};
use clay_qemu::{Boot, Firmware, RunOptions, Vm};
use clay_testkit::trees::{file, file_bytes, meta, node, noise, CAP_NET_RAW_EP, T0};
use clay_testkit::{busybox_initramfs_with, kernel_module_files, md5sum};
use clay_tree::{Kind, Tree};

const DONE: &str = "CLAY-EROFS-DONE";
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";
/// Generous: other boots may share the two cores under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const CLAMP: i64 = 1_750_000_000;
const MANY: usize = 5000;
const IMAGES: [(&str, Option<i64>); 2] = [("clamped", Some(CLAMP)), ("unclamped", None)];
/// Paths whose metadata the guest prints; `%s` only for regular files (a directory's size is format-specific).
const FILES: [&str; 10] = [
    "bin/prog",
    "bin/prog2",
    "usr/bin/prog3",
    "var/big",
    "var/exact",
    "var/sparse",
    "etc/future",
    "home/big/.profile",
    "many/f00000",
    "many/f04999xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];
const OTHERS: [&str; 8] =
    [".", "tmp", "srv/shared", "dev/null", "dev/sda", "dev/fifo", "order/-dash", "many/f02500xxxxxxxxxxxxxxxxxxxx"];
/// The kernel's erofs and loop modules, and erofs's dependency, from the kernel package the example kernel came
/// from, in the order to load them. `modinfo -F depends erofs.ko` is `libcrc32c`; its crc32c implementation is
/// built in (CONFIG_CRYPTO_CRC32C=y).
const MODULES: [&str; 3] = ["drivers/block/loop.ko", "lib/libcrc32c.ko", "fs/erofs/erofs.ko"];

fn many_name(i: usize) -> String {
    format!("many/f{i:05}{}", "x".repeat(i % 40))
}

fn tree() -> Tree {
    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    let dirs = meta(0o755, 0, 0, T0);
    let mut prog = meta(0o4755, 0, 0, T0);
    prog.xattrs.insert(b"user.test".to_vec(), b"value".to_vec());
    prog.xattrs.insert(b"security.capability".to_vec(), CAP_NET_RAW_EP.to_vec());
    file(&mut t, "bin/prog", prog, b"#!/bin/sh\necho hello\n".to_vec());
    t.link(b"bin/prog2", b"bin/prog", &dirs).unwrap();
    t.link(b"usr/bin/prog3", b"bin/prog", &dirs).unwrap();
    node(&mut t, "bin/link", meta(0o777, 0, 0, T0), Kind::Symlink(b"../usr/bin/prog3".to_vec()));
    node(&mut t, "dev/null", meta(0o666, 0, 0, T0), Kind::CharDevice { major: 1, minor: 3 });
    node(&mut t, "dev/sda", meta(0o660, 0, 6, T0), Kind::BlockDevice { major: 259, minor: 300_000 });
    node(&mut t, "dev/fifo", meta(0o644, 0, 0, T0 + 5), Kind::Fifo);
    node(&mut t, "tmp", meta(0o1777, 0, 0, T0), Kind::Directory(BTreeMap::new()));
    node(&mut t, "srv/shared", meta(0o2775, 1000, 50, T0), Kind::Directory(BTreeMap::new()));
    file(&mut t, "etc/future", meta(0o640, 1000, 100, CLAMP + 99), b"clamped".to_vec());
    file(&mut t, "home/big/.profile", meta(0o600, 100_000, 70_000, T0 - 7), b"export A=1\n".to_vec());
    file(&mut t, "order/-dash", meta(0o644, 0, 0, T0), b"before the dot".to_vec());
    file(&mut t, "var/big", meta(0o644, 0, 0, T0), noise(5 * 131_072 + 4321, 9));
    file(&mut t, "var/exact", meta(0o644, 0, 0, T0), noise(3 * 4096, 10));
    let mut sparse = vec![0u8; 2 << 20];
    sparse[1 << 20..(1 << 20) + 4].copy_from_slice(b"data");
    file(&mut t, "var/sparse", meta(0o644, 0, 0, T0), sparse);
    for i in 0..MANY {
        file(&mut t, &many_name(i), meta(0o644, 0, 0, T0 + (i % 3) as i64), noise((i * 53) % 1500, i as u64));
    }
    t
}

fn init_script(modules: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\nbb=/bin/busybox\n$bb mkdir -p /proc /mnt\n$bb mount -t proc proc /proc\n\
         $bb mount -t devtmpfs dev /dev\n",
    );
    for m in modules {
        s.push_str(&format!("$bb insmod /{m}\n"));
    }
    for (name, _) in IMAGES {
        s.push_str(&format!(
            "$bb mkdir /mnt/{name} && $bb mount -t erofs -o loop,ro /{name}.erofs /mnt/{name} && cd /mnt/{name} \
             && $bb stat -c '{name} %n %f %u %g %h %s %Y %i' {files} && $bb stat -c '{name} %n %f %u %g %h %Y %t:%T' \
             {others} && $bb echo \"{name} link $($bb readlink bin/link)\" \
             && $bb echo \"{name} sums $($bb md5sum var/big var/exact var/sparse | $bb md5sum) $($bb cat many/* | $bb md5sum)\" \
             && $bb echo \"{name} count $($bb ls -a many | $bb wc -l)\"; cd /\n",
            files = FILES.join(" "),
            others = OTHERS.join(" "),
        ));
    }
    s.push_str(&format!("$bb echo {DONE}\n$bb poweroff -f\n"));
    s
}

#[test]
fn the_kernel_mounts_our_images_and_reads_back_the_tree() {
    let tree = tree();
    let kernel = clay_testkit::example_kernel();
    let mut extra = kernel_module_files(&MODULES);
    let names: Vec<String> = extra.iter().map(|(name, _)| name.clone()).collect();
    for (name, clamp_mtime) in IMAGES {
        let opts = Options { clamp_mtime, uuid: [7; 16], volume_name: name.to_owned() };
        let mut out = Cursor::new(Vec::new());
        write_erofs(&tree, &opts, &mut out).unwrap();
        extra.push((format!("{name}.erofs"), out.into_inner()));
    }
    let initrd = busybox_initramfs_with(&init_script(&names), &extra);
    let dir = tempfile::tempdir().unwrap();
    let initrd_path = dir.path().join("initrd.cpio");
    std::fs::write(&initrd_path, initrd).unwrap();

    let mut opts = RunOptions::new(Boot::Kernel { kernel, initrd: Some(initrd_path), cmdline: CMDLINE.to_owned() });
    opts.firmware = Firmware::Bios;
    let vm = Vm::prepare(&opts, &mut |n| eprintln!("notice: {n}")).unwrap_or_else(|e| panic!("{e}"));
    let output = vm.run_until(DONE, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<String> = output.lines().map(|l| l.trim_end_matches('\r').to_owned()).collect();
    for l in lines.iter().filter(|l| IMAGES.iter().any(|(name, _)| l.starts_with(&format!("{name} ")))) {
        eprintln!("guest: {l}");
    }

    let sums: String = ["var/big", "var/exact", "var/sparse"]
        .iter()
        .map(|p| format!("{}  {p}\n", md5sum(&file_bytes(&tree, p))))
        .collect();
    let many: Vec<u8> = (0..MANY).flat_map(|i| file_bytes(&tree, &many_name(i))).collect();
    let links = tree.link_counts(&tree.walk());
    for (name, clamp) in IMAGES {
        let mut expected = vec![
            format!("{name} link ../usr/bin/prog3"),
            format!("{name} sums {}  - {}  -", md5sum(sums.as_bytes()), md5sum(&many)),
            format!("{name} count {}", MANY + 2),
        ];
        let mut inos = Vec::new();
        for p in FILES.iter().chain(OTHERS.iter()) {
            let id = tree.lookup(p.as_bytes()).unwrap().unwrap();
            let inode = tree.inode(id);
            let m = &inode.meta;
            let head = format!("{name} {p} {:x} {} {} {}", inode.st_mode(), m.uid, m.gid, links[&id]);
            let mtime = m.mtime.min(clamp.unwrap_or(i64::MAX));
            let line = match &inode.kind {
                Kind::File(c) if FILES.contains(p) => format!("{head} {} {mtime} ", c.len()),
                Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                    format!("{head} {mtime} {major:x}:{minor:x}")
                }
                _ => format!("{head} {mtime} 0:0"),
            };
            let got = lines.iter().find(|l| l.starts_with(&line)).unwrap_or_else(|| {
                panic!("no line starting `{line}` in the guest's output:\n{output}");
            });
            if FILES[..3].contains(p) {
                inos.push(got.rsplit(' ').next().unwrap().to_owned());
            }
        }
        assert!(inos.iter().all(|i| *i == inos[0]), "hard links have different inodes in {name}: {inos:?}");
        expected.retain(|e| !lines.contains(e));
        assert!(expected.is_empty(), "missing from the guest's output: {expected:?}\n{output}");
    }
}
