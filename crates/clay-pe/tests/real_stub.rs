//! write_uki on the real systemd-stub (Debian's systemd-boot-efi), checked with objdump and by reading back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

mod common;

use std::io::Read;

use clay_pe::{default_sbat, read_sections, write_uki, PeChecksum, SectionInput};
use common::*;

const STUB_PATH: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const INITRD_LEN: u64 = 3 * 1024 * 1024 + 12345;
const INITRD_SEED: u64 = 0x1217;

fn real_stub() -> Vec<u8> {
    std::fs::read(STUB_PATH).unwrap_or_else(|e| {
        panic!("cannot read the systemd EFI stub {STUB_PATH} ({e}): install the systemd-boot-efi package")
    })
}

fn small_inputs() -> Vec<Owned> {
    vec![
        owned(".linux", pattern(6000, 11)),
        owned(".osrel", "ID=claylinux\nPRETTY_NAME=\"claylinux test\"\n"),
        owned(".cmdline", "console=ttyS0 rw quiet"),
        owned(".uname", "6.1.0-31-amd64"),
        owned(".sbat", default_sbat("0.1.0")),
    ]
}

/// Builds the UKI with the `.initrd` streamed from a reader, never held whole by the caller.
fn build_real(stub: &[u8], timestamp: Option<u32>) -> Vec<u8> {
    let small = small_inputs();
    let mut readers: Vec<&[u8]> = small.iter().map(|i| i.data.as_slice()).collect();
    let mut initrd = SlowReader::new(INITRD_SEED, INITRD_LEN);
    let [linux, osrel, cmdline, uname, sbat] = &mut readers[..] else { unreachable!() };
    let mut sections = [
        SectionInput { name: ".linux", len: small[0].data.len() as u64, data: linux as &mut dyn Read },
        SectionInput { name: ".osrel", len: small[1].data.len() as u64, data: osrel },
        SectionInput { name: ".cmdline", len: small[2].data.len() as u64, data: cmdline },
        SectionInput { name: ".initrd", len: INITRD_LEN, data: &mut initrd },
        SectionInput { name: ".uname", len: small[3].data.len() as u64, data: uname },
        SectionInput { name: ".sbat", len: small[4].data.len() as u64, data: sbat },
    ];
    let mut out = Vec::new();
    let written = write_uki(stub, &mut sections, timestamp, &mut out).unwrap();
    assert_eq!(written, out.len() as u64);
    out
}

#[test]
fn real_stub_uki_reads_back_and_matches_objdump() {
    let stub = real_stub();
    let before = read_sections(&stub).unwrap();
    let image = build_real(&stub, Some(0));
    check_with_objdump(&image, "real-stub");
    let info = read_sections(&image).unwrap();
    assert_eq!(info.timestamp, 0);
    assert_eq!(info.checksum, 0);
    assert_eq!(info.certificate_table, None);

    // The stub's sections keep their addresses and contents; its own `.sbat` gave way to the merged one.
    let kept: Vec<_> = before.sections.iter().filter(|s| s.name != ".sbat").collect();
    for (old, new) in kept.iter().zip(&info.sections) {
        assert_eq!(
            (&old.name, old.virtual_address, old.virtual_size),
            (&new.name, new.virtual_address, new.virtual_size)
        );
        assert_eq!(raw(&stub, old), raw(&image, new), "stub section {} keeps its data", old.name);
    }
    let added = &info.sections[kept.len()..];
    let names: Vec<&str> = added.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat"]);

    // Layout: aligned, contiguous in the file, no address gaps beyond alignment, nothing after the end.
    let (sa, fa) = (u64::from(info.section_alignment), u64::from(info.file_alignment));
    let mut va_end = kept.iter().map(|s| u64::from(s.virtual_address + s.virtual_size)).max().unwrap();
    let mut raw_end = info.sections[..kept.len()].iter().map(|s| u64::from(s.raw_offset + s.raw_size)).max().unwrap();
    for s in added {
        assert_eq!(u64::from(s.virtual_address), align(va_end, sa), "{}", s.name);
        assert_eq!(u64::from(s.raw_offset), raw_end, "{}", s.name);
        assert_eq!(u64::from(s.raw_size), align(u64::from(s.virtual_size), fa), "{}", s.name);
        va_end = u64::from(s.virtual_address + s.virtual_size);
        raw_end = u64::from(s.raw_offset + s.raw_size);
    }
    assert_eq!(image.len() as u64, raw_end);
    assert_eq!(u64::from(info.size_of_image), align(va_end, sa));

    // Contents read back at the raw offsets.
    let content = |s: &clay_pe::SectionInfo| image[s.raw_offset as usize..][..s.virtual_size as usize].to_vec();
    let small = small_inputs();
    for input in &small[..4] {
        let s = added.iter().find(|s| s.name == input.name).unwrap();
        assert_eq!(content(s), input.data, "{}", input.name);
    }
    assert!(content(&added[3]) == slow_bytes(INITRD_SEED, INITRD_LEN), ".initrd");
    let stub_sbat = before.sections.iter().find(|s| s.name == ".sbat").unwrap();
    let stub_sbat = String::from_utf8(raw(&stub, stub_sbat)).unwrap();
    let stub_sbat = stub_sbat.trim_end_matches('\0');
    assert!(stub_sbat.starts_with("sbat,1,SBAT Version,") && stub_sbat.contains("systemd,1,"), "{stub_sbat}");
    let merged = String::from_utf8(content(&added[5])).unwrap();
    assert_eq!(
        merged,
        format!("{stub_sbat}claylinux,1,claylinux,claylinux,0.1.0,https://github.com/claylinux/claylinux\n")
    );
}

#[test]
fn real_stub_uki_is_deterministic() {
    let stub = real_stub();
    let a = build_real(&stub, Some(0));
    let b = build_real(&stub, Some(0));
    assert!(a == b, "two builds from the same inputs differ");
    let c = build_real(&stub, Some(1));
    assert_ne!(a, c, "the timestamp reaches the output");
}

#[test]
fn real_stub_checksum_matches_its_header() {
    // The stub's linker computed its CheckSum; the streaming implementation must agree.
    let stub = real_stub();
    let info = read_sections(&stub).unwrap();
    assert_ne!(info.checksum, 0, "the stub carries a checksum to compare with");
    let mut sum = PeChecksum::new(clay_pe::checksum_field_offset(&stub).unwrap());
    for chunk in stub.chunks(1001) {
        sum.update(chunk);
    }
    assert_eq!(sum.finish(), info.checksum);
}

#[test]
fn real_stub_grows_its_headers_for_every_uki_section() {
    // 7 stub sections (its `.sbat` moves) and 12 added ones need 19 headers: more than SizeOfHeaders 0x400 holds.
    let stub = real_stub();
    let before = read_sections(&stub).unwrap();
    assert_eq!(before.size_of_headers, 0x400);
    let mut inputs: Vec<Owned> = clay_pe::SECTION_ORDER
        .iter()
        .enumerate()
        .map(|(i, name)| owned(name, pattern(100 + 300 * i, i as u8)))
        .collect();
    inputs.push(owned(".extra", "extra"));
    inputs[8] = owned(".sbat", default_sbat("0.1.0"));
    let image = build(&stub, &inputs, Some(0)).unwrap();
    check_with_objdump(&image, "real-stub-all");
    let info = read_sections(&image).unwrap();
    assert_eq!(info.size_of_headers, 0x600);
    assert_eq!(info.sections.len(), 19);
    assert_eq!(info.sections[0].raw_offset, 0x600, "the stub's raw data moved by one FileAlignment");
    let kept = before.sections.iter().filter(|s| s.name != ".sbat");
    for (old, new) in kept.zip(&info.sections) {
        assert_eq!((&old.name, old.virtual_address), (&new.name, new.virtual_address));
        assert_eq!(raw(&stub, old), raw(&image, new), "stub section {} keeps its data", old.name);
    }
    for input in inputs.iter().filter(|i| i.name != ".sbat") {
        let s = info.sections.iter().find(|s| s.name == input.name).unwrap();
        assert_eq!(&raw(&image, s)[..input.data.len()], input.data.as_slice(), "{}", input.name);
    }
}
