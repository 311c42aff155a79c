//! Format tests: round trips, error cases, a dump snapshot and a pinned digest; the reference tools as oracles are
//! in [`oracles`]. A missing tool or file fails the test, naming what to install.

mod oracles;

use sha2::{Digest, Sha256};

use super::*;
use crate::auth::bare_signed_data;

const TEMPLATE: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The owner GUID the efitools comparisons use.
const OWNER: &str = "c0ffee00-1234-4abc-8def-0123456789ab";
/// The timestamp the efitools comparisons use, as `sign-efi-sig-list -t` takes it.
const TIMESTAMP: &str = "2023-01-01 00:00:00";

fn owner() -> Guid {
    OWNER.parse().unwrap()
}

fn timestamp() -> EfiTime {
    EfiTime::utc(2023, 1, 1, 0, 0, 0).unwrap()
}

fn require_tool(tool: &str, install: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(found, "`{tool}` is needed for this test; {install}");
}

fn template() -> Vec<u8> {
    std::fs::read(TEMPLATE).unwrap_or_else(|e| panic!("{TEMPLATE} cannot be read ({e}); install the ovmf package"))
}

/// The DER ContentInfo (RFC 5652 §3) of type id-signedData around a bare SignedData, which `openssl cms -verify`
/// needs.
fn content_info(signed_data: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let len = content.len();
        let mut out = vec![tag];
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            let bytes = u32::try_from(len).unwrap().to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | u8::try_from(4 - skip).unwrap());
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }
    let oid = tlv(0x06, &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02]);
    let explicit = tlv(0xA0, signed_data);
    tlv(0x30, &[oid, explicit].concat())
}

// ---------------------------------------------------------------------------------------------------------------
// EFI_TIME

#[test]
fn unix_seconds_become_utc_calendar_times() {
    let cases: [(u64, &str); 6] = [
        (0, "1970-01-01 00:00:00"),
        (951_782_400, "2000-02-29 00:00:00"),
        (1_672_531_200, "2023-01-01 00:00:00"),
        (1_709_210_096, "2024-02-29 12:34:56"),
        (4_107_542_399, "2100-02-28 23:59:59"),
        (253_402_300_799, "9999-12-31 23:59:59"),
    ];
    for (seconds, text) in cases {
        let time = EfiTime::from_unix_seconds(seconds).unwrap();
        assert_eq!(time.to_string(), text, "{seconds}");
        time.check_authenticated().unwrap();
    }
    assert!(matches!(EfiTime::from_unix_seconds(253_402_300_800), Err(EfiVarsError::TimeOutOfRange { .. })));
}

#[test]
fn invalid_authenticated_timestamps_are_refused() {
    assert!(EfiTime::utc(2024, 2, 29, 0, 0, 0).is_ok());
    for (y, mo, d, h, mi, s) in
        [(2023, 2, 29, 0, 0, 0), (2023, 13, 1, 0, 0, 0), (1899, 1, 1, 0, 0, 0), (2023, 1, 1, 24, 0, 0)]
    {
        let err = EfiTime::utc(y, mo, d, h, mi, s).unwrap_err();
        assert!(matches!(err, EfiVarsError::BadTime { .. }), "{err}");
    }
    let with_zone = EfiTime { time_zone: 60, ..timestamp() };
    let err = AuthVariable::secure_boot(SecureBootVariable::Db, with_zone, Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the timestamp 2023-01-01 00:00:00 +01:00 is invalid: an authenticated variable's timestamp has \
         Nanosecond, TimeZone and Daylight zero"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Signature lists

#[test]
fn signature_lists_round_trip() {
    let lists = vec![
        SignatureList::x509(owner(), b"0\x03\x02\x01\x01"),
        SignatureList {
            signature_type: guids::CERT_SHA256,
            header: Vec::new(),
            signatures: vec![
                SignatureData { owner: owner(), data: vec![0xAA; 32] },
                SignatureData { owner: guids::GLOBAL_VARIABLE, data: vec![0xBB; 32] },
            ],
        },
        SignatureList::placeholder_dbx(owner()),
    ];
    let bytes = signature_lists_to_bytes(&lists).unwrap();
    assert_eq!(bytes.len(), (28 + 16 + 5) + (28 + 2 * 48) + (28 + 48));
    assert_eq!(parse_signature_lists(&bytes).unwrap(), lists);
    assert_eq!(lists[0].type_name(), "X509");
    assert_eq!(lists[2].type_name(), "SHA256");
    assert_eq!(
        hex(&lists[2].signatures[0].data),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "the placeholder is SHA-256 of nothing"
    );
    assert_eq!(parse_signature_lists(&[]).unwrap(), Vec::new());
}

#[test]
fn mixed_sizes_and_bad_lists_are_errors() {
    let mut list = SignatureList::x509(owner(), b"abc");
    list.signatures.push(SignatureData { owner: owner(), data: b"abcd".to_vec() });
    assert!(matches!(list.to_bytes(), Err(EfiVarsError::MixedSignatureSizes { first: 3, other: 4 })));

    let good = SignatureList::x509(owner(), b"certificate").to_bytes().unwrap();
    // Every truncation is an error, never a panic.
    for len in 1..good.len() {
        assert!(parse_signature_lists(&good[..len]).is_err(), "{len}");
    }
    let with_size = |field: usize, value: u32| {
        let mut bad = good.clone();
        bad[field..field + 4].copy_from_slice(&value.to_le_bytes());
        parse_signature_lists(&bad).unwrap_err().to_string()
    };
    assert_eq!(
        with_size(16, 0),
        "the signature list at offset 0 is invalid: its SignatureListSize 0 leaves no room for a 0-byte SignatureHeader"
    );
    assert_eq!(
        with_size(24, 8),
        "the signature list at offset 0 is invalid: its SignatureSize 8 is smaller than the owner GUID"
    );
    assert_eq!(
        with_size(24, 20),
        "the signature list at offset 0 is invalid: its 27 bytes of signatures are not a multiple of SignatureSize 20"
    );
    assert_eq!(with_size(16, 100), "the signature list at offset 0 needs 100 bytes but only 55 remain");
}

// ---------------------------------------------------------------------------------------------------------------
// Authenticated variables

#[test]
fn authenticated_variables_check_their_inputs() {
    let err = AuthVariable::new("", guids::GLOBAL_VARIABLE, SecureBootVariable::ATTRIBUTES, timestamp(), vec![]);
    assert!(matches!(err, Err(EfiVarsError::BadName { .. })));
    let err = AuthVariable::new("A\0B", guids::GLOBAL_VARIABLE, SecureBootVariable::ATTRIBUTES, timestamp(), vec![]);
    assert!(matches!(err, Err(EfiVarsError::BadName { .. })));
    let err = AuthVariable::new("Foo", guids::GLOBAL_VARIABLE, 7, timestamp(), vec![]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `Foo` lacks the EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS attribute (0x20) an \
         authenticated update needs"
    );
    let db = AuthVariable::secure_boot(SecureBootVariable::Db, timestamp(), vec![1, 2]).unwrap();
    assert_eq!((db.name(), db.guid(), db.attributes()), ("db", guids::IMAGE_SECURITY_DATABASE, 0x27));
    assert_eq!(db.clone().appending().attributes(), 0x67);
    assert_eq!(
        hex(&db.to_be_signed()),
        // "db" ‖ d719b2cb-3d3a-4596-a3bc-dad00e67656f ‖ 0x27 ‖ 2023-01-01 00:00:00 ‖ 01 02
        "64006200cbb219d73a3d9645a3bcdad00e67656f27000000e70701010000000000000000000000000102"
    );
}

#[test]
fn signed_data_is_stored_bare() {
    let bare = [0x30, 0x03, 0x02, 0x01, 0x01];
    assert_eq!(bare_signed_data(&bare).unwrap(), bare);
    assert_eq!(bare_signed_data(&content_info(&bare)).unwrap(), bare);
    let long = [&[0x30, 0x82, 0x01, 0x00][..], &[0u8; 256]].concat();
    assert_eq!(bare_signed_data(&content_info(&long)).unwrap(), long);
    for bad in [&[][..], &[0x04, 0x00], &[0x30, 0x05, 0x02], &[0x30, 0x80, 0x00, 0x00], &[0x30, 0x00, 0x00]] {
        assert!(matches!(bare_signed_data(bad), Err(EfiVarsError::NotSignedData(_))), "{bad:?}");
    }
    let mut other_type = content_info(&bare);
    other_type[12] = 0x01; // id-data instead of id-signedData
    assert!(matches!(bare_signed_data(&other_type), Err(EfiVarsError::NotSignedData(_))));

    let var = AuthVariable::secure_boot(SecureBootVariable::Kek, timestamp(), b"lists".to_vec()).unwrap();
    let file = var.auth_file(&content_info(&bare)).unwrap();
    let parsed = parse_auth_file(&file).unwrap();
    assert_eq!(parsed, AuthFile { timestamp: timestamp(), signed_data: &bare, data: b"lists" });
    // The closure form hands the signer exactly the bytes to be signed.
    let signed = var
        .signed_auth_file(|tbs| {
            assert_eq!(tbs, var.to_be_signed());
            Ok::<_, EfiVarsError>(bare.to_vec())
        })
        .unwrap();
    assert_eq!(signed, file);
    for len in 0..file.len() - b"lists".len() {
        assert!(parse_auth_file(&file[..len]).is_err(), "{len}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Variable stores

fn synthetic_keys() -> SecureBootKeys {
    // Not real certificates: the store does not look inside them.
    SecureBootKeys::from_certificates(owner(), b"0\x01PK", b"0\x02KEK", b"0\x03db!").unwrap()
}

fn dump(store: &VarStore) -> String {
    store
        .variables()
        .iter()
        .map(|v| {
            format!(
                "{} {} {} {} {} bytes sha256:{}\n",
                v.name,
                v.guid,
                attributes::describe(v.attributes),
                v.timestamp,
                v.data.len(),
                &hex(&Sha256::digest(&v.data))[..16]
            )
        })
        .collect()
}

#[test]
fn empty_store_writes_back_the_template() {
    let template = template();
    let store = VarStore::parse(&template).unwrap();
    assert!(store.variables().is_empty());
    assert_eq!(store.capacity(), 0x40000 - 0x64);
    assert_eq!(store.used(), 0);
    assert!(store.to_bytes().unwrap() == template, "an empty store is the template, byte for byte");
    // The 2 MiB flash layout's 128 KiB store (older distributions' OVMF_VARS.fd) too.
    let small = std::fs::read("/usr/share/OVMF/OVMF_VARS.fd").unwrap();
    let store = VarStore::parse(&small).unwrap();
    assert_eq!(store.capacity(), 0xe000 - 0x64);
    assert!(store.to_bytes().unwrap() == small);
}

#[test]
fn enrolled_store_round_trips_deterministically() {
    let template = template();
    let mut store = VarStore::parse(&template).unwrap();
    store.enroll_secure_boot(&synthetic_keys(), timestamp()).unwrap();
    let expected = "\
PK 8be4df61-93ca-11d2-aa0d-00e098032b8c NV+BS+RT+AT 2023-01-01 00:00:00 48 bytes sha256:06531b001bc82f20
KEK 8be4df61-93ca-11d2-aa0d-00e098032b8c NV+BS+RT+AT 2023-01-01 00:00:00 49 bytes sha256:8ebcce78b3b6a4c0
db d719b2cb-3d3a-4596-a3bc-dad00e67656f NV+BS+RT+AT 2023-01-01 00:00:00 49 bytes sha256:69d61e63d8c2365d
dbx d719b2cb-3d3a-4596-a3bc-dad00e67656f NV+BS+RT+AT 2023-01-01 00:00:00 76 bytes sha256:fbe7895db68920e1
SecureBootEnable f0a30bc7-af08-4556-99c4-001009c93a44 NV+BS 0000-00-00 00:00:00 1 bytes sha256:4bf5122f344554c5
CustomMode c076ec0c-7028-4399-a072-71ee5c448b9f NV+BS 0000-00-00 00:00:00 1 bytes sha256:6e340b9cffb37a98
";
    assert_eq!(dump(&store), expected);
    let bytes = store.to_bytes().unwrap();
    assert_eq!(bytes.len(), template.len());
    let reread = VarStore::parse(&bytes).unwrap();
    assert_eq!(reread.variables(), store.variables());
    assert_eq!(reread.to_bytes().unwrap(), bytes, "parse → to_bytes is the identity");
    // Same inputs, same bytes; and only the variable store changed.
    let mut again = VarStore::parse(&template).unwrap();
    assert_eq!(again.enroll_secure_boot(&synthetic_keys(), timestamp()).unwrap().to_bytes().unwrap(), bytes);
    assert_eq!(bytes[..0x64], template[..0x64], "firmware volume and variable store headers");
    assert_eq!(bytes[0x40000..], template[0x40000..], "event log, FTW working block and spare");
    // The records themselves, pinned: their layout must never change by accident.
    let records = &bytes[0x64..0x64 + store.used()];
    assert_eq!(store.used(), 676);
    assert_eq!(hex(&Sha256::digest(records)), "68ed503e56b187b8f3c9073b4a045ef59f33798a57af5aa42fed600c1fdd910b");
    // The first record, field by field.
    assert_eq!(
        hex(&bytes[0x64..0x64 + 60]),
        // StartId 0x55aa, State VAR_ADDED, Attributes 0x27, MonotonicCount 0, TimeStamp 2023-01-01, PubKeyIndex 0,
        // NameSize 6, DataSize 48, VendorGuid EFI_GLOBAL_VARIABLE.
        [
            "aa55",
            "3f",
            "00",
            "27000000",
            "0000000000000000",
            "e7070101000000000000000000000000",
            "00000000",
            "06000000",
            "30000000",
            "61dfe48bca93d211aa0d00e098032b8c"
        ]
        .concat()
    );
    assert_eq!(&bytes[0x64 + 60..0x64 + 66], b"P\0K\0\0\0");
}

#[test]
fn set_replaces_in_place_and_full_stores_are_refused() {
    let mut store = VarStore::parse(&template()).unwrap();
    let nv_bs = attributes::NON_VOLATILE | attributes::BOOTSERVICE_ACCESS;
    store.set(Variable::new("First", owner(), nv_bs, vec![1])).unwrap();
    store.set(Variable::new("Second", owner(), nv_bs, vec![2])).unwrap();
    store.set(Variable::new("First", owner(), nv_bs, vec![3, 3])).unwrap();
    store.set(Variable::new("First", guids::GLOBAL_VARIABLE, nv_bs, vec![4])).unwrap();
    let names: Vec<(&str, &[u8])> = store.variables().iter().map(|v| (v.name.as_str(), v.data.as_slice())).collect();
    assert_eq!(names, [("First", &[3, 3][..]), ("Second", &[2]), ("First", &[4])]);
    assert_eq!(store.remove("Second", owner()).unwrap().data, [2]);
    assert!(store.remove("Second", owner()).is_none());
    assert_eq!(store.get("First", guids::GLOBAL_VARIABLE).unwrap().data, [4]);
    assert!(matches!(store.set(Variable::new("", owner(), nv_bs, vec![])), Err(EfiVarsError::BadName { .. })));

    let capacity = store.capacity();
    store.set(Variable::new("Big", owner(), nv_bs, vec![0; capacity])).unwrap();
    let err = store.to_bytes().unwrap_err();
    assert!(matches!(err, EfiVarsError::StoreFull { available, .. } if available == capacity), "{err}");
}

#[test]
fn enrollment_checks_the_keys() {
    let mut keys = synthetic_keys();
    keys.pk =
        signature_lists_to_bytes(&[SignatureList::x509(owner(), b"0\x01a"), SignatureList::x509(owner(), b"0\x01bb")])
            .unwrap();
    let err = keys.variables(timestamp()).unwrap_err();
    assert_eq!(err.to_string(), "the PK for Secure Boot is invalid: it must hold exactly one X.509 certificate");
    let mut keys = synthetic_keys();
    keys.db = Vec::new();
    assert_eq!(
        keys.variables(timestamp()).unwrap_err().to_string(),
        "the db for Secure Boot is invalid: it holds no signature"
    );
    let mut keys = synthetic_keys();
    keys.kek = vec![1, 2, 3];
    let err = keys.variables(timestamp()).unwrap_err().to_string();
    assert!(err.starts_with("the KEK for Secure Boot is invalid: the signature list header at offset 0"), "{err}");
    let mut keys = synthetic_keys();
    keys.dbx = Some(SignatureList::sha256(owner(), [7; 32]).to_bytes().unwrap());
    let vars = keys.variables(timestamp()).unwrap();
    assert_eq!(vars[3].data(), keys.dbx.as_deref().unwrap());
}

#[test]
fn damaged_templates_are_refused() {
    let template = template();
    let damaged = |offset: usize, byte: u8| {
        let mut image = template.clone();
        image[offset] = byte;
        VarStore::parse(&image).unwrap_err().to_string()
    };
    assert_eq!(
        damaged(0x28, b'X'),
        "not an OVMF variable store: the image does not start with a firmware volume header (`_FVH`)"
    );
    assert_eq!(
        damaged(0x10, 0),
        "not an OVMF variable store: its firmware volume is of type fff12b00-7696-4c8b-a985-2747075b4f50 instead \
         of fff12b8d-7696-4c8b-a985-2747075b4f50 (gEfiSystemNvDataFvGuid)"
    );
    assert_eq!(damaged(0x2c, 0), "the firmware volume header checksum is 0xff01 where it must be 0");
    assert_eq!(
        damaged(0x48, 0),
        "not an OVMF variable store: its variable store has signature aaf32c00-947b-439a-a180-2e144ec37792 instead \
         of aaf32c78-947b-439a-a180-2e144ec37792 (gEfiAuthenticatedVariableGuid)"
    );
    assert_eq!(
        damaged(0x5c, 0),
        "not an OVMF variable store: its variable store is not formatted and healthy (format 0x00, state 0xfe)"
    );
    assert_eq!(
        damaged(0x41010, 0),
        "the fault-tolerant write working block at offset 266240 has CRC32 0x642caf00 but its bytes give 0x642caf2c"
    );
    for len in [0, 20, 0x48, 0x60, 0x40000] {
        assert!(VarStore::parse(&template[..len]).is_err(), "{len}");
    }
    // A variable whose sizes run past the store.
    let mut store = VarStore::parse(&template).unwrap();
    store.set(Variable::new("X", owner(), 3, vec![9; 8])).unwrap();
    let mut image = store.to_bytes().unwrap();
    image[0x64 + 40..0x64 + 44].copy_from_slice(&0x10_0000u32.to_le_bytes());
    assert_eq!(
        VarStore::parse(&image).unwrap_err().to_string(),
        "the variable at offset 100 runs past the end of the variable store at 262144"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
