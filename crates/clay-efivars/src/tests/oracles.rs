//! The reference tools as oracles: `cert-to-efi-sig-list` and `sign-efi-sig-list` (efitools), `openssl`, and
//! `virt-fw-vars` (virt-firmware, `pip install virt-firmware`). A missing tool fails the test, naming what to
//! install.

use std::path::Path;

use clay_testkit::sh_in;

use super::{content_info, hex, owner, require_tool, template, timestamp, OWNER, TEMPLATE, TIMESTAMP};
use crate::*;

/// Self-signed RSA-2048 certificates and keys `PK`, `KEK` and `db` (`NAME.crt` PEM, `NAME.der`, `NAME.key`) in
/// `dir`, made by the openssl CLI.
fn make_keys(dir: &Path) {
    require_tool("openssl", "install the openssl package");
    sh_in(
        dir,
        r#"for name in PK KEK db; do
             openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=clay-efivars test $name/" \
                 -keyout $name.key -out $name.crt 2>/dev/null
             openssl x509 -in $name.crt -outform DER -out $name.der
           done"#,
    );
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

/// Signs `data` with `openssl cms` (detached, binary, SHA-256, no signed attributes) with `signer`'s key; returns
/// the DER ContentInfo openssl writes.
fn cms_sign(dir: &Path, signer: &str, data: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("tbs.bin"), data).unwrap();
    sh_in(
        dir,
        &format!(
            "openssl cms -sign -binary -noattr -md sha256 -in tbs.bin -signer {signer}.crt -inkey {signer}.key \
             -outform DER -out sig.der"
        ),
    );
    read(dir, "sig.der")
}

/// `cert-to-efi-sig-list -g OWNER` on a certificate the openssl CLI made writes exactly our bytes.
#[test]
fn x509_list_matches_cert_to_efi_sig_list() {
    require_tool("cert-to-efi-sig-list", "install the efitools package");
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    for name in ["PK", "KEK", "db"] {
        sh_in(dir.path(), &format!("cert-to-efi-sig-list -g {OWNER} {name}.crt {name}.esl"));
        let der = read(dir.path(), &format!("{name}.der"));
        let ours = SignatureList::x509(owner(), &der).to_bytes().unwrap();
        assert_eq!(ours, read(dir.path(), &format!("{name}.esl")), "{name}.esl");
        let parsed = parse_signature_lists(&ours).unwrap();
        assert_eq!(parsed, vec![SignatureList::x509(owner(), &der)]);
    }
}

#[test]
fn pem_and_der_certificates_give_the_same_der() {
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    let der = read(dir.path(), "PK.der");
    assert_eq!(certificate_der(&read(dir.path(), "PK.crt")).unwrap(), der);
    assert_eq!(certificate_der(&der).unwrap(), der);
    // A PEM file with text before the block, as `openssl x509 -text` writes it.
    let noisy = [b"Certificate:\n  junk\n".as_slice(), &read(dir.path(), "PK.crt")].concat();
    assert_eq!(certificate_der(&noisy).unwrap(), der);
    for (bad, message) in [
        (&b"hello"[..], "the certificate is neither DER nor a PEM `CERTIFICATE` block: no `BEGIN CERTIFICATE` line"),
        (
            b"-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----\n",
            "the certificate is neither DER nor a PEM `CERTIFICATE` block: its base64 is invalid",
        ),
    ] {
        assert_eq!(certificate_der(bad).unwrap_err().to_string(), message);
    }
}

/// For PK (signed by PK), KEK (signed by PK) and db (signed by KEK): our bytes to be signed are those of
/// `sign-efi-sig-list -o`; with a signature from `openssl smime` (the same PKCS#7 API efitools uses, and RSA
/// PKCS#1 v1.5 signatures are deterministic) our `.auth` file is byte-identical to `sign-efi-sig-list`'s; with one
/// from `openssl cms` everything but the PKCS#7 blob is; and the stored SignedData verifies with
/// `openssl cms -verify` against the data, and fails against altered data.
#[test]
fn auth_files_match_sign_efi_sig_list() {
    require_tool("sign-efi-sig-list", "install the efitools package");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_keys(d);
    for (variable, signer) in
        [(SecureBootVariable::Pk, "PK"), (SecureBootVariable::Kek, "PK"), (SecureBootVariable::Db, "KEK")]
    {
        let name = variable.name();
        assert_eq!(variable.signed_by().name(), signer);
        let esl = SignatureList::x509(owner(), &read(d, &format!("{name}.der"))).to_bytes().unwrap();
        std::fs::write(d.join(format!("{name}.esl")), &esl).unwrap();
        sh_in(
            d,
            &format!(
                "sign-efi-sig-list -t '{TIMESTAMP}' -o {name} {name}.esl {name}.tbs >/dev/null
                 sign-efi-sig-list -t '{TIMESTAMP}' -k {signer}.key -c {signer}.crt {name} {name}.esl {name}.auth \
                     >/dev/null"
            ),
        );
        let reference = read(d, &format!("{name}.auth"));
        let var = AuthVariable::secure_boot(variable, timestamp(), esl.clone()).unwrap();
        assert_eq!(var.to_be_signed(), read(d, &format!("{name}.tbs")), "{name}: bytes to be signed");

        // openssl smime: byte-identical.
        let smime = var
            .signed_auth_file(|tbs| {
                std::fs::write(d.join("tbs.bin"), tbs).unwrap();
                sh_in(
                    d,
                    &format!(
                        "openssl smime -sign -binary -noattr -md sha256 -in tbs.bin -signer {signer}.crt \
                         -inkey {signer}.key -outform DER -out smime.der"
                    ),
                );
                Ok::<_, EfiVarsError>(read(d, "smime.der"))
            })
            .unwrap();
        assert_eq!(hex(&smime), hex(&reference), "{name}.auth");

        // openssl cms: the same structure around a different PKCS#7 encoding.
        let ours = var.auth_file(&cms_sign(d, signer, &var.to_be_signed())).unwrap();
        let (a, b) = (parse_auth_file(&ours).unwrap(), parse_auth_file(&reference).unwrap());
        assert_eq!((a.timestamp, a.data), (b.timestamp, b.data), "{name}");
        assert_eq!(a.data, esl);
        assert_eq!(
            ours[..20],
            [&reference[..16], &u32::try_from(24 + a.signed_data.len()).unwrap().to_le_bytes()[..]].concat()
        );
        assert_eq!(ours[20..40], reference[20..40], "{name}: WIN_CERTIFICATE_UEFI_GUID");
        assert_eq!(u32::from_le_bytes(reference[16..20].try_into().unwrap()) as usize, 24 + b.signed_data.len());

        // Both signatures verify against the data they sign, and only against it.
        for (label, signed_data) in [("ours", a.signed_data), ("sign-efi-sig-list", b.signed_data)] {
            std::fs::write(d.join("p7.der"), content_info(signed_data)).unwrap();
            std::fs::write(d.join("tbs.bin"), var.to_be_signed()).unwrap();
            sh_in(
                d,
                &format!(
                    "openssl cms -verify -binary -inform DER -in p7.der -content tbs.bin -noverify \
                     -certfile {signer}.crt -out /dev/null 2>verify.log || {{ cat verify.log; exit 1; }}
                     printf x >> tbs.bin
                     if openssl cms -verify -binary -inform DER -in p7.der -content tbs.bin -noverify \
                         -out /dev/null 2>/dev/null; then echo '{label}: altered data verified'; exit 1; fi"
                ),
            );
        }
    }
}

/// A store OVMF itself wrote (Debian's `OVMF_VARS_4M.ms.fd`, with Microsoft's keys enrolled by booting): we read
/// the same variables as virt-fw-vars, and rewriting it keeps them.
#[test]
fn used_store_reads_like_virt_fw_vars() {
    let path = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
    let image = std::fs::read(path).unwrap_or_else(|e| panic!("{path} cannot be read ({e}); install the ovmf package"));
    let store = VarStore::parse(&image).unwrap();
    assert_eq!(virt_fw_vars_json(Path::new(path)), ours_as_json(&store));
    let rewritten = VarStore::parse(&store.to_bytes().unwrap()).unwrap();
    assert_eq!(rewritten.variables(), store.variables());
}

/// virt-fw-vars reads our enrolled store: `--print --verbose` names PK, KEK and db with our certificates' subjects,
/// Secure Boot on and custom mode off, and its JSON dump has exactly our reader's variables. And a store
/// `virt-fw-vars --set-pk --add-kek --add-db --secure-boot` makes holds the same variables as ours, timestamps
/// and the dbx owner aside.
#[test]
fn enrolled_store_reads_like_virt_fw_vars() {
    require_tool("virt-fw-vars", "install it with `pip install virt-firmware`");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_keys(d);
    let keys = SecureBootKeys::from_certificates(owner(), &read(d, "PK.der"), &read(d, "KEK.der"), &read(d, "db.der"))
        .unwrap();
    let mut store = VarStore::parse(&template()).unwrap();
    store.enroll_secure_boot(&keys, timestamp()).unwrap();
    let ours = d.join("ours.fd");
    std::fs::write(&ours, store.to_bytes().unwrap()).unwrap();

    let printed = sh_in(d, "virt-fw-vars --input ours.fd --print --verbose 2>/dev/null");
    for expected in [
        "name=PK guid=guid:EfiGlobalVariable size=",
        "subject CN=clay-efivars test PK",
        "name=KEK guid=guid:EfiGlobalVariable size=",
        "subject CN=clay-efivars test KEK",
        "name=db guid=guid:EfiImageSecurityDatabase size=",
        "subject CN=clay-efivars test db",
        "name=dbx guid=guid:EfiImageSecurityDatabase size=76 time=2023-01-01 00:00:00",
        "name=SecureBootEnable guid=guid:EfiSecureBootEnableDisable size=1\n  bool: ON",
        "name=CustomMode guid=guid:EfiCustomModeEnable size=1\n  bool: off",
    ] {
        assert!(printed.contains(expected), "virt-fw-vars does not print `{expected}`:\n{printed}");
    }
    assert_eq!(virt_fw_vars_json(&ours), ours_as_json(&store));

    sh_in(
        d,
        &format!(
            "virt-fw-vars --input {TEMPLATE} --set-pk {OWNER} PK.crt --add-kek {OWNER} KEK.crt \
             --add-db {OWNER} db.crt --secure-boot --output theirs.fd 2>/dev/null"
        ),
    );
    let theirs = VarStore::parse(&read(d, "theirs.fd")).unwrap();
    let comparable = |store: &VarStore| {
        let mut vars: Vec<(String, Guid, u32, Vec<u8>)> = store
            .variables()
            .iter()
            .filter(|v| v.name != "dbx")
            .map(|v| (v.name.clone(), v.guid, v.attributes, v.data.clone()))
            .collect();
        vars.sort();
        vars
    };
    assert_eq!(comparable(&theirs), comparable(&store));
    let (a, b) = (theirs.get("dbx", guids::IMAGE_SECURITY_DATABASE), store.get("dbx", guids::IMAGE_SECURITY_DATABASE));
    let dbx_hashes = |v: Option<&Variable>| -> Vec<Vec<u8>> {
        parse_signature_lists(&v.unwrap().data)
            .unwrap()
            .into_iter()
            .flat_map(|l| l.signatures)
            .map(|s| s.data)
            .collect()
    };
    assert_eq!(dbx_hashes(a), dbx_hashes(b), "both write the same placeholder dbx hash");
}

/// `virt-fw-vars --output-json -` of `path`, each variable as `name guid attr data-hex time-hex`, sorted.
fn virt_fw_vars_json(path: &Path) -> Vec<String> {
    require_tool("virt-fw-vars", "install it with `pip install virt-firmware`");
    let json = sh_in(Path::new("/"), &format!("virt-fw-vars --input '{}' --output-json - 2>/dev/null", path.display()));
    // The dump is an array of flat objects; its few fields are read without a JSON dependency.
    let field = |object: &str, key: &str| -> String {
        let pattern = format!("\"{key}\": ");
        object.find(&pattern).map_or_else(String::new, |at| {
            let rest = &object[at + pattern.len()..];
            let end = rest.find([',', '\n']).unwrap_or(rest.len());
            rest[..end].trim().trim_matches('"').to_owned()
        })
    };
    let mut vars: Vec<String> = json
        .split("\n        {")
        .skip(1)
        .map(|object| {
            let time = field(object, "time");
            format!(
                "{} {} {} {} {}",
                field(object, "name"),
                field(object, "guid"),
                field(object, "attr"),
                field(object, "data"),
                if time.is_empty() { "0".repeat(32) } else { time }
            )
        })
        .collect();
    vars.sort();
    vars
}

fn ours_as_json(store: &VarStore) -> Vec<String> {
    let mut vars: Vec<String> = store
        .variables()
        .iter()
        .map(|v| {
            let time = zerocopy::IntoBytes::as_bytes(&v.timestamp.to_raw()).to_vec();
            format!("{} {} {} {} {}", v.name, v.guid, v.attributes, hex(&v.data), hex(&time))
        })
        .collect();
    vars.sort();
    vars
}
