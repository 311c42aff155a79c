use clay_testkit::sh_in;

use super::*;

/// Debian's installer (package syslinux) and the core module shipped beside it (syslinux-common).
const INSTALLER: &str = "/usr/bin/syslinux";
const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";

fn host_syslinux() -> Syslinux {
    let bytes = std::fs::read(INSTALLER)
        .unwrap_or_else(|e| panic!("{INSTALLER} is needed for this test; scripts/setup.sh installs syslinux: {e}"));
    Syslinux::from_installer(&bytes).unwrap()
}

#[test]
fn finds_the_pieces_in_the_installer() {
    let s = host_syslinux();
    assert!(s.version().starts_with(|c: char| c.is_ascii_digit()), "version {:?}", s.version());
    assert_eq!(s.ldlinux_sys_len() % 512, 0);
    // The embedded core module is the same program syslinux-common ships (Debian may rebuild one package and not
    // the other, so only its size is compared).
    let shipped = std::fs::read(LDLINUX_C32).unwrap();
    assert!(s.ldlinux_c32().starts_with(b"\x7fELF"));
    assert!(s.ldlinux_c32().len().abs_diff(shipped.len()) < 64, "{} vs {}", s.ldlinux_c32().len(), shipped.len());
}

/// The reference: syslinux's own installer (the mtools one, which works on an image file) on a volume made by
/// mkfs.vfat. Given the sectors it chose, our patching yields the same ldlinux.sys and boot code.
#[test]
fn matches_the_syslinux_installer() {
    let dir = tempfile::tempdir().unwrap();
    sh_in(
        dir.path(),
        "truncate -s 64M v.img && mkfs.vfat -F 32 -n TEST v.img >/dev/null && mmd -i v.img ::/syslinux \
         && syslinux --install -d /syslinux v.img && mcopy -i v.img ::/syslinux/ldlinux.c32 ldlinux.c32",
    );
    // The installer writes the core module it embeds, which is the one we found.
    let written = std::fs::read(dir.path().join("ldlinux.c32")).unwrap();
    let s = host_syslinux();
    assert!(s.ldlinux_c32() == written.as_slice(), "ldlinux.c32 differs from the one the installer writes");
    let volume = std::fs::read(dir.path().join("v.img")).unwrap();
    let len = usize::try_from(s.ldlinux_sys_len()).unwrap();
    let at = (0..volume.len() - len)
        .step_by(512)
        .find(|&i| volume[i..].starts_with(b"\r\nSYSLINUX "))
        .expect("the installer wrote no ldlinux.sys");
    // A fresh volume gets one contiguous run; if it did not, the comparison below fails.
    let first = u64::try_from(at / 512).unwrap();
    let sectors: Vec<u64> = (first..).take(len / 512).collect();
    let ours = s.install(&sectors, Some("/syslinux")).unwrap();
    assert!(ours.ldlinux_sys == volume[at..at + len], "ldlinux.sys differs from the installer's");
    for range in boot_code_ranges() {
        assert_eq!(ours.boot_sector[range.clone()], volume[range.clone()], "boot sector bytes {range:?} differ");
    }
}

#[test]
fn the_checksum_sums_the_image_to_the_magic() {
    let s = host_syslinux();
    let sectors: Vec<u64> = (1000..1200).collect();
    let ours = s.install(&sectors, None).unwrap();
    let image = &ours.ldlinux_sys[..ours.ldlinux_sys.len() - 1024];
    let sum = image.chunks_exact(4).fold(0u32, |a, d| a.wrapping_add(u32::from_le_bytes(d.try_into().unwrap())));
    assert_eq!(sum, LDLINUX_MAGIC);
    // Two identical ADV copies, each framed by its signatures.
    let adv = &ours.ldlinux_sys[image.len()..];
    assert_eq!(adv[..512], adv[512..]);
    assert_eq!(get32(adv, 0), Some(ADV_MAGIC1));
    assert_eq!(get32(adv, 508), Some(ADV_MAGIC3));
}

#[test]
fn extents_split_at_gaps_and_64k_boundaries() {
    // An extent stays below 64 KiB: 127 sectors, even though the sectors go on.
    let sectors: Vec<u64> = (100..300).collect();
    let ex = extents(&sectors);
    assert_eq!(ex[0], (100, 127));
    assert_eq!(ex.iter().map(|e| u64::from(e.1)).sum::<u64>(), 200);
    assert!(ex.iter().all(|e| e.1 < 128));
    assert_eq!(extents(&[5, 6, 9, 10, 11]), vec![(5, 2), (9, 3)]);
    assert!(extents(&[]).is_empty());
}

#[test]
fn refuses_what_does_not_fit() {
    let s = host_syslinux();
    let too_few: Vec<u64> = (0..10).collect();
    assert!(matches!(s.install(&too_few, None), Err(SyslinuxError::TooFewSectors { .. })));
    // Every sector on its own still fits the pointers this build has (one per sector).
    let scattered: Vec<u64> = (0..200).map(|i| i * 2).collect();
    let installed = s.install(&scattered, None).unwrap();
    assert_eq!(installed.ldlinux_sys.len() as u64, s.ldlinux_sys_len());
    let long = "/".repeat(4096);
    assert!(matches!(
        s.install(&(0..200).collect::<Vec<_>>(), Some(&long)),
        Err(SyslinuxError::DirectoryTooLong { .. })
    ));
}

#[test]
fn refuses_other_files() {
    assert!(matches!(Syslinux::from_installer(&[0u8; 4096]), Err(SyslinuxError::NoBootSector)));
    assert!(matches!(Syslinux::from_installer(b"short"), Err(SyslinuxError::NoBootSector)));
    // The boot sector alone, with nothing after it.
    let installer = std::fs::read(INSTALLER).unwrap();
    let at = installer.windows(11).position(|w| w[3..] == *b"SYSLINUX" && w[0] == 0xeb).unwrap();
    let cut = &installer[at..at + 1024];
    assert!(matches!(Syslinux::from_installer(cut), Err(SyslinuxError::Malformed(_))));
}
