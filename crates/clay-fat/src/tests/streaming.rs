//! The planned layout: metadata and data written apart give `write_fat`'s bytes, and a one-file volume streams.

use super::*;

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives out at most `chunk` bytes a read, so the stream's boundaries fall mid-buffer.
struct Chunky<R>(R, usize);

impl<R: Read> Read for Chunky<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

/// Reads `r` to its end through an odd-sized buffer.
fn drain(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 7777];
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The volume `write_fat` makes of `files`, rebuilt from `FatLayout::write_metadata` and the data written by hand
/// at each `file_offset`, `base` bytes into the device.
fn split_image(size: u64, files: &[(&str, Vec<u8>)], o: &FatOptions, base: u64) -> Vec<u8> {
    let layout = FatLayout::plan(size, &sizes(files), o).unwrap();
    assert_eq!(layout.size(), size);
    let mut dev = Cursor::new(vec![0u8; us(base + size)]);
    dev.seek(SeekFrom::Start(base)).unwrap();
    layout.write_metadata(&mut dev).unwrap();
    let mut last_end = 0;
    for (index, (path, data)) in files.iter().enumerate() {
        let Some(offset) = layout.file_offset(index) else {
            assert!(data.is_empty(), "{path} has data but no offset");
            continue;
        };
        assert!(offset >= last_end && offset % 512 == 0, "{path} at {offset}");
        last_end = offset + data.len() as u64;
        assert!(last_end <= size, "{path} ends past the volume");
        dev.seek(SeekFrom::Start(base + offset)).unwrap();
        dev.write_all(data).unwrap();
    }
    assert_eq!(layout.file_offset(files.len()), None);
    let dev = dev.into_inner();
    assert!(dev[..us(base)].iter().all(|&b| b == 0), "nothing is written before the volume");
    dev[us(base)..].to_vec()
}

/// Owned file sets: one file, the sample (several files, nested directories, long and lowercase names), deep
/// nesting, and a directory of long names that spans several clusters.
fn file_sets() -> Vec<Vec<(String, Vec<u8>)>> {
    let own = |set: Vec<(&str, Vec<u8>)>| set.into_iter().map(|(p, d)| (p.to_owned(), d)).collect::<Vec<_>>();
    let many_long_names = (0..40)
        .map(|i| (format!("loader/entries/a rather long entry name, number {i}.conf"), noise_bytes(i * 37, i as u64)))
        .collect();
    vec![
        own(vec![("EFI/BOOT/BOOTX64.EFI", noise_bytes(1_000_003, 9))]),
        own(sample()),
        own(vec![
            ("a/b/c/d/e/f/g/deep.txt", b"deep".to_vec()),
            ("a/b/side", noise_bytes(513, 4)),
            ("a/other/x", Vec::new()),
            ("z", noise_bytes(2048, 5)),
        ]),
        many_long_names,
        own(vec![("EMPTY", Vec::new())]),
    ]
}

#[test]
fn metadata_and_data_at_file_offset_give_write_fat_bytes() {
    for (n, set) in file_sets().iter().enumerate() {
        let files: Vec<(&str, Vec<u8>)> = set.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
        for o in [opts(), FatOptions { label: String::new(), volume_id: 7, mtime: 0, boot: None }] {
            let whole = image(&files, &o);
            let size = whole.len() as u64;
            for base in [0, 4096 + 512] {
                let split = split_image(size, &files, &o, base);
                assert!(split == whole, "set {n}, label {:?}, base {base}: the bytes differ", o.label);
            }
        }
    }
    // The pinned sample image, rebuilt the split way.
    let split = split_image(MIN_SIZE, &sample(), &opts(), 0);
    assert_eq!(sha256(&split), "ba2a2147bcd9ca6e55babf0ce136b3920baa6e4fe1ca1a1f779ae7f821444ead");
}

#[test]
fn plan_checks_what_write_fat_checks() {
    let big = [("EFI/BOOT/BOOTX64.EFI", 40 * MIB)];
    let Err(FatError::Full { suggested, .. }) = FatLayout::plan(33 * MIB, &big, &opts()) else { panic!("fits") };
    assert_eq!(suggested, fat_size_for(&big, 0));
    assert!(matches!(FatLayout::plan(20 * MIB, &big, &opts()), Err(FatError::TooSmall { .. })));
    let bad_label = FatOptions { label: "esp".into(), ..opts() };
    assert!(matches!(FatLayout::plan(MIN_SIZE, &[], &bad_label), Err(FatError::InvalidLabel { .. })));
    assert!(matches!(FatLayout::plan(MIN_SIZE, &[("a:b", 1)], &opts()), Err(FatError::InvalidPath { .. })));
    // A device position that leaves no room for the volume below 2^64.
    let layout = FatLayout::plan(MIN_SIZE, &[("A", 1)], &opts()).unwrap();
    let mut dev = Window::new(Cursor::new(Vec::new()), 0, u64::MAX).unwrap();
    dev.seek(SeekFrom::End(-5)).unwrap();
    assert!(matches!(layout.write_metadata(&mut dev), Err(FatError::TooLarge { .. })));
}

#[test]
fn head_is_for_exactly_one_file() {
    let several = FatLayout::plan(MIN_SIZE, &sizes(&sample()), &opts()).unwrap();
    assert!(several.head().is_none());
    assert!(VolumeReader::new(&several, io::empty()).is_none());
    let none = FatLayout::plan(MIN_SIZE, &[], &opts()).unwrap();
    assert!(none.head().is_none());
    // The ISO's ESP, with the 100 MB UKI the CLI builds: the head is the metadata only, under 2 MiB.
    let uki = [("EFI/BOOT/BOOTX64.EFI", 100_000_000)];
    let layout = FatLayout::plan(fat_size_for(&uki, 10 * MIB), &uki, &opts()).unwrap();
    let head = layout.head().unwrap();
    assert_eq!(Some(head.len() as u64), layout.file_offset(0));
    assert!(head.len() < us(2 * MIB), "{}", head.len());
    // An empty file: the head ends with the metadata, and nothing follows but zeros.
    let empty = FatLayout::plan(MIN_SIZE, &[("EFI/BOOT/BOOTX64.EFI", 0)], &opts()).unwrap();
    assert_eq!(empty.file_offset(0), None);
    let head = empty.head().unwrap();
    let g = Geometry::for_size(MIN_SIZE).unwrap();
    // Root, EFI and EFI/BOOT: one 512-byte cluster each after the FATs.
    assert_eq!(head.len() as u64, g.cluster_offset(2) + 3 * 512);
}

#[test]
fn volume_reader_streams_the_write_fat_image() {
    let cases = [
        (opts(), vec![("EFI/BOOT/BOOTX64.EFI", noise_bytes(1_234_567, 11))]),
        (FatOptions { label: String::new(), ..opts() }, vec![("EFI/BOOT/BOOTX64.EFI", Vec::new())]),
        (opts(), vec![("a long name, lowercase.efi", noise_bytes(512 * 3, 12))]),
    ];
    for (o, files) in cases {
        let size = fat_size_for(&sizes(&files), MIB);
        let mut whole = Cursor::new(vec![0u8; us(size)]);
        write_to(&mut whole, size, &files, &o).unwrap();
        let whole = whole.into_inner();
        let layout = FatLayout::plan(size, &sizes(&files), &o).unwrap();
        let mut reader = VolumeReader::new(&layout, Chunky(&files[0].1[..], 4099)).unwrap();
        let streamed = drain(&mut reader).unwrap();
        assert_eq!(streamed.len() as u64, size, "{}", files[0].0);
        assert_eq!(sha256(&streamed), sha256(&whole), "{}", files[0].0);
        assert_eq!(reader.read(&mut [0u8; 16]).unwrap(), 0, "the end stays the end");
    }
}

#[test]
fn a_streamed_esp_is_clean_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = noise_bytes(2_000_001, 13);
    let uki = [("EFI/BOOT/BOOTX64.EFI", data.len() as u64)];
    let layout = FatLayout::plan(fat_size_for(&uki, MIB), &uki, &opts()).unwrap();
    let mut reader = VolumeReader::new(&layout, &data[..]).unwrap();
    let mut out = std::fs::File::create_new(dir.path().join("efiboot.img")).unwrap();
    assert_eq!(io::copy(&mut reader, &mut out).unwrap(), layout.size());
    drop(out);
    let fsck = clay_testkit::sh_in(dir.path(), "fsck.vfat -n -v efiboot.img 2>&1");
    assert!(fsck.contains("Checking free cluster summary."), "{fsck}");
    // The file, the root, EFI and EFI/BOOT.
    assert!(fsck.contains("efiboot.img: 4 files,"), "{fsck}");
    clay_testkit::sh_in(dir.path(), "mcopy -i efiboot.img ::/EFI/BOOT/BOOTX64.EFI back.efi");
    assert!(std::fs::read(dir.path().join("back.efi")).unwrap() == data, "the file came back different");
    let listing = clay_testkit::sh_in(dir.path(), "mdir -i efiboot.img ::/EFI/BOOT");
    assert!(listing.contains("BOOTX64  EFI   2000001 2023-11-14  22:13"), "{listing}");
}

#[test]
fn a_uki_sized_esp_streams_as_write_fat_writes_it() {
    let len = 100_000_000;
    let uki = [("EFI/BOOT/BOOTX64.EFI", len)];
    let size = fat_size_for(&uki, 10 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("esp.img");
    let mut disk = std::fs::File::options().read(true).write(true).create_new(true).open(&path).unwrap();
    disk.set_len(size).unwrap();
    let mut data = io::repeat(0xC3).take(len);
    write_fat(&mut disk, size, &mut [FatFile { path: uki[0].0, len, data: &mut data }], &opts()).unwrap();
    disk.seek(SeekFrom::Start(0)).unwrap();
    let mut written = Sha256::new();
    assert_eq!(io::copy(&mut disk, &mut written).unwrap(), size);

    let layout = FatLayout::plan(size, &uki, &opts()).unwrap();
    let mut reader = VolumeReader::new(&layout, io::repeat(0xC3).take(len)).unwrap();
    let mut streamed = Sha256::new();
    assert_eq!(io::copy(&mut reader, &mut streamed).unwrap(), size);
    assert!(streamed.finalize() == written.finalize());
}

#[test]
fn short_or_long_data_is_an_error_not_a_wrong_volume() {
    let layout = FatLayout::plan(MIN_SIZE, &[("EFI/BOOT/BOOTX64.EFI", 10_000)], &opts()).unwrap();
    let fat_error = |e: &io::Error| e.get_ref().and_then(|e| e.downcast_ref::<FatError>()).map(ToString::to_string);

    let short = noise_bytes(9_999, 14);
    let err = drain(&mut VolumeReader::new(&layout, Chunky(&short[..], 1000)).unwrap()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        fat_error(&err).as_deref(),
        Some("`EFI/BOOT/BOOTX64.EFI` promised 10000 bytes but its data ended after 9999")
    );
    let err = io::copy(&mut VolumeReader::new(&layout, io::empty()).unwrap(), &mut io::sink()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        fat_error(&err).as_deref(),
        Some("`EFI/BOOT/BOOTX64.EFI` promised 10000 bytes but its data ended after 0")
    );

    let long = noise_bytes(10_001, 15);
    let err = io::copy(&mut VolumeReader::new(&layout, &long[..]).unwrap(), &mut io::sink()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(fat_error(&err).as_deref(), Some("`EFI/BOOT/BOOTX64.EFI` promised 10000 bytes but its data goes on"));

    // The data reader's own errors come through as they are.
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let err = io::copy(&mut VolumeReader::new(&layout, Failing).unwrap(), &mut io::sink()).unwrap_err();
    assert_eq!(err.to_string(), "disk on fire");
}
