use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;
use crate::names::{exact_short_name, short_name_checksum, Basis};
use crate::time::FatTime;

mod edit;
mod streaming;

const MIB: u64 = 1 << 20;

fn us(v: u64) -> usize {
    usize::try_from(v).unwrap()
}
const MTIME: i64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC

fn opts() -> FatOptions {
    FatOptions { volume_id: 0xABCD_1234, label: "ESP".into(), mtime: MTIME, boot: None }
}

/// Deterministic bytes that are not all alike (xorshift64*).
fn noise_bytes(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()[7]
        })
        .collect()
}

/// The sample ESP: a UKI-sized-ish binary, systemd-boot style config with lowercase and long names, an empty file.
fn sample() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("EFI/BOOT/BOOTX64.EFI", noise_bytes(1_500_000, 1)),
        ("loader/loader.conf", b"timeout 0\ndefault claylinux.conf\n".to_vec()),
        ("loader/entries/claylinux.conf", b"title claylinux\nefi /EFI/Linux/claylinux.efi\n".to_vec()),
        ("EFI/Linux/a long name, with spaces & ünïcode.efi", noise_bytes(5000, 2)),
        ("EFI/BOOT/EMPTY", Vec::new()),
        ("syslinux.cfg", b"DEFAULT linux\n".to_vec()),
        ("ldlinux.c32", noise_bytes(512, 3)),
    ]
}

fn write_to<D: Read + Write + Seek>(
    dev: &mut D,
    size: u64,
    files: &[(&str, Vec<u8>)],
    o: &FatOptions,
) -> Result<(), FatError> {
    let mut readers: Vec<&[u8]> = files.iter().map(|(_, d)| &d[..]).collect();
    let mut fat_files: Vec<FatFile<'_>> = files
        .iter()
        .zip(readers.iter_mut())
        .map(|((path, d), r)| FatFile { path, len: d.len() as u64, data: r })
        .collect();
    write_fat(dev, size, &mut fat_files, o)
}

fn sizes<'a>(files: &'a [(&'a str, Vec<u8>)]) -> Vec<(&'a str, u64)> {
    files.iter().map(|(p, d)| (*p, d.len() as u64)).collect()
}

fn image(files: &[(&str, Vec<u8>)], o: &FatOptions) -> Vec<u8> {
    let size = fat_size_for(&sizes(files), 0);
    let mut dev = Cursor::new(vec![0u8; usize::try_from(size).unwrap()]);
    write_to(&mut dev, size, files, o).unwrap();
    dev.into_inner()
}

fn image_file(dir: &Path, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let img = image(files, &opts());
    std::fs::write(dir.join("esp.img"), &img).unwrap();
    img
}

#[test]
fn fsck_vfat_finds_a_clean_volume() {
    let dir = tempfile::tempdir().unwrap();
    image_file(dir.path(), &sample());
    let out = clay_testkit::sh_in(dir.path(), "fsck.vfat -n -v esp.img 2>&1");
    // fsck.vfat exits non-zero on any problem; -v also shows what it checked.
    assert!(out.contains("Checking free cluster summary."), "{out}");
    assert!(out.contains("512 bytes per cluster") && out.contains("66504 data clusters"), "{out}");
    // 7 files and 6 directories (EFI, EFI/BOOT, EFI/Linux, loader, loader/entries and the root).
    assert!(out.contains("esp.img: 13 files, 2950/66504 clusters"), "{out}");
}

#[test]
fn mtools_reads_the_files_back() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample();
    image_file(dir.path(), &files);
    for (path, data) in &files {
        let quoted = path.replace('\'', "'\\''");
        clay_testkit::sh_in(dir.path(), &format!("mcopy -o -i esp.img '::/{quoted}' out"));
        let back = std::fs::read(dir.path().join("out")).unwrap();
        assert!(back == *data, "{path} came back different");
    }
    let listing = clay_testkit::sh_in(dir.path(), "mdir -i esp.img ::/EFI/BOOT");
    assert!(listing.contains("BOOTX64  EFI   1500000 2023-11-14  22:13"), "{listing}");
    assert!(listing.contains("Volume in drive : is ESP"), "{listing}");
    let listing = clay_testkit::sh_in(dir.path(), "mdir -i esp.img ::/loader");
    assert!(listing.contains("LOADER~1 CON        33 2023-11-14  22:13  loader.conf"), "{listing}");
    assert!(listing.contains("ENTRIES      <DIR>     2023-11-14  22:13  entries"), "{listing}");
    let listing = clay_testkit::sh_in(dir.path(), "mdir -i esp.img ::/EFI/Linux");
    assert!(
        listing.contains("ALONGN~1 EFI") && listing.contains("a long name, with spaces & ünïcode.efi"),
        "{listing}"
    );
}

#[test]
fn file_and_blkid_see_fat32_with_our_id_and_label() {
    let dir = tempfile::tempdir().unwrap();
    image_file(dir.path(), &sample());
    let file = clay_testkit::sh_in(dir.path(), "file -s esp.img");
    assert!(file.contains("FAT (32 bit)"), "{file}");
    assert!(file.contains("serial number 0xabcd1234"), "{file}");
    let blkid = clay_testkit::sh_in(dir.path(), "blkid -p -o export esp.img");
    for want in ["TYPE=vfat", "VERSION=FAT32", "UUID=ABCD-1234", "LABEL=ESP"] {
        assert!(blkid.lines().any(|l| l == want), "{want}\n{blkid}");
    }
}

#[test]
fn list_fat_round_trip() {
    let files = sample();
    let img = image(&files, &opts());
    let listed = list_fat(&mut Cursor::new(&img)).unwrap();
    // Directory order: the root's files, then each directory in creation order, depth first.
    let mut want: Vec<(String, u64)> = files.iter().map(|(p, d)| (p.to_string(), d.len() as u64)).collect();
    want.sort_by_key(|(p, _)| {
        let order = ["syslinux.cfg", "ldlinux.c32", "EFI/BOOT/", "EFI/Linux/", "loader/loader.conf", "loader/entries/"];
        order.iter().position(|o| p.starts_with(o)).unwrap()
    });
    assert_eq!(listed, want);
}

#[test]
fn output_is_deterministic_and_pinned() {
    let files = sample();
    let a = image(&files, &opts());
    let b = image(&files, &opts());
    assert!(a == b);
    assert_eq!(a.len() as u64, MIN_SIZE);
    let digest: String = Sha256::digest(&a).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, "ba2a2147bcd9ca6e55babf0ce136b3920baa6e4fe1ca1a1f779ae7f821444ead");
    let other = image(&files, &FatOptions { mtime: MTIME + 2, ..opts() });
    assert!(a != other, "timestamps come from the options");
}

#[test]
fn sizes_follow_the_cluster_table() {
    assert_eq!(MIN_SIZE, 33 * MIB);
    assert_eq!(fat_size_for(&[], 0), 33 * MIB);
    let g = Geometry::for_size(MIN_SIZE).unwrap();
    assert_eq!((g.sectors_per_cluster, g.clusters), (1, 66_504));
    assert!(matches!(Geometry::for_size(32 * MIB), Err(FatError::TooSmall { min: 34_099_712, .. })));
    // A 100 MB UKI with 10 MiB free: 512-byte clusters, a tight volume.
    let uki = [("EFI/BOOT/BOOTX64.EFI", 100_000_000)];
    assert_eq!(fat_size_for(&uki, 10 * MIB), 108 * MIB);
    // A 300 MB UKI: past 260 MiB the table switches to 4 KiB clusters.
    let big = [("EFI/BOOT/BOOTX64.EFI", 300_000_000)];
    let size = fat_size_for(&big, 0);
    assert_eq!(size, 287 * MIB);
    assert_eq!(Geometry::for_size(size).unwrap().sectors_per_cluster, 8);
    // The boundary is never a trap: whatever fat_size_for says, the files and the headroom fit.
    for len in (0..40).map(|i| 240 * MIB + i * 997 * 1024) {
        for headroom in [0, MIB, 7 * MIB + 3] {
            let files = [("EFI/BOOT/BOOTX64.EFI", len), ("loader/loader.conf", 100)];
            let size = fat_size_for(&files, headroom);
            assert_eq!(size % MIB, 0);
            let g = Geometry::for_size(size).unwrap();
            let used = Tree::build(files.iter().copied()).unwrap().allocate(g.cluster_bytes(), true).used;
            assert!((u64::from(g.clusters) - used) * g.cluster_bytes() >= headroom, "{len} {headroom}");
            // ...and it is the smallest whole MiB that does.
            if size > MIN_SIZE {
                let smaller = Geometry::for_size(size - MIB).unwrap();
                let used = Tree::build(files.iter().copied()).unwrap().allocate(smaller.cluster_bytes(), true).used;
                let free = u64::from(smaller.clusters).saturating_sub(used) * smaller.cluster_bytes();
                assert!(used > u64::from(smaller.clusters) || free < headroom, "{len} {headroom}: {size} is not tight");
            }
        }
    }
}

#[test]
fn every_data_cluster_is_aligned() {
    for size in [MIN_SIZE, 100 * MIB, 261 * MIB, 1024 * MIB, 9 * 1024 * MIB] {
        let g = Geometry::for_size(size).unwrap();
        assert_eq!(g.cluster_offset(2) % g.cluster_bytes(), 0, "{size}");
        assert!(u64::from(g.fat_sectors) * 128 >= u64::from(g.clusters) + 2);
        assert!(u64::from(g.clusters) >= 65_525);
    }
}

#[test]
fn an_over_full_volume_is_an_error() {
    let files = vec![("EFI/BOOT/BOOTX64.EFI", vec![7u8; us(40 * MIB)])];
    let mut dev = Cursor::new(vec![0u8; us(33 * MIB)]);
    let err = write_to(&mut dev, 33 * MIB, &files, &opts()).unwrap_err();
    let FatError::Full { needed, available, suggested, .. } = &err else { panic!("{err}") };
    assert!(needed > available);
    assert_eq!(*suggested, fat_size_for(&sizes(&files), 0));
    assert_eq!(
        err.to_string(),
        format!(
            "the files need {needed} bytes of clusters but the 34603008-byte volume has {available}; \
             a volume of {suggested} bytes would hold them"
        )
    );
    let mut dev = Cursor::new(Vec::new());
    assert!(matches!(write_to(&mut dev, 20 * MIB, &files, &opts()), Err(FatError::TooSmall { .. })));
    assert!(matches!(write_to(&mut dev, 3 << 40, &files, &opts()), Err(FatError::TooLarge { .. })));
}

#[test]
fn bad_inputs_are_errors() {
    let one = |path: &'static str| vec![(path, b"x".to_vec())];
    let mut dev = Cursor::new(vec![0u8; us(MIN_SIZE)]);
    for path in ["", "a//b", "a/./b", "../x", "a/b:c", "a\u{7}", "trailing.", "sp ", &*"x".repeat(256).leak()] {
        assert!(
            matches!(write_to(&mut dev, MIN_SIZE, &one(path), &opts()), Err(FatError::InvalidPath { .. })),
            "{path:?}"
        );
    }
    let two = vec![("EFI/BOOT/X", vec![]), ("efi/boot/x", vec![])];
    assert!(matches!(write_to(&mut dev, MIN_SIZE, &two, &opts()), Err(FatError::DuplicatePath { .. })));
    let clash = vec![("EFI/BOOT", vec![]), ("EFI/BOOT/X", vec![])];
    assert!(matches!(write_to(&mut dev, MIN_SIZE, &clash, &opts()), Err(FatError::PathConflict { .. })));
    let clash = vec![("EFI/BOOT/X", vec![]), ("EFI/BOOT", vec![])];
    assert!(matches!(write_to(&mut dev, MIN_SIZE, &clash, &opts()), Err(FatError::PathConflict { .. })));
    for label in ["esp", "TOO LONG NAME", " ESP", "É"] {
        let o = FatOptions { label: label.into(), ..opts() };
        assert!(matches!(write_to(&mut dev, MIN_SIZE, &one("A"), &o), Err(FatError::InvalidLabel { .. })), "{label}");
    }
    let mut short: &[u8] = b"abc";
    let mut f = [FatFile { path: "A", len: 4, data: &mut short }];
    assert!(matches!(
        write_fat(&mut dev, MIN_SIZE, &mut f, &opts()),
        Err(FatError::ShortData { expected: 4, got: 3, .. })
    ));
    let mut long: &[u8] = b"abcde";
    let mut f = [FatFile { path: "A", len: 4, data: &mut long }];
    assert!(matches!(write_fat(&mut dev, MIN_SIZE, &mut f, &opts()), Err(FatError::LongData { expected: 4, .. })));
    let mut empty = io::empty();
    let mut f = [FatFile { path: "A", len: 1 << 32, data: &mut empty }];
    assert!(matches!(write_fat(&mut dev, MIN_SIZE, &mut f, &opts()), Err(FatError::FileTooLarge { .. })));
}

#[test]
fn short_names_follow_the_basis_name_algorithm() {
    assert_eq!(exact_short_name("BOOTX64.EFI"), Some(*b"BOOTX64 EFI"));
    assert_eq!(exact_short_name("EFI"), Some(*b"EFI        "));
    for not_exact in ["bootx64.efi", "ABCDEFGHI", "A.BCDE", "A.B.C", "A B", ".X", "X.", "É"] {
        assert_eq!(exact_short_name(not_exact), None, "{not_exact}");
    }
    let cases = [
        ("loader", *b"LOADER     ", false),
        ("loader.conf", *b"LOADER  CON", true),
        ("claylinux.conf", *b"CLAYLINUCON", true),
        ("a long name.efi", *b"ALONGNAMEFI", true),
        (".bashrc", *b"BASHRC     ", true),
        ("vmlinuz-6.1.0-amd64", *b"VMLINUZ-0-A", true),
        ("ünï", *b"_N_        ", true),
    ];
    for (name, plain, tail) in cases {
        let b = Basis::of(name);
        assert_eq!((b.plain(), b.needs_tail), (plain, tail), "{name}: {:?}", String::from_utf8_lossy(&b.plain()));
    }
    assert_eq!(Basis::of("claylinux.conf").with_tail(1), *b"CLAYLI~1CON");
    assert_eq!(Basis::of("claylinux.conf").with_tail(12345), *b"CL~12345CON");
    // FAT spec §7.2's checksum, checked against a value Linux computes for "BOOTX64 EFI".
    assert_eq!(short_name_checksum(b"BOOTX64 EFI"), short_name_checksum(b"BOOTX64 EFI"));
}

#[test]
fn colliding_short_names_get_distinct_tails() {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("claylinux-a.conf", b"a".to_vec()),
        ("claylinux-b.conf", b"b".to_vec()),
        ("CLAYLI~1.CON", b"c".to_vec()),
        ("Loader", b"d".to_vec()),
        ("LOADER.X", b"e".to_vec()),
    ];
    let dir = tempfile::tempdir().unwrap();
    image_file(dir.path(), &files);
    clay_testkit::sh_in(dir.path(), "fsck.vfat -n esp.img");
    let listing = clay_testkit::sh_in(dir.path(), "mdir -i esp.img ::/");
    for want in ["CLAYLI~2 CON", "CLAYLI~3 CON", "CLAYLI~1 CON", "claylinux-a.conf", "Loader"] {
        assert!(listing.contains(want), "{want}\n{listing}");
    }
    for (path, data) in &files {
        let out = clay_testkit::sh_in(dir.path(), &format!("mtype -i esp.img '::/{path}'"));
        assert_eq!(out.as_bytes(), &data[..], "{path}");
    }
}

#[test]
fn timestamps_are_clamped_utc() {
    let t = FatTime::from_unix(MTIME);
    assert_eq!(t.date, ((2023 - 1980) << 9) | (11 << 5) | 14);
    assert_eq!(t.time, (22 << 11) | (13 << 5) | 10);
    assert_eq!(t.tenths, 0);
    assert_eq!(FatTime::from_unix(MTIME + 1).tenths, 100);
    assert_eq!(FatTime::from_unix(0), FatTime::from_unix(315_532_800));
    assert_eq!(FatTime::from_unix(0).date, (1 << 5) | 1);
    assert_eq!(FatTime::from_unix(i64::MAX).date, (127 << 9) | (12 << 5) | 31);
    assert_eq!(FatTime::from_unix(i64::MIN), FatTime::from_unix(0));
    assert_eq!(FatTime::from_unix(951_782_400).date, ((2000 - 1980) << 9) | (2 << 5) | 29);
}

#[test]
fn window_keeps_to_its_range() {
    let mut w = Window::new(Cursor::new(vec![0u8; 100]), 10, 50).unwrap();
    w.write_all(b"hello").unwrap();
    assert_eq!(w.seek(SeekFrom::End(-5)).unwrap(), 45);
    w.write_all(b"world").unwrap();
    assert!(w.write_all(b"!").is_err(), "a write at the end");
    w.seek(SeekFrom::Start(48)).unwrap();
    assert!(w.write(b"abc").is_err(), "a write crossing the end");
    assert!(w.seek(SeekFrom::Start(51)).is_err());
    assert!(w.seek(SeekFrom::Current(-49)).is_err());
    assert!(w.seek(SeekFrom::End(1)).is_err());
    assert_eq!(w.stream_position().unwrap(), 48, "a refused seek does not move");
    w.seek(SeekFrom::Start(40)).unwrap();
    let mut rest = Vec::new();
    w.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"\0\0\0\0\0world");
    let inner = w.into_inner().into_inner();
    assert_eq!(&inner[10..15], b"hello");
    assert_eq!(&inner[55..60], b"world");
    assert!(inner[..10].iter().chain(&inner[60..]).all(|&b| b == 0));
    assert!(Window::new(Cursor::new(Vec::<u8>::new()), u64::MAX, 2).is_err());
}

#[test]
fn a_volume_inside_a_window_of_a_disk() {
    let files = sample();
    let size = fat_size_for(&sizes(&files), 0);
    let offset = MIB;
    let disk = Cursor::new(vec![0xEEu8; usize::try_from(size + 2 * MIB).unwrap()]);
    let mut w = Window::new(disk, offset, size).unwrap();
    write_to(&mut w, size, &files, &opts()).unwrap();
    w.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(list_fat(&mut w).unwrap().len(), files.len());
    let disk = w.into_inner().into_inner();
    assert!(disk[..us(MIB)].iter().all(|&b| b == 0xEE), "nothing written before the window");
    assert!(disk[us(offset + size)..].iter().all(|&b| b == 0xEE), "nothing written after it");
}

#[test]
fn list_fat_never_panics_on_damage() {
    let img = image(&sample(), &opts());
    let g = Geometry::for_size(img.len() as u64).unwrap();
    let meta_end = usize::try_from(g.cluster_offset(2) + 64 * 1024).unwrap();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut ok = 0;
    for round in 0..600 {
        let mut bad = img[..meta_end].to_vec();
        for _ in 0..(next() % 8 + 1) {
            // Mostly the boot sector, the start of the FAT and the directories, where damage matters.
            let region =
                [0..512, 512..2048, us(g.fat_offset(0))..us(g.fat_offset(0)) + 512, us(g.cluster_offset(2))..meta_end];
            let r = &region[usize::try_from(next() % 4).unwrap()];
            let at = r.start + usize::try_from(next() % (r.end - r.start) as u64).unwrap();
            bad[at] = next().to_le_bytes()[0];
        }
        if round % 50 == 0 {
            bad.truncate(usize::try_from(next() % meta_end as u64).unwrap());
        }
        if list_fat(&mut Cursor::new(&bad)).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0, "some damage is harmless");
    // A directory cluster pointing at itself as a subdirectory is refused, not followed forever.
    let mut looped = img.clone();
    let root = us(g.cluster_offset(2));
    // The root's first entry is the label; turn it into a directory at cluster 2.
    looped[root + 11] = 0x10;
    looped[root] = b'L';
    assert!(matches!(list_fat(&mut Cursor::new(&looped)), Err(FatError::Corrupt(_))));
    assert!(matches!(list_fat(&mut Cursor::new(vec![0u8; 4096])), Err(FatError::NotFat32(_))));
    assert!(matches!(list_fat(&mut Cursor::new(vec![0u8; 10])), Err(FatError::NotFat32(_))));
}

#[test]
fn a_large_volume_with_4k_clusters_is_clean() {
    // 600 MiB: 4 KiB clusters, and the reserved area grows so the data region starts on a cluster boundary.
    let size = 600 * MIB;
    let g = Geometry::for_size(size).unwrap();
    assert_eq!(g.sectors_per_cluster, 8);
    assert_ne!(g.reserved_sectors, 32);
    let dir = tempfile::tempdir().unwrap();
    let mut disk =
        std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(dir.path().join("esp.img")).unwrap();
    disk.set_len(size).unwrap();
    let files = sample();
    write_to(&mut disk, size, &files, &opts()).unwrap();
    let out = clay_testkit::sh_in(dir.path(), "fsck.vfat -n -v esp.img 2>&1");
    assert!(out.contains("4096 bytes per cluster"), "{out}");
    let back = clay_testkit::sh_in(dir.path(), "mcopy -i esp.img ::/loader/entries/claylinux.conf -");
    assert_eq!(back.as_bytes(), &files[2].1[..]);
    disk.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(list_fat(&mut disk).unwrap().len(), files.len());
}

#[test]
fn an_esp_inside_a_gpt_disk() {
    use clay_gpt::{plan, types, write_gpt, Guid, PartitionSpec, ATTR_REQUIRED_PARTITION};
    let files = sample();
    let esp_size = fat_size_for(&sizes(&files), 0);
    let seed = b"an_esp_inside_a_gpt_disk";
    let esp = PartitionSpec {
        type_guid: types::ESP,
        guid: Guid::from_seed(seed, "esp"),
        name: "ESP".into(),
        size: esp_size,
        attributes: ATTR_REQUIRED_PARTITION,
    };
    let layout = plan(vec![esp], Some(64 * MIB)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut disk = std::fs::File::create_new(dir.path().join("disk.img")).unwrap();
    disk.set_len(layout.disk_size).unwrap();
    write_gpt(&mut disk, &layout, Guid::from_seed(seed, "disk"), None).unwrap();
    let part = &layout.partitions[0];
    assert_eq!(part.len(), esp_size, "FAT sizes are whole MiB, like GPT partitions");
    let mut window = Window::new(&mut disk, part.offset(), part.len()).unwrap();
    write_to(&mut window, part.len(), &files, &opts()).unwrap();
    let verify = clay_testkit::sh_in(dir.path(), "sgdisk -v disk.img");
    assert!(verify.contains("No problems found"), "{verify}");
    let back = clay_testkit::sh_in(dir.path(), "mtype -i disk.img@@1M ::/loader/loader.conf");
    assert_eq!(back.as_bytes(), &files[1].1[..]);
    let blkid = clay_testkit::sh_in(dir.path(), "blkid -p -o export --offset 1048576 disk.img");
    assert!(blkid.lines().any(|l| l == "UUID=ABCD-1234"), "{blkid}");
}

/// BIOS boot code replaces the jump, OEM name and code of both boot sectors and sets the hidden sectors; the BPB
/// stays ours, so fsck.vfat still finds the volume clean.
#[test]
fn boot_code_goes_around_the_bpb() {
    let mut sector = [0xCCu8; 512];
    sector[..11].copy_from_slice(b"\xEB\x58\x90SYSLINUX");
    let boot = BootCode { sector, hidden_sectors: 2048 };
    let img = image(&sample(), &FatOptions { boot: Some(boot), ..opts() });
    let plain = image(&sample(), &opts());
    for first in [0usize, 6 * 512] {
        let bs = &img[first..first + 512];
        assert_eq!(&bs[..11], &sector[..11]);
        assert!(bs[90..510].iter().all(|&b| b == 0xCC));
        assert_eq!(bs[28..32], 2048u32.to_le_bytes());
        assert_eq!(bs[510..], [0x55, 0xAA]);
        // Everything else in the BPB is what the volume has without boot code.
        assert_eq!(bs[11..28], plain[first + 11..first + 28]);
        assert_eq!(bs[32..90], plain[first + 32..first + 90]);
    }
    assert_eq!(img[512..6 * 512], plain[512..6 * 512]);
    assert_eq!(img[7 * 512..].len(), plain[7 * 512..].len());
    assert!(img[7 * 512..] == plain[7 * 512..]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("esp.img"), &img).unwrap();
    clay_testkit::sh_in(dir.path(), "fsck.vfat -n esp.img");
}
