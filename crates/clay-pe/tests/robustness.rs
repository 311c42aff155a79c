//! Random, truncated and corrupted inputs: read_sections and write_uki return errors, never panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

mod common;

use clay_pe::read_sections;
use common::*;

fn inputs() -> Vec<Owned> {
    vec![owned(".linux", pattern(700, 1)), owned(".cmdline", "quiet"), owned(".sbat", clay_pe::default_sbat("1"))]
}

/// Whatever happens, an image that is produced must read back with its sections inside the file.
fn try_all(bytes: &[u8]) {
    if let Ok(info) = read_sections(bytes) {
        let _ = clay_pe::dump(&info);
    }
    if let Ok(image) = build(bytes, &inputs(), Some(0)) {
        let info = read_sections(&image).unwrap();
        for s in &info.sections {
            assert!(u64::from(s.raw_offset) + u64::from(s.raw_size) <= image.len() as u64, "{s:?}");
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x5eed);
    for _ in 0..300 {
        let len = rng.below(2048);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half of them look like a PE far enough to reach the deeper checks.
        if rng.below(2) == 0 && len > 0x100 {
            bytes[0..2].copy_from_slice(b"MZ");
            put32(&mut bytes, 0x3c, 0x40);
            bytes[0x40..0x44].copy_from_slice(b"PE\0\0");
        }
        try_all(&bytes);
    }
}

#[test]
fn corrupted_stubs() {
    let mut rng = Rng(0xc0ffee);
    let specs = [
        StubSpec::default(),
        StubSpec { size_of_headers: 0x200, debug_in: Some(1), ..StubSpec::default() },
        StubSpec { symbol_table: Some(pattern(40, 2)), ..StubSpec::default() },
    ];
    for spec in &specs {
        let stub = spec.build();
        // Every header byte set to a few telling values.
        for at in 0..(TABLE + 3 * 40).min(stub.len()) {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bytes = stub.clone();
                bytes[at] = value;
                try_all(&bytes);
            }
        }
        // Random multi-byte corruption and truncation.
        for _ in 0..300 {
            let mut bytes = stub.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len().min(0x400));
                bytes[at] = rng.next() as u8;
            }
            bytes.truncate(rng.below(bytes.len() + 1).max(rng.below(bytes.len() + 1)));
            try_all(&bytes);
        }
    }
}
