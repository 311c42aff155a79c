//! The qemu command line for a [`RunOptions`], as a pure function of the options and the prepared files.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::{Accel, Boot, DiskFormat, Firmware, RunOptions};

/// The chardev that carries both the serial console and (behind Ctrl-A C) the QEMU monitor.
const CONSOLE_CHARDEV: &str = "stdio,id=console,mux=on,signal=off";

/// Files [`crate::Vm::prepare`] made or found, which the command line refers to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared<'a> {
    /// KVM or TCG, never Auto.
    pub accel: Accel,
    /// OVMF's code and this VM's own copy of the variable store, for UEFI firmware.
    pub pflash: Option<(&'a Path, &'a Path)>,
    /// The directory presented as the ESP for [`Boot::Efi`].
    pub esp_dir: Option<&'a Path>,
}

/// Builds qemu's arguments (without the program name).
pub(crate) fn qemu_args(opts: &RunOptions, prepared: Prepared<'_>) -> Vec<OsString> {
    let mut args = Args::default();
    if opts.secure_boot.is_some() {
        // OVMF's Secure Boot build keeps its variables in SMM-protected flash, so the guest cannot rewrite the keys.
        args.push(["-machine", "q35,smm=on"]);
        args.push(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    } else {
        args.push(["-machine", "q35"]);
    }
    match prepared.accel {
        Accel::Kvm => args.push(["-accel", "kvm", "-cpu", "host"]),
        // TCG's default CPU (qemu64) lacks instructions current distributions require (x86-64-v2).
        Accel::Tcg | Accel::Auto => args.push(["-accel", "tcg", "-cpu", "max"]),
    }
    args.push(["-smp".to_owned(), opts.cpus.max(1).to_string(), "-m".to_owned(), opts.memory_mib.to_string()]);
    args.push(["-nodefaults", "-display", "none", "-no-reboot"]);
    args.push(["-chardev", CONSOLE_CHARDEV, "-serial", "chardev:console", "-mon", "chardev=console,mode=readline"]);
    // Guests otherwise wait for entropy at boot (systemd's random seed, TLS).
    args.push(["-device", "virtio-rng-pci"]);

    if let (Firmware::Uefi, Some((code, vars))) = (opts.firmware, prepared.pflash) {
        args.push(["-drive".into(), pflash_option(0, code)]);
        args.push(["-drive".into(), pflash_option(1, vars)]);
    }

    match &opts.boot {
        Boot::Efi(_) => {
            if let Some(dir) = prepared.esp_dir {
                // vvfat presents the directory as a FAT16 disk; read-only, so it needs readonly=on. The option
                // form (file.dir=) instead of `fat:PATH` keeps colons in the path from being parsed.
                let drive = escaped("if=none,id=esp,format=raw,readonly=on,file.driver=vvfat,file.dir=", dir);
                args.push(["-drive".into(), drive]);
                args.push(["-device", "virtio-blk-pci,drive=esp,bootindex=0"]);
            }
        }
        Boot::Disk { path, format } => {
            let format = match format {
                DiskFormat::Raw => "raw",
                DiskFormat::Qcow2 => "qcow2",
            };
            let mut drive = escaped(&format!("if=none,id=disk,format={format},file="), path);
            if opts.snapshot {
                drive.push(",snapshot=on");
            }
            args.push(["-drive".into(), drive]);
            args.push(["-device", "virtio-blk-pci,drive=disk,bootindex=0"]);
        }
        Boot::Cdrom(path) => {
            let drive = escaped("if=none,id=cdrom,media=cdrom,format=raw,readonly=on,file=", path);
            args.push(["-drive".into(), drive]);
            args.push(["-device", "ide-cd,drive=cdrom,bootindex=0"]);
        }
        Boot::Kernel { kernel, initrd, cmdline } => {
            args.push([OsStr::new("-kernel"), kernel.as_os_str()]);
            if let Some(initrd) = initrd {
                args.push([OsStr::new("-initrd"), initrd.as_os_str()]);
            }
            args.push(["-append", cmdline.as_str()]);
        }
    }
    args.push(opts.extra_args.iter());
    args.0
}

/// The `-drive` value for OVMF's flash: unit 0 is the firmware code (read-only), unit 1 the variable store.
pub(crate) fn pflash_option(unit: u8, path: &Path) -> OsString {
    let readonly = if unit == 0 { ",readonly=on" } else { "" };
    escaped(&format!("if=pflash,format=raw,unit={unit}{readonly},file="), path)
}

/// `prefix` followed by `path` with commas doubled, as QEMU's option syntax needs.
pub(crate) fn escaped(prefix: &str, path: &Path) -> OsString {
    let mut bytes = prefix.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        bytes.push(b);
        if b == b',' {
            bytes.push(b',');
        }
    }
    OsString::from_vec(bytes)
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<S: Into<OsString>>(&mut self, items: impl IntoIterator<Item = S>) {
        self.0.extend(items.into_iter().map(Into::into));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn joined(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    fn uefi_prepared<'a>(esp: Option<&'a Path>) -> Prepared<'a> {
        Prepared {
            accel: Accel::Tcg,
            pflash: Some((Path::new("/fw/CODE.fd"), Path::new("/tmp/vm/VARS.fd"))),
            esp_dir: esp,
        }
    }

    fn has_pair(args: &[OsString], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn common_arguments() {
        let mut opts = RunOptions::new(Boot::Cdrom("/x.iso".into()));
        opts.extra_args = vec!["-s".into(), "-S".into()];
        let args = qemu_args(&opts, uefi_prepared(None));
        assert!(has_pair(&args, "-machine", "q35"));
        assert!(has_pair(&args, "-accel", "tcg"));
        assert!(has_pair(&args, "-cpu", "max"));
        assert!(has_pair(&args, "-m", "1024"));
        assert!(has_pair(&args, "-smp", "2"));
        assert!(has_pair(&args, "-display", "none"));
        assert!(has_pair(&args, "-serial", "chardev:console"));
        assert!(has_pair(&args, "-chardev", "stdio,id=console,mux=on,signal=off"));
        assert!(args.iter().any(|a| a == "-nodefaults"));
        assert!(args.iter().any(|a| a == "-no-reboot"));
        assert_eq!(args[args.len() - 2..], [OsString::from("-s"), OsString::from("-S")], "extra args come last");
    }

    #[test]
    fn kvm_uses_host_cpu() {
        let opts = RunOptions::new(Boot::Cdrom("/x.iso".into()));
        let args = qemu_args(&opts, Prepared { accel: Accel::Kvm, ..uefi_prepared(None) });
        assert!(has_pair(&args, "-accel", "kvm"));
        assert!(has_pair(&args, "-cpu", "host"));
    }

    #[test]
    fn uefi_efi_boot_uses_pflash_and_vvfat() {
        let opts = RunOptions::new(Boot::Efi("/images/x.efi".into()));
        let esp = PathBuf::from("/tmp/vm,1/esp");
        let args = joined(&qemu_args(&opts, uefi_prepared(Some(&esp))));
        assert!(args.contains("-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd"), "{args}");
        assert!(args.contains("-drive if=pflash,format=raw,unit=1,file=/tmp/vm/VARS.fd"), "{args}");
        assert!(
            args.contains("-drive if=none,id=esp,format=raw,readonly=on,file.driver=vvfat,file.dir=/tmp/vm,,1/esp"),
            "{args}"
        );
        assert!(args.contains("-device virtio-blk-pci,drive=esp,bootindex=0"), "{args}");
        assert!(!args.contains("/images/x.efi"), "the ESP directory is attached, not the image: {args}");
    }

    #[test]
    fn secure_boot_turns_on_smm_and_secure_flash() {
        let mut opts = RunOptions::new(Boot::Efi("/images/x.efi".into()));
        opts.secure_boot = Some("/keys/VARS.fd".into());
        let args = qemu_args(&opts, uefi_prepared(None));
        assert!(has_pair(&args, "-machine", "q35,smm=on"));
        assert!(has_pair(&args, "-global", "driver=cfi.pflash01,property=secure,value=on"));
        let plain = qemu_args(&RunOptions::new(Boot::Efi("/images/x.efi".into())), uefi_prepared(None));
        assert!(has_pair(&plain, "-machine", "q35") && !joined(&plain).contains("smm"));
    }

    #[test]
    fn disk_boot_with_and_without_snapshot() {
        let mut opts = RunOptions::new(Boot::Disk { path: "/images/a,b.qcow2".into(), format: DiskFormat::Qcow2 });
        opts.firmware = Firmware::Bios;
        let prepared = Prepared { accel: Accel::Tcg, pflash: None, esp_dir: None };
        let args = joined(&qemu_args(&opts, prepared));
        assert!(args.contains("-drive if=none,id=disk,format=qcow2,file=/images/a,,b.qcow2,snapshot=on"), "{args}");
        assert!(args.contains("-device virtio-blk-pci,drive=disk,bootindex=0"), "{args}");
        assert!(!args.contains("pflash"), "BIOS boots use SeaBIOS: {args}");

        opts.boot = Boot::Disk { path: "/images/a.img".into(), format: DiskFormat::Raw };
        opts.snapshot = false;
        let args = joined(&qemu_args(&opts, prepared));
        assert!(args.contains("-drive if=none,id=disk,format=raw,file=/images/a.img -device"), "{args}");
    }

    #[test]
    fn cdrom_boot() {
        let opts = RunOptions::new(Boot::Cdrom("/images/x.iso".into()));
        let args = joined(&qemu_args(&opts, uefi_prepared(None)));
        assert!(
            args.contains("-drive if=none,id=cdrom,media=cdrom,format=raw,readonly=on,file=/images/x.iso"),
            "{args}"
        );
        assert!(args.contains("-device ide-cd,drive=cdrom,bootindex=0"), "{args}");
        assert!(args.contains("pflash"), "{args}");
    }

    #[test]
    fn direct_kernel_boot() {
        let mut opts = RunOptions::new(Boot::Kernel {
            kernel: "/k/vmlinuz".into(),
            initrd: Some("/k/initrd,1".into()),
            cmdline: "console=ttyS0 quiet".into(),
        });
        opts.firmware = Firmware::Bios;
        opts.memory_mib = 512;
        opts.cpus = 0;
        let args = qemu_args(&opts, Prepared { accel: Accel::Tcg, pflash: None, esp_dir: None });
        assert!(has_pair(&args, "-kernel", "/k/vmlinuz"));
        assert!(has_pair(&args, "-initrd", "/k/initrd,1"), "-initrd takes a plain file name");
        assert!(has_pair(&args, "-append", "console=ttyS0 quiet"));
        assert!(has_pair(&args, "-m", "512"));
        assert!(has_pair(&args, "-smp", "1"), "zero CPUs means one");
        assert!(!args.iter().any(|a| a == "-drive"));

        opts.boot = Boot::Kernel { kernel: "/k/vmlinuz".into(), initrd: None, cmdline: String::new() };
        let args = qemu_args(&opts, Prepared { accel: Accel::Tcg, pflash: None, esp_dir: None });
        assert!(!args.iter().any(|a| a == "-initrd"));
        assert!(has_pair(&args, "-append", ""));
    }
}
