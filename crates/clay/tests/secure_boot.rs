//! Secure Boot: keys made by `clay keys generate`, images signed by `clay build --sign-key`, checked by sbverify
//! and osslsigncode, and booted by `clay run --secure-boot` under OVMF's Secure Boot build, which must accept the
//! signed image and refuse the unsigned and the tampered ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clay_testkit::sh_in;
use common::*;

/// A key set made by `clay keys generate` in `work/keys`.
fn generate_keys(work: &Path) -> PathBuf {
    let keys = work.join("keys");
    clay_ok(&["keys", "generate", keys.to_str().unwrap(), "--common-name", "Clay Test"]);
    keys
}

/// Builds the tiny system, signed with `keys`' db key, into `work/NAME.*`.
fn build_signed(work: &Path, root: &Path, keys: &Path, name: &str, formats: &[&str]) -> PathBuf {
    let base = work.join(name);
    let mut cmd = clay();
    cmd.args(["build", root.to_str().unwrap(), "--cmdline", TINY_CMDLINE, "-o", base.to_str().unwrap()]);
    cmd.arg("--sign-key").arg(keys.join("db.key")).arg("--sign-cert").arg(keys.join("db.crt"));
    for f in formats {
        cmd.args(["-f", f]);
    }
    let out = cmd.env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    base
}

/// `sbverify --cert` and `osslsigncode verify` both accept `image` as signed by `cert`.
fn assert_signed(image: &Path, cert: &Path) {
    let sb = sh(&format!("sbverify --cert {} {} 2>&1", cert.display(), image.display()));
    assert!(sb.contains("Signature verification OK"), "sbverify: {sb}");
    let ossl = sh(&format!("osslsigncode verify -CAfile {} -in {} 2>&1", cert.display(), image.display()));
    assert!(ossl.contains("Signature verification: ok"), "osslsigncode: {ossl}");
}

/// Runs `clay run ARGS` until the console shows `until` or `timeout` passes, then stops clay, which stops its QEMU
/// and removes the VM's files; returns the console. For boots that must fail, where the firmware waits forever.
fn clay_run_until(args: &[&str], until: &str, timeout: Duration) -> String {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = clay()
        .arg("run")
        .args(args)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut console = Vec::new();
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(bytes) => console.extend(bytes),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
        if String::from_utf8_lossy(&console).contains(until) {
            break;
        }
    }
    // As a service manager stops it: clay stops its QEMU and cleans up. Should it not, QEMU is killed here, so a
    // failing run leaves nothing running.
    let qemus = sh(&format!("pgrep -P {} || true", child.id()));
    let ran_on = child.try_wait().unwrap().is_none();
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    let stopped: Vec<bool> = qemus.split_whitespace().map(|pid| ends_soon(pid.parse().unwrap())).collect();
    assert!(stopped.iter().all(|s| *s), "clay left its QEMU running");
    assert!(!ran_on || status.code() == Some(130), "clay ended with {status} when stopped");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "a stopped `clay run` left {left:?} in TMPDIR");
    String::from_utf8_lossy(&console).into_owned()
}

#[test]
fn generated_keys_are_complete_and_never_overwritten() {
    let work = tempfile::tempdir().unwrap();
    let keys = generate_keys(work.path());
    for name in ["PK", "KEK", "db"] {
        for ext in ["key", "crt", "esl", "auth"] {
            assert!(keys.join(format!("{name}.{ext}")).is_file(), "{name}.{ext} is missing");
        }
        let subject = sh(&format!("openssl x509 -in {}/{name}.crt -noout -subject", keys.display()));
        assert!(subject.contains(&format!("CN = Clay Test {name}")), "{subject}");
        // The signature list is what efitools makes of the certificate with the same owner.
        let owner = std::fs::read_to_string(keys.join("owner-guid.txt")).unwrap();
        sh(&format!(
            "cd {k} && cert-to-efi-sig-list -g {o} {name}.crt /tmp/clay-test-$$.esl && cmp /tmp/clay-test-$$.esl \
             {name}.esl; r=$?; rm -f /tmp/clay-test-$$.esl; exit $r",
            k = keys.display(),
            o = owner.trim()
        ));
        let mode = sh(&format!("stat -c %a {}/{name}.key", keys.display()));
        assert_eq!(mode.trim(), "600", "private keys are private");
    }
    let err = clay_err(clay().args(["keys", "generate"]).arg(&keys));
    assert!(err.contains("already holds files; keys are never overwritten"), "{err}");
}

#[test]
fn interrupted_key_generation_leaves_no_half_key_set() {
    let work = tempfile::tempdir().unwrap();
    let child = clay().args(["keys", "generate"]).arg(work.path().join("keys")).stderr(Stdio::piped()).spawn().unwrap();
    // The keys are made in a hidden directory beside the target; interrupt while it is there.
    wait_until("key generation never started", || std::fs::read_dir(work.path()).unwrap().count() > 0);
    sh(&format!("kill -INT {}", child.id()));
    let output = child.wait_with_output().unwrap();
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    // Either it was interrupted with nothing left, or it had already finished: then the set is whole.
    if output.status.code() == Some(130) {
        assert!(left.is_empty(), "an interrupted key generation left {left:?}");
    } else {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(work.path().join("keys/db.auth").is_file() && left.len() == 1, "{left:?}");
    }
}

#[test]
fn an_interrupted_run_stops_qemu_and_leaves_nothing_behind() {
    // A stand-in qemu that says its process ID and waits; clay makes the Secure Boot variable store and the ESP for
    // it as for the real one.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let keys = generate_keys(w);
    let tmp = w.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let path =
        stand_in(&w.join("bin"), "qemu-system-x86_64", &format!("{}exec sleep 600\n", write_pid(&w.join("qemu"))));
    std::fs::write(w.join("os.efi"), b"MZ not booted").unwrap();
    let mut child = clay()
        .args(["run", "--accel", "tcg", "--secure-boot", "--keys"])
        .arg(&keys)
        .arg(w.join("os.efi"))
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let qemu = pid_from(&w.join("qemu"), "the stand-in qemu");
    // While it runs, the store and the ESP are in clay's one directory.
    let held = sh(&format!("cd {} && find . -mindepth 1 | sort", tmp.display()));
    assert!(held.contains("/secure-boot-vars.fd") && held.contains("/EFI/BOOT/BOOTX64.EFI"), "{held}");
    // Only clay gets the signal, as when a service manager or `kill` stops it.
    sh(&format!("kill -TERM {}", child.id()));
    let status = child.wait().unwrap();
    let stopped = ends_soon(qemu);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert!(stopped, "clay left qemu running after it was stopped: {said}");
    assert_eq!(status.code(), Some(130), "{said}");
    // It says what happened to the run: there was no output to lose.
    assert!(said.contains("clay: interrupted; the virtual machine was stopped"), "{said}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "a stopped `clay run` left {left:?} in TMPDIR");
}

#[test]
fn signed_images_pass_sbverify_alone_and_inside_a_disk_and_an_iso() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let keys = generate_keys(work.path());
    let cert = keys.join("db.crt");
    let base = build_signed(work.path(), &root, &keys, "signed", &["efi", "raw", "iso"]);
    let efi = with_ext(&base, "efi");
    assert_signed(&efi, &cert);
    let shown = String::from_utf8(clay_ok(&["inspect", efi.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("by `CN=Clay Test db`") && shown.contains("SHA-256 digest matches the image"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_slice(&clay_ok(&["inspect", "--json", efi.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json["signatures"][0]["subject"], "CN=Clay Test db");
    assert_eq!(json["signatures"][0]["digest_matches"], true);
    // The UKI on the disk's ESP and inside the ISO's ESP image is the same signed file.
    let from_disk = work.path().join("from-disk.efi");
    sh(&format!(
        "mcopy -n -i {img}@@1M ::/EFI/BOOT/BOOTX64.EFI {out}",
        img = with_ext(&base, "img").display(),
        out = from_disk.display()
    ));
    let from_iso = work.path().join("from-iso.efi");
    sh(&format!(
        "cd {w} && xorriso -osirrox on -indev {iso} -extract /boot/efiboot.img efiboot.img 2>/dev/null \
         && mcopy -n -i efiboot.img ::/EFI/BOOT/BOOTX64.EFI {out}",
        w = work.path().display(),
        iso = with_ext(&base, "iso").display(),
        out = from_iso.display()
    ));
    for copy in [&from_disk, &from_iso] {
        assert!(std::fs::read(copy).unwrap() == std::fs::read(&efi).unwrap(), "{} differs", copy.display());
        assert_signed(copy, &cert);
    }
    // Deterministic: no signing time, so the same key and input give the same bytes.
    let again = build_signed(work.path(), &root, &keys, "again", &["efi"]);
    assert!(
        std::fs::read(with_ext(&again, "efi")).unwrap() == std::fs::read(&efi).unwrap(),
        "signing is deterministic"
    );
}

#[test]
fn an_unsigned_kernel_is_signed_before_it_goes_into_the_uki() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    // Debian signs its kernels; strip that signature, as a self-built kernel would come.
    sh(&format!("for k in {}/boot/vmlinuz-*; do sbattach --remove \"$k\"; done", root.display()));
    let keys = generate_keys(work.path());
    let base = build_signed(work.path(), &root, &keys, "signed", &["efi"]);
    let linux = work.path().join("linux.efi");
    std::fs::write(&linux, pe_section(&with_ext(&base, "efi"), ".linux")).unwrap();
    let sb = sh(&format!("sbverify --cert {} {} 2>&1", keys.join("db.crt").display(), linux.display()));
    assert!(sb.contains("Signature verification OK"), "the kernel inside the UKI: {sb}");
}

#[test]
fn secure_boot_accepts_the_signed_image_and_refuses_unsigned_or_tampered_ones() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let keys = generate_keys(work.path());
    let base = build_signed(work.path(), &root, &keys, "signed", &["efi"]);
    let efi = with_ext(&base, "efi");
    let keys_arg = keys.to_str().unwrap();

    let (status, console, stderr) = clay_run(&[efi.to_str().unwrap(), "--secure-boot", "--keys", keys_arg], 240);
    assert!(status.success() && console.contains(TINY_MARKER), "{stderr}\n{console}");
    assert!(console.contains("tiny: SecureBoot=1"), "the firmware reports Secure Boot on: {console}");
    // Without --keys, the image's own signer is enrolled.
    let (status, console, stderr) = clay_run(&[efi.to_str().unwrap(), "--secure-boot"], 240);
    assert!(status.success() && console.contains("tiny: SecureBoot=1"), "{stderr}\n{console}");

    let unsigned = work.path().join("unsigned");
    clay_ok(&["build", root.to_str().unwrap(), "--cmdline", TINY_CMDLINE, "-o", unsigned.to_str().unwrap()]);
    // One byte of .initrd flipped in the signed image: the signature no longer matches.
    let tampered = work.path().join("tampered.efi");
    let mut bytes = std::fs::read(&efi).unwrap();
    let info = clay_pe::read_sections(&bytes[..65536]).unwrap();
    let initrd = info.sections.iter().find(|s| s.name == ".initrd").unwrap();
    bytes[initrd.raw_offset as usize + 4096] ^= 0x01;
    std::fs::write(&tampered, bytes).unwrap();
    for image in [with_ext(&unsigned, "efi"), tampered] {
        let console = clay_run_until(
            &[image.to_str().unwrap(), "--secure-boot", "--keys", keys_arg],
            "Access Denied",
            Duration::from_secs(180),
        );
        assert!(console.contains("Access Denied"), "{} was not refused:\n{console}", image.display());
        assert!(!console.contains("tiny: pid 1"), "{} booted:\n{console}", image.display());
    }
}

#[test]
fn bad_keys_are_refused_with_nothing_written() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let keys = generate_keys(work.path());
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    sh_in(
        work.path(),
        "openssl pkcs8 -topk8 -v2 aes-256-cbc -in keys/db.key -passout pass:right -out enc.key
         openssl req -x509 -newkey rsa:2048 -nodes -keyout old.key -out old.crt -subj /CN=old -days 1 2>/dev/null
         openssl x509 -in old.crt -signkey old.key -days -1 -out expired.crt 2>/dev/null",
    );
    let build = |key: &str, cert: &str, passphrase: Option<&str>| {
        let mut cmd = clay();
        cmd.args(["build", root.to_str().unwrap(), "-o"]).arg(out.join("x"));
        cmd.arg("--sign-key").arg(work.path().join(key)).arg("--sign-cert").arg(work.path().join(cert));
        if let Some(p) = passphrase {
            cmd.env("CLAY_SIGN_PASSPHRASE", p);
        }
        clay_err(cmd.stdin(Stdio::null()))
    };
    let err = build("keys/KEK.key", "keys/db.crt", None);
    assert!(err.contains("does not match the certificate `CN=Clay Test db`"), "{err}");
    let err = build("enc.key", "keys/db.crt", Some("wrong"));
    assert!(err.contains("passphrase is wrong"), "{err}");
    let err = build("enc.key", "keys/db.crt", None);
    assert!(err.contains("is encrypted; set CLAY_SIGN_PASSPHRASE"), "{err}");
    let err = build("old.key", "expired.crt", None);
    assert!(err.contains("expired on"), "{err}");
    let err = build("keys/db.key", "keys/db.esl", None);
    assert!(err.contains("is not a usable certificate"), "{err}");
    // The right passphrase works.
    let mut cmd = clay();
    cmd.args(["build", root.to_str().unwrap(), "-o"]).arg(out.join("ok"));
    cmd.arg("--sign-key").arg(work.path().join("enc.key")).arg("--sign-cert").arg(keys.join("db.crt"));
    let ok = cmd.env("CLAY_SIGN_PASSPHRASE", "right").output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // A stub that is already signed: its signature would not cover the UKI.
    sh_in(
        work.path(),
        "sbsign --key keys/db.key --cert keys/db.crt --output signed-stub.efi /usr/lib/systemd/boot/efi/linuxx64.efi.stub",
    );
    let err = clay_err(
        clay()
            .args(["build", root.to_str().unwrap(), "--stub"])
            .arg(work.path().join("signed-stub.efi"))
            .arg("-o")
            .arg(out.join("stub")),
    );
    assert!(err.contains("the EFI stub is already signed"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("ok.efi")], "only the good build wrote a file");
    // On a terminal, clay asks for the passphrase (script(1) gives it one).
    let prompted = work.path().join("prompted");
    sh_in(
        work.path(),
        &format!(
            "(sleep 3; printf 'right\\n') | script -qec '{clay} build {root} -f efi --sign-key enc.key --sign-cert keys/db.crt -o {out}' /dev/null",
            clay = env!("CARGO_BIN_EXE_clay"),
            root = root.display(),
            out = prompted.display()
        ),
    );
    assert!(with_ext(&prompted, "efi").is_file(), "the prompted passphrase was taken");
}

/// Signing elsewhere: an unsigned build, then `clay sign` on the UKI, the raw disk and the ISO. `clay verify` and
/// sbverify accept the results, the disk's other files and the GPT stay intact, and the signed disk boots under
/// Secure Boot.
#[test]
fn clay_sign_signs_a_uki_a_disk_and_an_iso_built_elsewhere() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let keys = generate_keys(work.path());
    let (key, cert) = (keys.join("db.key"), keys.join("db.crt"));
    let base = work.path().join("unsigned");
    let out = clay()
        .args(["build", root.to_str().unwrap(), "--cmdline", TINY_CMDLINE, "--firmware", "hybrid"])
        .args(["-f", "efi", "-f", "raw", "-f", "iso", "-o", base.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for ext in ["efi", "img", "iso"] {
        let unsigned = with_ext(&base, ext);
        let signed = work.path().join(format!("signed.{ext}"));
        let err = clay_err(clay().arg("verify").arg(&unsigned).arg("--cert").arg(&cert));
        assert!(err.contains("does not verify") && err.contains("not signed"), "{err}");
        clay_ok(&[
            "sign",
            unsigned.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "-o",
            signed.to_str().unwrap(),
        ]);
        let shown =
            String::from_utf8(clay_ok(&["verify", signed.to_str().unwrap(), "--cert", cert.to_str().unwrap()]).stdout)
                .unwrap();
        assert!(shown.contains("signed by `CN=Clay Test db`"), "{shown}");
        let err = clay_err(clay().arg("verify").arg(&signed).arg("--cert").arg(keys.join("PK.crt")));
        assert!(err.contains("is not signed by `CN=Clay Test PK`"), "{err}");
        let err = clay_err(clay().arg("sign").arg(&signed).arg("--key").arg(&key).arg("--cert").arg(&cert));
        assert!(err.contains("already signed; pass --replace"), "{err}");
    }
    let disk = work.path().join("signed.img");
    let shown = String::from_utf8(clay_ok(&["inspect", disk.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("EFI/BOOT/BOOTX64.EFI") && shown.contains("signed by `CN=Clay Test db`"), "{shown}");
    let shown = String::from_utf8(clay_ok(&["inspect", with_ext(&base, "iso").to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("unsigned"), "{shown}");
    let verify = sh(&format!("sgdisk -v {}", disk.display()));
    assert!(verify.contains("No problems found"), "{verify}");
    let uki = work.path().join("from-disk.efi");
    sh(&format!("mcopy -n -i {}@@1M ::/EFI/BOOT/BOOTX64.EFI {}", disk.display(), uki.display()));
    assert_signed(&uki, &cert);
    // The rest of the ESP is untouched: syslinux still boots the disk on BIOS.
    let (status, console, stderr) = clay_run(&[disk.to_str().unwrap(), "--firmware", "bios"], 240);
    assert!(status.success() && console.contains(TINY_MARKER), "BIOS: {stderr}\n{console}");
    let (status, console, stderr) =
        clay_run(&[disk.to_str().unwrap(), "--secure-boot", "--keys", keys.to_str().unwrap()], 240);
    assert!(status.success() && console.contains("tiny: SecureBoot=1"), "{stderr}\n{console}");
}
