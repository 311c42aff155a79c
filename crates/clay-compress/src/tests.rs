use super::*;

/// Deterministic, compressible, not trivially repetitive test data.
fn sample(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 3 == 0 {
                (x % 16) as u8 + b'a'
            } else {
                b"clay linux "[i % 11]
            }
        })
        .collect()
}

fn compress(c: Compression, data: &[u8], threads: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = encoder(c, &mut out, threads).unwrap();
    for chunk in data.chunks(100_003) {
        enc.write_all(chunk).unwrap();
    }
    enc.finish().unwrap();
    out
}

#[test]
fn every_algorithm_round_trips_through_its_reference_tool() {
    let data = sample(9 << 20);
    for (c, tool) in [
        (Compression::DEFAULT, &["zstd", "-dc"][..]),
        (Compression::Zstd { level: 19 }, &["zstd", "-dc"][..]),
        (Compression::Gzip { level: 1 }, &["gzip", "-dc"][..]),
        (Compression::Xz { level: 0 }, &["xz", "-dc"][..]),
        (Compression::Lz4, &["lz4", "-dc"][..]),
        (Compression::None, &["cat"][..]),
    ] {
        let packed = compress(c, &data, 2);
        assert!(clay_testkit::pipe(tool, &packed) == data, "{c} did not round-trip");
    }
}

#[test]
fn xz_uses_crc32_as_the_kernel_requires() {
    let packed = compress(Compression::Xz { level: 0 }, b"hello", 1);
    // Stream header flags (xz-file-format.txt 2.1.1.2): byte 7 holds the check type; 0x01 is CRC32.
    assert_eq!(&packed[..6], b"\xfd7zXZ\0");
    assert_eq!(packed[7], 0x01);
}

#[test]
fn zstd_window_stays_within_the_kernel_limit() {
    for level in [3, 19, 22] {
        let packed = compress(Compression::Zstd { level }, &sample(1 << 20), 2);
        // Frame header (RFC 8878 3.1.1.1): descriptor, then the window descriptor unless single-segment.
        let descriptor = packed[4];
        assert_eq!(descriptor & 0x20, 0, "frames must carry a window descriptor");
        let wd = packed[5];
        let window_log = 10 + u32::from(wd >> 3);
        assert!(window_log <= 23, "level {level}: window log {window_log} exceeds the kernel's 8 MiB");
    }
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let data = sample(6 << 20);
    for c in [Compression::DEFAULT, Compression::Xz { level: 0 }, Compression::Lz4] {
        assert!(compress(c, &data, 1) == compress(c, &data, 2), "{c} differs between 1 and 2 threads");
    }
}

#[test]
fn lz4_writes_the_legacy_frame() {
    let packed = compress(Compression::Lz4, &sample(9 << 20), 1);
    assert_eq!(packed[..4], 0x184C_2102u32.to_le_bytes());
}

#[test]
fn parses_names_and_levels() {
    assert_eq!("zstd".parse(), Ok(Compression::Zstd { level: 3 }));
    assert_eq!("zstd:19".parse(), Ok(Compression::Zstd { level: 19 }));
    assert_eq!("xz".parse(), Ok(Compression::Xz { level: 6 }));
    assert_eq!("none".parse(), Ok(Compression::None));
    assert_eq!(
        "zstd:99".parse::<Compression>().unwrap_err().to_string(),
        "compression level `99` for zstd is out of range; use 1 to 22"
    );
    assert!(matches!("bzip2".parse::<Compression>(), Err(ParseCompressionError::Unknown(_))));
    assert!(matches!("lz4:3".parse::<Compression>(), Err(ParseCompressionError::Unknown(_))));
}
