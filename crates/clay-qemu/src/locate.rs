//! Finding the host's QEMU binary and OVMF firmware.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::QemuError;

/// The QEMU system emulator we run, looked up in `PATH`.
pub(crate) const QEMU_BINARY: &str = "qemu-system-x86_64";

/// Environment variables that name an OVMF code/variables pair, overriding the distribution paths.
pub(crate) const OVMF_CODE_VAR: &str = "CLAY_OVMF_CODE";
pub(crate) const OVMF_VARS_VAR: &str = "CLAY_OVMF_VARS";

/// Where distributions install OVMF, in the order we try them: (code, variable store template).
///
/// Debian/Ubuntu `ovmf`, Fedora `edk2-ovmf`, Arch `edk2-ovmf`, then the 2 MiB build older Debian/Ubuntu still ship.
const OVMF_PAIRS: &[(&str, &str)] = &[
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
];

/// OVMF built with Secure Boot and SMM (the variable store is then only writable from SMM, so the guest cannot
/// change the enrolled keys), with the empty variable store template of the same size, in the order we try them.
const OVMF_SECURE_PAIRS: &[(&str, &str)] = &[
    ("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.secboot.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
    ("/usr/share/OVMF/OVMF_CODE.secboot.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
];

/// OVMF's two flash images: the read-only code and the template of its variable store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ovmf {
    pub code: PathBuf,
    pub vars_template: PathBuf,
}

/// Finds `qemu-system-x86_64` in `PATH`.
pub(crate) fn find_qemu() -> Result<PathBuf, QemuError> {
    find_in_path(QEMU_BINARY, std::env::var_os("PATH").as_deref()).ok_or(QemuError::QemuNotFound)
}

fn find_in_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Finds OVMF: the `CLAY_OVMF_CODE`/`CLAY_OVMF_VARS` overrides when set, else the first distribution pair present.
pub(crate) fn find_ovmf() -> Result<Ovmf, QemuError> {
    let code = std::env::var_os(OVMF_CODE_VAR).filter(|v| !v.is_empty());
    let vars = std::env::var_os(OVMF_VARS_VAR).filter(|v| !v.is_empty());
    match (code, vars) {
        (Some(code), Some(vars)) => {
            let ovmf = Ovmf { code: code.into(), vars_template: vars.into() };
            for (var, path) in [(OVMF_CODE_VAR, &ovmf.code), (OVMF_VARS_VAR, &ovmf.vars_template)] {
                std::fs::File::open(path).map_err(|source| QemuError::OvmfOverrideUnreadable {
                    var,
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(ovmf)
        }
        (Some(_), None) => Err(QemuError::OvmfOverrideIncomplete { set: OVMF_CODE_VAR, unset: OVMF_VARS_VAR }),
        (None, Some(_)) => Err(QemuError::OvmfOverrideIncomplete { set: OVMF_VARS_VAR, unset: OVMF_CODE_VAR }),
        (None, None) => OVMF_PAIRS
            .iter()
            .map(|(code, vars)| Ovmf { code: code.into(), vars_template: vars.into() })
            .find(|ovmf| ovmf.code.is_file() && ovmf.vars_template.is_file())
            .ok_or_else(|| QemuError::OvmfNotFound {
                looked: OVMF_PAIRS.iter().map(|(code, _)| *code).collect::<Vec<_>>().join(", "),
            }),
    }
}

/// Finds OVMF's Secure Boot build and the empty variable store template that goes with it.
pub(crate) fn find_ovmf_secure() -> Result<Ovmf, QemuError> {
    OVMF_SECURE_PAIRS
        .iter()
        .map(|(code, vars)| Ovmf { code: code.into(), vars_template: vars.into() })
        .find(|ovmf| ovmf.code.is_file() && ovmf.vars_template.is_file())
        .ok_or_else(|| QemuError::OvmfSecureBootNotFound {
            looked: OVMF_SECURE_PAIRS.iter().map(|(code, _)| *code).collect::<Vec<_>>().join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup_finds_only_executables() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let search = std::env::join_paths([dir.path(), Path::new("/nonexistent")]).unwrap();
        assert_eq!(find_in_path("plain", Some(&search)), None);
        assert_eq!(find_in_path("sh", Some(OsStr::new("/nonexistent:/bin"))), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_in_path("sh", None), None);
    }
}
