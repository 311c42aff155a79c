//! Loop devices (`linux/loop.h`): a file presented as a block device, so a filesystem image can be mounted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use crate::{ioctl_buf, ioctl_none};

/// The loop control device, from which free devices are requested.
pub const CONTROL: &str = "/dev/loop-control";
const LOOP_CTL_GET_FREE: u32 = 0x4C82;
/// `LOOP_CONFIGURE` (Linux 5.8): attach and set the status in one step, so nothing sees a half-set device.
const LOOP_CONFIGURE: u32 = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `sizeof(struct loop_info64)`.
const LOOP_INFO64_LEN: usize = 232;
/// `sizeof(struct loop_config)`: fd, block_size, loop_info64, 8 reserved u64.
pub const LOOP_CONFIG_LEN: usize = 8 + LOOP_INFO64_LEN + 64;
/// Offsets inside `struct loop_config`.
const INFO: usize = 8;
const INFO_FLAGS: usize = INFO + 52;
const INFO_FILE_NAME: usize = INFO + 56;
const LO_NAME_SIZE: usize = 64;
/// How often a free device is requested again when another process took it first.
const ATTEMPTS: usize = 8;

/// A loop device with a file attached.
#[derive(Debug)]
pub struct LoopDevice {
    pub number: u32,
    pub path: PathBuf,
    /// Held open: with autoclear, the device detaches once this and every mount of it are gone.
    pub file: File,
}

/// The `struct loop_config` that attaches descriptor `fd` read-only (or not) with autoclear, named `name` as
/// `losetup --list` shows it.
pub fn loop_config(fd: u32, read_only: bool, name: &[u8]) -> [u8; LOOP_CONFIG_LEN] {
    let mut config = [0u8; LOOP_CONFIG_LEN];
    config[..4].copy_from_slice(&fd.to_ne_bytes());
    let flags = LO_FLAGS_AUTOCLEAR | if read_only { LO_FLAGS_READ_ONLY } else { 0 };
    config[INFO_FLAGS..INFO_FLAGS + 4].copy_from_slice(&flags.to_ne_bytes());
    let len = name.len().min(LO_NAME_SIZE - 1);
    config[INFO_FILE_NAME..INFO_FILE_NAME + len].copy_from_slice(&name[..len]);
    config
}

/// Attaches `file` to a free loop device. `name` is what the device reports as its backing file.
pub fn attach(file: &File, read_only: bool, name: &[u8]) -> io::Result<LoopDevice> {
    let control = OpenOptions::new().read(true).write(true).open(CONTROL)?;
    let fd = u32::try_from(file.as_raw_fd()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut last = io::Error::from(io::ErrorKind::ResourceBusy);
    for _ in 0..ATTEMPTS {
        let number = ioctl_none(control.as_fd(), LOOP_CTL_GET_FREE)?;
        let number = u32::try_from(number).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = OpenOptions::new().read(true).write(!read_only).open(&path)?;
        let mut config = loop_config(fd, read_only, name);
        // The loop ioctls predate size-encoded request numbers: LOOP_CONFIGURE is the bare 0x4C0A.
        match ioctl_buf(device.as_fd(), LOOP_CONFIGURE, &mut config) {
            Ok(_) => return Ok(LoopDevice { number, path, file: device }),
            // Another process configured this device between GET_FREE and CONFIGURE: ask again.
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => last = err,
            Err(err) => return Err(err),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_has_the_kernels_layout() {
        assert_eq!(LOOP_CONFIG_LEN, 304);
        let c = loop_config(7, true, b"/root.img");
        assert_eq!(&c[..4], &7u32.to_ne_bytes());
        assert_eq!(&c[4..8], &[0; 4], "block size 0: the default");
        assert_eq!(&c[INFO_FLAGS..INFO_FLAGS + 4], &5u32.to_ne_bytes());
        assert_eq!(&c[INFO_FILE_NAME..INFO_FILE_NAME + 9], b"/root.img");
        let long = loop_config(1, false, &[b'x'; 100]);
        assert_eq!(&long[INFO_FLAGS..INFO_FLAGS + 4], &4u32.to_ne_bytes());
        assert_eq!(long[INFO_FILE_NAME + 62], b'x');
        assert_eq!(long[INFO_FILE_NAME + 63], 0, "the name stays NUL-terminated");
    }
}
