//! Reading and replacing one file of an existing volume, ours or one that mkfs.vfat and mtools made: mtools must
//! read back what `file_extents` finds and what `replace_file` wrote, fsck.vfat must find the volume clean (free
//! cluster summary included), and nothing but the replaced file may change or move.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;

use super::*;
use crate::ondisk::{FAT_BAD, FAT_EOC};
use crate::volume::Volume;

const IMG: &str = "esp.img";

/// The reference tools these tests run, each with the Debian package that has it.
const TOOLS: [(&str, &str); 7] = [
    ("mkfs.vfat", "dosfstools"),
    ("fsck.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mdel", "mtools"),
    ("mmd", "mtools"),
    ("mdir", "mtools"),
    ("mtype", "mtools"),
];

/// Fails the test, naming the package to install, when a reference tool is missing.
fn need_tools() {
    for (tool, package) in TOOLS {
        let found = std::process::Command::new("bash").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
        assert!(found.status.success(), "`{tool}` is needed for this test; install the `{package}` package");
    }
}

fn sh(dir: &Path, script: &str) -> String {
    need_tools();
    clay_testkit::sh_in(dir, script)
}

/// Copies `data` into the image at `path` with mtools.
fn mput(dir: &Path, path: &str, data: &[u8]) {
    std::fs::write(dir.join("in.bin"), data).unwrap();
    sh(dir, &format!("mcopy -i {IMG} in.bin '::/{path}'"));
}

/// One file as mtools reads it.
fn mget(dir: &Path, path: &str) -> Vec<u8> {
    sh(dir, &format!("mcopy -n -i {IMG} '::/{path}' out.bin"));
    std::fs::read(dir.join("out.bin")).unwrap()
}

/// Every file as mtools reads it, by path.
fn mtools_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    sh(dir, &format!("rm -rf ex && mkdir ex && mcopy -s -n -i {IMG} '::/*' ex/"));
    let root = dir.join("ex");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// fsck.vfat's verdict on the image, which must be clean, its free cluster summary included: (used, total)
/// clusters.
fn fsck_clean(dir: &Path) -> (u64, u64) {
    // fsck.vfat -n exits non-zero on any problem, which fails the script.
    let out = sh(dir, &format!("fsck.vfat -n -v {IMG} 2>&1"));
    assert!(out.contains("Checking free cluster summary.") && !out.contains("wrong"), "{out}");
    // The last line reads `esp.img: 13 files, 2950/66504 clusters`.
    let last = out.lines().last().unwrap();
    let counts = last.rsplit(", ").next().unwrap().trim_end_matches(" clusters");
    let (used, total) = counts.split_once('/').unwrap();
    (used.parse().unwrap(), total.parse().unwrap())
}

fn volume(img: &[u8]) -> Volume {
    Volume::parse(0, img[..512].try_into().unwrap()).unwrap()
}

/// FSI_Free_Count.
fn fsinfo_free(img: &[u8]) -> u64 {
    let at = us(volume(img).fs_info_offset().unwrap()) + 488;
    u64::from(u32::from_le_bytes(img[at..at + 4].try_into().unwrap()))
}

fn fat_entry(img: &[u8], vol: &Volume, n: u8, c: u32) -> u32 {
    let at = us(vol.fat_start(n) + u64::from(c) * 4);
    u32::from_le_bytes(img[at..at + 4].try_into().unwrap())
}

fn set_fat_entry(img: &mut [u8], vol: &Volume, n: u8, c: u32, value: u32) {
    let at = us(vol.fat_start(n) + u64::from(c) * 4);
    img[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// The clusters a file's extents cover, in file order.
fn clusters_of(vol: &Volume, file: &FileExtents) -> Vec<u32> {
    let mut out = Vec::new();
    for e in &file.extents {
        let first = u32::try_from((e.offset - vol.data_offset) / vol.cluster_bytes).unwrap() + 2;
        let count = u32::try_from(e.len.div_ceil(vol.cluster_bytes)).unwrap();
        out.extend(first..first + count);
    }
    out
}

/// Where every file lies, by path (as `list_fat` names them, which `file_extents` must find).
fn places(img: &[u8]) -> BTreeMap<String, FileExtents> {
    let listed = list_fat(&mut Cursor::new(img)).unwrap();
    listed.into_iter().map(|(p, _)| (p.clone(), file_extents(&mut Cursor::new(img), &p).unwrap())).collect()
}

/// The offset of the first directory entry with this short name.
fn short_entry(img: &[u8], short: &[u8; 11]) -> usize {
    let vol = volume(img);
    let start = us(vol.data_offset);
    start + img[start..].chunks(32).position(|e| e.starts_with(short)).unwrap() * 32
}

/// Byte ranges in which `a` and `b` differ, compared a block at a time.
fn differences(a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    let mut out = Vec::new();
    for (n, (x, y)) in a.chunks(4096).zip(b.chunks(4096)).enumerate() {
        if x != y {
            out.extend(x.iter().zip(y).enumerate().filter(|(_, (p, q))| p != q).map(|(i, _)| n * 4096 + i));
        }
    }
    out
}

/// A volume's state before a replacement, to check afterwards that only the replaced file changed.
struct Before {
    img: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    places: BTreeMap<String, FileExtents>,
    used: u64,
}

impl Before {
    fn take(dir: &Path) -> Before {
        let img = std::fs::read(dir.join(IMG)).unwrap();
        let (used, total) = fsck_clean(dir);
        assert_eq!(fsinfo_free(&img), total - used, "the volume's free count is right to begin with");
        Before { files: mtools_files(dir), places: places(&img), img, used }
    }

    /// Checks the image after `path` got `data` (at time MTIME) and returns where the new content lies:
    /// - fsck.vfat finds it clean, its used clusters changed by exactly the new minus the old clusters, and the
    ///   FSInfo free count agrees;
    /// - mtools and `read_file` read the new content, and every other file the same bytes as before;
    /// - every other file lies where it lay;
    /// - the only bytes that changed are FAT entries of the old and new clusters (in both FATs), the FSInfo
    ///   counts, the new clusters and the cluster, size and date fields of one directory entry;
    /// - the old clusters are free and mdir shows the new write time.
    fn check(&self, dir: &Path, path: &str, data: &[u8]) -> FileExtents {
        let after = std::fs::read(dir.join(IMG)).unwrap();
        let vol = volume(&after);
        let (used, total) = fsck_clean(dir);
        let old = &self.places[path];
        let new = file_extents(&mut Cursor::new(&after), path).unwrap();
        let (old_clusters, new_clusters) = (clusters_of(&vol, old), clusters_of(&vol, &new));
        assert_eq!(used + old_clusters.len() as u64, self.used + new_clusters.len() as u64, "used clusters");
        assert_eq!(fsinfo_free(&after), total - used, "FSInfo free count");

        assert!(mget(dir, path) == data, "mtools reads the new content of {path}");
        assert!(read_file(&mut Cursor::new(&after), path).unwrap() == data);
        let mut files = mtools_files(dir);
        assert!(files.remove(path).unwrap() == data);
        let mut before_files = self.files.clone();
        before_files.remove(path).unwrap();
        assert!(files == before_files, "every other file reads the same");
        let mut places = places(&after);
        places.remove(path);
        let mut before_places = self.places.clone();
        before_places.remove(path);
        assert_eq!(places, before_places, "every other file lies where it lay");

        let fats = us(vol.fat_offset)..us(vol.data_offset);
        let fsinfo = us(vol.fs_info_offset().unwrap()) + 488..us(vol.fs_info_offset().unwrap()) + 496;
        let new_set: BTreeSet<u32> = new_clusters.iter().copied().collect();
        let in_new = |at: usize| {
            let cluster = (at as u64).checked_sub(vol.data_offset).map(|b| b / vol.cluster_bytes + 2);
            cluster.is_some_and(|c| new_set.contains(&u32::try_from(c).unwrap()))
        };
        let touched: BTreeSet<u32> = old_clusters.iter().chain(&new_clusters).copied().collect();
        let mut entry_bytes = Vec::new();
        for at in differences(&self.img, &after) {
            if fats.contains(&at) {
                let index = u32::try_from((at - us(vol.fat_offset)) % us(vol.fat_bytes) / 4).unwrap();
                assert!(touched.contains(&index), "FAT entry {index} changed");
            } else if !fsinfo.contains(&at) && !in_new(at) {
                entry_bytes.push(at);
            }
        }
        // One directory entry: DIR_LstAccDate (18) to DIR_FileSize (28-31); the name, attributes and creation
        // time (0-17) stay.
        let slot = entry_bytes[0] / 32;
        assert!(entry_bytes.iter().all(|&at| at / 32 == slot && at % 32 >= 18), "stray changes at {entry_bytes:?}");
        for &c in old_clusters.iter().filter(|c| !new_clusters.contains(c)) {
            assert_eq!((fat_entry(&after, &vol, 0, c), fat_entry(&after, &vol, 1, c)), (0, 0), "cluster {c} is free");
        }
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        let listing = sh(dir, &format!("mdir -i {IMG} '::/{parent}'"));
        // A file with a long name ends its line with it; one without starts it with its 8.3 name.
        let name = path.rsplit('/').next().unwrap();
        let (base, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let short = format!("{base:<8} {ext:<3} ").to_lowercase();
        let line = listing.lines().find(|l| l.trim_end().ends_with(name) || l.to_lowercase().starts_with(&short));
        let line = line.unwrap_or_else(|| panic!("{name} is not in\n{listing}"));
        assert!(line.contains(&format!("{:>9} 2023-11-14  22:13", data.len())), "{line}\n{listing}");
        new
    }
}

/// Replaces `path` in the image with `data` through a file handle and checks the result with [`Before::check`].
fn replace_and_check(dir: &Path, path: &str, data: &[u8]) -> FileExtents {
    let before = Before::take(dir);
    let mut dev = OpenOptions::new().read(true).write(true).open(dir.join(IMG)).unwrap();
    replace_file(&mut dev, path, data.len() as u64, &mut &data[..], MTIME).unwrap();
    drop(dev);
    before.check(dir, path, data)
}

/// A volume as a used ESP can be, made by mkfs.vfat (512-byte clusters) and mtools: `ldlinux.sys` and a boot
/// loader first, eight 300 kB files `X0`-`X7`, a filler leaving 1 MB free at the end, `X1`, `X3`, `X5` and `X7`
/// deleted, then a 1.5 MB UKI, which mtools splits between the end and the first two holes. Returns the files.
fn fragmented_esp(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    sh(dir, &format!("mkfs.vfat -F 32 -s 1 -S 512 -i 12345678 -n TESTESP -C {IMG} 40960 >/dev/null"));
    sh(dir, &format!("mmd -i {IMG} ::/EFI ::/EFI/BOOT ::/EFI/Linux ::/loader"));
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("ldlinux.sys".into(), noise_bytes(60_000, 11));
    files.insert("EFI/BOOT/BOOTX64.EFI".into(), noise_bytes(100_000, 12));
    files.insert("loader/loader.conf".into(), b"timeout 0\ndefault claylinux.conf\n".to_vec());
    for (path, data) in &files {
        mput(dir, path, data);
    }
    for i in 0..8u64 {
        let data = noise_bytes(300_000, 20 + i);
        mput(dir, &format!("X{i}"), &data);
        files.insert(format!("X{i}"), data);
    }
    let (used, total) = fsck_clean(dir);
    let filler = b"filler. ".repeat(us(((total - used) * 512 - 1_000_000) / 8));
    mput(dir, "FILLER.BIN", &filler);
    files.insert("FILLER.BIN".into(), filler);
    sh(dir, &format!("mdel -i {IMG} ::/X1 ::/X3 ::/X5 ::/X7"));
    for i in [1, 3, 5, 7] {
        files.remove(&format!("X{i}"));
    }
    let uki = noise_bytes(1_500_000, 30);
    mput(dir, "EFI/Linux/claylinux.efi", &uki);
    files.insert("EFI/Linux/claylinux.efi".into(), uki);
    files
}

#[test]
fn reads_match_mtools_on_our_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample();
    let img = image_file(dir.path(), &files);
    let layout = FatLayout::plan(img.len() as u64, &sizes(&files), &opts()).unwrap();
    for (index, (path, data)) in files.iter().enumerate() {
        let quoted = path.replace('\'', "'\\''");
        assert!(mget(dir.path(), &quoted) == *data, "mtools reads {path}");
        assert!(read_file(&mut Cursor::new(&img), path).unwrap() == *data, "read_file reads {path}");
        let mut copied = Vec::new();
        assert_eq!(copy_file(&mut Cursor::new(&img), path, &mut copied).unwrap(), data.len() as u64);
        assert!(copied == *data);
        // Our files are contiguous, at the offset the layout planned.
        let extents = file_extents(&mut Cursor::new(&img), path).unwrap();
        assert_eq!(extents.len, data.len() as u64);
        match layout.file_offset(index) {
            Some(offset) => assert_eq!(extents.extents, [Extent { offset, len: data.len() as u64 }], "{path}"),
            None => assert_eq!(extents.extents, [], "{path}"),
        }
    }
    // Any case, either separator, long or short names, as UEFI finds them.
    let boot = &files[0].1;
    let long = &files[3].1;
    for (path, want) in [
        ("efi/boot/bootx64.efi", boot),
        ("\\EFI\\BOOT\\BOOTX64.EFI", boot),
        ("/EFI//Boot/BootX64.Efi", boot),
        ("EFI/Linux/ALONGN~1.EFI", long),
        ("efi/LINUX/alongn~1.efi", long),
        ("EFI/Linux/A LONG NAME, WITH SPACES & ÜNÏCODE.EFI", long),
        ("LOADER/ENTRIES/CLAYLI~1.CON", &files[2].1),
    ] {
        assert!(read_file(&mut Cursor::new(&img), path).unwrap() == *want, "{path}");
    }
}

#[test]
fn reads_match_mtools_on_mkfs_volumes_fragmented_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let files = fragmented_esp(dir.path());
    fsck_clean(dir.path());
    let img = std::fs::read(dir.path().join(IMG)).unwrap();
    let by_mtools = mtools_files(dir.path());
    assert_eq!(by_mtools.keys().collect::<Vec<_>>(), files.keys().collect::<Vec<_>>());
    for (path, data) in &files {
        assert!(by_mtools[path] == *data, "mtools reads {path} as written");
        assert!(read_file(&mut Cursor::new(&img), path).unwrap() == *data, "read_file reads {path}");
    }
    let uki = file_extents(&mut Cursor::new(&img), "efi/linux/CLAYLINUX.EFI").unwrap();
    assert_eq!(uki.extents.len(), 3, "mtools split the UKI between the end and two holes: {uki:?}");
    assert_eq!(uki.extents.iter().map(|e| e.len).sum::<u64>(), 1_500_000);
    assert!(uki.extents[0].offset > uki.extents[1].offset, "the UKI wraps around to the holes");
    // mtools gives a lowercase 8.3 name no long name but DIR_NTRes case bits, and a longer one a long name.
    assert!(read_file(&mut Cursor::new(&img), "LDLINUX.SYS").unwrap() == files["ldlinux.sys"]);
    assert!(read_file(&mut Cursor::new(&img), "EFI/Linux/CLAYLI~1.EFI").unwrap() == files["EFI/Linux/claylinux.efi"]);

    // 1 KiB sectors and clusters: FSInfo and every offset scale with the sector size.
    let dir = tempfile::tempdir().unwrap();
    sh(dir.path(), &format!("mkfs.vfat -F 32 -S 1024 -s 1 -i 12345678 -C {IMG} 71680 >/dev/null"));
    sh(dir.path(), &format!("mmd -i {IMG} ::/EFI ::/EFI/Linux"));
    let big = noise_bytes(1_000_003, 40);
    mput(dir.path(), "EFI/Linux/big image.efi", &big);
    mput(dir.path(), "small", b"small");
    let img = std::fs::read(dir.path().join(IMG)).unwrap();
    assert_eq!(volume(&img).cluster_bytes, 1024);
    assert!(read_file(&mut Cursor::new(&img), "EFI/LINUX/BIG IMAGE.EFI").unwrap() == big);
    assert_eq!(read_file(&mut Cursor::new(&img), "SMALL").unwrap(), b"small");
    let longer = noise_bytes(1_004_099, 41);
    let new = replace_and_check(dir.path(), "EFI/Linux/big image.efi", &longer);
    assert_eq!(new.extents.len(), 1);
}

/// On the fragmented mkfs volume: too little room is refused untouched; a shorter UKI that fits no hole is spread
/// over several; after deleting the filler a longer one goes in one run; every step keeps fsck.vfat clean and
/// everything else in place.
#[test]
fn replace_on_a_fragmented_mkfs_volume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = fragmented_esp(d);
    let uki = "EFI/Linux/claylinux.efi";
    let ldlinux = file_extents(&mut Cursor::new(std::fs::read(d.join(IMG)).unwrap()), "ldlinux.sys").unwrap();

    let (used, total) = fsck_clean(d);
    let free = (total - used) * 512;
    let img = std::fs::read(d.join(IMG)).unwrap();
    let mut dev = Cursor::new(img.clone());
    // More than the free clusters and the file's own together: refused.
    let own = 1_500_000u64.next_multiple_of(512);
    let too_long = noise_bytes(usize::try_from(free + own).unwrap() + 1, 31);
    let len = too_long.len() as u64;
    let err = replace_file(&mut dev, uki, len, &mut &too_long[..], MTIME).unwrap_err();
    let needed = len.next_multiple_of(512);
    let FatError::NoSpace { needed: n, free: f, missing, .. } = err else { panic!("{err}") };
    assert_eq!((n, f, missing), (needed, free + own, needed - free - own));
    assert_eq!(
        err.to_string(),
        format!(
            "writing {len} bytes to `{uki}` needs {needed} bytes of free clusters but the volume has {}, {} bytes \
             too few",
            free + own,
            needed - free - own
        )
    );
    assert!(dev.into_inner() == img, "a refused replacement writes nothing");

    // No room for a second copy, but the file's own clusters and the free ones hold it: replaced in place, on a
    // copy of the volume, which fsck.vfat finds clean with everything else unchanged.
    let signed = noise_bytes(1_503_000, 31);
    let mut copy = Cursor::new(img.clone());
    replace_file(&mut copy, uki, signed.len() as u64, &mut &signed[..], MTIME).unwrap();
    let copy = copy.into_inner();
    assert!(read_file(&mut Cursor::new(&copy), uki).unwrap() == signed);
    for (path, data) in files.iter().filter(|(p, _)| p.as_str() != uki) {
        assert!(read_file(&mut Cursor::new(&copy), path).unwrap() == *data, "{path} changed");
    }
    let in_place = tempfile::tempdir().unwrap();
    std::fs::write(in_place.path().join(IMG), &copy).unwrap();
    fsck_clean(in_place.path());

    let shorter = noise_bytes(600_000, 32);
    let new = replace_and_check(d, uki, &shorter);
    assert!(new.extents.len() > 1, "no hole holds 600 kB, so it is spread over several: {new:?}");

    sh(d, &format!("mdel -i {IMG} ::/FILLER.BIN"));
    let new = replace_and_check(d, uki, &signed);
    assert_eq!(new.extents.len(), 1, "the first run of free clusters that holds it: {new:?}");

    let tiny = noise_bytes(20_000, 33);
    let new = replace_and_check(d, uki, &tiny);
    assert_eq!(new.extents.len(), 1);
    let img = std::fs::read(d.join(IMG)).unwrap();
    assert_eq!(file_extents(&mut Cursor::new(&img), "ldlinux.sys").unwrap(), ldlinux, "ldlinux.sys never moved");
    assert!(read_file(&mut Cursor::new(&img), "ldlinux.sys").unwrap() == files["ldlinux.sys"]);
}

/// Our volume with syslinux-style boot code in a GPT disk, edited through a `Window` as `clay sign` does: only
/// the partition changes, and in it only the UKI.
#[test]
fn replace_in_our_esp_inside_a_gpt_disk() {
    use clay_gpt::{plan, types, write_gpt, Guid, PartitionSpec, ATTR_REQUIRED_PARTITION};
    let mut files = sample();
    files.push(("ldlinux.sys", noise_bytes(70_000, 4)));
    let mut sector = [0xCCu8; 512];
    sector[..11].copy_from_slice(b"\xEB\x58\x90SYSLINUX");
    let o = FatOptions { boot: Some(BootCode { sector, hidden_sectors: 2048 }), ..opts() };
    let esp_size = fat_size_for(&sizes(&files), 0);
    let seed = b"replace_in_our_esp_inside_a_gpt_disk";
    let esp = PartitionSpec {
        type_guid: types::ESP,
        guid: Guid::from_seed(seed, "esp"),
        name: "ESP".into(),
        size: esp_size,
        attributes: ATTR_REQUIRED_PARTITION,
    };
    let layout = plan(vec![esp], Some(64 * MIB)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut disk = OpenOptions::new().read(true).write(true).create_new(true).open(d.join("disk.img")).unwrap();
    disk.set_len(layout.disk_size).unwrap();
    write_gpt(&mut disk, &layout, Guid::from_seed(seed, "disk"), None).unwrap();
    let part = layout.partitions[0].offset()..layout.partitions[0].offset() + layout.partitions[0].len();
    let len = part.end - part.start;
    write_to(&mut Window::new(&mut disk, part.start, len).unwrap(), len, &files, &o).unwrap();

    let extract = |d: &Path| {
        let disk = std::fs::read(d.join("disk.img")).unwrap();
        std::fs::write(d.join(IMG), &disk[us(part.start)..us(part.end)]).unwrap();
        disk
    };
    let disk_before = extract(d);
    let before = Before::take(d);
    let signed = [&files[0].1[..], &noise_bytes(4321, 5)].concat();
    let mut window = Window::new(&mut disk, part.start, len).unwrap();
    replace_file(&mut window, "EFI/BOOT/BOOTX64.EFI", signed.len() as u64, &mut &signed[..], MTIME).unwrap();
    let disk_after = extract(d);
    before.check(d, "EFI/BOOT/BOOTX64.EFI", &signed);
    assert!(disk_before[..us(part.start)] == disk_after[..us(part.start)], "the GPT before the ESP is untouched");
    assert!(disk_before[us(part.end)..] == disk_after[us(part.end)..], "the backup GPT is untouched");
    // mtools finds it in the disk too, through the partition's offset.
    let back = sh(d, "mtype -i disk.img@@1M ::/loader/loader.conf");
    assert_eq!(back.as_bytes(), &files[1].1[..]);

    // Shorter again, in the image file.
    replace_and_check(d, "EFI/BOOT/BOOTX64.EFI", &files[0].1[..1000]);
}

#[test]
fn files_can_be_emptied_and_filled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_file(d, &sample());
    let new = replace_and_check(d, "EFI/BOOT/EMPTY", b"no longer empty");
    assert_eq!(new.extents.len(), 1);
    let new = replace_and_check(d, "syslinux.cfg", b"");
    assert_eq!(new, FileExtents { len: 0, extents: vec![] });
    let img = std::fs::read(d.join(IMG)).unwrap();
    let entry = short_entry(&img, b"SYSLINUXCFG");
    assert_eq!(img[entry + 20..entry + 22], [0, 0], "an empty file has first cluster 0");
    assert_eq!(img[entry + 26..entry + 32], [0; 6]);
    replace_and_check(d, "syslinux.cfg", b"DEFAULT linux\n");
}

#[test]
fn errors_name_what_is_wrong() {
    let files = sample();
    let img = image(&files, &opts());
    let read = |path: &str| file_extents(&mut Cursor::new(&img), path).unwrap_err();
    let replace = |path: &str, len: u64, data: &[u8]| {
        let mut dev = Cursor::new(img.clone());
        let err = replace_file(&mut dev, path, len, &mut &data[..], MTIME).unwrap_err();
        (err, dev.into_inner())
    };
    for path in ["EFI/BOOT/BOOTIA32.EFI", "NOPE/BOOTX64.EFI", "EFI/Linux/nope"] {
        assert!(matches!(read(path), FatError::NotFound { .. }), "{path}");
    }
    assert_eq!(read("EFI/BOOT/BOOTIA32.EFI").to_string(), "`EFI/BOOT/BOOTIA32.EFI` does not exist on the FAT volume");
    for path in ["EFI/BOOT", "efi", "/", ""] {
        assert!(matches!(read(path), FatError::NotAFile { .. }), "{path}");
        assert!(matches!(replace(path, 1, b"x").0, FatError::NotAFile { .. }), "{path}");
    }
    assert_eq!(read("EFI/BOOT").to_string(), "`EFI/BOOT` is a directory, not a file");
    let err = read("syslinux.cfg/a/b");
    assert!(matches!(&err, FatError::NotADirectory { path, rest } if path == "syslinux.cfg" && rest == "a/b"));
    assert_eq!(err.to_string(), "`syslinux.cfg` is a file, so it cannot hold `a/b`");

    let (err, _) = replace("ldlinux.c32", 1 << 32, b"");
    assert!(matches!(err, FatError::FileTooLarge { .. }), "{err}");

    // Data that ends early or goes on: the FATs, the directories and every file are as they were.
    let vol = volume(&img);
    let used_end = us(vol.cluster_offset(u32::try_from(fsinfo_next_free(&img)).unwrap()));
    let (err, after) = replace("EFI/BOOT/BOOTX64.EFI", 2_000_000, &[7; 1_999_999]);
    assert!(matches!(err, FatError::ShortData { expected: 2_000_000, got: 1_999_999, .. }), "{err}");
    assert!(after[..used_end] == img[..used_end], "nothing but free clusters was written");
    let (err, after) = replace("EFI/BOOT/BOOTX64.EFI", 2_000_000, &[7; 2_000_001]);
    assert!(matches!(err, FatError::LongData { expected: 2_000_000, .. }), "{err}");
    assert!(after[..used_end] == img[..used_end]);

    // One cluster more than the free clusters and the file's own hold together.
    let own = files.iter().find(|(p, _)| *p == "EFI/BOOT/BOOTX64.EFI").map(|(_, d)| d.len() as u64).unwrap();
    let own = own.next_multiple_of(512);
    let free = fsinfo_free(&img) * 512;
    let (err, after) = replace("EFI/BOOT/BOOTX64.EFI", free + own + 1, b"");
    assert!(matches!(err, FatError::NoSpace { missing: 512, .. }), "{err}");
    assert!(after == img);
}

/// FSI_Nxt_Free, which our writer sets to the first cluster after its last file.
fn fsinfo_next_free(img: &[u8]) -> u64 {
    let at = us(volume(img).fs_info_offset().unwrap()) + 492;
    u64::from(u32::from_le_bytes(img[at..at + 4].try_into().unwrap()))
}

#[test]
fn damaged_chains_are_errors() {
    let files = sample();
    let img = image(&files, &opts());
    let vol = volume(&img);
    let boot = "EFI/BOOT/BOOTX64.EFI";
    let first = clusters_of(&vol, &file_extents(&mut Cursor::new(&img), boot).unwrap())[0];
    let count = 1_500_000u32.div_ceil(512);
    // Each damage, and the error both reading and replacing BOOTX64.EFI give; a refused replacement writes
    // nothing.
    let check = |damaged: &[u8], want: &dyn Fn(&FatError) -> bool| {
        let err = file_extents(&mut Cursor::new(damaged), boot).unwrap_err();
        assert!(want(&err), "{err}");
        assert!(want(&read_file(&mut Cursor::new(damaged), boot).unwrap_err()));
        let mut dev = Cursor::new(damaged.to_vec());
        let err = replace_file(&mut dev, boot, 5, &mut &b"hello"[..], MTIME).unwrap_err();
        assert!(want(&err), "{err}");
        assert!(dev.into_inner() == damaged);
    };
    let with_entry = |c: u32, value: u32| {
        let mut bad = img.clone();
        set_fat_entry(&mut bad, &vol, 0, c, value);
        bad
    };

    let looped = with_entry(first + count - 1, first);
    check(&looped, &|e| matches!(e, FatError::ChainLoop { cluster, .. } if *cluster == first));
    let err = file_extents(&mut Cursor::new(&looped), boot).unwrap_err();
    assert_eq!(err.to_string(), format!("the cluster chain of `{boot}` runs in a loop back to cluster {first}"));
    let max = vol.max_cluster;
    for value in [max + 1, 0, 1, FAT_BAD] {
        let out = with_entry(first + 5, value);
        check(
            &out,
            &|e| matches!(e, FatError::ClusterOutOfRange { cluster, max: m, .. } if *cluster == value && *m == max),
        );
    }
    let short = with_entry(first + 5, FAT_EOC);
    check(&short, &|e| matches!(e, FatError::ChainTooShort { clusters: 6, expected, .. } if *expected == 2930));

    // The size says two clusters fewer than the chain has.
    let mut long = img.clone();
    let entry = short_entry(&img, b"BOOTX64 EFI");
    long[entry + 28..entry + 32].copy_from_slice(&(1_500_000u32 - 1024).to_le_bytes());
    check(&long, &|e| matches!(e, FatError::ChainTooLong { clusters: 2930, expected: 2928, .. }));

    // The root directory's chain loops; the EFI directory's leads nowhere.
    let root = with_entry(2, 2);
    check(&root, &|e| matches!(e, FatError::ChainLoop { path, cluster: 2 } if path == "/"));
    let efi = short_entry(&img, b"EFI        ");
    let efi_cluster = u32::from(u16::from_le_bytes([img[efi + 26], img[efi + 27]]));
    let efi_bad = with_entry(efi_cluster, 0);
    check(&efi_bad, &|e| matches!(e, FatError::ClusterOutOfRange { path, cluster: 0, .. } if path == "EFI"));

    // syslinux.cfg made to share ldlinux.c32's cluster: reading either works, but freeing ldlinux.c32's chain
    // would damage syslinux.cfg.
    let mut shared = img.clone();
    let ldlinux = short_entry(&img, b"LDLINUX C32");
    let syslinux = short_entry(&img, b"SYSLINUXCFG");
    shared.copy_within(ldlinux + 26..ldlinux + 28, syslinux + 26);
    shared.copy_within(ldlinux + 20..ldlinux + 22, syslinux + 20);
    let c = clusters_of(&vol, &file_extents(&mut Cursor::new(&shared), "syslinux.cfg").unwrap())[0];
    assert_eq!(
        file_extents(&mut Cursor::new(&shared), "ldlinux.c32").unwrap().extents[0].offset,
        vol.cluster_offset(c)
    );
    let mut dev = Cursor::new(shared.clone());
    let err = replace_file(&mut dev, "ldlinux.c32", 3, &mut &b"abc"[..], MTIME).unwrap_err();
    assert!(matches!(&err, FatError::CrossLinked { cluster, .. } if *cluster == c), "{err}");
    assert!(dev.into_inner() == shared);

    // Mirroring off with an active FAT the volume does not have.
    let mut flags = img.clone();
    flags[40..42].copy_from_slice(&0x0083u16.to_le_bytes());
    assert!(matches!(file_extents(&mut Cursor::new(&flags), boot), Err(FatError::Corrupt(_))));
    // Not a FAT32 volume at all.
    assert!(matches!(file_extents(&mut Cursor::new(vec![0u8; 4096]), boot), Err(FatError::NotFat32(_))));
}

/// Random damage to the FAT and the directories: every call returns, with an error or a result, and a
/// replacement that succeeds reads back.
#[test]
fn damage_never_panics() {
    let files = sample();
    let img = image(&files, &opts());
    let vol = volume(&img);
    let fat = us(vol.fat_offset);
    let used = us(fsinfo_next_free(&img)) * 4 + 64;
    let dirs = us(vol.cluster_offset(2))..us(vol.cluster_offset(8));
    let restore_end = dirs.end;
    let mut state = 0x0bad_5eed_1234_5678u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let paths: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
    let mut work = img.clone();
    let (mut ok_reads, mut ok_replaces) = (0, 0);
    for round in 0..400 {
        work[..restore_end].copy_from_slice(&img[..restore_end]);
        for _ in 0..(next() % 8 + 1) {
            let regions = [fat..fat + used, fat..fat + 64, dirs.clone(), dirs.start..dirs.start + 512];
            let r = &regions[us(next() % 4)];
            let at = r.start + us(next() % (r.end - r.start) as u64);
            work[at] = next().to_le_bytes()[0];
        }
        let path = paths[us(next() % paths.len() as u64)];
        if round % 40 == 0 {
            let cut = us(next() % img.len() as u64);
            let short = work[..cut].to_vec();
            let _ = file_extents(&mut Cursor::new(&short), path);
            let _ = replace_file(&mut Cursor::new(short), path, 3, &mut &b"abc"[..], MTIME);
            continue;
        }
        for p in &paths {
            if read_file(&mut Cursor::new(&work), p).is_ok() {
                ok_reads += 1;
            }
        }
        let data = noise_bytes(us(next() % 3000), round);
        let mut dev = Cursor::new(&mut work);
        if replace_file(&mut dev, path, data.len() as u64, &mut &data[..], MTIME).is_ok() {
            ok_replaces += 1;
            assert!(read_file(&mut Cursor::new(&work), path).unwrap() == data, "round {round}: {path}");
        }
    }
    assert!(ok_reads > 0 && ok_replaces > 0, "some damage is harmless: {ok_reads} reads, {ok_replaces} replaces");
}

/// FAT spec §3.3: with mirroring off (BPB_ExtFlags bit 7), only the active FAT is read and written.
#[test]
fn only_the_active_fat_changes_when_mirroring_is_off() {
    let mut img = image(&sample(), &opts());
    img[40..42].copy_from_slice(&0x0081u16.to_le_bytes());
    let vol = volume(&img);
    let boot = "EFI/BOOT/BOOTX64.EFI";
    // FAT 0 is stale: it must not be what is read.
    let old = clusters_of(&vol, &file_extents(&mut Cursor::new(&img), boot).unwrap());
    set_fat_entry(&mut img, &vol, 0, old[0], FAT_EOC);
    let mut dev = Cursor::new(img.clone());
    replace_file(&mut dev, boot, 3, &mut &b"new"[..], MTIME).unwrap();
    let after = dev.into_inner();
    let fat0 = us(vol.fat_start(0))..us(vol.fat_start(1));
    assert!(after[fat0.clone()] == img[fat0], "the inactive FAT stays as it was");
    assert_eq!(read_file(&mut Cursor::new(&after), boot).unwrap(), b"new");
    assert!(old.iter().all(|&c| fat_entry(&after, &vol, 1, c) == 0), "the old chain is freed in FAT 1");
}
