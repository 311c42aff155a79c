//! UEFI Secure Boot variables: EFI_SIGNATURE_LISTs (UEFI 2.10 §32.4.1), time-based authenticated variable updates
//! (`.auth` files, UEFI 2.10 §8.2.2) and OVMF variable stores with the user's PK, KEK and db enrolled.
//!
//! Pure and deterministic: bytes in, bytes out, no clock (timestamps are parameters) and no signing (the PKCS#7
//! signer is the caller's, see [`AuthVariable::signed_auth_file`]).
//!
//! ```no_run
//! # fn demo(pk: &[u8], kek: &[u8], db: &[u8], template: &[u8]) -> Result<Vec<u8>, clay_efivars::EfiVarsError> {
//! use clay_efivars::{EfiTime, Guid, SecureBootKeys, VarStore};
//! let owner: Guid = Guid::from_u128(0x2c1a4d80_0e5f_4c3b_9b39_4d5a3f0e1c27);
//! let keys = SecureBootKeys::from_certificates(owner, pk, kek, db)?;
//! let mut store = VarStore::parse(template)?;
//! store.enroll_secure_boot(&keys, EfiTime::from_unix_seconds(1_700_000_000)?)?;
//! store.to_bytes()
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod cert;
mod enroll;
mod error;
mod ondisk;
mod siglist;
mod time;
mod varstore;

pub use auth::{parse_auth_file, AuthFile, AuthVariable, SecureBootVariable};
pub use cert::certificate_der;
pub use clay_gpt::Guid;
pub use enroll::SecureBootKeys;
pub use error::{EfiVarsError, Result};
pub use siglist::{parse_signature_lists, signature_lists_to_bytes, SignatureData, SignatureList};
pub use time::EfiTime;
pub use varstore::{VarStore, Variable};

/// EFI_VARIABLE_* attribute bits (UEFI 2.10 §8.2, GetVariable()).
pub mod attributes {
    pub const NON_VOLATILE: u32 = 0x0000_0001;
    pub const BOOTSERVICE_ACCESS: u32 = 0x0000_0002;
    pub const RUNTIME_ACCESS: u32 = 0x0000_0004;
    pub const HARDWARE_ERROR_RECORD: u32 = 0x0000_0008;
    /// Deprecated count-based authentication (UEFI 2.10 §8.2.1).
    pub const AUTHENTICATED_WRITE_ACCESS: u32 = 0x0000_0010;
    pub const TIME_BASED_AUTHENTICATED_WRITE_ACCESS: u32 = 0x0000_0020;
    pub const APPEND_WRITE: u32 = 0x0000_0040;

    /// `NV+BS+RT+AT`-style text for the set bits, e.g. for `clay inspect`.
    pub fn describe(attributes: u32) -> String {
        const NAMES: [(u32, &str); 7] = [
            (NON_VOLATILE, "NV"),
            (BOOTSERVICE_ACCESS, "BS"),
            (RUNTIME_ACCESS, "RT"),
            (HARDWARE_ERROR_RECORD, "HR"),
            (AUTHENTICATED_WRITE_ACCESS, "AW"),
            (TIME_BASED_AUTHENTICATED_WRITE_ACCESS, "AT"),
            (APPEND_WRITE, "AP"),
        ];
        let mut parts: Vec<String> =
            NAMES.iter().filter(|(bit, _)| attributes & bit != 0).map(|(_, name)| (*name).to_owned()).collect();
        let unknown = NAMES.iter().fold(attributes, |rest, (bit, _)| rest & !bit);
        if unknown != 0 {
            parts.push(format!("{unknown:#x}"));
        }
        parts.join("+")
    }
}

/// The GUIDs and names this crate uses.
pub mod guids {
    use clay_gpt::Guid;

    /// UEFI 2.10 §3.3: EFI_GLOBAL_VARIABLE, the vendor of PK and KEK.
    pub const GLOBAL_VARIABLE: Guid = Guid::from_u128(0x8be4df61_93ca_11d2_aa0d_00e098032b8c);
    /// UEFI 2.10 §32.6.1: EFI_IMAGE_SECURITY_DATABASE_GUID, the vendor of db and dbx.
    pub const IMAGE_SECURITY_DATABASE: Guid = Guid::from_u128(0xd719b2cb_3d3a_4596_a3bc_dad00e67656f);
    /// UEFI 2.10 §32.4.1: EFI_CERT_X509_GUID, a DER X.509 certificate.
    pub const CERT_X509: Guid = Guid::from_u128(0xa5c059a1_94e4_4aa7_87b5_ab155c2bf072);
    /// UEFI 2.10 §32.4.1: EFI_CERT_SHA256_GUID, a SHA-256 digest.
    pub const CERT_SHA256: Guid = Guid::from_u128(0xc1c41626_504c_4092_aca9_41f936934328);
    /// UEFI 2.10 §32.2.4: EFI_CERT_TYPE_PKCS7_GUID, the CertType of EFI_VARIABLE_AUTHENTICATION_2.
    pub const CERT_TYPE_PKCS7: Guid = Guid::from_u128(0x4aafd29d_68df_49ee_8aa9_347d375665a7);
    /// EDK II SecurityPkg: gEfiSecureBootEnableDisableGuid, the vendor of [`SECURE_BOOT_ENABLE_NAME`].
    pub const SECURE_BOOT_ENABLE_DISABLE: Guid = Guid::from_u128(0xf0a30bc7_af08_4556_99c4_001009c93a44);
    /// EDK II SecurityPkg: gEfiCustomModeEnableGuid, the vendor of [`CUSTOM_MODE_NAME`].
    pub const CUSTOM_MODE_ENABLE: Guid = Guid::from_u128(0xc076ec0c_7028_4399_a072_71ee5c448b9f);
    /// EDK II MdeModulePkg: gEfiSystemNvDataFvGuid, the FileSystemGuid of a variable store firmware volume.
    pub const SYSTEM_NV_DATA_FV: Guid = Guid::from_u128(0xfff12b8d_7696_4c8b_a985_2747075b4f50);
    /// EDK II MdeModulePkg: gEfiAuthenticatedVariableGuid, the signature of a store of authenticated variables.
    pub const AUTHENTICATED_VARIABLE: Guid = Guid::from_u128(0xaaf32c78_947b_439a_a180_2e144ec37792);
    /// EDK II MdeModulePkg: gEdkiiWorkingBlockSignatureGuid, the signature of the FTW working block.
    pub const FTW_WORKING_BLOCK: Guid = Guid::from_u128(0x9e58292b_7c68_497d_a0ce_6500fd9f1b95);

    /// EDK II: EFI_SECURE_BOOT_ENABLE_NAME; 1 byte, 1 turns Secure Boot on while a PK is enrolled.
    pub const SECURE_BOOT_ENABLE_NAME: &str = "SecureBootEnable";
    /// EDK II: EFI_CUSTOM_MODE_NAME; 1 byte, 0 (standard mode) lets only signed updates change the keys.
    pub const CUSTOM_MODE_NAME: &str = "CustomMode";

    /// A short name for a signature type GUID of UEFI 2.10 §32.4.1 that this crate knows.
    pub fn signature_type_name(guid: Guid) -> Option<&'static str> {
        match guid {
            CERT_X509 => Some("X509"),
            CERT_SHA256 => Some("SHA256"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
