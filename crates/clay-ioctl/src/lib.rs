//! The Linux ioctls clay-init needs to assemble a root filesystem, behind safe functions: attaching a file to a loop
//! device (`linux/loop.h`) and creating a device-mapper device from a table (`linux/dm-ioctl.h`).
//!
//! This is the one crate of the workspace that may use `unsafe`: each block is a single `ioctl(2)` call on a
//! buffer this crate owns and sized exactly as the kernel header declares, so the kernel never reads or writes
//! outside it. Everything else (encoding the request structures, decoding replies) is safe byte handling, tested
//! without a kernel.

#![allow(unsafe_code)]

pub mod dm;
pub mod loopdev;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `_IOC(dir, type, nr, size)` from `asm-generic/ioctl.h`.
const fn ioc(dir: u32, kind: u32, nr: u32, size: usize) -> u32 {
    // Sizes are the fixed structures of this crate, all far below the 14-bit size field.
    #[allow(clippy::cast_possible_truncation)]
    let size = size as u32;
    (dir << 30) | (size << 16) | (kind << 8) | nr
}
const IOC_READ: u32 = 2;
const IOC_WRITE: u32 = 1;

/// `ioctl(fd, request, buf)` where the request reads and/or writes the whole of `buf`. Returns the ioctl's result.
fn ioctl_buf(fd: BorrowedFd<'_>, request: u32, buf: &mut [u8]) -> io::Result<i32> {
    // SAFETY: `fd` is an open descriptor for the duration of the call (borrowed). `buf` is a live, exclusively
    // borrowed buffer; every request passed here declares (in its _IOC size or, for device-mapper, in the
    // `data_size` field we set to `buf.len()`) a length no larger than `buf`, so the kernel's copy_from_user and
    // copy_to_user stay inside it.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, buf.as_mut_ptr()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, request)` for requests without an argument. Returns the ioctl's result.
fn ioctl_none(fd: BorrowedFd<'_>, request: u32) -> io::Result<i32> {
    // SAFETY: the requests passed here (LOOP_CTL_GET_FREE) take no argument, so no memory is shared with the kernel.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
