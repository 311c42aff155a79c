//! The reference tools read our images: xorriso's El Torito and system area reports, bsdtar's listings of the Rock
//! Ridge, Joliet and plain ISO 9660 trees, sgdisk's GPT check. (The kernel's iso9660 driver is not available on
//! this project's machines, so bsdtar and xorriso stand in for `mount`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use clay_iso::{read_iso_info, BiosBoot, UefiBoot};
use common::*;

fn xorriso_report(iso: &Path, what: &str) -> String {
    clay_testkit::sh(&format!("xorriso -indev {} -report_{what} plain 2>/dev/null", iso.display()))
}

fn lines_with<'a>(report: &'a str, prefix: &str) -> Vec<&'a str> {
    report.lines().filter(|l| l.starts_with(prefix)).collect()
}

struct Built {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

fn built(files: &[MemFile], opts: &clay_iso::IsoOptions<'_>) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build(files, opts);
    let path = write_temp(dir.path(), "x.iso", &bytes);
    Built { _dir: dir, path, bytes }
}

fn hybrid_boot_image() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let esp = fat_image(dir.path(), 2880, &[]);
    built(&boot_tree(esp), &boot_options(isohdpfx(), true))
}

#[test]
fn xorriso_reports_both_boot_entries() {
    let iso = hybrid_boot_image();
    let info = read_iso_info(&mut std::io::Cursor::new(&iso.bytes)).unwrap();
    let (bios, uefi) = (info.boot_entries[0].load_rba, info.boot_entries[1].load_rba);
    let report = xorriso_report(&iso.path, "el_torito");
    println!("{report}");
    assert_eq!(
        lines_with(&report, "El Torito"),
        [
            format!("El Torito catalog  : {}  1", info.boot_catalog.unwrap()).as_str(),
            "El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA",
            &format!("El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4  {bios:>10}"),
            &format!("El Torito boot img :   2  UEFI  y   none  0x0000  0x00   5760  {uefi:>10}"),
            "El Torito img path :   1  /boot/isolinux/isolinux.bin",
            // xorriso recognises the boot info table we patched, and isolinux.bin's hybrid signature.
            "El Torito img opts :   1  boot-info-table isohybrid-suitable",
            "El Torito img path :   2  /boot/efiboot.img",
        ]
    );
}

#[test]
fn hybrid_system_area_is_a_protective_mbr_and_a_gpt_esp_that_sgdisk_accepts() {
    let iso = hybrid_boot_image();
    let info = read_iso_info(&mut std::io::Cursor::new(&iso.bytes)).unwrap();
    let (isolinux, esp) = (info.boot_entries[0].load_rba, info.boot_entries[1].load_rba);
    let blocks = iso.bytes.len() / 512;
    assert_eq!(iso.bytes.len() % (1 << 20), 0, "padded to whole MiB");
    assert_eq!(u64::from(info.volume_sectors) * 2048, iso.bytes.len() as u64);
    assert_eq!(&iso.bytes[..432], &isohdpfx()[..432]);
    assert_eq!(iso.bytes[432..436], (isolinux * 4).to_le_bytes(), "isohybrid's isolinux.bin pointer");
    assert_eq!(iso.bytes[510..512], [0x55, 0xAA]);

    let report = xorriso_report(&iso.path, "system_area");
    println!("{report}");
    assert!(report.contains("System area summary: MBR isohybrid cyl-align-off GPT\n"), "{report}");
    assert!(report.contains(&format!("ISO image size/512 : {blocks}\n")));
    assert_eq!(
        lines_with(&report, "MBR partition  "),
        [format!("MBR partition      :   1   0x00  0xee            1  {:>11}", blocks - 1)]
    );
    for line in [
        format!("GPT lba range      :      34  {}  {}", blocks - 34, blocks - 1),
        "GPT partname local :   1  EFI System".to_owned(),
        "GPT type GUID      :   1  28732ac11ff8d211ba4b00a0c93ec93b".to_owned(),
        format!("GPT start and size :   1  {}  5760", esp * 4),
        "GPT partition path :   1  /boot/efiboot.img".to_owned(),
    ] {
        assert!(report.contains(&format!("{line}\n")), "missing `{line}` in:\n{report}");
    }
    let verify = clay_testkit::sh(&format!("sgdisk -v {} 2>&1", iso.path.display()));
    assert!(verify.contains("No problems found."), "{verify}");
    assert!(!verify.contains("Warning") && !verify.contains("Caution"), "{verify}");
    let table = clay_testkit::sh(&format!("sgdisk -p {} 2>&1", iso.path.display()));
    let esp_line = format!("   1  {:>14}  {:>14}", esp * 4, esp * 4 + 5759);
    assert!(table.contains(&esp_line) && table.contains("EF00  EFI System"), "{table}");
}

#[test]
fn bios_only_hybrid_gets_the_isohybrid_mbr_entry() {
    let mut files = boot_tree(Vec::new());
    files.retain(|f| f.path != "boot/efiboot.img");
    let opts = clay_iso::IsoOptions {
        bios: Some(BiosBoot { isolinux_bin_path: "boot/isolinux/isolinux.bin", mbr: Some(isohdpfx()) }),
        hybrid: true,
        ..options()
    };
    let iso = built(&files, &opts);
    let blocks = iso.bytes.len() / 512;
    let report = xorriso_report(&iso.path, "system_area");
    println!("{report}");
    assert!(report.contains("System area summary: MBR isohybrid cyl-align-on\n"), "{report}");
    assert_eq!(
        lines_with(&report, "MBR partition  "),
        [format!("MBR partition      :   1   0x80  0x17            0  {blocks:>11}")]
    );
    let el_torito = xorriso_report(&iso.path, "el_torito");
    assert_eq!(lines_with(&el_torito, "El Torito boot img").len(), 1, "{el_torito}");
    assert!(el_torito.contains("El Torito img opts :   1  boot-info-table isohybrid-suitable\n"), "{el_torito}");
}

#[test]
fn uefi_only_catalog_has_the_efi_image_as_default_entry() {
    let dir = tempfile::tempdir().unwrap();
    let files = [file("boot/efiboot.img", fat_image(dir.path(), 1440, &[]), 0o644)];
    let opts = clay_iso::IsoOptions { uefi: Some(UefiBoot { efi_image_path: "/boot/efiboot.img" }), ..options() };
    let iso = built(&files, &opts);
    let report = xorriso_report(&iso.path, "el_torito");
    let entries = lines_with(&report, "El Torito boot img");
    assert_eq!(entries, ["El Torito boot img :   1  UEFI  y   none  0x0000  0x00   2880          30"], "{report}");
    let info = read_iso_info(&mut std::io::Cursor::new(&iso.bytes)).unwrap();
    assert!(!info.mbr && !info.gpt);
    // Sectors 16-19 descriptors, 20 catalog, 21-24 path tables, 25-26 primary directories, 27 continuation area,
    // 28-29 Joliet directories, then the image: no padding without hybrid.
    assert_eq!(iso.bytes.len(), 2048 * (30 + 720));
}

/// A tree with the awkward cases: long, non-ASCII and colliding names, a deep path, an empty file, setuid, a
/// directory of 300 entries (several sectors of records).
fn awkward_tree() -> Vec<MemFile> {
    let mut files = vec![
        file("Docs/Read Me.txt", "read me\n", 0o600),
        file(&format!("long/{}.conf", "n".repeat(250)), "long\n", 0o4755),
        file("ünïcödé/Grüße.txt", "grüße\n", 0o644),
        file("empty", "", 0o644),
        file("bin/tool", "#!/bin/sh\n", 0o755),
        file("a/b/c/d/e/f/g/h/i/deep.txt", "deep\n", 0o644),
        file("README", "upper\n", 0o644),
        file("readme", "lower\n", 0o644),
    ];
    for i in 0..300 {
        files.push(file(&format!("many/file-{i:03}.txt"), format!("{i}\n").repeat(i), 0o644));
    }
    files
}

/// `bsdtar -tv` as (mode, size, path) triples, sorted.
fn bsdtar_listing(iso: &Path, options: &str) -> Vec<(String, u64, String)> {
    let out = clay_testkit::sh(&format!("bsdtar {options} -tvf {}", iso.display()));
    let mut v: Vec<(String, u64, String)> = out
        .lines()
        .map(|l| {
            // mode, links, uid, gid, size, month, day, year, then the name (which may hold spaces).
            let mut rest = l;
            let mut fields = Vec::new();
            for _ in 0..8 {
                rest = rest.trim_start();
                let end = rest.find(' ').unwrap();
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            (fields[0].to_owned(), fields[4].parse().unwrap(), rest[1..].to_owned())
        })
        .filter(|(_, _, n)| n != ".")
        .collect();
    v.sort();
    v
}

#[test]
fn bsdtar_lists_rock_ridge_names_and_modes() {
    let files = awkward_tree();
    let iso = built(&files, &options());
    let listing = bsdtar_listing(&iso.path, "");
    let got_files: Vec<_> = listing.iter().filter(|(m, _, _)| m.starts_with('-')).cloned().collect();
    let mode = |m: u32| {
        let mut s = String::from("-");
        for (bit, c) in [(0o400, 'r'), (0o200, 'w'), (0o100, 'x'), (0o40, 'r'), (0o20, 'w'), (0o10, 'x')] {
            s.push(if m & bit != 0 { c } else { '-' });
        }
        s + &format!(
            "{}{}{}",
            if m & 4 != 0 { 'r' } else { '-' },
            if m & 2 != 0 { 'w' } else { '-' },
            if m & 1 != 0 { 'x' } else { '-' }
        )
    };
    let mut want: Vec<_> = files
        .iter()
        .map(|f| {
            let mut m = mode(f.mode);
            if f.mode & 0o4000 != 0 {
                m.replace_range(3..4, "s");
            }
            (m, f.data.len() as u64, f.path.clone())
        })
        .collect();
    want.sort();
    assert_eq!(got_files, want);
    let dirs: Vec<_> =
        listing.iter().filter(|(m, _, _)| m.starts_with('d')).map(|(m, _, n)| (m.as_str(), n.as_str())).collect();
    assert!(dirs.contains(&("drwxr-xr-x", "a/b/c/d/e/f/g/h/i")), "{dirs:?}");
    assert!(dirs.contains(&("drwxr-xr-x", "ünïcödé")), "{dirs:?}");
    assert_eq!(dirs.len(), 14, "{dirs:?}");

    // xorriso agrees on the Rock Ridge view, setuid bit included.
    let lsdl =
        clay_testkit::sh(&format!("xorriso -indev {} -find /long -type f -exec lsdl 2>/dev/null", iso.path.display()));
    assert!(lsdl.starts_with("-rwsr-xr-x    1 0        0               5 Nov 14  2023 '/long/nnnn"), "{lsdl}");
}

#[test]
fn bsdtar_reads_the_joliet_and_plain_trees() {
    let iso = built(&awkward_tree(), &options());
    let names = |options: &str| -> Vec<String> {
        let mut names: Vec<String> = bsdtar_listing(&iso.path, options)
            .into_iter()
            .map(|(_, _, n)| n)
            .filter(|n| !n.starts_with("many/"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("--options iso9660:!rockridge"),
        [
            "Docs",
            "Docs/Read Me.txt",
            "README",
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/d",
            "a/b/c/d/e",
            "a/b/c/d/e/f",
            "a/b/c/d/e/f/g",
            "a/b/c/d/e/f/g/h",
            "a/b/c/d/e/f/g/h/i",
            "a/b/c/d/e/f/g/h/i/deep.txt",
            "bin",
            "bin/tool",
            "empty",
            "long",
            &format!("long/{}~1.conf", "n".repeat(55)),
            "many",
            "readme~1",
            "ünïcödé",
            "ünïcödé/Grüße.txt",
        ]
    );
    let plain = names("--options iso9660:!rockridge,iso9660:!joliet");
    for want in ["DOCS/READ_ME.TXT", "README", "README1", "EMPTY", "BIN/TOOL", "_N_C_D_/GR__E.TXT"] {
        assert!(plain.iter().any(|n| n == want), "{want} not in {plain:?}");
    }
    assert!(plain.contains(&format!("LONG/{}.CONF", "N".repeat(26))), "{plain:?}");
}

#[test]
fn extracted_contents_match_the_inputs() {
    let files = awkward_tree();
    let iso = built(&files, &options());
    for options in ["", "--options iso9660:!rockridge"] {
        let out = tempfile::tempdir().unwrap();
        clay_testkit::sh(&format!("bsdtar {options} -xf {} -C {}", iso.path.display(), out.path().display()));
        for f in files.iter().filter(|f| !f.path.starts_with("long/") && f.path != "readme") {
            assert_eq!(std::fs::read(out.path().join(&f.path)).unwrap(), f.data, "{} ({options})", f.path);
        }
    }
}

#[test]
fn read_iso_info_agrees_with_xorriso_on_an_xorriso_image() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("boot/isolinux")).unwrap();
    std::fs::write(tree.join("boot/isolinux/isolinux.bin"), require(ISOLINUX_BIN, "isolinux")).unwrap();
    std::fs::write(tree.join("boot/efiboot.img"), fat_image(dir.path(), 2880, &[])).unwrap();
    let iso = dir.path().join("ref.iso");
    clay_testkit::sh_in(
        dir.path(),
        &format!(
            "xorriso -as mkisofs -o {} -V REFERENCE -R -J -isohybrid-mbr {ISOHDPFX_BIN} -b boot/isolinux/isolinux.bin \
             -c boot/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table -eltorito-alt-boot \
             -e boot/efiboot.img -no-emul-boot -isohybrid-gpt-basdat tree 2>/dev/null",
            iso.display()
        ),
    );
    let info = read_iso_info(&mut std::fs::File::open(&iso).unwrap()).unwrap();
    let report = xorriso_report(&iso, "el_torito");
    assert_eq!(info.volume_id, "REFERENCE");
    assert!(info.joliet && info.mbr && info.gpt);
    assert!(report.contains(&format!("El Torito catalog  : {}  1\n", info.boot_catalog.unwrap())), "{report}");
    let platforms: Vec<(u8, u16)> = info.boot_entries.iter().map(|e| (e.platform, e.sector_count)).collect();
    assert_eq!(platforms, [(clay_iso::PLATFORM_X86, 4), (clay_iso::PLATFORM_EFI, 5760)]);
    for (n, e) in (1..).zip(&info.boot_entries) {
        assert!(e.bootable && e.media_type == 0 && e.load_segment == 0);
        assert!(report.contains(&format!("  {:>10}\n", e.load_rba)), "entry {n}: {report}");
    }
}
