//! Device-mapper (`linux/dm-ioctl.h`): create a mapped device from a table, as `dmsetup create` does, through
//! `/dev/mapper/control`.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;

use crate::{ioc, ioctl_buf, IOC_READ, IOC_WRITE};

/// The device-mapper control device.
pub const CONTROL: &str = "/dev/mapper/control";
/// The interface version this code speaks; the kernel accepts any request with the same major version.
const VERSION: [u32; 3] = [4, 0, 0];
/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_LEN: usize = 312;
/// `sizeof(struct dm_target_spec)`.
const TARGET_SPEC_LEN: usize = 40;
const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
const DM_MAX_TYPE_NAME: usize = 16;
/// Offsets inside `struct dm_ioctl`.
const DATA_SIZE: usize = 12;
const DATA_START: usize = 16;
const TARGET_COUNT: usize = 20;
const FLAGS: usize = 28;
const DEV: usize = 40;
const NAME: usize = 48;
const UUID: usize = NAME + DM_NAME_LEN;

const DM_DEV_CREATE: u32 = 3;
const DM_DEV_REMOVE: u32 = 4;
const DM_DEV_SUSPEND: u32 = 6;
const DM_TABLE_LOAD: u32 = 9;
const DM_READONLY_FLAG: u32 = 1;
/// Room for the kernel's replies (a created device's name, uuid and number fit in the header).
const REPLY_ROOM: usize = 4096;

/// One line of a table: `start length type params`, in 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub start: u64,
    pub length: u64,
    pub kind: String,
    pub params: String,
}

/// A mapped device, by its device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedDevice {
    pub major: u32,
    pub minor: u32,
}

impl MappedDevice {
    /// The node devtmpfs creates for it (`dm-<minor>`).
    pub fn path(&self) -> String {
        format!("/dev/dm-{}", self.minor)
    }
}

/// Why a request could not even be encoded.
fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

/// A `struct dm_ioctl` header for device `name`, followed by `payload`, in a buffer with room for the reply.
pub fn request(name: &str, uuid: &str, flags: u32, target_count: u32, payload: &[u8]) -> io::Result<Vec<u8>> {
    if name.is_empty() || name.len() >= DM_NAME_LEN || name.contains('/') {
        return Err(invalid("a device-mapper name must be 1 to 127 bytes without `/`"));
    }
    if uuid.len() >= DM_UUID_LEN {
        return Err(invalid("a device-mapper uuid must be shorter than 129 bytes"));
    }
    let mut buf = vec![0u8; DM_IOCTL_LEN + payload.len().max(REPLY_ROOM)];
    for (i, v) in VERSION.iter().enumerate() {
        buf[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let data_size = u32::try_from(buf.len()).map_err(|_| invalid("the device-mapper table is too large"))?;
    buf[DATA_SIZE..DATA_SIZE + 4].copy_from_slice(&data_size.to_ne_bytes());
    let data_start = u32::try_from(DM_IOCTL_LEN).map_err(|_| invalid("internal error: the header size"))?;
    buf[DATA_START..DATA_START + 4].copy_from_slice(&data_start.to_ne_bytes());
    buf[TARGET_COUNT..TARGET_COUNT + 4].copy_from_slice(&target_count.to_ne_bytes());
    buf[FLAGS..FLAGS + 4].copy_from_slice(&flags.to_ne_bytes());
    buf[NAME..NAME + name.len()].copy_from_slice(name.as_bytes());
    buf[UUID..UUID + uuid.len()].copy_from_slice(uuid.as_bytes());
    buf[DM_IOCTL_LEN..DM_IOCTL_LEN + payload.len()].copy_from_slice(payload);
    Ok(buf)
}

/// The `struct dm_target_spec` list of a table load: each spec, its NUL-terminated parameters, padded to 8 bytes,
/// with `next` the distance from this spec to the next.
pub fn table(targets: &[Target]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for t in targets {
        if t.kind.is_empty() || t.kind.len() >= DM_MAX_TYPE_NAME {
            return Err(invalid("a device-mapper target type must be 1 to 15 bytes"));
        }
        if t.params.contains('\0') {
            return Err(invalid("device-mapper target parameters cannot contain NUL"));
        }
        let len = (TARGET_SPEC_LEN + t.params.len() + 1).next_multiple_of(8);
        let next = u32::try_from(len).map_err(|_| invalid("a device-mapper target is too large"))?;
        let mut spec = vec![0u8; len];
        spec[..8].copy_from_slice(&t.start.to_ne_bytes());
        spec[8..16].copy_from_slice(&t.length.to_ne_bytes());
        spec[20..24].copy_from_slice(&next.to_ne_bytes());
        spec[24..24 + t.kind.len()].copy_from_slice(t.kind.as_bytes());
        spec[TARGET_SPEC_LEN..TARGET_SPEC_LEN + t.params.len()].copy_from_slice(t.params.as_bytes());
        out.extend_from_slice(&spec);
    }
    Ok(out)
}

/// The device number in a reply (`huge_encode_dev`: minor's low byte, major, then the minor's high bits).
pub fn reply_device(reply: &[u8]) -> Option<MappedDevice> {
    let dev = u64::from_ne_bytes(reply.get(DEV..DEV + 8)?.try_into().ok()?);
    let major = u32::try_from((dev & 0xfff00) >> 8).ok()?;
    let minor = u32::try_from((dev & 0xff) | ((dev >> 12) & 0xfff00)).ok()?;
    Some(MappedDevice { major, minor })
}

fn command(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, 0xfd, nr, DM_IOCTL_LEN)
}

/// Creates device `name` with `uuid`, loads `targets` (read-only when asked) and activates it. On failure the
/// half-made device is removed again.
pub fn create(name: &str, uuid: &str, targets: &[Target], read_only: bool) -> io::Result<MappedDevice> {
    let control = OpenOptions::new().read(true).write(true).open(CONTROL)?;
    let fd = control.as_fd();
    let mut create = request(name, uuid, 0, 0, &[])?;
    ioctl_buf(fd, command(DM_DEV_CREATE), &mut create)?;
    let count = u32::try_from(targets.len()).map_err(|_| invalid("too many device-mapper targets"))?;
    let flags = if read_only { DM_READONLY_FLAG } else { 0 };
    let loaded = table(targets)
        .and_then(|specs| request(name, "", flags, count, &specs))
        .and_then(|mut load| ioctl_buf(fd, command(DM_TABLE_LOAD), &mut load))
        // A suspend request without DM_SUSPEND_FLAG resumes: it swaps the loaded table in.
        .and_then(|_| request(name, "", 0, 0, &[]))
        .and_then(|mut resume| ioctl_buf(fd, command(DM_DEV_SUSPEND), &mut resume).map(|_| resume));
    match loaded {
        Ok(reply) => reply_device(&reply).or_else(|| reply_device(&create)).ok_or_else(|| invalid("no device number")),
        Err(err) => {
            if let Ok(mut remove) = request(name, "", 0, 0, &[]) {
                let _ = ioctl_buf(fd, command(DM_DEV_REMOVE), &mut remove);
            }
            Err(err)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_header() {
        // _IOWR(0xfd, 3, struct dm_ioctl) etc., as strace prints them.
        assert_eq!(command(DM_DEV_CREATE), 0xc138_fd03);
        assert_eq!(command(DM_DEV_SUSPEND), 0xc138_fd06);
        assert_eq!(command(DM_TABLE_LOAD), 0xc138_fd09);
    }

    #[test]
    fn a_request_carries_version_sizes_name_and_payload() {
        let r = request("root", "CLAY-VERITY-root", DM_READONLY_FLAG, 1, b"abc").unwrap();
        assert_eq!(&r[..12], [4u32, 0, 0].map(u32::to_ne_bytes).concat().as_slice());
        assert_eq!(u32::from_ne_bytes(r[DATA_SIZE..DATA_SIZE + 4].try_into().unwrap()) as usize, r.len());
        assert_eq!(u32::from_ne_bytes(r[DATA_START..DATA_START + 4].try_into().unwrap()), 312);
        assert_eq!(u32::from_ne_bytes(r[TARGET_COUNT..TARGET_COUNT + 4].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(r[FLAGS..FLAGS + 4].try_into().unwrap()), 1);
        assert_eq!(&r[NAME..NAME + 5], b"root\0");
        assert_eq!(&r[UUID..UUID + 17], b"CLAY-VERITY-root\0");
        assert_eq!(&r[312..315], b"abc");
        assert!(request("", "", 0, 0, &[]).is_err());
        assert!(request("a/b", "", 0, 0, &[]).is_err());
        assert!(request(&"x".repeat(128), "", 0, 0, &[]).is_err());
    }

    #[test]
    fn table_specs_are_padded_and_chained() {
        let t = table(&[
            Target { start: 0, length: 8, kind: "verity".into(), params: "1 a b".into() },
            Target { start: 8, length: 16, kind: "zero".into(), params: String::new() },
        ])
        .unwrap();
        // 40 + 6 bytes, padded to 48; then 40 + 1 → 48.
        assert_eq!(t.len(), 96);
        assert_eq!(u64::from_ne_bytes(t[8..16].try_into().unwrap()), 8);
        assert_eq!(u32::from_ne_bytes(t[20..24].try_into().unwrap()), 48);
        assert_eq!(&t[24..31], b"verity\0");
        assert_eq!(&t[40..46], b"1 a b\0");
        assert_eq!(u64::from_ne_bytes(t[48..56].try_into().unwrap()), 8);
        assert_eq!(&t[72..77], b"zero\0");
        assert!(table(&[Target { start: 0, length: 1, kind: "x".repeat(16), params: String::new() }]).is_err());
    }

    #[test]
    fn device_numbers_decode_like_the_kernel_encodes_them() {
        let mut r = vec![0u8; DM_IOCTL_LEN];
        // huge_encode_dev(MKDEV(254, 0x12345)) = 0x45 | 254 << 8 | 0x123 << 20
        let dev: u64 = 0x45 | (254 << 8) | (0x123 << 20);
        r[DEV..DEV + 8].copy_from_slice(&dev.to_ne_bytes());
        assert_eq!(reply_device(&r), Some(MappedDevice { major: 254, minor: 0x12345 }));
        assert_eq!(MappedDevice { major: 254, minor: 0 }.path(), "/dev/dm-0");
    }
}
