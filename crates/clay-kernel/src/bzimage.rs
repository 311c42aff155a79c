//! Reading the release string out of an x86 bzImage boot header (Documentation/arch/x86/boot.rst).

/// Offset of the "HdrS" signature of the real-mode header (boot.rst, "0202/4 header").
const HDRS_OFFSET: usize = 0x202;
const HDRS_MAGIC: &[u8; 4] = b"HdrS";
/// Offset of the boot protocol version (boot.rst, "0206/2 version").
const VERSION_OFFSET: usize = 0x206;
/// Offset of `kernel_version`, a pointer to the version string minus 0x200 (boot.rst, "020E/2 kernel_version").
const KERNEL_VERSION_OFFSET: usize = 0x20E;
/// `kernel_version` is meaningful from boot protocol 2.00 on.
const MIN_PROTOCOL: u16 = 0x0200;
const KERNEL_VERSION_BIAS: usize = 0x200;

/// The kernel release (`uname -r`) recorded in a bzImage, e.g. `6.1.0-56-cloud-amd64`; `None` when the image has
/// no x86 boot header or the string is unreadable.
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(HDRS_OFFSET..HDRS_OFFSET + 4)? != HDRS_MAGIC {
        return None;
    }
    let le16 = |at: usize| image.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if le16(VERSION_OFFSET)? < MIN_PROTOCOL {
        return None;
    }
    let ptr = usize::from(le16(KERNEL_VERSION_OFFSET)?);
    if ptr == 0 {
        return None;
    }
    let start = ptr.checked_add(KERNEL_VERSION_BIAS)?;
    let tail = image.get(start..)?;
    let end = tail.iter().take(256).position(|b| *b == 0)?;
    // "6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ...": the release is the first word.
    let text = std::str::from_utf8(&tail[..end]).ok()?;
    let release = text.split_whitespace().next()?;
    Some(release.to_owned())
}
