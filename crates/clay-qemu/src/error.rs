//! The one error type of this crate.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while preparing or running a VM.
///
/// Messages are sentences that name the package to install or the console output to read; the underlying I/O error,
/// when there is one, is the [`std::error::Error::source`] and is not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("qemu-system-x86_64 was not found; install the qemu-system-x86 package")]
    QemuNotFound,

    #[error(
        "the OVMF UEFI firmware was not found (looked for {looked}); install the ovmf package (Debian/Ubuntu) or \
         edk2-ovmf (Fedora/Arch)"
    )]
    OvmfNotFound { looked: String },

    #[error(
        "OVMF's Secure Boot build was not found (looked for {looked}); install the ovmf package (Debian/Ubuntu) or \
         edk2-ovmf (Fedora/Arch)"
    )]
    OvmfSecureBootNotFound { looked: String },

    #[error("Secure Boot needs UEFI firmware; leave out --firmware bios")]
    SecureBootNeedsUefi,

    #[error("the variable store {path} cannot be read")]
    VarStoreUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{set} is set but {unset} is not; set both to use your own OVMF firmware")]
    OvmfOverrideIncomplete { set: &'static str, unset: &'static str },

    #[error("{var} names {path}, which cannot be read")]
    OvmfOverrideUnreadable {
        var: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} cannot be read")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot prepare the VM's temporary files in {path}")]
    TempFiles {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is an EFI application, which needs UEFI firmware, not BIOS")]
    EfiNeedsUefi { path: PathBuf },

    #[error(
        "{path} is {size_mib} MiB, but QEMU's virtual FAT drive holds at most {limit_mib} MiB; boot a disk image of it \
         instead"
    )]
    EfiTooLarge { path: PathBuf, size_mib: u64, limit_mib: u64 },

    #[error("KVM was asked for, but /dev/kvm cannot be opened")]
    KvmUnavailable(#[source] std::io::Error),

    #[error("qemu-system-x86_64 could not be started")]
    Spawn(#[source] std::io::Error),

    #[error("waiting for qemu failed")]
    Wait(#[source] std::io::Error),

    #[error(
        "qemu exited with {} before printing `{marker}`; its last console lines were:\n{console}{qemu_said}",
        status_text(.status)
    )]
    ExitedBeforeMarker { status: ExitStatus, marker: String, console: String, qemu_said: String },

    #[error("qemu did not print `{marker}` within {timeout:?}; its last console lines were:\n{console}{qemu_said}")]
    MarkerTimeout { marker: String, timeout: Duration, console: String, qemu_said: String },

    #[error("the guest did not power off within {timeout:?}; its last console lines were:\n{console}{qemu_said}")]
    ExitTimeout { timeout: Duration, console: String, qemu_said: String },

    #[error("qemu exited with {}; its last console lines were:\n{console}{qemu_said}", status_text(.status))]
    Failed { status: ExitStatus, console: String, qemu_said: String },
}

/// "status 1" or "signal 9": how a process ended, in words that fit "qemu exited with ...".
pub(crate) fn status_text(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}
