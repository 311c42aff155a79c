//! Enrolling Secure Boot keys into a variable store, so OVMF boots with Secure Boot enforcing.
//!
//! What EDK II needs (SecurityPkg AuthVariableLib, AuthVariableLibInitialize, run at every boot): PK present puts
//! the platform in user mode; SecureBootEnable (gEfiSecureBootEnableDisableGuid) = 1 in user mode makes it set
//! the volatile `SecureBoot` variable to 1, and DxeImageVerificationLib then checks every image it loads against
//! db and dbx. It creates SecureBootEnable itself when PK exists and SecureBootEnable does not, and (re)creates
//! CustomMode = 0, `certdb`, `VendorKeysNv` and the volatile SetupMode, SecureBoot and SignatureSupport; we still
//! write SecureBootEnable = 1 and CustomMode = 0 explicitly, as `virt-fw-vars --secure-boot` does, so the store
//! says what it means before the first boot. A stored variable is trusted as it is (only SetVariable() checks
//! signatures), so PK, KEK and db are written directly, each with the time-based authenticated attributes and
//! the enrollment timestamp that later `.auth` updates must exceed.

use clay_gpt::Guid;

use crate::siglist::{parse_signature_lists, signature_lists_to_bytes, SignatureList};
use crate::{attributes, guids, AuthVariable, EfiTime, EfiVarsError, Result, SecureBootVariable, VarStore, Variable};

/// EDK II SecureBootConfigDxe / AuthVariableLib: SECURE_BOOT_ENABLE.
const SECURE_BOOT_ENABLE: u8 = 1;
/// EDK II AuthVariableLib: STANDARD_SECURE_BOOT_MODE (CustomMode off: only signed updates change the keys).
const STANDARD_SECURE_BOOT_MODE: u8 = 0;

/// The keys to enroll, each the data of its variable: one or more serialized EFI_SIGNATURE_LISTs (`.esl`
/// contents, or [`SignatureList::to_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureBootKeys {
    /// Exactly one X.509 certificate.
    pub pk: Vec<u8>,
    pub kek: Vec<u8>,
    pub db: Vec<u8>,
    /// Revocations; `None` writes [`SignatureList::placeholder_dbx`] owned by PK's owner.
    pub dbx: Option<Vec<u8>>,
}

impl SecureBootKeys {
    /// PK, KEK and db each holding one certificate (DER), all owned by `owner`, and the placeholder dbx.
    pub fn from_certificates(owner: Guid, pk: &[u8], kek: &[u8], db: &[u8]) -> Result<SecureBootKeys> {
        let esl = |der: &[u8]| SignatureList::x509(owner, der).to_bytes();
        Ok(SecureBootKeys { pk: esl(pk)?, kek: esl(kek)?, db: esl(db)?, dbx: None })
    }

    /// The four variables, checked: every value must parse as signature lists, PK must hold exactly one X.509
    /// certificate, KEK and db at least one signature.
    pub fn variables(&self, timestamp: EfiTime) -> Result<Vec<AuthVariable>> {
        let pk = check("PK", &self.pk)?;
        let pk_owner = match pk.as_slice() {
            [list] if list.signature_type == guids::CERT_X509 && list.signatures.len() == 1 => list.signatures[0].owner,
            _ => {
                return Err(EfiVarsError::BadKeys {
                    which: "PK",
                    reason: "it must hold exactly one X.509 certificate".into(),
                })
            }
        };
        for (which, value) in [("KEK", &self.kek), ("db", &self.db)] {
            if check(which, value)?.iter().all(|list| list.signatures.is_empty()) {
                return Err(EfiVarsError::BadKeys { which, reason: "it holds no signature".into() });
            }
        }
        let dbx = match &self.dbx {
            Some(dbx) => {
                check("dbx", dbx)?;
                dbx.clone()
            }
            None => signature_lists_to_bytes(&[SignatureList::placeholder_dbx(pk_owner)])?,
        };
        [
            (SecureBootVariable::Pk, self.pk.clone()),
            (SecureBootVariable::Kek, self.kek.clone()),
            (SecureBootVariable::Db, self.db.clone()),
            (SecureBootVariable::Dbx, dbx),
        ]
        .into_iter()
        .map(|(variable, data)| AuthVariable::secure_boot(variable, timestamp, data))
        .collect()
    }
}

fn check(which: &'static str, value: &[u8]) -> Result<Vec<SignatureList>> {
    parse_signature_lists(value).map_err(|e| EfiVarsError::BadKeys { which, reason: e.to_string() })
}

impl VarStore {
    /// Enrolls `keys` with `timestamp` (e.g. from `SOURCE_DATE_EPOCH`) and turns Secure Boot on for the next
    /// boot: sets PK, KEK, db, dbx, SecureBootEnable = 1 and CustomMode = 0, replacing any earlier values.
    pub fn enroll_secure_boot(&mut self, keys: &SecureBootKeys, timestamp: EfiTime) -> Result<&mut VarStore> {
        for variable in keys.variables(timestamp)? {
            self.set(Variable::from(&variable))?;
        }
        let nv_bs = attributes::NON_VOLATILE | attributes::BOOTSERVICE_ACCESS;
        self.set(Variable::new(
            guids::SECURE_BOOT_ENABLE_NAME,
            guids::SECURE_BOOT_ENABLE_DISABLE,
            nv_bs,
            vec![SECURE_BOOT_ENABLE],
        ))?;
        self.set(Variable::new(
            guids::CUSTOM_MODE_NAME,
            guids::CUSTOM_MODE_ENABLE,
            nv_bs,
            vec![STANDARD_SECURE_BOOT_MODE],
        ))
    }
}
