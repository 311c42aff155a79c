//! Choosing between KVM and TCG by trying KVM, because a KVM that passes the simple checks can still be broken.
//!
//! Seen in the wild: `/dev/kvm` opens and `KVM_CREATE_VM` works, yet OVMF dies at once with "KVM internal error.
//! Suberror: 1 ... emulation failure" (the host cannot emulate an x87 instruction) and Linux hangs. So the probe
//! boots firmware under KVM exactly as a real run would (`-cpu host`) and watches for it to reach a known point.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::console::{contains_from, Outcome, Session};
use crate::locate::Ovmf;
use crate::Accel;

/// How long a test boot may take to show that KVM works (OVMF needs 1-2 s on a working host).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What OVMF prints on the serial console once its boot manager runs (`BdsDxe: loading Boot0001 ...`).
const OVMF_ALIVE: &str = "BdsDxe";
/// What [`PROBE_BOOT_SECTOR`] prints on the serial console.
const BOOT_SECTOR_ALIVE: &str = "CLAYKVMOK";
/// What qemu prints to stderr when KVM cannot run the guest.
const KVM_FAILURES: &[&str] = &["KVM internal error", "failed to initialize kvm", "Could not access KVM"];

/// A 16-bit MBR boot sector, for hosts with SeaBIOS but no OVMF. It runs an x87 instruction (the kind a broken KVM
/// fails to emulate), then writes `CLAYKVMOK\r\n` to COM1 and halts:
///
/// ```text
/// 00 31 c0        xor ax, ax          ; ds = 0 so [si] addresses the message at 0x7c1c
/// 02 8e d8        mov ds, ax
/// 04 9b db e3     finit
/// 07 d9 e8        fld1
/// 09 ba f8 03     mov dx, 0x3f8       ; COM1 data register
/// 0c be 1c 7c     mov si, 0x7c1c
/// 0f ac           lodsb
/// 10 84 c0        test al, al
/// 12 74 03        jz 0x17
/// 14 ee           out dx, al
/// 15 eb f8        jmp 0x0f
/// 17 fa           cli
/// 18 f4           hlt
/// 19 eb fd        jmp 0x18
/// 1b 90           nop
/// 1c "CLAYKVMOK\r\n\0"
/// ```
const PROBE_CODE: &[u8] =
    b"\x31\xc0\x8e\xd8\x9b\xdb\xe3\xd9\xe8\xba\xf8\x03\xbe\x1c\x7c\xac\x84\xc0\x74\x03\xee\xeb\xf8\
\xfa\xf4\xeb\xfd\x90CLAYKVMOK\r\n\0";

/// Offset of the MBR boot signature `55 aa`.
const BOOT_SIGNATURE_OFFSET: usize = 510;

fn probe_boot_sector() -> [u8; 512] {
    let mut sector = [0u8; 512];
    sector[..PROBE_CODE.len()].copy_from_slice(PROBE_CODE);
    sector[BOOT_SIGNATURE_OFFSET..].copy_from_slice(&[0x55, 0xaa]);
    sector
}

/// The probe disk's size: SeaBIOS does not boot a virtio disk as small as one sector.
const PROBE_DISK_SIZE: u64 = 1024 * 1024;

/// Writes [`probe_boot_sector`] as a sparse [`PROBE_DISK_SIZE`] disk image.
fn write_probe_disk(path: &Path) -> std::io::Result<()> {
    let mut disk = std::fs::File::create(path)?;
    std::io::Write::write_all(&mut disk, &probe_boot_sector())?;
    disk.set_len(PROBE_DISK_SIZE)
}

/// The verdict of the first probe in this process: KVM works, or why not. Kept in memory only, so a test suite
/// that prepares many VMs pays for one probe.
static VERDICT: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// Resolves `requested` to KVM or TCG. For [`Accel::Auto`] falling back to TCG, the second value says why.
pub(crate) fn resolve(
    requested: Accel,
    qemu: &Path,
    ovmf: Option<&Ovmf>,
) -> Result<(Accel, Option<String>), crate::QemuError> {
    match requested {
        Accel::Tcg => Ok((Accel::Tcg, None)),
        Accel::Kvm => {
            open_kvm().map_err(crate::QemuError::KvmUnavailable)?;
            Ok((Accel::Kvm, None))
        }
        Accel::Auto => {
            if let Err(e) = open_kvm() {
                return Ok((Accel::Tcg, Some(describe_open_error(&e))));
            }
            // A poisoned lock only means another probe panicked; its verdict slot is still usable.
            let mut verdict = VERDICT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let verdict = verdict.get_or_insert_with(|| probe_kvm(qemu, ovmf));
            match verdict {
                Ok(()) => Ok((Accel::Kvm, None)),
                Err(reason) => Ok((Accel::Tcg, Some(reason.clone()))),
            }
        }
    }
}

fn open_kvm() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm")
}

fn describe_open_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "/dev/kvm does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "no permission to open /dev/kvm".to_owned(),
        _ => format!("/dev/kvm cannot be opened: {e}"),
    }
}

/// Boots firmware under KVM with no disks: OVMF when we have it, else SeaBIOS and [`probe_boot_sector`].
/// `Ok` once the firmware shows it runs; `Err` with a short reason when it fails, exits or stays silent.
pub(crate) fn probe_kvm(qemu: &Path, ovmf: Option<&Ovmf>) -> Result<(), String> {
    test_boot(qemu, ovmf, ["-accel", "kvm", "-cpu", "host"], PROBE_TIMEOUT)
}

/// The probe's test boot with the given accelerator arguments; tests run it under TCG to see it succeed.
fn test_boot(qemu: &Path, ovmf: Option<&Ovmf>, accel: [&str; 4], timeout: Duration) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("clay-kvm-probe-")
        .tempdir()
        .map_err(|e| format!("cannot prepare a test boot: {e}"))?;
    let mut cmd = Command::new(qemu);
    cmd.args(accel).args(["-machine", "q35", "-m", "256"]);
    cmd.args(["-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"]);
    let alive = match ovmf {
        Some(ovmf) => {
            let vars = copy_vars(&ovmf.vars_template, dir.path())
                .map_err(|e| format!("cannot copy the OVMF variable store for a test boot: {e}"))?;
            cmd.arg("-drive").arg(crate::args::pflash_option(0, &ovmf.code));
            cmd.arg("-drive").arg(crate::args::pflash_option(1, &vars));
            OVMF_ALIVE
        }
        None => {
            let image = dir.path().join("probe.img");
            write_probe_disk(&image).map_err(|e| format!("cannot write a test boot disk: {e}"))?;
            cmd.arg("-drive").arg(crate::args::escaped("if=virtio,format=raw,readonly=on,file=", &image));
            BOOT_SECTOR_ALIVE
        }
    };

    let mut session = Session::spawn(cmd, false).map_err(|_| "qemu could not be started".to_owned())?;
    let deadline = Instant::now() + timeout;
    let failed = |err: &[u8]| KVM_FAILURES.iter().any(|f| contains_from(err, f.as_bytes(), 0));
    let outcome = session
        .wait(deadline, |out, err| contains_from(out, alive.as_bytes(), 0) || failed(err))
        .map_err(|_| "waiting for a test boot failed".to_owned())?;
    match outcome {
        Outcome::Stopped if !failed(&session.err) => Ok(()),
        Outcome::Stopped => Err(format!("a test boot under KVM stopped: {}", qemu_complaint(&session.err))),
        Outcome::Exited(status) if session.err.iter().all(u8::is_ascii_whitespace) => {
            Err(format!("a test boot under KVM exited with {}", crate::error::status_text(&status)))
        }
        Outcome::Exited(_) => Err(format!("a test boot under KVM failed: {}", qemu_complaint(&session.err))),
        Outcome::TimedOut => {
            Err(format!("a test boot under KVM showed no sign of life within {} s", timeout.as_secs()))
        }
    }
}

/// The most telling line of qemu's stderr: a KVM failure, else an error, else the first line; without the
/// `qemu-system-x86_64: ` prefix.
fn qemu_complaint(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = lines
        .iter()
        .find(|l| KVM_FAILURES.iter().any(|f| l.contains(f)))
        .or_else(|| lines.iter().find(|l| l.to_ascii_lowercase().contains("error")))
        .or_else(|| lines.first())
        .copied()
        .unwrap_or("no message");
    let line = line.strip_prefix(crate::locate::QEMU_BINARY).and_then(|l| l.strip_prefix(": ")).unwrap_or(line);
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Copies OVMF's variable store template into `dir`, writable: firmware writes to it and the system file must stay
/// untouched (some distributions install it read-only).
pub(crate) fn copy_vars(template: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join("OVMF_VARS.fd");
    std::fs::copy(template, &copy)?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both probes run for real and must agree: the boot sector stands in for OVMF where OVMF is not installed.
    #[test]
    fn boot_sector_probe_agrees_with_ovmf_probe() {
        let qemu = crate::locate::find_qemu().unwrap_or_else(|e| panic!("{e}"));
        let ovmf = crate::locate::find_ovmf().unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let with_ovmf = probe_kvm(&qemu, Some(&ovmf));
        let ovmf_time = started.elapsed();
        let started = Instant::now();
        let with_seabios = probe_kvm(&qemu, None);
        eprintln!(
            "OVMF probe: {with_ovmf:?} in {ovmf_time:?}; SeaBIOS probe: {with_seabios:?} in {:?}",
            started.elapsed()
        );
        assert_eq!(with_ovmf.is_ok(), with_seabios.is_ok(), "{with_ovmf:?} vs {with_seabios:?}");
    }

    /// The success path, under TCG since KVM may be broken: both test boots show the firmware alive.
    #[test]
    fn test_boots_succeed_under_tcg() {
        let qemu = crate::locate::find_qemu().unwrap_or_else(|e| panic!("{e}"));
        let ovmf = crate::locate::find_ovmf().unwrap_or_else(|e| panic!("{e}"));
        let tcg = ["-accel", "tcg", "-cpu", "max"];
        let timeout = Duration::from_secs(120);
        test_boot(&qemu, None, tcg, timeout).unwrap();
        test_boot(&qemu, Some(&ovmf), tcg, timeout).unwrap();
    }

    #[test]
    fn boot_sector_layout() {
        let sector = probe_boot_sector();
        assert_eq!(&sector[510..], &[0x55, 0xaa]);
        // `mov si, 0x7c1c` must point at the message.
        let message = sector.windows(BOOT_SECTOR_ALIVE.len()).position(|w| w == BOOT_SECTOR_ALIVE.as_bytes());
        assert_eq!(message, Some(0x1c));
        assert_eq!(&sector[0x0c..0x0f], &[0xbe, 0x1c, 0x7c]);
    }

    #[test]
    fn complaint_picks_the_telling_line() {
        let err =
            b"qemu-system-x86_64: warning: host doesn't support requested feature\nKVM internal error. Suberror: 1\n";
        assert_eq!(qemu_complaint(err), "KVM internal error. Suberror: 1");
        let err =
            b"qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: kvm.c:3183: Assertion\n";
        assert_eq!(qemu_complaint(err), "failed to set MSR 0x10a to 0x69");
        assert_eq!(qemu_complaint(b""), "no message");
    }
}
