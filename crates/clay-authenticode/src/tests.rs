//! Oracles: `sbverify` and `osslsigncode verify` (which accept or refuse our signatures and print the digest they
//! compute), `sbsign` and Debian's signed kernel (signatures we did not make), `sbattach --remove` (stripping), and
//! `openssl cms -verify` (detached signatures). Keys and certificates are made with the `openssl` command.

use std::fs::{self, File, OpenOptions};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use clay_testkit::sh_in;

use super::*;

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const PASSPHRASE: &[u8] = b"correct horse";

/// Keys and certificates, made once per test process with the `openssl` command.
fn keys() -> &'static Path {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let pass = String::from_utf8(PASSPHRASE.to_vec()).unwrap();
        sh_in(
            &dir,
            &format!(
                r#"
                command -v openssl >/dev/null || {{ echo "openssl is needed for this test: apt-get install openssl" >&2; exit 1; }}
                selfsigned() {{ openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.pem" -subj "$2" -days 3650 2>/dev/null; }}
                selfsigned signer "/CN=Clay Test Signer/O=Clay"
                selfsigned other "/CN=Someone Else"
                openssl x509 -in signer.pem -outform DER -out signer.der
                openssl rsa -in signer-key.pem -traditional -out signer-pkcs1.pem 2>/dev/null
                openssl pkcs8 -topk8 -v2 aes-256-cbc -in signer-key.pem -passout 'pass:{pass}' -out signer-enc.pem
                openssl rsa -in signer-key.pem -aes256 -traditional -passout 'pass:{pass}' -out signer-legacy.pem 2>/dev/null
                openssl genrsa -aes256 -passout 'pass:{pass}' -out genrsa-enc.pem 2048 2>/dev/null
                openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec-key.pem
                # A CA and a certificate it issued.
                openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -subj "/CN=Clay Test CA" \
                  -days 3650 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
                openssl req -new -newkey rsa:2048 -nodes -keyout leaf-key.pem -out leaf.csr -subj "/CN=Clay Test Leaf" 2>/dev/null
                openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca-key.pem -set_serial 7 -days 3650 -out leaf.pem 2>/dev/null
                # A certificate that expired yesterday.
                openssl req -new -newkey rsa:2048 -nodes -keyout expired-key.pem -out expired.csr -subj "/CN=Clay Expired" 2>/dev/null
                openssl x509 -req -in expired.csr -signkey expired-key.pem -days -1 -out expired.pem 2>/dev/null
                "#
            ),
        );
        dir
    })
}

fn key(name: &str) -> SigningKey {
    SigningKey::from_pem(&fs::read(keys().join(name)).unwrap(), None).unwrap()
}

fn cert(name: &str) -> Certificate {
    Certificate::from_pem(&fs::read(keys().join(name)).unwrap()).unwrap()
}

/// Runs a command, failing the test with an install hint if it is missing; returns (success, stdout + stderr).
fn run(dir: &Path, cmd: &[&str]) -> (bool, String) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).current_dir(dir).output().unwrap_or_else(|e| {
        let package = match cmd[0] {
            "sbsign" | "sbverify" | "sbattach" => "sbsigntool",
            other => other,
        };
        panic!("`{}` is needed for this test: apt-get install {package} ({e})", cmd[0])
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn stub() -> Vec<u8> {
    fs::read(STUB).unwrap_or_else(|e| panic!("{STUB} is needed for this test: apt-get install systemd-boot-efi ({e})"))
}

/// Debian's kernel with its signature removed by `sbattach --remove`, and the signed original.
fn debian_kernel(dir: &Path) -> (PathBuf, PathBuf) {
    let signed = dir.join("vmlinuz.debian");
    fs::copy(clay_testkit::example_kernel(), &signed).unwrap();
    let unsigned = dir.join("vmlinuz.unsigned");
    fs::copy(&signed, &unsigned).unwrap();
    let (ok, out) = run(dir, &["sbattach", "--remove", "vmlinuz.unsigned"]);
    assert!(ok, "sbattach --remove failed: {out}");
    (signed, unsigned)
}

fn sign_file(path: &Path, key: &SigningKey, cert: &Certificate) -> Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    sign(&mut file, key, cert, &SignOptions::default())
}

fn digest_of(path: &Path) -> String {
    hex(&authenticode_digest(&mut File::open(path).unwrap()).unwrap())
}

/// `sbverify --cert` and `osslsigncode verify -CAfile` both accept the signed image.
fn assert_oracles_accept(dir: &Path, image: &str, ca: &str) {
    let ca = keys().join(ca);
    let ca = ca.to_str().unwrap();
    let (ok, out) = run(dir, &["sbverify", "--cert", ca, image]);
    assert!(ok && out.contains("Signature verification OK"), "sbverify refused {image}:\n{out}");
    let (ok, out) = run(dir, &["osslsigncode", "verify", "-CAfile", ca, "-in", image]);
    assert!(ok && out.contains("Signature verification: ok"), "osslsigncode refused {image}:\n{out}");
    assert!(!out.contains("invalid PE checksum"), "osslsigncode found a bad CheckSum in {image}:\n{out}");
}

/// The digest `osslsigncode verify` computes for a signed image.
fn osslsigncode_digest(dir: &Path, image: &str, ca: &str) -> String {
    let ca = keys().join(ca);
    let (_, out) = run(dir, &["osslsigncode", "verify", "-CAfile", ca.to_str().unwrap(), "-in", image]);
    let line = out.lines().find(|l| l.starts_with("Calculated message digest")).unwrap_or_else(|| panic!("{out}"));
    line.rsplit(':').next().unwrap().trim().to_owned()
}

/// The DER of the SpcIndirectDataContent in the image's first signature.
fn indirect_data_der(path: &Path) -> Vec<u8> {
    let mut file = File::open(path).unwrap();
    let layout = Layout::read(&mut file).unwrap();
    let table = layout.read_cert_table(&mut file).unwrap();
    let entries = pe::pkcs7_entries(&table).unwrap();
    let parsed = pkcs7::parse(entries[0], 1).unwrap();
    der::Encode::to_der(parsed.signed_data.encap_content_info.econtent.as_ref().unwrap()).unwrap()
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// File offset of section `index`'s header.
fn section_header(image: &[u8], index: usize) -> usize {
    let pe = le32(image, 0x3c) as usize;
    let optional_header_len = u16::from_le_bytes([image[pe + 20], image[pe + 21]]) as usize;
    pe + 24 + optional_header_len + 40 * index
}

#[test]
fn loads_keys_in_every_format() {
    let signer = cert("signer.pem");
    let data = b"the same key signs the same bytes";
    let reference = pkcs7_sign_detached(data, &key("signer-key.pem"), &signer).unwrap();
    for (file, passphrase) in [
        ("signer-key.pem", None),
        ("signer-pkcs1.pem", None),
        ("signer-enc.pem", Some(PASSPHRASE)),
        // A passphrase given for a plain key is not needed, and not an error.
        ("signer-key.pem", Some(PASSPHRASE)),
    ] {
        let pem = fs::read(keys().join(file)).unwrap();
        assert!(pem.starts_with(b"-----BEGIN "), "{file}");
        let key = SigningKey::from_pem(&pem, passphrase).unwrap_or_else(|e| panic!("{file}: {e}"));
        key.check_matches(&signer).unwrap();
        assert_eq!(pkcs7_sign_detached(data, &key, &signer).unwrap(), reference, "{file}");
    }
    // What `openssl genrsa -aes256` writes (PBES2 PKCS#8 with OpenSSL 3).
    let pem = fs::read(keys().join("genrsa-enc.pem")).unwrap();
    assert!(pem.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    SigningKey::from_pem(&pem, Some(PASSPHRASE)).unwrap();
    // A key after other blocks, as in a combined certificate-and-key file.
    let mut combined = fs::read(keys().join("signer.pem")).unwrap();
    combined.extend_from_slice(b"some text between\n");
    combined.extend(fs::read(keys().join("signer-enc.pem")).unwrap());
    SigningKey::from_pem(&combined, Some(PASSPHRASE)).unwrap().check_matches(&signer).unwrap();
}

#[test]
fn refuses_bad_keys_with_their_own_error() {
    let enc = fs::read(keys().join("signer-enc.pem")).unwrap();
    let e = SigningKey::from_pem(&enc, None).unwrap_err();
    assert!(matches!(e, AuthenticodeError::PassphraseRequired), "{e:?}");
    assert_eq!(e.to_string(), "the private key is encrypted; give its passphrase");
    let e = SigningKey::from_pem(&enc, Some(b"wrong")).unwrap_err();
    assert!(matches!(e, AuthenticodeError::WrongPassphrase), "{e:?}");
    let e = SigningKey::from_pem(&fs::read(keys().join("genrsa-enc.pem")).unwrap(), Some(b"")).unwrap_err();
    assert!(matches!(e, AuthenticodeError::WrongPassphrase), "{e:?}");

    let legacy = fs::read(keys().join("signer-legacy.pem")).unwrap();
    let e = SigningKey::from_pem(&legacy, Some(PASSPHRASE)).unwrap_err();
    assert!(matches!(e, AuthenticodeError::LegacyEncryptedKey), "{e:?}");
    assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");

    let e = SigningKey::from_pem(&fs::read(keys().join("ec-key.pem")).unwrap(), None).unwrap_err();
    assert!(matches!(e, AuthenticodeError::KeyNotRsa { .. }), "{e:?}");

    // Base64 damaged in the middle of the block.
    let mut damaged = fs::read_to_string(keys().join("signer-key.pem")).unwrap();
    damaged.replace_range(100..104, "!!!!");
    let e = SigningKey::from_pem(damaged.as_bytes(), None).unwrap_err();
    assert!(matches!(e, AuthenticodeError::BadPem { .. }), "{e:?}");
    // Valid PEM around bytes that are no key.
    let junk = "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgc=\n-----END PRIVATE KEY-----\n";
    let e = SigningKey::from_pem(junk.as_bytes(), None).unwrap_err();
    assert!(matches!(e, AuthenticodeError::BadKey { .. }), "{e:?}");
    let e = SigningKey::from_pem(b"not a key at all", None).unwrap_err();
    assert!(matches!(e, AuthenticodeError::NoPemBlock { .. }), "{e:?}");
    assert_eq!(e.to_string(), "the private key is not PEM: no `-----BEGIN PRIVATE KEY-----` block was found");

    let e = key("other-key.pem").check_matches(&cert("signer.pem")).unwrap_err();
    assert!(matches!(e, AuthenticodeError::KeyMismatch { .. }), "{e:?}");
    assert_eq!(e.to_string(), "the private key does not match the certificate `CN=Clay Test Signer, O=Clay`");
    // Signing checks it too, before touching the image.
    let mut image = Cursor::new(stub());
    let e = sign(&mut image, &key("other-key.pem"), &cert("signer.pem"), &SignOptions::default()).unwrap_err();
    assert!(matches!(e, AuthenticodeError::KeyMismatch { .. }), "{e:?}");
    assert!(image.into_inner() == stub());
}

#[test]
fn loads_certificates_and_checks_their_dates() {
    let pem = cert("signer.pem");
    let der = Certificate::from_der(&fs::read(keys().join("signer.der")).unwrap()).unwrap();
    assert_eq!(pem, der);
    assert_eq!(Certificate::parse(&fs::read(keys().join("signer.der")).unwrap()).unwrap(), pem);
    assert_eq!(Certificate::parse(&fs::read(keys().join("signer.pem")).unwrap()).unwrap(), pem);
    assert_eq!(pem.subject(), "CN=Clay Test Signer, O=Clay");
    assert_eq!(pem.issuer(), pem.subject());
    let serial = sh_in(keys(), "openssl x509 -in signer.pem -noout -serial");
    assert_eq!(format!("serial={}", pem.serial()), serial.trim());
    assert_eq!(cert("leaf.pem").issuer(), "CN=Clay Test CA");

    pem.check_validity(SystemTime::now()).unwrap();
    let e = pem.check_validity(SystemTime::UNIX_EPOCH).unwrap_err();
    assert!(matches!(e, AuthenticodeError::NotYetValid { .. }), "{e:?}");
    let e = pem.check_validity(SystemTime::now() + Duration::from_secs(20 * 365 * 86400)).unwrap_err();
    assert!(matches!(e, AuthenticodeError::Expired { .. }), "{e:?}");

    let expired = cert("expired.pem");
    let e = expired.check_validity(SystemTime::now()).unwrap_err();
    let not_after =
        sh_in(keys(), "date -u -d \"$(openssl x509 -in expired.pem -noout -enddate | cut -d= -f2)\" '+%F %T'");
    assert_eq!(e.to_string(), format!("the certificate `CN=Clay Expired` expired on {} UTC", not_after.trim()));

    let e = Certificate::from_der(b"\x30\x03\x02\x01\x01").unwrap_err();
    assert!(matches!(e, AuthenticodeError::BadCertificate { .. }), "{e:?}");
    let e = Certificate::from_pem(&fs::read(keys().join("signer-key.pem")).unwrap()).unwrap_err();
    assert!(matches!(e, AuthenticodeError::NoPemBlock { .. }), "{e:?}");
    let chain = [fs::read(keys().join("leaf.pem")).unwrap(), fs::read(keys().join("ca.pem")).unwrap()].concat();
    let all = Certificate::all_from_pem(&chain).unwrap();
    assert_eq!(all, vec![cert("leaf.pem"), cert("ca.pem")]);
}

/// Our digest is the one osslsigncode computes, on an image sbsign signed (unaligned, with data after its
/// sections) and on Debian's signed kernel; and stripping the kernel's signature does not change it.
#[test]
fn digest_matches_osslsigncode() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("stub.efi"), stub()).unwrap();
    let signer = keys().join("signer");
    let (s, k) = (format!("{}.pem", signer.display()), format!("{}-key.pem", signer.display()));
    let (ok, out) = run(dir.path(), &["sbsign", "--key", &k, "--cert", &s, "--output", "stub.sbsign", "stub.efi"]);
    assert!(ok, "sbsign failed: {out}");
    assert_eq!(
        digest_of(&dir.path().join("stub.sbsign")),
        osslsigncode_digest(dir.path(), "stub.sbsign", "signer.pem")
    );

    let (signed, unsigned) = debian_kernel(dir.path());
    let debian = digest_of(&signed);
    assert_eq!(debian, osslsigncode_digest(dir.path(), "vmlinuz.debian", "signer.pem"));
    assert_eq!(digest_of(&unsigned), debian);
}

#[test]
fn signs_the_systemd_stub_as_sbverify_and_osslsigncode_expect() {
    let dir = tempfile::tempdir().unwrap();
    let original = stub();
    assert_ne!(original.len() % 8, 0, "the stub no longer needs padding; this test wants one that does");
    for name in ["a.efi", "b.efi", "sbsign.in"] {
        fs::write(dir.path().join(name), &original).unwrap();
    }
    let (key, signer) = (key("signer-key.pem"), cert("signer.pem"));
    sign_file(&dir.path().join("a.efi"), &key, &signer).unwrap();
    assert_oracles_accept(dir.path(), "a.efi", "signer.pem");

    // Deterministic: no signing time, PKCS#1 v1.5.
    sign_file(&dir.path().join("b.efi"), &key, &signer).unwrap();
    let signed = fs::read(dir.path().join("a.efi")).unwrap();
    assert!(signed == fs::read(dir.path().join("b.efi")).unwrap(), "two signatures of one image differ");

    // The layout: the image padded with zeros to 8 bytes, one WIN_CERTIFICATE as long as the table, which ends the
    // file; the image before it unchanged but for the two header fields.
    let info = clay_pe::read_sections(&signed).unwrap();
    let (offset, size) = info.certificate_table.unwrap();
    let (offset, size) = (offset as usize, size as usize);
    assert_eq!(offset, original.len().next_multiple_of(8));
    assert_eq!(offset + size, signed.len());
    assert!(signed[original.len()..offset].iter().all(|&b| b == 0));
    assert_eq!(le32(&signed, offset) as usize, size);
    assert_eq!(&signed[offset + 4..offset + 8], &[0x00, 0x02, 0x02, 0x00]);
    let checksum_at = usize::try_from(clay_pe::checksum_field_offset(&signed).unwrap()).unwrap();
    let mut sum = clay_pe::PeChecksum::new(checksum_at as u64);
    sum.update(&signed);
    assert_eq!(le32(&signed, checksum_at), sum.finish());
    let differing: Vec<usize> = (0..original.len()).filter(|&i| original[i] != signed[i]).collect();
    // CheckSum, and the Certificate Table entry 80 bytes after it in a PE32+ optional header.
    let changed =
        |i: &usize| (checksum_at..checksum_at + 4).contains(i) || (checksum_at + 80..checksum_at + 88).contains(i);
    assert!(!differing.is_empty() && differing.iter().all(changed), "{differing:?}");

    // Our SpcIndirectDataContent is byte for byte the one sbsign writes.
    let signer_path = keys().join("signer");
    let (s, k) = (format!("{}.pem", signer_path.display()), format!("{}-key.pem", signer_path.display()));
    let (ok, out) = run(dir.path(), &["sbsign", "--key", &k, "--cert", &s, "--output", "sbsign.efi", "sbsign.in"]);
    assert!(ok, "sbsign failed: {out}");
    assert_eq!(indirect_data_der(&dir.path().join("a.efi")), indirect_data_der(&dir.path().join("sbsign.efi")));

    verify(&mut File::open(dir.path().join("a.efi")).unwrap(), &signer).unwrap();
    let found = signatures(&mut File::open(dir.path().join("a.efi")).unwrap()).unwrap();
    assert_eq!(
        found,
        vec![SignatureInfo {
            subject: Some("CN=Clay Test Signer, O=Clay".to_owned()),
            issuer: "CN=Clay Test Signer, O=Clay".to_owned(),
            serial: signer.serial(),
            digest_algorithm: "SHA-256".to_owned(),
            digest_matches: Some(true),
        }]
    );
    assert!(signatures(&mut Cursor::new(original)).unwrap().is_empty());
}

/// Debian's kernel: our stripping is `sbattach --remove`'s, our signature of the stripped kernel satisfies both
/// oracles, and strip then sign gives the same bytes again.
#[test]
fn strips_and_resigns_the_debian_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let (signed, unsigned) = debian_kernel(dir.path());
    let found = signatures(&mut File::open(&signed).unwrap()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].subject.as_deref().is_some_and(|s| s.starts_with("CN=Debian Secure Boot Signer")), "{found:?}");
    assert_eq!(found[0].issuer, "CN=Debian Secure Boot CA");
    assert_eq!(found[0].digest_matches, Some(true));
    // Verifying against a certificate that is not Debian's fails, naming Debian's signer.
    let e = verify(&mut File::open(&signed).unwrap(), &cert("signer.pem")).unwrap_err();
    assert!(e.to_string().contains("Debian Secure Boot Signer"), "{e}");

    let ours = dir.path().join("vmlinuz.ours");
    fs::copy(&signed, &ours).unwrap();
    assert!(strip_signatures(&mut OpenOptions::new().read(true).write(true).open(&ours).unwrap()).unwrap());
    assert!(
        fs::read(&ours).unwrap() == fs::read(&unsigned).unwrap(),
        "strip_signatures differs from sbattach --remove"
    );
    assert!(!strip_signatures(&mut OpenOptions::new().read(true).write(true).open(&ours).unwrap()).unwrap());

    sign_file(&ours, &key("signer-key.pem"), &cert("signer.pem")).unwrap();
    assert_oracles_accept(dir.path(), "vmlinuz.ours", "signer.pem");
    verify(&mut File::open(&ours).unwrap(), &cert("signer.pem")).unwrap();
    let first = fs::read(&ours).unwrap();
    assert!(strip_signatures(&mut OpenOptions::new().read(true).write(true).open(&ours).unwrap()).unwrap());
    assert!(fs::read(&ours).unwrap() == fs::read(&unsigned).unwrap());
    sign_file(&ours, &key("signer-key.pem"), &cert("signer.pem")).unwrap();
    assert!(fs::read(&ours).unwrap() == first, "strip + re-sign did not give the same bytes");
}

/// A UKI as clay builds it (the stub, the kernel, a multi-megabyte initrd of odd length), signed while streamed.
#[test]
fn signs_a_uki() {
    let dir = tempfile::tempdir().unwrap();
    let (_, kernel) = debian_kernel(dir.path());
    let kernel = fs::read(kernel).unwrap();
    let initrd: Vec<u8> =
        (0u32..3 * 1024 * 1024 + 77).map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0]).collect();
    let cmdline = b"console=ttyS0";
    let mut sections = [
        clay_pe::SectionInput { name: ".linux", len: kernel.len() as u64, data: &mut kernel.as_slice() },
        clay_pe::SectionInput { name: ".cmdline", len: cmdline.len() as u64, data: &mut cmdline.as_slice() },
        clay_pe::SectionInput { name: ".initrd", len: initrd.len() as u64, data: &mut initrd.as_slice() },
    ];
    let mut uki = Vec::new();
    clay_pe::write_uki(&stub(), &mut sections, Some(0), &mut uki).unwrap();
    let path = dir.path().join("uki.efi");
    fs::write(&path, &uki).unwrap();
    sign_file(&path, &key("signer-key.pem"), &cert("signer.pem")).unwrap();
    assert_oracles_accept(dir.path(), "uki.efi", "signer.pem");
    assert_eq!(digest_of(&path), osslsigncode_digest(dir.path(), "uki.efi", "signer.pem"));
    verify(&mut File::open(&path).unwrap(), &cert("signer.pem")).unwrap();
    // Signing in memory gives the same bytes as signing the file.
    let mut cursor = Cursor::new(uki);
    sign(&mut cursor, &key("signer-key.pem"), &cert("signer.pem"), &SignOptions::default()).unwrap();
    assert!(cursor.into_inner() == fs::read(&path).unwrap());
}

#[test]
fn verify_accepts_sbsign_and_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("stub.efi"), stub()).unwrap();
    let signer_path = keys().join("signer");
    let (s, k) = (format!("{}.pem", signer_path.display()), format!("{}-key.pem", signer_path.display()));
    let (ok, out) = run(dir.path(), &["sbsign", "--key", &k, "--cert", &s, "--output", "sbsign.efi", "stub.efi"]);
    assert!(ok, "sbsign failed: {out}");
    let sbsigned = fs::read(dir.path().join("sbsign.efi")).unwrap();
    let signer = cert("signer.pem");
    verify(&mut Cursor::new(&sbsigned), &signer).unwrap();

    // One byte changed in .text.
    let text = clay_pe::read_sections(&sbsigned).unwrap().sections.into_iter().find(|s| s.name == ".text").unwrap();
    let mut tampered = sbsigned.clone();
    tampered[(text.raw_offset + text.raw_size / 2) as usize] ^= 1;
    let e = verify(&mut Cursor::new(&tampered), &signer).unwrap_err();
    assert!(matches!(e, AuthenticodeError::ImageDigestMismatch { number: 1 }), "{e:?}");
    assert_eq!(signatures(&mut Cursor::new(&tampered)).unwrap()[0].digest_matches, Some(false));
    fs::write(dir.path().join("tampered.efi"), &tampered).unwrap();
    let (ok, out) = run(dir.path(), &["sbverify", "--cert", &s, "tampered.efi"]);
    assert!(!ok, "sbverify accepted the tampered image too: {out}");

    // Another certificate.
    let e = verify(&mut Cursor::new(&sbsigned), &cert("other.pem")).unwrap_err();
    assert!(matches!(e, AuthenticodeError::NotSignedBy { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the image is not signed by `CN=Someone Else` or a certificate it issued; its signers: `CN=Clay Test Signer, \
         O=Clay`"
    );

    // Our own signature, damaged inside the signed content (the SpcIndirectDataContent's obsolete-link string) and
    // in the RSA signature, the last bytes of the PKCS#7 DER.
    let mut ours = Cursor::new(stub());
    sign(&mut ours, &key("signer-key.pem"), &signer, &SignOptions::default()).unwrap();
    let ours = ours.into_inner();
    let (offset, _) = clay_pe::read_sections(&ours).unwrap().certificate_table.unwrap();
    let der_at = offset as usize + 8;
    let obsolete: Vec<u8> = "Obsolete".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let at = der_at + ours[der_at..].windows(obsolete.len()).position(|w| w == obsolete).unwrap();
    let mut damaged = ours.clone();
    damaged[at] ^= 1;
    let e = verify(&mut Cursor::new(&damaged), &signer).unwrap_err();
    assert!(matches!(e, AuthenticodeError::ContentDigestMismatch { number: 1 }), "{e:?}");
    let der_len = 4 + usize::from(u16::from_be_bytes([ours[der_at + 2], ours[der_at + 3]]));
    let mut damaged = ours.clone();
    damaged[der_at + der_len - 1] ^= 1;
    let e = verify(&mut Cursor::new(&damaged), &signer).unwrap_err();
    assert!(matches!(e, AuthenticodeError::SignatureInvalid { number: 1, .. }), "{e:?}");

    let e = verify(&mut Cursor::new(stub()), &signer).unwrap_err();
    assert!(matches!(e, AuthenticodeError::Unsigned), "{e:?}");
}

/// A certificate issued by a CA: trusted through the CA (alone, or with the CA embedded), not through another.
#[test]
fn verifies_through_the_issuing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (leaf_key, leaf, ca) = (key("leaf-key.pem"), cert("leaf.pem"), cert("ca.pem"));
    let mut image = Cursor::new(stub());
    sign(&mut image, &leaf_key, &leaf, &SignOptions::default()).unwrap();
    let image = image.into_inner();
    verify(&mut Cursor::new(&image), &ca).unwrap();
    verify(&mut Cursor::new(&image), &leaf).unwrap();
    let e = verify(&mut Cursor::new(&image), &cert("other.pem")).unwrap_err();
    assert!(matches!(e, AuthenticodeError::NotSignedBy { .. }), "{e:?}");
    fs::write(dir.path().join("leaf.efi"), &image).unwrap();
    assert_oracles_accept(dir.path(), "leaf.efi", "ca.pem");

    let mut opts = SignOptions::default();
    opts.chain.push(ca.clone());
    let mut chained = Cursor::new(stub());
    sign(&mut chained, &leaf_key, &leaf, &opts).unwrap();
    let chained = chained.into_inner();
    assert!(chained.len() > image.len());
    verify(&mut Cursor::new(&chained), &ca).unwrap();
    let found = signatures(&mut Cursor::new(&chained)).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject.as_deref(), Some("CN=Clay Test Leaf"));
    assert_eq!(found[0].issuer, "CN=Clay Test CA");
}

#[test]
fn refuses_images_it_cannot_sign() {
    let (key, signer) = (key("signer-key.pem"), cert("signer.pem"));
    let try_sign = |bytes: Vec<u8>| {
        let mut image = Cursor::new(bytes);
        sign(&mut image, &key, &signer, &SignOptions::default())
    };
    let mut signed = Cursor::new(stub());
    sign(&mut signed, &key, &signer, &SignOptions::default()).unwrap();
    let e = try_sign(signed.into_inner()).unwrap_err();
    assert!(matches!(e, AuthenticodeError::AlreadySigned), "{e:?}");

    let e = try_sign(b"#!/bin/sh\necho not a PE image\n".to_vec()).unwrap_err();
    assert!(matches!(e, AuthenticodeError::Pe(clay_pe::PeError::MissingMz { .. })), "{e:?}");
    let e = try_sign(Vec::new()).unwrap_err();
    assert!(matches!(e, AuthenticodeError::Pe(clay_pe::PeError::Truncated { .. })), "{e:?}");
    let e = authenticode_digest(&mut Cursor::new(b"MZ".to_vec())).unwrap_err();
    assert!(matches!(e, AuthenticodeError::Pe(_)), "{e:?}");

    // The stub's sections: .text 0x400..0xc400, .reloc 0xc400..0xc600, .data from 0xc600, ...
    let original = stub();
    let reloc = section_header(&original, 1) + 20;
    assert_eq!(le32(&original, reloc), 0xc400, "the stub's layout changed; adjust this test");
    // Moving .reloc further leaves a hole where it was, before .data.
    let mut gap = original.clone();
    gap[reloc..reloc + 4].copy_from_slice(&0xc800u32.to_le_bytes());
    let e = try_sign(gap).unwrap_err();
    assert!(
        matches!(&e, AuthenticodeError::SectionGap { name, offset: 0xc600, expected: 0xc400, .. } if name == ".data"),
        "{e:?}"
    );
    let mut overlap = original.clone();
    overlap[reloc..reloc + 4].copy_from_slice(&0xc200u32.to_le_bytes());
    let e = try_sign(overlap).unwrap_err();
    assert!(matches!(&e, AuthenticodeError::SectionOverlap { name, .. } if name == ".reloc"), "{e:?}");
    assert!(
        e.to_string().starts_with("section `.reloc` starts at file offset 0xc200, inside the previous section"),
        "{e}"
    );
    let e = try_sign(original[..0x11000].to_vec()).unwrap_err();
    assert!(matches!(&e, AuthenticodeError::SectionBeyondEnd { name, .. } if name == ".sbat"), "{e:?}");
    // Nothing was written to an image that was refused.
    let mut image = Cursor::new(original[..0x11000].to_vec());
    assert!(sign(&mut image, &key, &signer, &SignOptions::default()).is_err());
    assert!(image.into_inner() == original[..0x11000]);
}

/// The detached signature for other crates (UEFI authenticated variables): openssl checks it against the data.
#[test]
fn detached_signatures_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"db\0\0 some EFI signature list bytes";
    let signature = pkcs7_sign_detached(data, &key("signer-key.pem"), &cert("signer.pem")).unwrap();
    assert_eq!(signature, pkcs7_sign_detached(data, &key("signer-key.pem"), &cert("signer.pem")).unwrap());
    fs::write(dir.path().join("data"), data).unwrap();
    fs::write(dir.path().join("other"), b"other bytes").unwrap();
    fs::write(dir.path().join("sig.p7"), &signature).unwrap();
    let ca = keys().join("signer.pem");
    let ca = ca.to_str().unwrap();
    let check = |content: &str| {
        run(
            dir.path(),
            &[
                "openssl",
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "sig.p7",
                "-content",
                content,
                "-CAfile",
                ca,
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        )
    };
    let (ok, out) = check("data");
    assert!(ok && out.contains("Verification successful"), "{out}");
    let (ok, out) = check("other");
    assert!(!ok, "openssl accepted the signature for other data: {out}");
    let e = pkcs7_sign_detached(data, &key("other-key.pem"), &cert("signer.pem")).unwrap_err();
    assert!(matches!(e, AuthenticodeError::KeyMismatch { .. }), "{e:?}");
}

/// Damage anywhere in the headers or the signature gives an error or a verdict, never a panic.
#[test]
fn never_panics_on_damaged_images() {
    let signer = cert("signer.pem");
    let mut signed = Cursor::new(stub());
    sign(&mut signed, &key("signer-key.pem"), &signer, &SignOptions::default()).unwrap();
    let signed = signed.into_inner();
    let (offset, _) = clay_pe::read_sections(&signed).unwrap().certificate_table.unwrap();
    let damaged_at = (0..0x400).chain(offset as usize..signed.len());
    for at in damaged_at {
        let mut damaged = signed.clone();
        damaged[at] ^= if at % 2 == 0 { 0xff } else { 0x01 };
        let _ = verify(&mut Cursor::new(&damaged), &signer);
        let _ = signatures(&mut Cursor::new(&damaged));
    }
    for len in (0..0x400).chain(offset as usize..signed.len()).step_by(7) {
        let _ = verify(&mut Cursor::new(&signed[..len]), &signer);
        let _ = signatures(&mut Cursor::new(&signed[..len]));
    }
}

/// Generated keys: openssl reads the key and the certificate, the certificate is self-signed and verifies, the
/// key matches it and round-trips through PEM, and an image signed with it passes sbverify with that certificate.
#[test]
fn generated_keys_sign_what_sbverify_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let (key, cert) = generate_self_signed("Clay \"test\", PK", 2048, now, Duration::from_secs(86_400 * 3650)).unwrap();
    assert_eq!(cert.subject(), "CN=Clay \\\"test\\\"\\, PK");
    key.check_matches(&cert).unwrap();
    cert.check_validity(now + Duration::from_secs(60)).unwrap();
    fs::write(dir.path().join("k.pem"), key.to_pkcs8_pem().unwrap()).unwrap();
    fs::write(dir.path().join("c.pem"), cert.to_pem().unwrap()).unwrap();
    let reloaded = SigningKey::from_pem(&fs::read(dir.path().join("k.pem")).unwrap(), None).unwrap();
    reloaded.check_matches(&Certificate::from_pem(&fs::read(dir.path().join("c.pem")).unwrap()).unwrap()).unwrap();
    let shown = sh_in(
        dir.path(),
        "openssl rsa -in k.pem -check -noout && openssl verify -CAfile c.pem c.pem && openssl x509 -in c.pem -noout -subject -ext basicConstraints",
    );
    assert!(shown.contains("c.pem: OK") && shown.contains("CA:TRUE"), "{shown}");
    // Two keys are never the same.
    let (_, other) = generate_self_signed("Clay PK", 2048, now, Duration::from_secs(60)).unwrap();
    assert_ne!(other.serial(), cert.serial());
    fs::write(dir.path().join("stub.efi"), stub()).unwrap();
    sign_file(&dir.path().join("stub.efi"), &key, &cert).unwrap();
    let (ok, out) = run(dir.path(), &["sbverify", "--cert", "c.pem", "stub.efi"]);
    assert!(ok, "sbverify refused a signature by a generated key: {out}");
    let signers = signer_certificates(&mut File::open(dir.path().join("stub.efi")).unwrap()).unwrap();
    assert_eq!(signers, vec![cert.clone()]);
    assert!(matches!(
        generate_self_signed("", 2048, now, Duration::from_secs(60)),
        Err(AuthenticodeError::KeyGeneration { .. })
    ));
}
