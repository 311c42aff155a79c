//! write_uki and read_sections on small synthetic PE32+ stubs built here: layout rules, refusals, snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

mod common;

use clay_pe::{default_sbat, dump, read_sections, write_uki, PeChecksum, PeError, PeInfo, SectionInput};
use common::*;
use sha2::{Digest, Sha256};

fn uki_inputs() -> Vec<Owned> {
    vec![
        owned(".linux", pattern(5000, 3)),
        owned(".osrel", "ID=claylinux\nNAME=claylinux\n"),
        owned(".cmdline", "console=ttyS0 quiet"),
        owned(".initrd", pattern(0x2345, 4)),
        owned(".uname", "6.1.0-test"),
        owned(".sbat", default_sbat("0.1.0")),
    ]
}

/// Every rule the appended sections must follow, checked on `image` built from `stub` and `inputs` (in order,
/// all appended as new sections).
fn check_appended(stub: &[u8], image: &[u8], inputs: &[Owned]) -> PeInfo {
    let before = read_sections(stub).unwrap();
    let info = read_sections(image).unwrap();
    let (sa, fa) = (u64::from(info.section_alignment), u64::from(info.file_alignment));
    assert_eq!(info.sections.len(), before.sections.len() + inputs.len(), "NumberOfSections");
    for (old, new) in before.sections.iter().zip(&info.sections) {
        assert_eq!(
            (&old.name, old.virtual_address, old.virtual_size),
            (&new.name, new.virtual_address, new.virtual_size)
        );
        assert_eq!(raw(stub, old), raw(image, new), "stub section {} keeps its data", old.name);
    }
    let stub_end = before.sections.iter().map(|s| u64::from(s.virtual_address + s.virtual_size)).max().unwrap();
    let mut prev_va_end = stub_end;
    let mut prev_raw_end = before.sections.iter().map(|s| u64::from(s.raw_offset + s.raw_size)).max().unwrap();
    for (input, s) in inputs.iter().zip(&info.sections[before.sections.len()..]) {
        assert_eq!(s.name, input.name);
        assert_eq!(u64::from(s.virtual_address), align(prev_va_end, sa), "{}: no gap beyond alignment", s.name);
        assert_eq!(u64::from(s.virtual_size), input.data.len() as u64);
        assert_eq!(u64::from(s.raw_offset), prev_raw_end, "{}: raw data follows the previous section", s.name);
        assert_eq!(u64::from(s.raw_offset) % fa, 0, "{}: raw offset aligned", s.name);
        assert_eq!(u64::from(s.raw_size), align(input.data.len() as u64, fa), "{}: raw size aligned", s.name);
        let data = raw(image, s);
        assert_eq!(&data[..input.data.len()], input.data.as_slice(), "{}: data", s.name);
        assert!(data[input.data.len()..].iter().all(|&b| b == 0), "{}: zero padding", s.name);
        let expected_flags = if s.name == ".linux" { 0x4000_0020 } else { 0x4000_0040 };
        assert_eq!(s.characteristics, expected_flags, "{}: characteristics", s.name);
        prev_va_end = u64::from(s.virtual_address + s.virtual_size);
        prev_raw_end = u64::from(s.raw_offset + s.raw_size);
    }
    assert_eq!(image.len() as u64, prev_raw_end, "no data after the last section");
    assert_eq!(u64::from(info.size_of_image), align(prev_va_end, sa), "SizeOfImage");
    assert_eq!(info.checksum, 0);
    assert_eq!(info.certificate_table, None);
    info
}

#[test]
fn appended_sections_follow_the_layout_rules() {
    let stub = StubSpec::default().build();
    let inputs = uki_inputs();
    let image = build(&stub, &inputs, Some(1_700_000_000)).unwrap();
    let info = check_appended(&stub, &image, &inputs);
    check_with_objdump(&image, "synthetic");
    assert_eq!(info.timestamp, 1_700_000_000);
    assert_eq!(info.size_of_headers, 0x400);
    // SizeOfInitializedData grows by the data sections' raw sizes, SizeOfCode by .linux's.
    assert_eq!(get32(&image, OPT + 4), 0x1400);
    assert_eq!(get32(&image, OPT + 8), 0x200 + 0x200 + 0x2400 + 0x200 + 0x200);
}

#[test]
fn extra_sections_go_after_the_known_ones() {
    let stub = StubSpec::default().build();
    let inputs =
        vec![owned(".linux", pattern(100, 1)), owned(".pcrpkey", "key"), owned(".extra", "x"), owned(".zz", "y")];
    let image = build(&stub, &inputs, None).unwrap();
    let info = check_appended(&stub, &image, &inputs);
    assert_eq!(info.timestamp, STUB_TIMESTAMP, "None keeps the stub's timestamp");
}

#[test]
fn dump_snapshot() {
    let stub = StubSpec::default().build();
    let image = build(&stub, &uki_inputs(), Some(0)).unwrap();
    let expected = "\
.text    va 0x00001000 vsize 0x00000030 raw 0x00000400 rawsize 0x00000200
.data    va 0x00002000 vsize 0x00000120 raw 0x00000600 rawsize 0x00000200
.linux   va 0x00003000 vsize 0x00001388 raw 0x00000800 rawsize 0x00001400
.osrel   va 0x00005000 vsize 0x0000001c raw 0x00001c00 rawsize 0x00000200
.cmdline va 0x00006000 vsize 0x00000013 raw 0x00001e00 rawsize 0x00000200
.initrd  va 0x00007000 vsize 0x00002345 raw 0x00002000 rawsize 0x00002400
.uname   va 0x0000a000 vsize 0x0000000a raw 0x00004400 rawsize 0x00000200
.sbat    va 0x0000b000 vsize 0x00000099 raw 0x00004600 rawsize 0x00000200
";
    assert_eq!(dump(&read_sections(&image).unwrap()), expected);
}

#[test]
fn pinned_digest_of_synthetic_uki() {
    let stub = StubSpec::default().build();
    let image = build(&stub, &uki_inputs(), Some(0)).unwrap();
    assert_eq!(image, build(&stub, &uki_inputs(), Some(0)).unwrap(), "deterministic");
    let digest: String = Sha256::digest(&image).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, "1687a14d4e35a64fb41fdf39730bc418d89d9f6736f9ed8a4e3ce059a56341f7");
}

fn err(stub: &[u8], inputs: &[Owned]) -> PeError {
    build(stub, inputs, None).expect_err("refused")
}

#[test]
fn refuses_sections_out_of_order() {
    let stub = StubSpec::default().build();
    let e = err(&stub, &[owned(".osrel", "a"), owned(".linux", "b")]);
    assert!(matches!(e, PeError::SectionOrder { ref name, ref after, .. } if name == ".linux" && after == ".osrel"));
    assert!(e.to_string().starts_with("section `.linux` must come before `.osrel`"), "{e}");
    let e = err(&stub, &[owned(".linux", "a"), owned(".extra", "b"), owned(".cmdline", "c")]);
    assert!(matches!(e, PeError::KnownAfterExtra { .. }), "{e}");
    let e = err(&stub, &[owned(".osrel", "a")]);
    assert!(matches!(e, PeError::MissingLinux), "{e}");
}

#[test]
fn refuses_long_empty_and_duplicate_names() {
    let stub = StubSpec::default().build();
    let e = err(&stub, &[owned(".linux", "a"), owned(".toolongname", "b")]);
    assert_eq!(e.to_string(), "section name `.toolongname` is longer than 8 bytes");
    assert!(matches!(err(&stub, &[owned(".linux", "a"), owned("", "b")]), PeError::InvalidName { .. }));
    let e = err(&stub, &[owned(".linux", "a"), owned(".linux", "b")]);
    assert_eq!(e.to_string(), "section `.linux` is given twice");
    let e = err(&stub, &[owned(".linux", "a"), owned(".data", "b")]);
    assert_eq!(e.to_string(), "the EFI stub already has a `.data` section, so the UKI cannot add another");
    let e = err(&stub, &[owned(".linux", "a"), owned(".cmdline", "")]);
    assert!(matches!(e, PeError::EmptySection { .. }), "{e}");
}

#[test]
fn refuses_signed_pe32_and_foreign_stubs() {
    let signed = StubSpec { certificate_table: Some((0x1000, 0x100)), ..StubSpec::default() }.build();
    let e = err(&signed, &uki_inputs());
    assert_eq!(e.to_string(), "the EFI stub is already signed (it has a certificate table); use an unsigned stub");
    let pe32 = StubSpec { magic: 0x10b, ..StubSpec::default() }.build();
    assert!(matches!(err(&pe32, &uki_inputs()), PeError::NotPe32Plus { magic: 0x10b, .. }));
    let i386 = StubSpec { machine: 0x14c, ..StubSpec::default() }.build();
    assert!(matches!(err(&i386, &uki_inputs()), PeError::UnsupportedMachine { machine: 0x14c }));
    let arm = StubSpec { machine: 0xaa64, ..StubSpec::default() }.build();
    build(&arm, &uki_inputs(), None).unwrap();
}

#[test]
fn refuses_what_is_not_a_pe() {
    let e = err(b"#!/bin/sh\necho hello\n".repeat(10).as_slice(), &uki_inputs());
    assert_eq!(e.to_string(), "the EFI stub is not a PE image: it does not start with 'MZ'");
    let mut stub = StubSpec::default().build();
    stub[PE_OFFSET] = b'N';
    let e = err(&stub, &uki_inputs());
    assert_eq!(e.to_string(), "the EFI stub is not a PE32+ image: missing the 'PE\\0\\0' signature at offset 0x40");
}

#[test]
fn truncated_headers_are_refused_without_panic() {
    let stub = StubSpec::default().build();
    let table_end = TABLE + 2 * 40;
    for len in 0..stub.len() {
        let prefix = &stub[..len];
        assert!(build(prefix, &uki_inputs(), None).is_err(), "a {len}-byte stub prefix is refused");
        match read_sections(prefix) {
            Ok(info) => assert!(len >= table_end, "read {len} bytes: {info:?}"),
            Err(e) => {
                assert!(len < table_end, "{len}: {e}");
                if len >= 2 {
                    assert!(e.to_string().contains("truncated"), "{len}: {e}");
                }
            }
        }
    }
    let e = read_sections(&stub[..TABLE + 40]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the PE image is truncated: its section table ends at offset 0x198 but only 0x170 bytes are there"
    );
}

#[test]
fn short_and_long_section_data_are_refused() {
    let stub = StubSpec::default().build();
    let data = [7u8; 10];
    let mut reader = &data[..];
    let mut sections = [SectionInput { name: ".linux", len: 20, data: &mut reader }];
    let e = write_uki(&stub, &mut sections, None, &mut Vec::new()).unwrap_err();
    assert_eq!(e.to_string(), "section `.linux` ended after 10 of its 20 bytes");
    let mut reader = &data[..];
    let mut sections = [SectionInput { name: ".linux", len: 5, data: &mut reader }];
    let e = write_uki(&stub, &mut sections, None, &mut Vec::new()).unwrap_err();
    assert_eq!(e.to_string(), "section `.linux` has more data than the 5 bytes it declared");
}

#[test]
fn headers_grow_when_the_section_table_needs_room() {
    // SizeOfHeaders 0x200 leaves room for 2 more headers after the table at 0x148: adding 6 moves all raw data.
    let spec = StubSpec { size_of_headers: 0x200, debug_in: Some(1), ..StubSpec::default() };
    let stub = spec.build();
    let inputs = uki_inputs();
    let image = build(&stub, &inputs, None).unwrap();
    let info = read_sections(&image).unwrap();
    assert_eq!(info.size_of_headers, 0x400);
    assert_eq!(info.sections.len(), 8);
    let (text, data) = (&info.sections[0], &info.sections[1]);
    assert_eq!((text.raw_offset, data.raw_offset), (0x400, 0x600), "stub raw data moved by one FileAlignment");
    assert_eq!(raw(&image, text)[..0x30], spec.sections[0].data[..]);
    // The debug directory's one entry pointed 0x40 bytes into .data's raw data; it still does.
    let debug_pointer = get32(&image, data.raw_offset as usize + 24);
    assert_eq!(debug_pointer, data.raw_offset + 0x40);
    let stub_data = &read_sections(&stub).unwrap().sections[1];
    let mut expected = raw(&stub, stub_data);
    expected[24..28].copy_from_slice(&(data.raw_offset + 0x40).to_le_bytes());
    assert_eq!(raw(&image, data), expected);
    for (input, s) in inputs.iter().zip(&info.sections[2..]) {
        assert_eq!(&raw(&image, s)[..input.data.len()], input.data.as_slice());
    }
}

#[test]
fn refuses_when_headers_cannot_grow() {
    // The first section starts at 0x200 in memory: headers cannot pass it.
    let mut spec = StubSpec { size_of_headers: 0x200, section_alignment: 0x200, ..StubSpec::default() };
    spec.sections[0].va = 0x200;
    spec.sections[1].va = 0x400;
    let e = err(&spec.build(), &uki_inputs());
    assert_eq!(e.to_string(), "the EFI stub has no room for 6 more section headers (SizeOfHeaders 0x200)");
    let mut stub = StubSpec::default().build();
    stub[TABLE + 2 * 40 + 3] = 0xcc;
    let e = err(&stub, &uki_inputs());
    assert_eq!(
        e.to_string(),
        format!(
            "the EFI stub keeps data at offset {:#x}, after its section table, where new section headers must go",
            TABLE + 83
        )
    );
}

fn sbat_spec(sbat_va: u32, next_va: Option<u32>) -> StubSpec {
    let mut spec = StubSpec { section_alignment: 0x100, ..StubSpec::default() };
    let stub_sbat = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
                     systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n";
    spec.sections.push(StubSection { name: ".sbat", va: sbat_va, data: stub_sbat.into(), flags: 0x4000_0040 });
    if let Some(va) = next_va {
        spec.sections.push(StubSection { name: ".sdmagic", va, data: pattern(0x34, 9), flags: 0x4000_0040 });
    }
    spec
}

fn merged_sbat() -> String {
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
     systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n\
     claylinux,1,claylinux,claylinux,0.1.0,https://github.com/claylinux/claylinux\n"
        .to_owned()
}

#[test]
fn sbat_merges_in_place_when_it_fits() {
    let stub = sbat_spec(0x3000, None).build();
    let image = build(&stub, &uki_inputs(), None).unwrap();
    let info = read_sections(&image).unwrap();
    let names: Vec<&str> = info.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [".text", ".data", ".sbat", ".linux", ".osrel", ".cmdline", ".initrd", ".uname"]);
    let sbat = &info.sections[2];
    assert_eq!((sbat.virtual_address, sbat.virtual_size as usize), (0x3000, merged_sbat().len()));
    assert_eq!(&raw(&image, sbat)[..merged_sbat().len()], merged_sbat().as_bytes());
    assert_eq!(info.sections[3].virtual_address, 0x3100, ".linux follows the grown .sbat");
}

#[test]
fn sbat_moves_when_the_next_section_is_too_close() {
    // As in the systemd 252 stub: `.sdmagic` follows `.sbat` 0x100 bytes later, too close for the merged text.
    let spec = sbat_spec(0x3000, Some(0x3080));
    let stub = spec.build();
    let image = build(&stub, &uki_inputs(), Some(0)).unwrap();
    let info = read_sections(&image).unwrap();
    let names: Vec<&str> = info.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [".text", ".data", ".sdmagic", ".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat"]);
    let sdmagic = &info.sections[2];
    assert_eq!((sdmagic.virtual_address, sdmagic.raw_offset), (0x3080, 0x800), "raw data closes the gap");
    assert_eq!(raw(&image, sdmagic)[..0x34], spec.sections[3].data[..]);
    let sbat = info.sections.last().unwrap();
    assert_eq!(&raw(&image, sbat)[..sbat.virtual_size as usize], merged_sbat().as_bytes());
    assert_eq!(info.sections[3].virtual_address, 0x3100);
}

#[test]
fn coff_symbol_table_is_dropped() {
    let spec = StubSpec { symbol_table: Some(pattern(18 * 3 + 4, 5)), ..StubSpec::default() };
    let stub = spec.build();
    assert_ne!(get32(&stub, COFF + 8), 0);
    let inputs = uki_inputs();
    let image = build(&stub, &inputs, None).unwrap();
    assert_eq!((get32(&image, COFF + 8), get32(&image, COFF + 12)), (0, 0));
    check_appended(&StubSpec::default().build(), &image, &inputs);
}

/// The checksum as IMAGEHLP's CheckSumMappedFile computes it, word by word over a file in memory.
fn reference_checksum(file: &[u8], field: usize) -> u32 {
    let mut sum = 0u32;
    for (i, pair) in file.chunks(2).enumerate() {
        let word = if (field..field + 4).contains(&(2 * i)) {
            0
        } else {
            u32::from(pair[0]) | u32::from(*pair.get(1).unwrap_or(&0)) << 8
        };
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum + file.len() as u32
}

#[test]
fn streaming_checksum_matches_the_reference() {
    let mut rng = Rng(7);
    let stub = StubSpec::default().build();
    let mut image = build(&stub, &uki_inputs(), None).unwrap();
    image.push(0xab); // an odd length too
    let field = clay_pe::checksum_field_offset(&image).unwrap() as usize;
    assert_eq!(field, OPT + 64);
    let expected = reference_checksum(&image, field);
    for _ in 0..50 {
        let mut sum = PeChecksum::new(field as u64);
        let mut rest = &image[..];
        while !rest.is_empty() {
            let (now, later) = rest.split_at(rng.below(rest.len().min(300)) + 1);
            sum.update(now);
            rest = later;
        }
        assert_eq!(sum.finish(), expected);
    }
}
