use super::*;

fn record(path: &str, name: &str, value: &[u8]) -> XattrRecord {
    XattrRecord { path: path.into(), name: name.into(), value: value.to_vec() }
}

fn sample() -> Vec<XattrRecord> {
    vec![
        // cap_net_raw+ep as a VFS_CAP_REVISION_2 blob.
        record("usr/bin/ping", "security.capability", &[0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        record("etc/shadow", "user.empty", b""),
        record(".", "trusted.x", b"\0\xff"),
    ]
}

#[test]
fn round_trip() {
    let records = sample();
    let bytes = encode(&records);
    assert_eq!(decode(&bytes).unwrap(), records);
}

#[test]
fn empty_manifest_is_just_the_magic() {
    assert_eq!(encode(&[]), MAGIC);
    assert_eq!(decode(MAGIC).unwrap(), Vec::new());
}

#[test]
fn layout_is_pinned() {
    let bytes = encode(&[record("a", "user.b", b"cd")]);
    let mut expected = MAGIC.to_vec();
    expected.extend_from_slice(b"\x01\0\0\0a\x06\0\0\0user.b\x02\0\0\0cd");
    assert_eq!(bytes, expected);
}

#[test]
fn bad_magic() {
    assert_eq!(decode(b""), Err(ManifestError::BadMagic));
    assert_eq!(decode(b"CLAYXATTR2\n"), Err(ManifestError::BadMagic));
    assert_eq!(decode(b"CLAYXATTR1"), Err(ManifestError::BadMagic));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = encode(&sample());
    let boundaries: Vec<usize> = {
        // Cutting exactly between two records yields a valid, shorter manifest.
        let mut ends = vec![MAGIC.len()];
        let mut at = MAGIC.len();
        for r in sample() {
            at += 12 + r.path.len() + r.name.len() + r.value.len();
            ends.push(at);
        }
        ends
    };
    for cut in MAGIC.len()..bytes.len() {
        let result = decode(&bytes[..cut]);
        if boundaries.contains(&cut) {
            assert!(result.is_ok(), "cut at {cut}");
        } else {
            assert!(matches!(result, Err(ManifestError::Truncated { .. })), "cut at {cut}: {result:?}");
        }
    }
}

#[test]
fn truncation_names_record_and_field() {
    let mut bytes = encode(&[record("a", "user.b", b"cd")]);
    bytes.extend_from_slice(b"\x01\0\0\0x\x10\0\0\0user");
    assert_eq!(decode(&bytes), Err(ManifestError::Truncated { record: 1, field: "name", offset: 37 }));
}

#[test]
fn huge_length_is_truncation_not_allocation() {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode(&bytes), Err(ManifestError::Truncated { field: "path", .. })));
}

#[test]
fn empty_path_or_name_is_refused() {
    let bytes = encode(&[record("", "user.a", b"")]);
    assert_eq!(decode(&bytes), Err(ManifestError::Empty { record: 0, field: "path" }));
    let bytes = encode(&[record("a", "", b"")]);
    assert_eq!(decode(&bytes), Err(ManifestError::Empty { record: 0, field: "name" }));
}

/// A tiny xorshift generator: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let valid = encode(&sample());
    for round in 0..20_000 {
        let len = usize::from(rng.byte()) % 96;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        if round % 2 == 0 {
            // Keep the magic so the record parser, not the magic check, sees the garbage.
            bytes.splice(0..0, MAGIC.iter().copied());
        }
        if round % 3 == 0 {
            // Mutate a valid manifest: small length fields make the parser walk further.
            bytes = valid.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = usize::try_from(rng.next() % valid.len() as u64).unwrap();
                bytes[at] = rng.byte();
            }
            bytes.truncate(usize::try_from(rng.next() % (valid.len() as u64 + 1)).unwrap());
        }
        if let Ok(records) = decode(&bytes) {
            assert_eq!(decode(&encode(&records)).unwrap(), records);
        }
    }
}
