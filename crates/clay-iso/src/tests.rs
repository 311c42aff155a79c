//! Whole-image tests on synthetic inputs (no host files): a readable dump of the structures, a pinned digest, the
//! round trip through `read_iso_info`, and the refusals.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::*;

/// A stand-in isolinux.bin: 4 KiB with the isohybrid signature at byte 64.
fn fake_isolinux() -> Vec<u8> {
    let mut b: Vec<u8> = (0..4096u32).map(|i| u8::try_from(i % 253).unwrap()).collect();
    b[64..68].copy_from_slice(&eltorito::HYBRID_MAGIC.to_le_bytes());
    b
}

fn fake_mbr_code() -> Vec<u8> {
    vec![0xEB; MBR_CODE_LEN]
}

fn synthetic_files() -> Vec<(&'static str, Vec<u8>, u32)> {
    vec![
        ("boot/isolinux/isolinux.bin", fake_isolinux(), 0o644),
        ("boot/efiboot.img", vec![0xFA; 10_000], 0o644),
        ("boot/vmlinuz", vec![0x4C; 3000], 0o644),
        ("hello.txt", b"hello\n".to_vec(), 0o600),
        ("A Long Name With Spaces And Capitals.tar.gz", Vec::new(), 0o4755),
    ]
}

fn write(files: &[(&str, Vec<u8>, u32)], opts: &IsoOptions<'_>) -> Result<Vec<u8>, IsoError> {
    let mut readers: Vec<&[u8]> = files.iter().map(|f| &f.1[..]).collect();
    let mut iso_files: Vec<IsoFile<'_>> = files
        .iter()
        .zip(readers.iter_mut())
        .map(|(f, r)| IsoFile { path: f.0, len: f.1.len() as u64, data: r, mode: f.2 })
        .collect();
    let mut out = Vec::new();
    let n = write_iso(&mut iso_files, opts, &mut out)?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

fn opts<'a>(mbr: &'a [u8]) -> IsoOptions<'a> {
    IsoOptions {
        volume_id: "CLAYLINUX".into(),
        timestamp: 1_700_000_000,
        bios: Some(BiosBoot { isolinux_bin_path: "boot/isolinux/isolinux.bin", mbr: Some(mbr) }),
        uefi: Some(UefiBoot { efi_image_path: "boot/efiboot.img" }),
        hybrid: true,
        seed: *b"claylinux-seed16",
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// SUSP entries of a system use field, as `SIG` or `NM"name"`/`CE->block+offset` for the telling ones.
fn susp(iso: &[u8], mut su: &[u8]) -> String {
    let mut out = Vec::new();
    while su.len() >= 4 && su[2] >= 4 {
        let (e, rest) = su.split_at(usize::from(su[2]).min(su.len()));
        let sig = String::from_utf8_lossy(&e[..2]).into_owned();
        out.push(match &e[..2] {
            b"NM" => format!("NM{:?}", String::from_utf8_lossy(&e[5..])),
            b"PX" => format!("PX{:o}", le32(e, 4)),
            b"CE" => {
                let (block, offset, len) = (le32(e, 4), le32(e, 12), le32(e, 20));
                let at = usize::try_from(block).unwrap() * 2048 + usize::try_from(offset).unwrap();
                let area = &iso[at..at + usize::try_from(len).unwrap()];
                format!("CE->{block}+{offset}({})", susp(iso, area))
            }
            _ => sig,
        });
        su = rest;
    }
    out.join(" ")
}

/// A readable dump of the descriptors, the boot catalog, the system area and both directory trees.
fn dump(iso: &[u8]) -> String {
    let mut s = String::new();
    let sector = |n: usize| &iso[n * 2048..(n + 1) * 2048];
    let _ = writeln!(s, "size {} sectors, MBR entry 1: {:02x?}", iso.len() / 2048, &iso[446..462]);
    let mut roots = Vec::new();
    for n in 16.. {
        let d = sector(n);
        match d[0] {
            0 => {
                let _ = writeln!(s, "{n}: boot record, catalog at {}", le32(d, 0x47));
                let c = sector(usize::try_from(le32(d, 0x47)).unwrap());
                for e in c.chunks(32).take_while(|e| e[0] != 0) {
                    let _ = writeln!(s, "  catalog entry {:02x?}", &e[..12]);
                }
            }
            1 | 2 => {
                let root = le32(d, 156 + 2);
                let id = if d[0] == 2 {
                    String::from_utf16(
                        &d[40..72].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>(),
                    )
                    .unwrap()
                } else {
                    String::from_utf8_lossy(&d[40..72]).into_owned()
                };
                let m_table = u32::from_be_bytes(d[148..152].try_into().unwrap());
                let _ = writeln!(
                    s,
                    "{n}: type {} {:?} {:?} size {} root {root}, path tables {} {m_table}",
                    d[0],
                    id.trim_end(),
                    String::from_utf8_lossy(&d[88..91]).trim_end_matches('\0'),
                    le32(d, 80),
                    le32(d, 140)
                );
                roots.push((d[0] == 2, root));
            }
            _ => {
                let _ = writeln!(s, "{n}: terminator");
                break;
            }
        }
    }
    for (joliet, root) in roots {
        let mut stack = vec![(String::from("/"), root)];
        while let Some((path, lba)) = stack.pop() {
            let _ = writeln!(s, "dir {path} at {lba}:");
            let mut at = usize::try_from(lba).unwrap() * 2048;
            let end = at + usize::try_from(le32(iso, at + 10)).unwrap();
            while at < end {
                let len = usize::from(iso[at]);
                if len == 0 {
                    at = (at / 2048 + 1) * 2048;
                    continue;
                }
                let r = &iso[at..at + len];
                let id_len = usize::from(r[32]);
                let id = &r[33..33 + id_len];
                let name = if joliet && id_len > 1 {
                    String::from_utf16(&id.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>())
                        .unwrap()
                } else {
                    String::from_utf8_lossy(id).into_owned()
                };
                let su = &r[33 + id_len + (1 - id_len % 2)..];
                let line =
                    format!("  {name:?} extent {} len {} flags {} {}", le32(r, 2), le32(r, 10), r[25], susp(iso, su));
                let _ = writeln!(s, "{}", line.trim_end());
                let is_dot_or_dotdot = id_len == 1 && id[0] <= 1;
                if r[25] & 2 != 0 && !is_dot_or_dotdot {
                    stack.push((format!("{path}{name}/"), le32(r, 2)));
                }
                at += len;
            }
        }
    }
    s
}

#[test]
fn dump_of_a_synthetic_hybrid_image() {
    let mbr = fake_mbr_code();
    let iso = write(&synthetic_files(), &opts(&mbr)).unwrap();
    let dump = dump(&iso);
    println!("{dump}");
    assert_eq!(dump, DUMP);
}

const DUMP: &str = r#"size 512 sectors, MBR entry 1: [00, 00, 02, 00, ee, ff, ff, ff, 01, 00, 00, 00, ff, 07, 00, 00]
16: type 1 "CLAYLINUX" "" size 512 root 25, path tables 21 22
17: boot record, catalog at 20
  catalog entry [01, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00]
  catalog entry [88, 00, 00, 00, 00, 00, 04, 00, 28, 00, 00, 00]
  catalog entry [91, ef, 01, 00, 00, 00, 00, 00, 00, 00, 00, 00]
  catalog entry [88, 00, 00, 00, 00, 00, 14, 00, 21, 00, 00, 00]
18: type 2 "CLAYLINUX" "%/E" size 512 root 29, path tables 23 24
19: terminator
dir / at 25:
  "\0" extent 25 len 2048 flags 2 SP PX40755 TF CE->28+0(ER)
  "\u{1}" extent 25 len 2048 flags 2 PX40755 TF
  "A_LONG_NAME_WITH_SPACES_AND_.GZ;1" extent 32 len 0 flags 0 PX104755 TF NM"A Long Name With Spaces And Capitals.tar.gz"
  "BOOT" extent 26 len 2048 flags 2 PX40755 TF NM"boot"
  "HELLO.TXT;1" extent 32 len 6 flags 0 PX100600 TF NM"hello.txt"
dir /BOOT/ at 26:
  "\0" extent 26 len 2048 flags 2 PX40755 TF
  "\u{1}" extent 25 len 2048 flags 2 PX40755 TF
  "EFIBOOT.IMG;1" extent 33 len 10000 flags 0 PX100644 TF NM"efiboot.img"
  "ISOLINUX" extent 27 len 2048 flags 2 PX40755 TF NM"isolinux"
  "VMLINUZ.;1" extent 38 len 3000 flags 0 PX100644 TF NM"vmlinuz"
dir /BOOT/ISOLINUX/ at 27:
  "\0" extent 27 len 2048 flags 2 PX40755 TF
  "\u{1}" extent 26 len 2048 flags 2 PX40755 TF
  "ISOLINUX.BIN;1" extent 40 len 4096 flags 0 PX100644 TF NM"isolinux.bin"
dir / at 29:
  "\0" extent 29 len 2048 flags 2
  "\u{1}" extent 29 len 2048 flags 2
  "A Long Name With Spaces And Capitals.tar.gz;1" extent 32 len 0 flags 0
  "boot" extent 30 len 2048 flags 2
  "hello.txt;1" extent 32 len 6 flags 0
dir /boot/ at 30:
  "\0" extent 30 len 2048 flags 2
  "\u{1}" extent 29 len 2048 flags 2
  "efiboot.img;1" extent 33 len 10000 flags 0
  "isolinux" extent 31 len 2048 flags 2
  "vmlinuz;1" extent 38 len 3000 flags 0
dir /boot/isolinux/ at 31:
  "\0" extent 31 len 2048 flags 2
  "\u{1}" extent 30 len 2048 flags 2
  "isolinux.bin;1" extent 40 len 4096 flags 0
"#;

#[test]
fn two_builds_are_identical_and_the_digest_is_pinned() {
    let mbr = fake_mbr_code();
    let a = write(&synthetic_files(), &opts(&mbr)).unwrap();
    let b = write(&synthetic_files(), &opts(&mbr)).unwrap();
    assert!(a == b, "two builds differ");
    assert_eq!(a.len(), 1 << 20);
    let digest = format!("{:x}", Sha256::digest(&a));
    assert_eq!(digest, "b5afd891a49c0dcbaba0062927ecd55e464acbf8224996c163976029d047299e");
    // The seed alone moves the GUIDs and the disk signature.
    let other = write(&synthetic_files(), &IsoOptions { seed: [0; 16], ..opts(&mbr) }).unwrap();
    let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != other[i]).collect();
    let gpt_copy = 33 * 512;
    assert!(!differing.is_empty());
    assert!(differing
        .iter()
        .all(|&i| (440..444).contains(&i) || (512..512 + gpt_copy).contains(&i) || i >= a.len() - gpt_copy));
}

#[test]
fn boot_info_table_and_mbr_pointer_are_patched() {
    let mbr = fake_mbr_code();
    let iso = write(&synthetic_files(), &opts(&mbr)).unwrap();
    let info = read_iso_info(&mut io::Cursor::new(&iso)).unwrap();
    let isolinux_lba = info.boot_entries[0].load_rba;
    let at = usize::try_from(isolinux_lba).unwrap() * 2048;
    let image = &iso[at..at + 4096];
    let original = fake_isolinux();
    let csum = original[64..].chunks(4).fold(0u32, |s, w| s.wrapping_add(le32(w, 0)));
    assert_eq!((le32(image, 8), le32(image, 12), le32(image, 16), le32(image, 20)), (16, isolinux_lba, 4096, csum));
    assert!(image[24..64].iter().all(|&b| b == 0));
    assert_eq!((&image[..8], &image[64..]), (&original[..8], &original[64..]));
    assert_eq!(le32(&iso, 432), isolinux_lba * 4);
    assert_eq!(&iso[..432], &mbr[..]);
}

#[test]
fn read_iso_info_round_trip() {
    let mbr = fake_mbr_code();
    let iso = write(&synthetic_files(), &opts(&mbr)).unwrap();
    let info = read_iso_info(&mut io::Cursor::new(&iso)).unwrap();
    let entry = |platform, sector_count, load_rba| BootEntry {
        platform,
        bootable: true,
        media_type: 0,
        load_segment: 0,
        sector_count,
        load_rba,
    };
    assert_eq!(
        info,
        IsoInfo {
            volume_id: "CLAYLINUX".into(),
            volume_sectors: 512,
            joliet: true,
            boot_catalog: Some(20),
            boot_entries: vec![entry(PLATFORM_X86, 4, 40), entry(PLATFORM_EFI, 20, 33)],
            mbr: true,
            gpt: true,
        }
    );
    let plain = write(&synthetic_files(), &IsoOptions { bios: None, uefi: None, hybrid: false, ..opts(&mbr) }).unwrap();
    let info = read_iso_info(&mut io::Cursor::new(&plain)).unwrap();
    assert_eq!((info.boot_catalog, info.boot_entries.len(), info.mbr, info.gpt), (None, 0, false, false));
    let garbage = vec![0u8; 40 * 2048];
    assert!(matches!(read_iso_info(&mut io::Cursor::new(&garbage)), Err(IsoError::NotIso(_))));
    assert!(matches!(read_iso_info(&mut io::Cursor::new(&garbage[..100])), Err(IsoError::ReadImage(_))));
}

#[test]
fn bad_inputs_are_refused_with_the_offending_name() {
    let mbr = fake_mbr_code();
    let files = synthetic_files();
    for id in ["", "claylinux", "CLAY LINUX", &"X".repeat(33)] {
        let err = write(&files, &IsoOptions { volume_id: id.into(), ..opts(&mbr) }).unwrap_err();
        assert!(matches!(&err, IsoError::InvalidVolumeId(v) if v == id), "{err}");
    }
    let missing = IsoOptions { uefi: Some(UefiBoot { efi_image_path: "EFI/efiboot.img" }), ..opts(&mbr) };
    assert_eq!(
        write(&files, &missing).unwrap_err().to_string(),
        "the UEFI boot image `EFI/efiboot.img` is not among the image's files"
    );
    let short_mbr = [0u8; 100];
    assert!(matches!(write(&files, &opts(&short_mbr)), Err(IsoError::ShortMbrCode { len: 100 })));

    let mut no_magic = files.clone();
    no_magic[0].1[64] = 0;
    let err = write(&no_magic, &opts(&mbr)).unwrap_err();
    assert!(err.to_string().contains("lacks the isohybrid signature"), "{err}");
    // Without a hybrid MBR, any isolinux.bin will do.
    assert!(write(&no_magic, &IsoOptions { hybrid: false, ..opts(&mbr) }).is_ok());

    let mut dup = files.clone();
    dup.push(("/hello.txt", Vec::new(), 0o644));
    assert_eq!(write(&dup, &opts(&mbr)).unwrap_err().to_string(), "path `hello.txt` is given twice");
}

#[test]
fn readers_must_give_exactly_the_declared_length() {
    let opts = IsoOptions { bios: None, uefi: None, hybrid: false, ..opts(&[]) };
    let write_one = |declared: u64, data: &[u8]| {
        let mut reader = data;
        let mut files = [IsoFile { path: "f", len: declared, data: &mut reader, mode: 0o644 }];
        write_iso(&mut files, &opts, &mut Vec::new())
    };
    assert!(matches!(write_one(5, b"abc"), Err(IsoError::ShortFile { expected: 5, got: 3, .. })));
    assert!(matches!(write_one(2, b"abc"), Err(IsoError::LongFile { expected: 2, .. })));
    assert!(matches!(write_one(1 << 32, b""), Err(IsoError::FileTooLarge { .. })));

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let mut files = [IsoFile { path: "boot/f", len: 1, data: &mut Failing, mode: 0o644 }];
    let err = write_iso(&mut files, &opts, &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "cannot read `boot/f`: disk on fire");
}
