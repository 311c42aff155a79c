use std::io::Cursor;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

const MIB: u64 = 1 << 20;

fn spec(type_guid: Guid, label: &str, name: &str, size: u64, attributes: u64) -> PartitionSpec {
    PartitionSpec { type_guid, guid: Guid::from_seed(b"test-seed", label), name: name.into(), size, attributes }
}

fn sample_specs() -> Vec<PartitionSpec> {
    vec![
        spec(types::ESP, "esp", "ESP", 3 * MIB, ATTR_LEGACY_BIOS_BOOTABLE),
        spec(types::ROOT_X86_64, "root", "root-x86-64", 2 * MIB + 1, ATTR_READ_ONLY),
        spec(types::LINUX_DATA, "data", "données", 1, ATTR_GROWFS),
    ]
}

fn disk_guid() -> Guid {
    Guid::from_seed(b"test-seed", "disk")
}

/// Writes `layout` to a Vec the size of the disk.
fn image(layout: &Layout, boot_code: Option<&[u8]>) -> Vec<u8> {
    let mut disk = Cursor::new(vec![0u8; usize::try_from(layout.disk_size).unwrap()]);
    write_gpt(&mut disk, layout, disk_guid(), boot_code).unwrap();
    let disk = disk.into_inner();
    assert_eq!(disk.len() as u64, layout.disk_size);
    disk
}

fn write_file(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("disk.img");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn guid_text_round_trip() {
    let text = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    let g: Guid = text.parse().unwrap();
    assert_eq!(g, types::ESP);
    assert_eq!(g.to_string(), text);
    assert_eq!(g.0[..4], [0x28, 0x73, 0x2a, 0xc1], "first field is stored little-endian");
    assert_eq!(g.0[8..], [0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b]);
    assert_eq!("{C12A7328-F81F-11D2-BA4B-00A0C93EC93B}".parse::<Guid>().unwrap(), g);
    assert_eq!(Guid::from_u128(g.to_u128()), g);
    for bad in [
        "",
        "c12a7328f81f11d2ba4b00a0c93ec93b",
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
        "g12a7328-f81f-11d2-ba4b-00a0c93ec93b",
        "c12a7328-f81f-11d2-ba4b00-a0c93ec93b",
        "+12a7328-f81f-11d2-ba4b-00a0c93ec93b",
        "c12a7328-f81f-11d2-ba4b-00a0c93ec9é",
    ] {
        assert!(matches!(bad.parse::<Guid>(), Err(GptError::BadGuid(_))), "{bad}");
    }
}

#[test]
fn from_seed_is_stable_and_version_8() {
    let g = Guid::from_seed(b"claylinux", "disk");
    assert_eq!(g.to_string(), "47fb0327-80d3-862b-8dc6-ad86fdee865e");
    let text = g.to_string();
    assert_eq!(&text[14..15], "8", "version nibble");
    assert!("89ab".contains(&text[19..20]), "RFC 9562 variant");
    assert_eq!(Guid::from_seed(b"claylinux", "disk"), g);
    assert_ne!(Guid::from_seed(b"claylinux", "esp"), g);
    // The separator keeps (seed, label) pairs apart: "ab"+"c" differs from "a"+"bc".
    assert_ne!(Guid::from_seed(b"ab", "c"), Guid::from_seed(b"a", "bc"));
}

#[test]
fn plan_aligns_every_partition_to_one_mib() {
    let layout = plan(sample_specs(), None).unwrap();
    let places: Vec<(u64, u64)> = layout.partitions.iter().map(|p| (p.offset(), p.len())).collect();
    assert_eq!(places, [(MIB, 3 * MIB), (4 * MIB, 3 * MIB), (7 * MIB, MIB)]);
    assert_eq!(layout.partitions[0].first_lba, 2048);
    assert_eq!(layout.partitions[2].last_lba, 8 * 2048 - 1);
    // 8 MiB of partitions, then the 33-sector backup table, rounded up to 1 MiB.
    assert_eq!(layout.disk_size, 9 * MIB);
    assert!(layout.partitions.iter().all(|p| p.offset() % ALIGNMENT == 0 && p.len() % ALIGNMENT == 0));
    let grown = plan(sample_specs(), Some(100 * MIB + 1)).unwrap();
    assert_eq!(grown.disk_size, 101 * MIB);
    assert_eq!(grown.partitions, layout.partitions);
    assert_eq!(plan(sample_specs(), Some(9 * MIB)).unwrap().disk_size, 9 * MIB);
}

#[test]
fn plan_refuses_a_size_too_small_and_bad_specs() {
    let err = plan(sample_specs(), Some(8 * MIB)).unwrap_err();
    assert!(matches!(err, GptError::DoesNotFit { needed, requested } if needed == 9 * MIB && requested == 8 * MIB));
    assert_eq!(
        err.to_string(),
        "the partitions need a disk of at least 9437184 bytes (9 MiB) but the requested size is 8388608 bytes"
    );

    let mut specs = sample_specs();
    specs[1].size = 0;
    assert!(matches!(plan(specs, None), Err(GptError::EmptyPartition { index: 2, .. })));
    let mut specs = sample_specs();
    specs[0].name = "x".repeat(37);
    assert!(matches!(plan(specs, None), Err(GptError::NameTooLong { index: 1, units: 37, .. })));
    let mut specs = sample_specs();
    specs[0].name = "🦀".repeat(18); // 36 UTF-16 units: fits exactly.
    assert!(plan(specs, None).is_ok());
    let mut specs = sample_specs();
    specs[2].name = "a\0b".into();
    assert!(matches!(plan(specs, None), Err(GptError::NulInName { index: 3, .. })));
    let mut specs = sample_specs();
    specs[2].guid = specs[0].guid;
    assert!(matches!(plan(specs, None), Err(GptError::DuplicateGuid { first: 1, second: 3, .. })));
    let mut specs = sample_specs();
    specs[1].type_guid = Guid::NIL;
    assert!(matches!(plan(specs, None), Err(GptError::NilType { index: 2, .. })));
    let many = (0..129).map(|i| spec(types::LINUX_DATA, &i.to_string(), "p", MIB, 0)).collect();
    assert!(matches!(plan(many, None), Err(GptError::TooManyPartitions { count: 129, max: 128 })));
    let huge = vec![spec(types::LINUX_DATA, "a", "a", u64::MAX - 10, 0)];
    assert!(matches!(plan(huge, None), Err(GptError::TooLarge)));
    let huge =
        vec![spec(types::LINUX_DATA, "a", "a", u64::MAX / 2, 0), spec(types::LINUX_DATA, "b", "b", u64::MAX / 2, 0)];
    assert!(matches!(plan(huge, None), Err(GptError::TooLarge)));
}

#[test]
fn write_refuses_inconsistent_layouts_and_long_boot_code() {
    let layout = plan(sample_specs(), None).unwrap();
    let mut out = Cursor::new(Vec::new());
    assert!(matches!(
        write_gpt(&mut out, &layout, disk_guid(), Some(&[0u8; 441])),
        Err(GptError::BootCodeTooLong { len: 441, max: 440 })
    ));
    let mut overlapping = layout.clone();
    overlapping.partitions[1].first_lba -= 1;
    assert!(matches!(write_gpt(&mut out, &overlapping, disk_guid(), None), Err(GptError::InvalidLayout(_))));
    let mut past_end = layout.clone();
    past_end.partitions[2].last_lba = layout.sectors() - 33;
    assert!(matches!(write_gpt(&mut out, &past_end, disk_guid(), None), Err(GptError::InvalidLayout(_))));
    let mut tiny = layout.clone();
    tiny.disk_size = 512 * 40;
    tiny.partitions.clear();
    assert!(matches!(write_gpt(&mut out, &tiny, disk_guid(), None), Err(GptError::InvalidLayout(_))));
    let mut odd = layout;
    odd.disk_size += 1;
    assert!(matches!(write_gpt(&mut out, &odd, disk_guid(), None), Err(GptError::InvalidLayout(_))));
}

#[test]
fn protective_mbr_and_boot_code() {
    let layout = plan(sample_specs(), None).unwrap();
    let code: Vec<u8> = (0..440u32).map(|i| (i % 251) as u8).collect();
    let disk = image(&layout, Some(&code));
    assert_eq!(&disk[..440], &code[..]);
    assert_eq!(&disk[440..446], &[0; 6]);
    // The one protective record: not active, CHS 0/0/2, type 0xEE, LBA 1, the rest of the disk.
    let record = &disk[446..462];
    assert_eq!(&record[..5], &[0x00, 0x00, 0x02, 0x00, 0xEE]);
    assert_eq!(u32::from_le_bytes(record[8..12].try_into().unwrap()), 1);
    assert_eq!(u64::from(u32::from_le_bytes(record[12..16].try_into().unwrap())), layout.sectors() - 1);
    assert_eq!(&disk[462..510], &[0; 48]);
    assert_eq!(&disk[510..512], &[0x55, 0xAA]);
    assert_eq!(&disk[512..520], b"EFI PART");
    assert_eq!(&disk[disk.len() - 512..disk.len() - 504], b"EFI PART");
}

#[test]
fn sgdisk_verifies_and_lists_the_table() {
    let layout = plan(sample_specs(), Some(64 * MIB)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), &image(&layout, None));
    let verify = clay_testkit::sh_in(dir.path(), "sgdisk -v disk.img");
    assert!(verify.contains("No problems found"), "{verify}");
    let listing = clay_testkit::sh_in(dir.path(), "sgdisk -p disk.img");
    assert!(
        listing.contains(&format!("Disk identifier (GUID): {}", disk_guid().to_string().to_uppercase())),
        "{listing}"
    );
    let rows: Vec<String> = listing
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        rows,
        [
            "1 2048 8191 3.0 MiB EF00 ESP",
            "2 8192 14335 3.0 MiB 8304 root-x86-64",
            "3 14336 16383 1024.0 KiB 8300 données",
        ],
        "{listing}"
    );
    for (i, p) in layout.partitions.iter().enumerate() {
        let info = clay_testkit::sh_in(dir.path(), &format!("sgdisk -i {} disk.img", i + 1));
        assert!(info.contains(&format!("Partition unique GUID: {}", p.spec.guid.to_string().to_uppercase())), "{info}");
        assert!(
            info.contains(&format!("Partition GUID code: {}", p.spec.type_guid.to_string().to_uppercase())),
            "{info}"
        );
        assert!(info.contains(&format!("Attribute flags: {:016x}", p.spec.attributes)), "{info}");
        assert!(info.contains(&format!("Partition name: '{}'", p.spec.name)), "{info}");
    }
}

#[test]
fn type_guids_are_the_ones_sgdisk_knows() {
    let names = [
        (types::ESP, "EFI system partition"),
        (types::LINUX_DATA, "Linux filesystem"),
        (types::ROOT_X86_64, "Linux x86-64 root (/)"),
        (types::ROOT_VERITY_X86_64, "Linux x86-64 root verity"),
        (types::BIOS_BOOT, "BIOS boot partition"),
        (types::XBOOTLDR, "XBOOTLDR partition"),
    ];
    let specs = names.iter().enumerate().map(|(i, (t, _))| spec(*t, &i.to_string(), "p", MIB, 0)).collect();
    let layout = plan(specs, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), &image(&layout, None));
    for (i, (guid, name)) in names.iter().enumerate() {
        let info = clay_testkit::sh_in(dir.path(), &format!("sgdisk -i {} disk.img", i + 1));
        let expected = format!("Partition GUID code: {} ({name})", guid.to_string().to_uppercase());
        assert!(info.contains(&expected), "{expected}\n{info}");
    }
}

#[test]
fn sfdisk_reads_the_table() {
    let layout = plan(sample_specs(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), &image(&layout, None));
    let json: serde_json::Value =
        serde_json::from_str(&clay_testkit::sh_in(dir.path(), "sfdisk --json disk.img")).unwrap();
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "gpt");
    assert_eq!(table["id"], disk_guid().to_string().to_uppercase());
    assert_eq!(table["firstlba"], 34);
    assert_eq!(table["lastlba"], layout.sectors() - 34);
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (p, want) in parts.iter().zip(&layout.partitions) {
        assert_eq!(p["start"], want.first_lba);
        assert_eq!(p["size"], want.last_lba - want.first_lba + 1);
        assert_eq!(p["type"], want.spec.type_guid.to_string().to_uppercase());
        assert_eq!(p["uuid"], want.spec.guid.to_string().to_uppercase());
        assert_eq!(p["name"], want.spec.name);
    }
    assert_eq!(parts[0]["attrs"], "LegacyBIOSBootable");
}

#[test]
fn read_gpt_round_trip() {
    let layout = plan(sample_specs(), None).unwrap();
    let disk = image(&layout, None);
    let table = read_gpt(&disk[..READ_LEN], layout.disk_size).unwrap();
    assert_eq!(table.disk_guid, disk_guid());
    assert_eq!((table.first_usable_lba, table.last_usable_lba), (34, layout.sectors() - 34));
    assert_eq!(table.alternate_lba, layout.sectors() - 1);
    let back: Vec<(u32, PartitionSpec, u64, u64)> = table
        .partitions
        .iter()
        .map(|p| {
            let spec = PartitionSpec {
                type_guid: p.type_guid,
                guid: p.guid,
                name: p.name.clone(),
                size: p.len(),
                attributes: p.attributes,
            };
            (p.number, spec, p.first_lba, p.last_lba)
        })
        .collect();
    let want: Vec<(u32, PartitionSpec, u64, u64)> = layout
        .partitions
        .iter()
        .zip(1..)
        .map(|(p, n)| (n, PartitionSpec { size: p.len(), ..p.spec.clone() }, p.first_lba, p.last_lba))
        .collect();
    assert_eq!(back, want);
    // The backup table says the same, mirrored.
    let end = disk.len();
    assert_eq!(&disk[end - 33 * 512..end - 512], &disk[1024..34 * 512]);
}

#[test]
fn read_gpt_reports_damage() {
    let layout = plan(sample_specs(), None).unwrap();
    let disk = image(&layout, None);
    let first = &disk[..READ_LEN];
    assert!(matches!(read_gpt(&first[..READ_LEN - 1], layout.disk_size), Err(GptError::Truncated { .. })));
    assert!(matches!(read_gpt(first, layout.disk_size - 512), Err(GptError::BadHeader(_))));
    let mut bad = first.to_vec();
    bad[600] ^= 1;
    assert!(matches!(read_gpt(&bad, layout.disk_size), Err(GptError::BadCrc { what: "header", .. })));
    let mut bad = first.to_vec();
    bad[1024 + 200] ^= 1;
    assert!(matches!(read_gpt(&bad, layout.disk_size), Err(GptError::BadCrc { what: "partition entry array", .. })));
    let mut bad = first.to_vec();
    bad[510] = 0;
    assert!(matches!(read_gpt(&bad, layout.disk_size), Err(GptError::NotGpt(_))));
    assert!(matches!(read_gpt(&[0u8; READ_LEN], 1 << 30), Err(GptError::NotGpt(_))));
}

/// A small deterministic generator for robustness inputs (xorshift64*).
fn noise(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn read_gpt_never_panics_on_garbage() {
    let layout = plan(sample_specs(), None).unwrap();
    let disk = image(&layout, None);
    let valid = &disk[..READ_LEN];
    for len in 0..=READ_LEN {
        let _ = read_gpt(&valid[..len], layout.disk_size);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        // Random bytes behind a valid MBR and header signature, and random flips in a valid table with the CRCs
        // left wrong or recomputed, so the checks past the CRCs see garbage too.
        let mut bytes = valid.to_vec();
        for _ in 0..(noise(&mut state) % 16 + 1) {
            let at = usize::try_from(noise(&mut state) % READ_LEN as u64).unwrap();
            bytes[at] = noise(&mut state).to_le_bytes()[0];
        }
        if noise(&mut state) % 2 == 0 {
            let array_crc = crc32fast::hash(&bytes[1024..READ_LEN]);
            bytes[512 + 88..512 + 92].copy_from_slice(&array_crc.to_le_bytes());
            bytes[512 + 16..512 + 20].fill(0);
            let header_crc = crc32fast::hash(&bytes[512..512 + 92]);
            bytes[512 + 16..512 + 20].copy_from_slice(&header_crc.to_le_bytes());
        }
        let size = if noise(&mut state) % 4 == 0 { noise(&mut state) } else { layout.disk_size };
        let _ = read_gpt(&bytes, size);
        let random: Vec<u8> = (0..noise(&mut state) % 20_000).map(|_| noise(&mut state).to_le_bytes()[0]).collect();
        let _ = read_gpt(&random, noise(&mut state));
    }
}

#[test]
fn output_is_pinned() {
    let layout = plan(sample_specs(), None).unwrap();
    let disk = image(&layout, Some(b"\xfa\xf4\xeb\xfd"));
    let mut h = Sha256::new();
    h.update(&disk[..34 * 512]);
    h.update(&disk[disk.len() - 33 * 512..]);
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, "0cbfb7f8394d76b73751864ff35c95b8052ca3313ebb5ae81db3dedb453e1553");
    assert_eq!(image(&layout, Some(b"\xfa\xf4\xeb\xfd")), disk);
}
