//! The real proof, in OVMF's Secure Boot build under QEMU (TCG; each boot takes some 10-40 s):
//! - on a variable store this crate wrote from the empty template with test keys enrolled, a UKI signed (`sbsign`)
//!   with the db key boots with Secure Boot on, and the same UKI unsigned is refused;
//! - on the empty store (setup mode), our `.auth` files enroll PK, KEK and db through the firmware's own signature
//!   checks (written by Linux through efivarfs), a dbx update signed by the wrong key is refused, and our reader
//!   finds the keys in the store the firmware wrote.
//!
//! A missing tool fails the test, naming the package.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clay_efivars::{
    certificate_der, AuthVariable, EfiTime, EfiVarsError, Guid, SecureBootKeys, SecureBootVariable, SignatureList,
    VarStore,
};
use clay_qemu::{secure_boot_vars_template, Accel, Boot, QemuError, RunOptions, Vm};
use clay_testkit::sh_in;

/// Printed by the test initramfs's /init; built by the shell from `40+2` so only a running /init can print it.
const MARKER: &str = "CLAY-EFIVARS-42-OK";
const INIT: &str = "#!/bin/busybox sh\n/bin/busybox echo \"CLAY-EFIVARS-$((40+2))-OK\"\n/bin/busybox poweroff -f\n";
/// Not `quiet`: the kernel's Secure Boot line is an info message.
const CMDLINE: &str = "console=ttyS0 panic=-1";
const SYSTEMD_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// Linux (arch/x86/kernel/setup.c) logs this when the firmware reports Secure Boot on.
const SECURE_BOOT_ON: &str = "secureboot: Secure boot enabled";
/// Linux loads db's certificates into its platform keyring and names each; ours has this subject.
const DB_CERT_LOADED: &str = "Loaded X.509 cert 'clay-efivars boot db";
/// What OVMF's boot manager prints when image verification refuses a boot option (EFI_SECURITY_VIOLATION).
const REFUSED: &str = "Access Denied";
/// Generous: both boots may share the two cores under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn require_tool(tool: &str, package: &str) {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "`{tool}` is needed for this test; install the {package} package");
}

/// Test keys, the enrolled variable store and the unsigned UKI, in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    vars: PathBuf,
    uki: PathBuf,
}

fn owner() -> Guid {
    "8d3a1f2e-5b4c-4e6f-9a7b-0c1d2e3f4a5b".parse().unwrap()
}

/// Self-signed test keys `PK`, `KEK` and `db` (`NAME.key`, `NAME.crt`) in `dir`; returns their DER certificates.
fn make_keys(dir: &Path) -> [Vec<u8>; 3] {
    require_tool("openssl", "openssl");
    sh_in(
        dir,
        r#"for name in PK KEK db; do
             openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=clay-efivars boot $name/" \
                 -keyout $name.key -out $name.crt 2>/dev/null
           done"#,
    );
    ["PK", "KEK", "db"].map(|name| certificate_der(&std::fs::read(dir.join(format!("{name}.crt"))).unwrap()).unwrap())
}

/// The empty variable store of OVMF's Secure Boot build, written back by this crate.
fn empty_store() -> VarStore {
    let template = secure_boot_vars_template().unwrap_or_else(|e| panic!("{e}"));
    VarStore::parse(&std::fs::read(&template).unwrap()).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [pk, kek, db] = make_keys(d);
    let keys = SecureBootKeys::from_certificates(owner(), &pk, &kek, &db).unwrap();
    let mut store = empty_store();
    store.enroll_secure_boot(&keys, EfiTime::from_unix_seconds(1_700_000_000).unwrap()).unwrap();
    let vars = d.join("OVMF_VARS.enrolled.fd");
    std::fs::write(&vars, store.to_bytes().unwrap()).unwrap();
    let uki = build_uki(d, &clay_testkit::busybox_initramfs(INIT));
    Fixture { dir, vars, uki }
}

/// A UKI of the systemd stub, the tiny example's kernel and `initramfs`, laid out by objcopy as ukify does.
fn build_uki(dir: &Path, initramfs: &[u8]) -> PathBuf {
    let stub = Path::new(SYSTEMD_STUB);
    assert!(stub.is_file(), "{SYSTEMD_STUB} is missing; install the systemd-boot-efi package");
    require_tool("objcopy", "binutils");
    let kernel = clay_testkit::example_kernel();
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&initrd, initramfs).unwrap();
    let cmdline = dir.join("cmdline");
    std::fs::write(&cmdline, CMDLINE).unwrap();

    let cmdline_vma = pe_size_of_image(&std::fs::read(stub).unwrap()).next_multiple_of(0x1000);
    let linux_vma = (cmdline_vma + 0x1000).next_multiple_of(0x20_0000);
    let initrd_vma = (linux_vma + std::fs::metadata(&kernel).unwrap().len()).next_multiple_of(0x1000);
    let uki = dir.join("unsigned.efi");
    let section = |name: &str, file: &Path, vma: u64| {
        [
            "--add-section".to_owned(),
            format!("{name}={}", file.display()),
            "--change-section-vma".to_owned(),
            format!("{name}={vma:#x}"),
        ]
    };
    let status = Command::new("objcopy")
        .args(section(".cmdline", &cmdline, cmdline_vma))
        .args(section(".linux", &kernel, linux_vma))
        .args(section(".initrd", &initrd, initrd_vma))
        .arg(stub)
        .arg(&uki)
        .status()
        .unwrap();
    assert!(status.success(), "objcopy failed to build the test UKI");
    uki
}

/// SizeOfImage from a PE file's optional header (PE/COFF spec, "Optional Header Windows-Specific Fields").
fn pe_size_of_image(pe: &[u8]) -> u64 {
    let at = |offset: usize| u32::from_le_bytes(pe[offset..offset + 4].try_into().unwrap());
    let optional_header = usize::try_from(at(0x3c)).unwrap() + 24;
    u64::from(at(optional_header + 56))
}

fn secure_vm(image: &Path, vars: &Path) -> Vm {
    let mut opts = RunOptions::new(Boot::Efi(image.to_owned()));
    opts.secure_boot = Some(vars.to_owned());
    // KVM is broken on this project's machines; TCG is what every machine runs.
    opts.accel = Accel::Tcg;
    Vm::prepare(&opts, &mut |notice| eprintln!("notice: {notice}")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn signed_uki_boots_with_secure_boot_on() {
    require_tool("sbsign", "sbsigntool");
    let fixture = fixture();
    let d = fixture.dir.path();
    let signed = d.join("signed.efi");
    sh_in(d, &format!("sbsign --key db.key --cert db.crt --output signed.efi {} 2>&1", fixture.uki.display()));
    sh_in(d, "sbverify --cert db.crt signed.efi >/dev/null");

    let output = secure_vm(&signed, &fixture.vars).run_until(MARKER, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains(SECURE_BOOT_ON), "the kernel did not report Secure Boot on:\n{output}");
    assert!(output.contains(DB_CERT_LOADED), "the kernel did not find our certificate in db:\n{output}");
}

#[test]
fn unsigned_uki_is_refused() {
    let fixture = fixture();
    let vm = secure_vm(&fixture.uki, &fixture.vars);
    let output = match vm.run_until(REFUSED, BOOT_TIMEOUT) {
        Ok(output) => output,
        Err(QemuError::ExitedBeforeMarker { console, .. }) | Err(QemuError::MarkerTimeout { console, .. }) => {
            panic!("OVMF did not refuse the unsigned UKI; the console ended with:\n{console}")
        }
        Err(e) => panic!("{e}"),
    };
    assert!(output.contains("BdsDxe: failed to load Boot0001"), "{output}");
    assert!(!output.contains(MARKER) && !output.contains("Linux version"), "the unsigned UKI ran:\n{output}");
}

/// Writes each (name, data) into `/NAME` of the initramfs through the efivarfs mount of the running guest, one
/// `cat` each (efivarfs takes a variable in one write: its attributes, then EFI_VARIABLE_AUTHENTICATION_2 and the
/// data), and reports whether the firmware accepted it.
const AUTH_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /sys
$B mount -t sysfs sysfs /sys
$B insmod /efivarfs.ko
$B mount -t efivarfs efivarfs /sys/firmware/efi/efivars
for write in PK:PK-8be4df61-93ca-11d2-aa0d-00e098032b8c KEK:KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c \
             db:db-d719b2cb-3d3a-4596-a3bc-dad00e67656f dbx-by-db:dbx-d719b2cb-3d3a-4596-a3bc-dad00e67656f; do
  if $B cat /${write%%:*}.var > /sys/firmware/efi/efivars/${write#*:}; then
    $B echo "EFIVARS-WRITE ${write%%:*} accepted"
  else
    $B echo "EFIVARS-WRITE ${write%%:*} refused"
  fi
done
$B echo "CLAY-EFIVARS-AUTH-$((40+2))-DONE"
$B poweroff -f
"#;

/// efivarfs is a module in Debian's cloud kernel: the tiny example's kernel package, as make-rootfs.sh caches it.
fn efivarfs_module(kernel: &Path) -> Vec<u8> {
    let release = kernel.file_name().unwrap().to_str().unwrap().strip_prefix("vmlinuz-").unwrap();
    let relative = format!("lib/modules/{release}/kernel/fs/efivarfs/efivarfs.ko");
    let home = std::env::var("HOME").unwrap_or_default();
    let cache = std::env::var("CLAY_CACHE").unwrap_or_else(|_| {
        std::env::var("XDG_CACHE_HOME")
            .map_or_else(|_| format!("{home}/.cache/claylinux"), |x| format!("{x}/claylinux"))
    });
    let candidates =
        [kernel.parent().unwrap().join("..").join(&relative), Path::new(&cache).join("kernel/root").join(&relative)];
    let found = candidates.iter().find(|p| p.is_file());
    let path = found.unwrap_or_else(|| panic!("efivarfs.ko for {release} is not in {candidates:?}"));
    std::fs::read(path).unwrap()
}

/// The variable store copy the VM runs on: the `-drive if=pflash,...,unit=1,...,file=PATH` argument.
fn vm_vars_path(vm: &Vm) -> PathBuf {
    let command = vm.command();
    let arg = command
        .get_args()
        .filter_map(|a| a.to_str())
        .find(|a| a.starts_with("if=pflash") && a.contains("unit=1"))
        .expect("the VM has a variable store drive");
    PathBuf::from(arg.split_once("file=").unwrap().1.replace(",,", ","))
}

#[test]
fn auth_files_enroll_keys_through_the_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [pk, kek, db] = make_keys(d);
    let enrolled_at = EfiTime::utc(2024, 5, 1, 12, 0, 0).unwrap();
    let esl = |der: &[u8]| SignatureList::x509(owner(), der).to_bytes().unwrap();
    // Signed by clay-authenticode, as `clay keys generate` signs them: the firmware is the judge.
    let clay_signer = |signer: &'static str| {
        move |tbs: &[u8]| {
            let key = std::fs::read(d.join(format!("{signer}.key"))).unwrap();
            let cert = std::fs::read(d.join(format!("{signer}.crt"))).unwrap();
            let key = clay_authenticode::SigningKey::from_pem(&key, None).unwrap();
            let cert = clay_authenticode::Certificate::from_pem(&cert).unwrap();
            Ok::<_, EfiVarsError>(clay_authenticode::pkcs7_sign_detached(tbs, &key, &cert).unwrap())
        }
    };
    let later = EfiTime::utc(2024, 6, 1, 0, 0, 0).unwrap();
    let updates = [
        ("PK", SecureBootVariable::Pk, enrolled_at, esl(&pk), "PK"),
        ("KEK", SecureBootVariable::Kek, enrolled_at, esl(&kek), "PK"),
        ("db", SecureBootVariable::Db, enrolled_at, esl(&db), "KEK"),
        // Only a KEK (or PK) may change dbx: this one is signed by the db key.
        (
            "dbx-by-db",
            SecureBootVariable::Dbx,
            later,
            SignatureList::placeholder_dbx(owner()).to_bytes().unwrap(),
            "db",
        ),
    ];
    let mut files = vec![("efivarfs.ko".to_owned(), efivarfs_module(&clay_testkit::example_kernel()))];
    for (file, variable, time, data, signer) in updates.iter().cloned() {
        let update = AuthVariable::secure_boot(variable, time, data).unwrap();
        let auth = update.signed_auth_file(clay_signer(signer)).unwrap();
        // efivarfs: the attributes, then what SetVariable() gets as data.
        files.push((format!("{file}.var"), [&update.attributes().to_le_bytes()[..], &auth].concat()));
    }
    let initramfs = [clay_testkit::busybox_initramfs(AUTH_INIT), clay_testkit::files_cpio(&files)].concat();
    let uki = build_uki(d, &initramfs);

    let empty = d.join("OVMF_VARS.empty.fd");
    std::fs::write(&empty, empty_store().to_bytes().unwrap()).unwrap();
    // Setup mode: no PK, so the unsigned UKI runs.
    let vm = secure_vm(&uki, &empty);
    let output = vm.run_to_exit(BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains("CLAY-EFIVARS-AUTH-42-DONE"), "{output}");
    for (file, expected) in [("PK", "accepted"), ("KEK", "accepted"), ("db", "accepted"), ("dbx-by-db", "refused")] {
        let line = format!("EFIVARS-WRITE {file} {expected}");
        assert!(output.contains(&line), "expected `{line}` on the console:\n{output}");
    }

    // The store the firmware wrote holds our keys, stamped with the update's time, and no dbx.
    let written = VarStore::parse(&std::fs::read(vm_vars_path(&vm)).unwrap()).unwrap();
    for (_, variable, time, data, _) in &updates[..3] {
        let stored = written
            .get(variable.name(), variable.guid())
            .unwrap_or_else(|| panic!("{} is not in the store; it holds {:?}", variable.name(), written.variables()));
        assert_eq!(stored.attributes, SecureBootVariable::ATTRIBUTES, "{}", variable.name());
        assert_eq!(stored.timestamp, *time, "{}", variable.name());
        assert_eq!(&stored.data, data, "{}", variable.name());
    }
    assert!(written.get("dbx", SecureBootVariable::Dbx.guid()).is_none());
}
