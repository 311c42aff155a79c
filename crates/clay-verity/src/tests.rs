use std::io::{self, Cursor, Read};
use std::path::Path;

use clay_testkit::sh_in;

use super::*;

const UUID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// Deterministic data that is not all alike: a xorshift stream, with every seventh block zero.
fn sample(len: usize, block_size: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ len as u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    for (i, block) in out.chunks_mut(block_size).enumerate() {
        if i % 7 == 6 {
            block.fill(0);
        }
    }
    out
}

fn options(data_block_size: u32, hash_block_size: u32, superblock: bool) -> VerityOptions {
    VerityOptions {
        data_block_size,
        hash_block_size,
        salt: salt_from_seed(b"clay-verity tests").to_vec(),
        format: Format::V1,
        uuid: Some(parse_uuid(UUID).unwrap()),
        superblock,
    }
}

/// `veritysetup` arguments that describe `params` completely, for `format` and `verify`.
fn veritysetup_args(params: &VerityParams) -> String {
    let mut args = format!(
        "--format {} --data-block-size {} --hash-block-size {} --salt {}",
        params.format.number(),
        params.data_block_size,
        params.hash_block_size,
        params.salt_hex()
    );
    match params.uuid_string() {
        Some(uuid) => args += &format!(" --uuid {uuid}"),
        None => args += &format!(" --no-superblock --data-blocks {}", params.data_blocks),
    }
    args
}

/// Runs `veritysetup format` on `data` with the options `ours` was built with; returns its hash device and the root
/// hash it printed.
fn oracle_format(dir: &Path, data: &[u8], ours: &VerityParams) -> (Vec<u8>, String) {
    std::fs::write(dir.join("data"), data).unwrap();
    let _ = std::fs::remove_file(dir.join("oracle.hash"));
    let out = sh_in(dir, &format!("veritysetup format {} data oracle.hash", veritysetup_args(ours)));
    let root = out
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap_or_else(|| panic!("no root hash in:\n{out}"))
        .trim()
        .to_string();
    (std::fs::read(dir.join("oracle.hash")).unwrap(), root)
}

/// Whether `veritysetup verify` accepts `data` and `hash` under `params`.
fn oracle_verify(dir: &Path, data: &[u8], hash: &[u8], params: &VerityParams) -> bool {
    std::fs::write(dir.join("data"), data).unwrap();
    std::fs::write(dir.join("ours.hash"), hash).unwrap();
    let script = format!(
        "if veritysetup verify {} data ours.hash {} >/dev/null 2>&1; then echo ok; else echo bad; fi",
        veritysetup_args(params),
        params.root_hash_hex()
    );
    match sh_in(dir, &script).trim() {
        "ok" => true,
        "bad" => false,
        other => panic!("unexpected output {other:?}"),
    }
}

#[test]
fn byte_identical_to_veritysetup() {
    let dir = tempfile::tempdir().unwrap();
    // (data block size, hash block size, data blocks): one block (no tree), one partial tree block, exactly one
    // full block, one over (two levels), a few MiB, and three or four levels with small hash blocks.
    let cases: &[(u32, u32, usize)] = &[
        (4096, 4096, 1),
        (4096, 4096, 2),
        (4096, 4096, 127),
        (4096, 4096, 128),
        (4096, 4096, 129),
        (4096, 4096, 768),
        (1024, 4096, 3000),
        (4096, 1024, 100),
        (1024, 1024, 1025),
        (512, 512, 300),
        (512, 512, 4097),
        (65536, 8192, 9),
    ];
    for &(dbs, hbs, blocks) in cases {
        let data = sample(blocks * dbs as usize, dbs as usize);
        for superblock in [true, false] {
            let label = format!("data block {dbs}, hash block {hbs}, {blocks} blocks, superblock {superblock}");
            let ours = format(Cursor::new(&data), &options(dbs, hbs, superblock)).unwrap();
            let (hash, root) = oracle_format(dir.path(), &data, &ours.params);
            assert_eq!(ours.params.root_hash_hex(), root, "{label}");
            assert!(ours.hash_device == hash, "{label}: hash devices differ");
            assert_eq!(ours.hash_device.len() as u64, ours.params.hash_device_size(), "{label}");
            assert_eq!(ours.params.data_blocks, blocks as u64, "{label}");
            assert!(oracle_verify(dir.path(), &data, &ours.hash_device, &ours.params), "{label}");
            verify(Cursor::new(&data), &ours.hash_device, &ours.params).unwrap();
        }
    }
}

#[test]
fn three_levels_of_4096_byte_blocks() {
    // 128 × 128 + 1 blocks (64 MiB + 4 KiB) is the smallest tree of 4096-byte hash blocks with three levels.
    let dir = tempfile::tempdir().unwrap();
    let data = sample((128 * 128 + 1) * 4096, 4096);
    let ours = format(Cursor::new(&data), &options(4096, 4096, true)).unwrap();
    assert_eq!(ours.params.tree_blocks(), 129 + 2 + 1);
    let (hash, root) = oracle_format(dir.path(), &data, &ours.params);
    assert_eq!(ours.params.root_hash_hex(), root);
    assert!(ours.hash_device == hash, "hash devices differ");
}

#[test]
fn format_0_and_empty_salt_match_veritysetup() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(200 * 4096, 4096);
    for (format_version, salt) in
        [(Format::V0, salt_from_seed(b"v0").to_vec()), (Format::V1, vec![]), (Format::V0, vec![])]
    {
        let opts = VerityOptions { format: format_version, salt, ..options(4096, 4096, true) };
        let ours = format(Cursor::new(&data), &opts).unwrap();
        let (hash, root) = oracle_format(dir.path(), &data, &ours.params);
        assert_eq!(ours.params.root_hash_hex(), root, "{opts:?}");
        assert!(ours.hash_device == hash, "{opts:?}: hash devices differ");
    }
    // The longest salt a superblock holds.
    let opts = VerityOptions { salt: vec![0xa5; MAX_SALT_LEN], ..options(4096, 4096, true) };
    let ours = format(Cursor::new(&data), &opts).unwrap();
    let (hash, root) = oracle_format(dir.path(), &data, &ours.params);
    assert_eq!(ours.params.root_hash_hex(), root);
    assert!(ours.hash_device == hash, "256-byte salt: hash devices differ");
}

#[test]
fn derived_uuid_is_deterministic_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(300 * 4096, 4096);
    let opts = VerityOptions::new(salt_from_seed(b"seed"));
    let a = format(Cursor::new(&data), &opts).unwrap();
    let b = format(Cursor::new(&data), &opts).unwrap();
    assert_eq!(a, b);
    let uuid = a.params.uuid_string().unwrap();
    assert_eq!(&uuid[14..15], "4", "version 4 layout: {uuid}");
    assert_eq!(parse_uuid(&uuid).unwrap(), a.params.uuid.unwrap());
    assert!(oracle_verify(dir.path(), &data, &a.hash_device, &a.params));
    // veritysetup reads the same parameters from our superblock...
    std::fs::write(dir.path().join("ours.hash"), &a.hash_device).unwrap();
    let dump = sh_in(dir.path(), "veritysetup dump ours.hash");
    let field =
        |name: &str| dump.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default();
    assert_eq!(field("UUID:"), uuid);
    assert_eq!(field("Salt:"), a.params.salt_hex());
    assert_eq!(field("Data blocks:"), "300");
    assert_eq!(field("Hash type:"), "1");
    // ...and we read veritysetup's, even with a UUID it drew at random.
    std::fs::write(dir.path().join("data"), &data).unwrap();
    let out = sh_in(dir.path(), &format!("veritysetup format --salt {} data theirs.hash", a.params.salt_hex()));
    let theirs = std::fs::read(dir.path().join("theirs.hash")).unwrap();
    let read = VerityParams::from_superblock(&theirs, a.params.root_hash).unwrap();
    assert!(out.contains(&read.uuid_string().unwrap()), "{out}");
    assert_eq!(VerityParams { uuid: a.params.uuid, ..read.clone() }, a.params);
    verify(Cursor::new(&data), &theirs, &read).unwrap();
}

#[test]
fn corruption_is_found_by_both() {
    let dir = tempfile::tempdir().unwrap();
    for superblock in [true, false] {
        // 1024-byte hash blocks: 32 digests a block, so 3000 blocks make levels of 94, 3 and 1 blocks.
        let data = sample(3000 * 4096, 4096);
        let tree = format(Cursor::new(&data), &options(4096, 1024, superblock)).unwrap();
        let params = &tree.params;
        let start = usize::try_from(params.hash_offset()).unwrap();
        assert!(oracle_verify(dir.path(), &data, &tree.hash_device, params));

        for block in [0usize, 1234, 2999] {
            let mut bad = data.clone();
            bad[block * 4096 + 77] ^= 0x10;
            assert!(!oracle_verify(dir.path(), &bad, &tree.hash_device, params), "data block {block}");
            let err = verify(Cursor::new(&bad), &tree.hash_device, params).unwrap_err();
            assert!(
                matches!(err, VerityError::DataBlockMismatch { block: b, offset } if b == block as u64 && offset == b * 4096),
                "data block {block}: {err}"
            );
            assert!(err.to_string().contains(&format!("data block {block} ")), "{err}");
        }

        // (byte of the hash device, level, index within the level): the root block, a middle block, the first and
        // the last level-0 block, including its zero padding after the last digest.
        let level0 = start + 4 * 1024;
        for (at, level, index) in [
            (start + 5, 2, 0),
            (start + 1024 + 2048 + 40, 1, 2),
            (level0 + 3, 0, 0),
            (level0 + 93 * 1024 + 1000, 0, 93),
        ] {
            let mut bad = tree.hash_device.clone();
            bad[at] ^= 0x01;
            assert!(!oracle_verify(dir.path(), &data, &bad, params), "hash byte {at}");
            let err = verify(Cursor::new(&data), &bad, params).unwrap_err();
            let offset = (at / 1024 * 1024) as u64;
            assert!(
                matches!(err, VerityError::HashBlockMismatch { level: l, index: i, offset: o }
                    if l == level && i == index && o == offset),
                "hash byte {at}: {err}"
            );
        }
    }
}

#[test]
fn corrupt_superblock_is_found_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(50 * 4096, 4096);
    let tree = format(Cursor::new(&data), &options(4096, 4096, true)).unwrap();
    // 0x58: the first salt byte.
    let mut bad = tree.hash_device.clone();
    bad[0x58] ^= 0xff;
    assert!(!oracle_verify(dir.path(), &data, &bad, &tree.params));
    let err = verify(Cursor::new(&data), &bad, &tree.params).unwrap_err();
    assert!(matches!(err, VerityError::SuperblockMismatch { field: "salt", .. }), "{err}");
    // The signature.
    let mut bad = tree.hash_device.clone();
    bad[0] = b'V';
    assert!(!oracle_verify(dir.path(), &data, &bad, &tree.params));
    let err = verify(Cursor::new(&data), &bad, &tree.params).unwrap_err();
    assert!(matches!(err, VerityError::BadSuperblock(_)), "{err}");
}

#[test]
fn single_block_has_no_tree() {
    let data = sample(4096, 4096);
    let tree = format(Cursor::new(&data), &options(4096, 4096, false)).unwrap();
    assert!(tree.hash_device.is_empty());
    assert_eq!(tree.params.hash_device_size(), 0);
    let mut bad = data.clone();
    bad[4095] ^= 1;
    let err = verify(Cursor::new(&bad), &tree.hash_device, &tree.params).unwrap_err();
    assert!(matches!(err, VerityError::DataBlockMismatch { block: 0, offset: 0 }), "{err}");
}

#[test]
fn verify_ignores_data_after_the_tree_and_needs_all_it_covers() {
    let data = sample(10 * 4096, 4096);
    let tree = format(Cursor::new(&data), &options(4096, 4096, true)).unwrap();
    let mut longer = data.clone();
    longer.extend_from_slice(&[0xee; 5000]);
    let mut hash_longer = tree.hash_device.clone();
    hash_longer.extend_from_slice(&[0xee; 5000]);
    verify(Cursor::new(&longer), &hash_longer, &tree.params).unwrap();
    let err = verify(Cursor::new(&data[..9 * 4096]), &tree.hash_device, &tree.params).unwrap_err();
    assert!(matches!(err, VerityError::DataTooShort { blocks: 9, expected: 10 }), "{err}");
    let err = verify(Cursor::new(&data[..9 * 4096 + 1]), &tree.hash_device, &tree.params).unwrap_err();
    assert!(matches!(err, VerityError::PartialBlock { len: 36865, block_size: 4096 }), "{err}");
    let short = &tree.hash_device[..tree.hash_device.len() - 1];
    let err = verify(Cursor::new(&data), short, &tree.params).unwrap_err();
    assert!(matches!(err, VerityError::HashDeviceTooShort { len: 8191, needed: 8192 }), "{err}");
}

#[test]
fn bad_input_is_refused() {
    let data = sample(8192, 4096);
    let err = format(Cursor::new(&data[..8000]), &VerityOptions::new([1; 32])).unwrap_err();
    assert!(matches!(err, VerityError::PartialBlock { len: 8000, block_size: 4096 }), "{err}");
    let err = format(Cursor::new(&[]), &VerityOptions::new([1; 32])).unwrap_err();
    assert!(matches!(err, VerityError::EmptyData), "{err}");
    for size in [0, 1, 256, 511, 1000, 3000, 4095, 1 << 20, u32::MAX] {
        for (which, opts) in [
            ("data", VerityOptions { data_block_size: size, ..VerityOptions::new([1; 32]) }),
            ("hash", VerityOptions { hash_block_size: size, ..VerityOptions::new([1; 32]) }),
        ] {
            let err = format(Cursor::new(&data), &opts).unwrap_err();
            assert!(
                matches!(err, VerityError::BadBlockSize { which: w, size: s, .. } if w == which && s == size),
                "{which} {size}: {err}"
            );
        }
    }
    let err = format(Cursor::new(&data), &VerityOptions::new(vec![0; MAX_SALT_LEN + 1])).unwrap_err();
    assert!(matches!(err, VerityError::SaltTooLong { len: 257, max: 256 }), "{err}");
    assert!(format(Cursor::new(&data), &VerityOptions::new(vec![])).is_ok());

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(0);
            self.0 -= n;
            Ok(n)
        }
    }
    let err = format(Failing(5000), &VerityOptions::new([1; 32])).unwrap_err();
    assert!(matches!(err, VerityError::Read { offset: 5000, .. }), "{err}");

    for garbage in [&[][..], &[0u8; 100][..], &[0u8; 4096][..]] {
        let err = VerityParams::from_superblock(garbage, [0; 32]).unwrap_err();
        assert!(matches!(err, VerityError::BadSuperblock(_)), "{err}");
    }
    for bad in [
        "",
        "0f1e2d3c4b5a697887 96a5b4c3d2e1f0",
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
        "0f1e2d3c-4b5a-6978-8796a5b4c3d2e1f0",
    ] {
        assert!(matches!(parse_uuid(bad), Err(VerityError::BadUuid(_))), "{bad}");
    }
    assert_eq!(uuid_to_string(&parse_uuid(&UUID.to_uppercase()).unwrap()), UUID);
}

#[test]
fn table_and_kernel_command_line() {
    let data = sample(129 * 4096, 4096);
    let tree = format(Cursor::new(&data), &options(4096, 4096, true)).unwrap();
    let p = &tree.params;
    let root = p.root_hash_hex();
    let salt = p.salt_hex();
    assert_eq!(
        p.table("/dev/sda2", "/dev/sda3"),
        format!("0 1032 verity 1 /dev/sda2 /dev/sda3 4096 4096 129 1 sha256 {root} {salt}")
    );
    assert_eq!(
        p.kernel_cmdline("PARTLABEL=root", "PARTLABEL=verity"),
        format!(
            "roothash={root} systemd.verity_root_data=PARTLABEL=root systemd.verity_root_hash=PARTLABEL=verity \
             systemd.verity_root_options=format=1,data-block-size=4096,hash-block-size=4096,data-blocks=129,\
             hash-offset=4096,hash=sha256,salt={salt},uuid={UUID}"
        )
    );
    let bare = format(Cursor::new(&data), &VerityOptions { salt: vec![], ..options(4096, 4096, false) }).unwrap();
    assert!(bare.params.table("8:2", "8:3").ends_with(&format!(" 129 0 sha256 {} -", bare.params.root_hash_hex())));
    assert!(bare.params.options().ends_with("hash-offset=0,hash=sha256,salt=-,superblock=false"));
}

#[test]
fn superblock_layout() {
    let tree = format(Cursor::new(&sample(4096, 4096)), &options(4096, 4096, true)).unwrap();
    let sb = &tree.hash_device[..SUPERBLOCK_LEN];
    assert_eq!(&sb[..8], b"verity\0\0");
    assert_eq!(&sb[8..16], &[1, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&sb[16..32], &parse_uuid(UUID).unwrap());
    assert_eq!(&sb[32..40], b"sha256\0\0");
    assert_eq!(&sb[64..82], &[0, 16, 0, 0, 0, 16, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 32, 0]);
    assert!(tree.hash_device[SUPERBLOCK_LEN..].iter().all(|&b| b == 0));
    assert_eq!(tree.hash_device.len(), 4096);
}
