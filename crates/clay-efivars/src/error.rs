//! The one error type of this crate.

/// A failure while encoding or parsing signature lists, authenticated variables or a variable store.
#[derive(Debug, thiserror::Error)]
pub enum EfiVarsError {
    #[error("the {what} at offset {offset} needs {needed} bytes but only {available} remain")]
    Truncated { what: &'static str, offset: usize, needed: usize, available: usize },
    #[error("the signature list at offset {offset} is invalid: {reason}")]
    BadSignatureList { offset: usize, reason: String },
    #[error(
        "the signature list's entries have different sizes ({first} and {other} bytes), which one list cannot hold"
    )]
    MixedSignatureSizes { first: usize, other: usize },
    #[error("the {what} is {len} bytes, more than the 32-bit size field of its header can describe")]
    TooLarge { what: &'static str, len: usize },
    #[error("the variable name `{name}` is invalid: UEFI variable names are non-empty and contain no NUL character")]
    BadName { name: String },
    #[error("the variable name at offset {offset} is not NUL-terminated UTF-16")]
    BadStoredName { offset: usize },
    #[error("the timestamp {time} is invalid: {reason}")]
    BadTime { time: String, reason: &'static str },
    #[error("{seconds} seconds after 1970 is past the year 9999, the last year an EFI_TIME can hold")]
    TimeOutOfRange { seconds: u64 },
    #[error(
        "variable `{name}` lacks the EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS attribute (0x20) an \
         authenticated update needs"
    )]
    NotTimeBased { name: String },
    #[error("the signature is not a DER-encoded PKCS#7 SignedData: {0}")]
    NotSignedData(&'static str),
    #[error("the .auth file is invalid: {0}")]
    BadAuthFile(String),
    #[error("the certificate is neither DER nor a PEM `CERTIFICATE` block: {0}")]
    BadCertificate(&'static str),
    #[error("not an OVMF variable store: {0}")]
    NotVarStore(String),
    #[error("the firmware volume header checksum is {sum:#06x} where it must be 0")]
    BadFvChecksum { sum: u16 },
    #[error(
        "the fault-tolerant write working block at offset {offset} has CRC32 {stored:#010x} but its bytes give \
         {computed:#010x}"
    )]
    BadFtwCrc { offset: usize, stored: u32, computed: u32 },
    #[error("the variable at offset {offset} runs past the end of the variable store at {end}")]
    VariableOverrun { offset: usize, end: usize },
    #[error("the variables need {needed} bytes but the variable store holds only {available}")]
    StoreFull { needed: usize, available: usize },
    #[error("the {which} for Secure Boot is invalid: {reason}")]
    BadKeys { which: &'static str, reason: String },
}

/// This crate's `Result`.
pub type Result<T, E = EfiVarsError> = std::result::Result<T, E>;
