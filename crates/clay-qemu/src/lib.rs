//! Boots an image in QEMU with the serial console on the terminal: what `clay run` and the boot tests use.
//!
//! [`Vm::prepare`] turns [`RunOptions`] into a ready qemu invocation: it finds `qemu-system-x86_64` and OVMF, picks
//! KVM or TCG (by trying KVM, see [`Accel::Auto`]), and makes the temporary files the VM needs (a private copy of
//! OVMF's variable store, the directory QEMU presents as the ESP). The [`Vm`] then runs qemu interactively, or for
//! tests until a marker appears on the console or the guest powers off.
//!
//! Linux-only: QEMU's option syntax is built from raw path bytes.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod accel;
mod args;
mod console;
mod error;
mod locate;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use error::QemuError;

use console::{marker_seen, Outcome, Session};

/// How the console is left, for the CLI to tell the user before it runs [`Vm::command`] on the terminal. Ctrl-C
/// goes to the guest.
pub const ESCAPE_HELP: &str = "Press Ctrl-A X to quit QEMU, Ctrl-A C for its monitor.";

/// The largest EFI application [`Boot::Efi`] can present: QEMU's virtual FAT drive (vvfat) is a fixed 504 MiB disk
/// whatever the FAT type, and files of 504 MiB and more no longer fit.
pub const EFI_SIZE_LIMIT: u64 = 500 * 1024 * 1024;

/// The firmware the VM starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// OVMF (EDK II), from the host's ovmf/edk2-ovmf package.
    Uefi,
    /// SeaBIOS, QEMU's built-in default.
    Bios,
}

/// The accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when a test boot under KVM works, else TCG (with a notice saying why).
    Auto,
    Kvm,
    /// Software emulation: works everywhere, several times slower.
    Tcg,
}

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// A UKI or any EFI application: presented to OVMF as `\EFI\BOOT\BOOTX64.EFI` on a FAT drive. At most
    /// [`EFI_SIZE_LIMIT`] bytes.
    Efi(PathBuf),
    /// A disk image as a virtio disk.
    Disk { path: PathBuf, format: DiskFormat },
    /// An ISO as a CD-ROM.
    Cdrom(PathBuf),
    /// Direct kernel boot. The command line is passed as is: add `console=ttyS0` to see the kernel on the console.
    Kernel { kernel: PathBuf, initrd: Option<PathBuf>, cmdline: String },
}

/// The format of a [`Boot::Disk`] image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

/// Everything about one VM run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub boot: Boot,
    pub firmware: Firmware,
    pub accel: Accel,
    pub memory_mib: u32,
    /// Virtual CPUs; 0 counts as 1.
    pub cpus: u32,
    /// Appended to qemu's arguments as they are.
    pub extra_args: Vec<String>,
    /// Open disks with `snapshot=on`, so the guest's writes never reach the image.
    pub snapshot: bool,
    /// Boot with Secure Boot: OVMF's Secure Boot build (with SMM) and a copy of this variable store, which holds the
    /// enrolled keys (see [`secure_boot_vars_template`] for the empty store it must be made from).
    pub secure_boot: Option<PathBuf>,
    /// Where the VM's temporary files (its copy of the variable store, the ESP of a UKI) are made: the system's
    /// temporary directory when `None`. A caller that must clean up after an interrupt gives a directory it removes.
    pub temp_dir: Option<PathBuf>,
}

impl RunOptions {
    /// UEFI firmware, automatic accelerator, 1024 MiB, 2 CPUs, snapshot on.
    pub fn new(boot: Boot) -> Self {
        RunOptions {
            boot,
            firmware: Firmware::Uefi,
            accel: Accel::Auto,
            memory_mib: 1024,
            cpus: 2,
            extra_args: Vec::new(),
            snapshot: true,
            secure_boot: None,
            temp_dir: None,
        }
    }
}

/// The empty variable store of OVMF's Secure Boot build on this machine: the template a store of enrolled keys is
/// written from, so it fits that firmware.
pub fn secure_boot_vars_template() -> Result<PathBuf, QemuError> {
    Ok(locate::find_ovmf_secure()?.vars_template)
}

/// A prepared QEMU invocation. Holds the temporary files (the OVMF variable store copy, the ESP directory), which
/// live as long as the `Vm`.
#[derive(Debug)]
pub struct Vm {
    qemu: PathBuf,
    args: Vec<std::ffi::OsString>,
    accel: Accel,
    _temp: tempfile::TempDir,
}

impl Vm {
    /// Finds `qemu-system-x86_64` and the firmware, decides the accelerator and prepares the temporary files.
    /// Prints nothing: when [`Accel::Auto`] falls back to TCG, `notice` is called once with the reason.
    pub fn prepare(opts: &RunOptions, notice: &mut dyn FnMut(&str)) -> Result<Vm, QemuError> {
        check_boot_files(opts)?;
        let qemu = locate::find_qemu()?;
        let ovmf = match opts.firmware {
            Firmware::Uefi => Some(locate::find_ovmf()?),
            // The KVM probe learns more from OVMF than from SeaBIOS, so use it when it is there.
            Firmware::Bios if opts.accel == Accel::Auto => locate::find_ovmf().ok(),
            Firmware::Bios => None,
        };
        let (accel, fallback_reason) = accel::resolve(opts.accel, &qemu, ovmf.as_ref())?;
        if let Some(reason) = fallback_reason {
            notice(&format!("KVM is not usable here ({reason}); using TCG software emulation, which is slower"));
        }

        let parent = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let temp = tempfile::Builder::new()
            .prefix("clay-vm-")
            .tempdir_in(&parent)
            .map_err(|source| QemuError::TempFiles { path: parent, source })?;
        let temp_error = |source| QemuError::TempFiles { path: temp.path().to_owned(), source };
        // Secure Boot swaps in OVMF's Secure Boot build and the caller's store of enrolled keys.
        let ovmf = match (&opts.secure_boot, opts.firmware) {
            (Some(_), Firmware::Bios) => return Err(QemuError::SecureBootNeedsUefi),
            (Some(store), Firmware::Uefi) => {
                std::fs::File::open(store)
                    .map_err(|source| QemuError::VarStoreUnreadable { path: store.clone(), source })?;
                Some(locate::Ovmf { vars_template: store.clone(), ..locate::find_ovmf_secure()? })
            }
            (None, _) => ovmf,
        };
        let vars = match (opts.firmware, &ovmf) {
            (Firmware::Uefi, Some(ovmf)) => {
                Some(accel::copy_vars(&ovmf.vars_template, temp.path()).map_err(temp_error)?)
            }
            _ => None,
        };
        let esp_dir = match &opts.boot {
            Boot::Efi(image) => Some(make_esp(image, temp.path()).map_err(temp_error)?),
            _ => None,
        };

        let pflash = match (&ovmf, &vars) {
            (Some(ovmf), Some(vars)) => Some((ovmf.code.as_path(), vars.as_path())),
            _ => None,
        };
        let prepared = args::Prepared { accel, pflash, esp_dir: esp_dir.as_deref() };
        let args = args::qemu_args(opts, prepared);
        Ok(Vm { qemu, args, accel, _temp: temp })
    }

    /// The accelerator this VM uses: [`Accel::Kvm`] or [`Accel::Tcg`], never `Auto`.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The full qemu command line. The serial console and the QEMU monitor share stdio (see [`ESCAPE_HELP`]); no
    /// display; a guest reboot ends qemu.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.qemu);
        cmd.args(&self.args);
        cmd
    }

    /// Runs qemu with stdin closed until `marker` appears on the console, then kills it. Console output is echoed
    /// to stderr as it arrives (through `eprint!`, so tests show it on failure). Returns the console output so far;
    /// fails when qemu exits first or `timeout` passes, quoting the last console lines.
    pub fn run_until(&self, marker: &str, timeout: Duration) -> Result<String, QemuError> {
        let mut session = Session::spawn(self.command(), true)?;
        match session.wait(Instant::now() + timeout, marker_seen(marker))? {
            Outcome::Stopped => Ok(session.console_text()),
            Outcome::Exited(status) => Err(QemuError::ExitedBeforeMarker {
                status,
                marker: marker.to_owned(),
                console: session.console_tail(),
                qemu_said: session.qemu_said(),
            }),
            Outcome::TimedOut => Err(QemuError::MarkerTimeout {
                marker: marker.to_owned(),
                timeout,
                console: session.console_tail(),
                qemu_said: session.qemu_said(),
            }),
        }
    }

    /// Like [`Vm::run_until`], but waits for qemu to exit by itself (the guest powered off or rebooted). Fails when
    /// qemu exits with an error or `timeout` passes.
    pub fn run_to_exit(&self, timeout: Duration) -> Result<String, QemuError> {
        let mut session = Session::spawn(self.command(), true)?;
        match session.wait(Instant::now() + timeout, |_, _| false)? {
            Outcome::Exited(status) if status.success() => Ok(session.console_text()),
            Outcome::Exited(status) => {
                Err(QemuError::Failed { status, console: session.console_tail(), qemu_said: session.qemu_said() })
            }
            Outcome::Stopped | Outcome::TimedOut => {
                Err(QemuError::ExitTimeout { timeout, console: session.console_tail(), qemu_said: session.qemu_said() })
            }
        }
    }
}

/// Fails early, with the path, when a file to boot is missing, or an EFI image cannot be presented.
fn check_boot_files(opts: &RunOptions) -> Result<(), QemuError> {
    let size_of = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| {
                if meta.is_dir() {
                    Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "it is a directory"))
                } else {
                    Ok(meta.len())
                }
            })
            .map_err(|source| QemuError::Unreadable { path: path.to_owned(), source })
    };
    match &opts.boot {
        Boot::Efi(path) => {
            if opts.firmware == Firmware::Bios {
                return Err(QemuError::EfiNeedsUefi { path: path.clone() });
            }
            let size = size_of(path)?;
            if size > EFI_SIZE_LIMIT {
                return Err(QemuError::EfiTooLarge {
                    path: path.clone(),
                    size_mib: size.div_ceil(1024 * 1024),
                    limit_mib: EFI_SIZE_LIMIT / (1024 * 1024),
                });
            }
        }
        Boot::Disk { path, .. } | Boot::Cdrom(path) => {
            size_of(path)?;
        }
        Boot::Kernel { kernel, initrd, .. } => {
            size_of(kernel)?;
            if let Some(initrd) = initrd {
                size_of(initrd)?;
            }
        }
    }
    Ok(())
}

/// Makes `dir/esp/EFI/BOOT/BOOTX64.EFI` a hard link to `image` (a copy when linking fails, e.g. across
/// filesystems) and returns `dir/esp`. A link rather than a symlink: vvfat reads the file by name while the VM
/// runs, and a rebuilt image replaced under the same name must not change under a running guest.
fn make_esp(image: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let esp = dir.join("esp");
    let boot_dir = esp.join("EFI").join("BOOT");
    std::fs::create_dir_all(&boot_dir)?;
    let target = boot_dir.join("BOOTX64.EFI");
    if std::fs::hard_link(image, &target).is_err() {
        std::fs::copy(image, &target)?;
    }
    Ok(esp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let opts = RunOptions::new(Boot::Cdrom("/x.iso".into()));
        assert_eq!(opts.firmware, Firmware::Uefi);
        assert_eq!(opts.accel, Accel::Auto);
        assert_eq!((opts.memory_mib, opts.cpus), (1024, 2));
        assert!(opts.snapshot && opts.extra_args.is_empty());
    }

    #[test]
    fn esp_links_the_image() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("x.efi");
        std::fs::write(&image, b"MZ").unwrap();
        let esp = make_esp(&image, dir.path()).unwrap();
        let boot = esp.join("EFI/BOOT/BOOTX64.EFI");
        assert_eq!(std::fs::read(&boot).unwrap(), b"MZ");
        assert_eq!(std::fs::metadata(&boot).unwrap().ino(), std::fs::metadata(&image).unwrap().ino());
    }

    #[test]
    fn missing_and_unbootable_files_fail_early() {
        let mut notices = 0;
        let missing = RunOptions::new(Boot::Kernel {
            kernel: "/nonexistent/vmlinuz".into(),
            initrd: None,
            cmdline: String::new(),
        });
        let err = Vm::prepare(&missing, &mut |_| notices += 1).unwrap_err();
        assert!(matches!(err, QemuError::Unreadable { .. }), "{err}");
        assert_eq!(err.to_string(), "/nonexistent/vmlinuz cannot be read");

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.efi");
        std::fs::File::create(&big).unwrap().set_len(EFI_SIZE_LIMIT + 1).unwrap();
        let err = Vm::prepare(&RunOptions::new(Boot::Efi(big.clone())), &mut |_| notices += 1).unwrap_err();
        assert!(matches!(err, QemuError::EfiTooLarge { size_mib: 501, limit_mib: 500, .. }), "{err}");

        let mut bios = RunOptions::new(Boot::Efi(big));
        bios.firmware = Firmware::Bios;
        let err = Vm::prepare(&bios, &mut |_| notices += 1).unwrap_err();
        assert!(matches!(err, QemuError::EfiNeedsUefi { .. }), "{err}");
        assert_eq!(notices, 0);
    }
}
