use super::*;

fn header(name: &[u8], mode: u32, size: u32) -> Header<'_> {
    Header {
        name,
        ino: 1,
        mode,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 1_700_000_000,
        filesize: size,
        rdev_major: 0,
        rdev_minor: 0,
    }
}

fn sample_archive() -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    w.entry(&Header { ino: 1, nlink: 3, ..header(b".", 0o40755, 0) }).unwrap();
    w.entry(&Header { ino: 2, ..header(b"bin", 0o40755, 0) }).unwrap();
    w.entry(&Header { ino: 3, uid: 1000, gid: 100, ..header(b"bin/hello", 0o104755, 5) }).unwrap();
    w.data().write_all(b"hello").unwrap();
    w.entry(&Header { ino: 4, ..header(b"bin/sh", 0o120777, 5) }).unwrap();
    w.data().write_all(b"hello").unwrap();
    w.entry(&Header { ino: 5, rdev_major: 5, rdev_minor: 1, ..header(b"console", 0o20600, 0) }).unwrap();
    w.finish().unwrap()
}

#[test]
fn layout_matches_the_kernel_buffer_format() {
    let a = sample_archive();
    assert_eq!(&a[..6], b"070701");
    // First entry "." : 110-byte header + "." + NUL = 112, already aligned.
    assert_eq!(&a[110..112], b".\0");
    assert_eq!(&a[112..118], b"070701");
    assert_eq!(a.len() % 4, 0);
    assert!(a.windows(TRAILER.len()).any(|w| w == TRAILER));
    // Readable dump of the first header's fields.
    let fields: Vec<&str> = (0..13).map(|i| std::str::from_utf8(&a[6 + i * 8..14 + i * 8]).unwrap()).collect();
    assert_eq!(
        fields.join(" "),
        "00000001 000041ED 00000000 00000000 00000003 6553F100 00000000 00000000 00000000 00000000 00000000 00000002 00000000"
    );
}

#[test]
fn gnu_cpio_and_bsdtar_read_it_back() {
    let a = sample_archive();
    let listing = clay_testkit::pipe_text(&["cpio", "-itv", "--quiet", "--numeric-uid-gid"], &a);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 5, "{listing}");
    assert!(lines[2].starts_with("-rwsr-xr-x   1 1000     100             5 "), "{}", lines[2]);
    assert!(lines[2].ends_with("bin/hello"));
    assert!(lines[3].ends_with("bin/sh -> hello"), "{}", lines[3]);
    assert!(lines[4].starts_with("crw-------"), "{}", lines[4]);
    let bsd = clay_testkit::pipe_text(&["bsdtar", "-tf", "-"], &a);
    assert_eq!(bsd.lines().collect::<Vec<_>>(), [".", "bin", "bin/hello", "bin/sh", "console"]);
}

#[test]
fn short_or_long_data_is_refused() {
    let mut w = Writer::new(Vec::new());
    w.entry(&header(b"f", 0o100644, 4)).unwrap();
    w.data().write_all(b"abc").unwrap();
    assert!(matches!(w.finish(), Err(CpioError::SizeMismatch { promised: 4, written: 3, .. })));
    let mut w = Writer::new(Vec::new());
    w.entry(&header(b"f", 0o100644, 2)).unwrap();
    assert!(w.data().write_all(b"abc").is_err());
    let mut w = Writer::new(Vec::new());
    assert!(matches!(w.entry(&header(b"a\0b", 0o100644, 0)), Err(CpioError::NulInName(_))));
}
