//! Layer merging: whiteouts, opaque directories, hard links across layers, metadata, compressions.

use super::*;

#[test]
fn whiteouts_delete_lower_entries_and_opaque_dirs_hide_them_but_not_their_own_layer() {
    let lower = Tar::default()
        .dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir("dir")
        .file("dir/x", b"x")
        .dir("dir/sub")
        .file("dir/sub/y", b"y")
        .file("keep", b"k")
        .finish();
    // The opaque marker comes after a same-layer entry of its directory: order within a layer must not matter.
    let upper = Tar::default()
        .file("etc/.wh.a", b"")
        .file("dir/new", b"n")
        .file("dir/.wh..wh..opq", b"")
        .file("dir/sub2/.wh.nothing-here", b"")
        .file(".wh.keep", b"")
        .file("keep", b"same layer as its whiteout")
        .finish();
    let top = Tar::default().file("etc/a", b"again").finish();
    let image = read_layers(&[(lower, Comp::Plain), (upper, Comp::Plain), (top, Comp::Plain)]).unwrap();
    assert_eq!(
        image.tree.dump(),
        "\
. 40755 0:0 mtime=0
dir 40755 0:0 mtime=1700000000
dir/new 100644 0:0 mtime=1700000000 size=1
etc 40755 0:0 mtime=1700000000
etc/a 100644 0:0 mtime=1700000000 size=5
etc/b 100644 0:0 mtime=1700000000 size=1
keep 100644 0:0 mtime=1700000000 size=26
"
    );
    assert_eq!(content(&image, "keep"), b"same layer as its whiteout");
    assert_eq!(content(&image, "etc/a"), b"again");
}

#[test]
fn an_opaque_directory_keeps_entries_of_its_own_layer_written_before_it() {
    let lower = Tar::default().file("d/old", b"o").finish();
    let upper = Tar::default().dir("d").file("d/mine", b"m").file("d/.wh..wh..opq", b"").finish();
    let image = read_layers(&[(lower, Comp::Plain), (upper, Comp::Plain)]).unwrap();
    assert!(image.tree.lookup(b"d/old").unwrap().is_none());
    assert_eq!(content(&image, "d/mine"), b"m");
}

#[test]
fn hard_links_reach_lower_layers_and_earlier_entries_of_their_own() {
    let lower = Tar::default().file_mode("bin/prog", b"hello", 0o4755).finish();
    let upper =
        Tar::default().hardlink("bin/prog2", "bin/prog").file("usr/x", b"x").hardlink("/usr/y", "./usr/x").finish();
    let image = read_layers(&[(lower, Comp::Plain), (upper, Comp::Gzip)]).unwrap();
    let dump = image.tree.dump();
    assert!(dump.contains("bin/prog2 104755 0:0 mtime=1700000000 link=bin/prog\n"), "{dump}");
    assert!(dump.contains("usr/y 100644 0:0 mtime=1700000000 link=usr/x\n"), "{dump}");
    assert_eq!(content(&image, "bin/prog2"), b"hello");
}

#[test]
fn metadata_xattrs_devices_fifos_and_symlinks_survive() {
    let cap = [1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let layer = Tar::default()
        .pax(&[("SCHILY.xattr.security.capability", &cap), ("SCHILY.xattr.user.note", b"hi")])
        .file_mode("bin/ping", b"ping", 0o4755)
        .pax(&[("uid", b"100000"), ("gid", b"100"), ("mtime", b"1700000001.5")])
        .file("home/owned", b"")
        .raw("tmp", EntryType::Directory, b"", |h| h.set_mode(0o1777))
        .raw("dev/null", EntryType::Char, b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .raw("dev/sda", EntryType::Block, b"", |h| {
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
        })
        .raw("run/fifo", EntryType::Fifo, b"", |_| {})
        .symlink("bin/sh", "/bin/busybox")
        .finish();
    let image = read_layers(&[(layer, Comp::Zstd)]).unwrap();
    assert_eq!(
        image.tree.dump(),
        "\
. 40755 0:0 mtime=0
bin 40755 0:0 mtime=0
bin/ping 104755 0:0 mtime=1700000000 size=4 security.capability=0100000200200000000000000000000000000000 \
user.note=6869
bin/sh 120644 0:0 mtime=1700000000 -> /bin/busybox
dev 40755 0:0 mtime=0
dev/null 20644 0:0 mtime=1700000000 1:3
dev/sda 60644 0:0 mtime=1700000000 8:0
home 40755 0:0 mtime=0
home/owned 100644 100000:100 mtime=1700000001 size=0
run 40755 0:0 mtime=0
run/fifo 10644 0:0 mtime=1700000000
tmp 41777 0:0 mtime=1700000000
"
    );
}

#[test]
fn plain_gzip_and_zstd_layers_read_alike() {
    let base = Tar::default().dir("etc").file("etc/os-release", b"ID=test\n").finish();
    let top = Tar::default().file("etc/motd", &vec![b'm'; 100_000]).finish();
    let mut dumps = Vec::new();
    for comp in [Comp::Plain, Comp::Gzip, Comp::Zstd] {
        let image = read_layers(&[(base.clone(), comp), (top.clone(), comp)]).unwrap();
        assert_eq!(content(&image, "etc/os-release"), b"ID=test\n", "{comp:?}");
        assert_eq!(content(&image, "etc/motd"), vec![b'm'; 100_000], "{comp:?}");
        dumps.push(image.tree.dump());
    }
    assert_eq!(dumps[0], dumps[1]);
    assert_eq!(dumps[0], dumps[2]);
}

#[test]
fn entries_replaced_by_other_kinds_leave_a_sound_tree() {
    let lower = Tar::default().dir("d").file("d/child", b"c").file("f", b"f").symlink("s", "f").finish();
    let upper = Tar::default()
        .file("d", b"now a file")
        .dir("f")
        .file("f/inside", b"i")
        .file("s", b"was a symlink")
        .symlink("d", "f")
        .dir("d")
        .finish();
    let image = read_layers(&[(lower, Comp::Plain), (upper, Comp::Plain)]).unwrap();
    assert_eq!(
        image.tree.dump(),
        "\
. 40755 0:0 mtime=0
d 40755 0:0 mtime=1700000000
f 40755 0:0 mtime=1700000000
f/inside 100644 0:0 mtime=1700000000 size=1
s 100644 0:0 mtime=1700000000 size=13
"
    );
}
