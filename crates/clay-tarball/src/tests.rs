use super::*;
use clay_testkit::{sh, sh_in};

#[test]
fn round_trips_through_gnu_tar_and_our_reader() {
    let dir = tempfile::tempdir().unwrap();
    sh_in(
        dir.path(),
        "mkdir -p root/bin root/dev root/tmp
         printf hello > root/bin/prog && chmod 4755 root/bin/prog && ln root/bin/prog root/bin/prog2
         ln -s prog root/bin/link && mkfifo root/dev/fifo && mknod root/dev/null c 1 3 && chmod 1777 root/tmp
         setcap cap_net_raw+ep root/bin/prog
         find root -exec touch -h -d @1700000000 {} +",
    );
    let source = clay_source::read_dir(&dir.path().join("root"), &mut |_| {}).unwrap();
    let tar_path = dir.path().join("out.tar");
    let file = std::fs::File::create(&tar_path).unwrap();
    let entries = write_tarball(&source, &Options { clamp_mtime: Some(1_800_000_000) }, file).unwrap();
    assert_eq!(entries, 9);
    let listing = sh(&format!("tar --numeric-owner -tvf {}", tar_path.display()));
    let lines: Vec<String> = listing.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for expected in [
        "-rwsr-xr-x 0/0 5 2023-11-14 22:13 bin/prog",
        "hrwsr-xr-x 0/0 0 2023-11-14 22:13 bin/prog2 link to bin/prog",
        "crw-r--r-- 0/0 1,3 2023-11-14 22:13 dev/null",
        "drwxrwxrwt 0/0 0 2023-11-14 22:13 tmp",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected} missing from\n{listing}");
    }
    let caps = sh_in(
        dir.path(),
        &format!("mkdir x && tar --xattrs --xattrs-include='*' -xpf {} -C x && getcap x/bin/prog", tar_path.display()),
    );
    assert!(caps.contains("cap_net_raw=ep"), "{caps}");
    // Our own reader sees the same tree.
    let back = clay_source::read_tar(&tar_path, &mut |_| {}).unwrap();
    assert_eq!(back.dump(), source.dump());
}

#[test]
fn equal_input_gives_equal_bytes() {
    let dir = tempfile::tempdir().unwrap();
    sh_in(dir.path(), "mkdir -p root/a && printf x > root/a/b");
    let tree = clay_source::read_dir(&dir.path().join("root"), &mut |_| {}).unwrap();
    let opts = Options { clamp_mtime: Some(0) };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    write_tarball(&tree, &opts, &mut a).unwrap();
    sh_in(dir.path(), "touch root/a/b root/a");
    let tree = clay_source::read_dir(&dir.path().join("root"), &mut |_| {}).unwrap();
    write_tarball(&tree, &opts, &mut b).unwrap();
    assert!(a == b);
}
