use sha2::{Digest, Sha256};

use super::*;

const MIB: u64 = 1 << 20;

/// A raw disk in memory: `(offset, bytes)` extents, in the order given (which need not be sorted).
struct MemDisk {
    size: u64,
    extents: Vec<(u64, Vec<u8>)>,
}

impl RawDisk for MemDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn data_extents(&self) -> Vec<(u64, u64)> {
        self.extents.iter().map(|(o, d)| (*o, d.len() as u64)).collect()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        buf.fill(0);
        for (start, data) in &self.extents {
            let stop = start + data.len() as u64;
            let (a, b) = (offset.max(*start), end.min(stop));
            if a < b {
                let src = &data[(a - start) as usize..(b - start) as usize];
                buf[(a - offset) as usize..(b - offset) as usize].copy_from_slice(src);
            }
        }
        Ok(())
    }
}

/// A tiny disk with a "protective MBR", bytes across a 64 KiB boundary, a zero-filled extent and a last sector.
fn tiny() -> MemDisk {
    MemDisk {
        size: 4 * MIB + 512,
        extents: vec![
            (0, [0x55; 512].to_vec()),
            (MIB - 10, b"claylinux vdisk test data".to_vec()),
            (2 * MIB, vec![0; 256 << 10]),
            (4 * MIB, [0xaa; 512].to_vec()),
        ],
    }
}

fn opts() -> VdiskOptions {
    VdiskOptions { seed: *b"0123456789abcdef", timestamp: 1_700_000_000 }
}

fn convert(disk: &dyn RawDisk, format: VmFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let n = write_vm_disk(disk, format, &opts(), &mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn pinned_digests_of_a_tiny_disk() {
    let disk = tiny();
    let got: Vec<String> = VmFormat::ALL
        .iter()
        .map(|&f| {
            let image = convert(&disk, f);
            format!("{f} {} {}", image.len(), hex(&Sha256::digest(&image)))
        })
        .collect();
    assert_eq!(
        got,
        [
            "qcow2 589824 36e3a725ed53897d1613fda68ac6a4047e13f94842abbd5d0868b16cb779a412",
            "vmdk 327680 0fa548b254ac83fb7caf819c68987333ef9e7d8836f9bc55595adcaa763eaf2e",
            "vhdx 7340032 f1e133054f665dbff9870b82d68fab09b95e42bce5832a85ad7ef858bd4b91f5",
            "vdi 4194304 9ffeb063f190e37bb413aaf7e1a6b471bb2c22150677fb55a2b2e55522f195b7",
            "vhd 4197888 33399d35dbaca2bf8140b15fcfbfdc7409140f29e323b54d268c53c86df78d57",
        ]
    );
}

/// Readable dumps of the fields that matter in each tiny image.
#[test]
fn layouts_of_a_tiny_disk() {
    let disk = tiny();
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let be64 = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());

    let q = convert(&disk, VmFormat::Qcow2);
    let l1 = be64(&q, 40) as usize;
    let l2 = (be64(&q, l1) & !(1 << 63)) as usize;
    let mapped: Vec<String> = (0..8192)
        .filter(|i| be64(&q, l2 + i * 8) != 0)
        .map(|i| format!("{i}->{:#x}", be64(&q, l2 + i * 8) & !(1 << 63)))
        .collect();
    assert_eq!(
        format!(
            "v{} bits={} size={} l1={}@{l1:#x} rt={:#x} rtc={} order={} l2: {}",
            be32(&q, 4),
            be32(&q, 20),
            be64(&q, 24),
            be32(&q, 36),
            be64(&q, 48),
            be32(&q, 56),
            be32(&q, 96),
            mapped.join(" ")
        ),
        "v3 bits=16 size=4194816 l1=1@0x10000 rt=0x20000 rtc=1 order=4 \
         l2: 0->0x50000 15->0x60000 16->0x70000 64->0x80000"
    );

    let v = convert(&disk, VmFormat::Vmdk);
    let gd = le64(&v, 56) as usize * 512;
    let gt = le32(&v, gd) as usize * 512;
    let grains: Vec<String> =
        (0..512).filter(|i| le32(&v, gt + i * 4) != 0).map(|i| format!("{i}->{}", le32(&v, gt + i * 4))).collect();
    assert_eq!(
        format!(
            "capacity={} grain={} gd={} overhead={} gt: {}",
            le64(&v, 12),
            le64(&v, 20),
            le64(&v, 56),
            le64(&v, 64),
            grains.join(" ")
        ),
        "capacity=8193 grain=128 gd=21 overhead=128 gt: 0->128 15->256 16->384 64->512"
    );
    let descriptor = String::from_utf8_lossy(&v[512..1024]);
    assert!(descriptor.contains("createType=\"monolithicSparse\"\n"), "{descriptor}");
    assert!(descriptor.contains("RW 8193 SPARSE \"disk.vmdk\"\n"), "{descriptor}");

    let d = convert(&disk, VmFormat::Vdi);
    let bmap: Vec<String> = (0..5).map(|i| format!("{:x}", le32(&d, 512 + i * 4))).collect();
    assert_eq!(
        format!(
            "size={} blocks={} allocated={} data={:#x} bmap: {}",
            le64(&d, 368),
            le32(&d, 384),
            le32(&d, 388),
            le32(&d, 344),
            bmap.join(" ")
        ),
        "size=4194816 blocks=5 allocated=3 data=0x100000 bmap: 0 1 ffffffff ffffffff 2"
    );

    let h = convert(&disk, VmFormat::Vhd);
    let footer = &h[h.len() - 512..];
    assert_eq!(&h[..512], footer, "the footer copy at the start matches the footer");
    assert_eq!(
        format!(
            "{} creator={} size={} chs={}/{}/{} type={} bat: {:x} {:x} {:x}",
            String::from_utf8_lossy(&footer[..8]),
            String::from_utf8_lossy(&footer[28..32]),
            be64(footer, 48),
            u16::from_be_bytes([footer[56], footer[57]]),
            footer[58],
            footer[59],
            be32(footer, 60),
            be32(&h, 1536),
            be32(&h, 1540),
            be32(&h, 1544)
        ),
        "conectix creator=qem2 size=4194816 chs=120/4/17 type=3 bat: 4 ffffffff 1005"
    );
}

#[test]
fn every_image_is_identified_with_its_size() {
    let disk = tiny();
    for format in VmFormat::ALL {
        let image = convert(&disk, format);
        let tail = &image[image.len() - IDENTIFY_TAIL_LEN..];
        assert_eq!(identify(&image, tail, image.len() as u64), Some((format, disk.size)), "{format}");
    }
    // VHDX keeps its size in the metadata region, 2 MiB in: a shorter head cannot tell it.
    let vhdx = convert(&disk, VmFormat::Vhdx);
    assert_eq!(identify(&vhdx[..MIB as usize], &[], vhdx.len() as u64), None);
    // The raw disk itself is none of them.
    let mut raw = vec![0u8; disk.size as usize];
    disk.read_at(&mut raw, 0).unwrap();
    assert_eq!(identify(&raw, &raw[raw.len() - 512..], disk.size), None);
}

/// xorshift64*: deterministic noise for the fuzz test.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn identify_never_panics_on_noise_or_damaged_images() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for len in [0, 1, 3, 7, 8, 63, 64, 100, 511, 512, 513, 4096, 70_000, 300_000] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
            let cut = noise.below(len + 1);
            let _ = identify(&bytes, &bytes[cut..], noise.next());
        }
    }
    let disk = tiny();
    for format in VmFormat::ALL {
        let image = convert(&disk, format);
        for _ in 0..300 {
            let mut damaged = image[..noise.below(image.len() + 1)].to_vec();
            for _ in 0..noise.below(64) {
                if !damaged.is_empty() {
                    // Damage the fields readers follow most: the first 4 KiB and the region/metadata tables.
                    let at = match noise.below(3) {
                        0 => noise.below(damaged.len().min(4096)),
                        1 => (192 << 10) + noise.below(256),
                        _ => (2 << 20) + noise.below(256),
                    };
                    if let Some(b) = damaged.get_mut(at) {
                        *b = noise.next() as u8;
                    }
                }
            }
            let tail_at = damaged.len().saturating_sub(noise.below(600));
            let _ = identify(&damaged, &damaged[tail_at..], noise.next() % (1 << 40));
        }
    }
}

#[test]
fn extents_may_overlap_repeat_or_run_past_the_end() {
    let clean = tiny();
    let mut messy = tiny();
    messy.extents.reverse();
    messy.extents.push((MIB - 10, b"claylinux".to_vec()));
    messy.extents.push((4 * MIB + 256, vec![0xaa; 256]));
    messy.extents.push((4 * MIB + 512, vec![0xbb; 4096]));
    messy.extents.push((u64::MAX - 2, vec![1; 2]));
    messy.extents.push((5, Vec::new()));
    for format in VmFormat::ALL {
        assert!(convert(&clean, format) == convert(&messy, format), "{format}");
    }
}

#[test]
fn sizes_that_are_not_whole_sectors_are_refused() {
    for size in [0, 1000, 4 * MIB + 1] {
        let disk = MemDisk { size, extents: Vec::new() };
        let err = write_vm_disk(&disk, VmFormat::Qcow2, &opts(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, VdiskError::BadSize(s) if s == size), "{err}");
    }
}

#[test]
fn sizes_beyond_a_format_are_refused_before_writing() {
    // 3 TiB, all holes: too large for VHD (2040 GiB), and refused before the first byte is written.
    let disk = MemDisk { size: 3 << 40, extents: Vec::new() };
    let mut out = Vec::new();
    let err = write_vm_disk(&disk, VmFormat::Vhd, &opts(), &mut out).unwrap_err();
    assert!(matches!(err, VdiskError::TooLarge { format: VmFormat::Vhd, .. }), "{err}");
    assert_eq!(err.to_string(), "the raw disk is 3298534883328 bytes, more than a vhd image can hold");
    assert!(out.is_empty());
    // The same disk as qcow2 is a few clusters of metadata.
    assert!(convert(&disk, VmFormat::Qcow2).len() < 1 << 20);
    let disk = MemDisk { size: 65 << 40, extents: Vec::new() };
    assert!(matches!(write_vm_disk(&disk, VmFormat::Vhdx, &opts(), &mut Vec::new()), Err(VdiskError::TooLarge { .. })));
}

#[test]
fn read_errors_name_the_offset() {
    struct Broken;
    impl RawDisk for Broken {
        fn size(&self) -> u64 {
            MIB
        }
        fn data_extents(&self) -> Vec<(u64, u64)> {
            vec![(4096, 100)]
        }
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let err = write_vm_disk(&Broken, VmFormat::Vdi, &opts(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "cannot read the raw disk at offset 4096");
}

#[test]
fn format_names_round_trip() {
    for format in VmFormat::ALL {
        assert_eq!(format.to_string().parse::<VmFormat>().unwrap(), format);
        assert_eq!(format.extension(), format.to_string());
    }
    assert!(matches!("vpc".parse::<VmFormat>(), Err(VdiskError::UnknownFormat(s)) if s == "vpc"));
}

#[test]
fn vhd_geometry_follows_the_spec() {
    // The spec's appendix, worked by hand: 4 GiB is 8388608 sectors; 17 sectors/track gives 493447 cylinder*heads,
    // too many for 16 heads, and so on up to 63 sectors and 16 heads.
    assert_eq!(vhd::geometry(8_388_608), (8322, 16, 63));
    assert_eq!(vhd::geometry(8193), (120, 4, 17));
    // Past 65535*16*63 sectors the spec switches to 255 sectors per track; past 65535*16*255 it saturates.
    assert_eq!(vhd::geometry(65535 * 16 * 63), (16191, 16, 255));
    assert_eq!(vhd::geometry(u64::MAX), (65535, 16, 255));
}

#[test]
fn derived_ids_are_version_4_uuids_and_differ_per_label() {
    let a = source::derive_id(&[7; 16], "a");
    let b = source::derive_id(&[7; 16], "b");
    assert_ne!(a, b);
    assert_eq!(a[6] >> 4, 4);
    assert_eq!(a[8] >> 6, 0b10);
    assert_eq!(a, source::derive_id(&[7; 16], "a"));
}
