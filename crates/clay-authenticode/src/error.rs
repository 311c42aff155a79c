//! The one error type of this crate: every way a key, a certificate, an image or a signature can be refused.

use std::io;

use clay_pe::PeError;

/// A key, certificate, image or signature that cannot be used, or an I/O failure on the image.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticodeError {
    #[error("cannot read the image")]
    Read(#[source] io::Error),
    #[error("cannot write the image")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Pe(#[from] PeError),
    #[error(
        "the image declares only {count} data directories, so it has no Certificate Table entry to carry a signature"
    )]
    NoCertificateDirectory { count: u32 },
    #[error(
        "the image's SizeOfHeaders ({size_of_headers:#x}) ends before its section table does ({table_end:#x}); \
         the headers are malformed"
    )]
    HeadersTooShort { size_of_headers: u64, table_end: u64 },
    #[error(
        "section `{name}` starts at file offset {offset:#x}, leaving a gap after the {previous} (which end at \
         {expected:#x}); Authenticode does not cover gaps, so relink the image without one"
    )]
    SectionGap { name: String, offset: u64, previous: &'static str, expected: u64 },
    #[error(
        "section `{name}` starts at file offset {offset:#x}, inside the {previous} (which end at {expected:#x}); \
         Authenticode cannot hash overlapping file data"
    )]
    SectionOverlap { name: String, offset: u64, previous: &'static str, expected: u64 },
    #[error(
        "section `{name}` ends at file offset {end:#x}, beyond the {len:#x} bytes of the image before its signatures"
    )]
    SectionBeyondEnd { name: String, end: u64, len: u64 },
    #[error("the image is already signed; remove its signatures first (`strip_signatures` or `sbattach --remove`)")]
    AlreadySigned,
    #[error("the image is not signed: it has no certificate table")]
    Unsigned,
    #[error("the image's certificate table is malformed: {reason}")]
    BadCertificateTable { reason: String },
    #[error("the signed image would reach {end:#x} bytes, beyond the 4 GiB that PE's 32-bit offsets can express")]
    ImageTooLarge { end: u64 },

    #[error("the {what} is not PEM: no `-----BEGIN {expected}-----` block was found")]
    NoPemBlock { what: &'static str, expected: &'static str },
    #[error("the {what}'s PEM block is malformed: {reason}")]
    BadPem { what: &'static str, reason: String },
    #[error(
        "the private key uses OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`), which is not supported; \
         convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out NEWKEY`"
    )]
    LegacyEncryptedKey,
    #[error("the private key is encrypted; give its passphrase")]
    PassphraseRequired,
    #[error("the passphrase is wrong: it does not decrypt the private key")]
    WrongPassphrase,
    #[error("the private key is encrypted with an unsupported scheme ({reason}); re-encrypt it with PBES2 and AES")]
    UnsupportedKeyEncryption { reason: String },
    #[error("the private key is malformed: {reason}")]
    BadKey { reason: String },
    #[error("the private key is a {algorithm} key; UEFI Secure Boot signatures need an RSA key")]
    KeyNotRsa { algorithm: String },
    #[error("the certificate is malformed: {reason}")]
    BadCertificate { reason: String },
    #[error("the certificate `{subject}` holds a {algorithm} key; UEFI Secure Boot signatures need an RSA key")]
    CertificateNotRsa { subject: String, algorithm: String },
    #[error("the private key does not match the certificate `{subject}`")]
    KeyMismatch { subject: String },
    #[error("the certificate `{subject}` expired on {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("the certificate `{subject}` is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },

    #[error("cannot build the PKCS#7 signature: {0}")]
    Encode(der::Error),
    #[error("cannot generate a key: {reason}")]
    KeyGeneration { reason: String },
    #[error("RSA signing failed")]
    Sign(#[source] rsa::Error),
    #[error("signature #{number} is malformed: {reason}")]
    BadSignature { number: usize, reason: String },
    #[error("signature #{number} uses the digest algorithm {algorithm}; only SHA-256 is supported")]
    UnsupportedDigest { number: usize, algorithm: String },
    #[error(
        "the image does not match signature #{number}: its Authenticode digest differs from the signed one, so the \
         image was changed after signing"
    )]
    ImageDigestMismatch { number: usize },
    #[error("signature #{number} is corrupt: its messageDigest attribute does not match the content it signs")]
    ContentDigestMismatch { number: usize },
    #[error("the image is not signed by `{trusted}` or a certificate it issued; its signers: {signers}")]
    NotSignedBy { trusted: String, signers: String },
    #[error("signature #{number} by `{signer}` does not verify: the RSA signature over its attributes is invalid")]
    SignatureInvalid { number: usize, signer: String },
}

/// The `Result` of this crate.
pub type Result<T, E = AuthenticodeError> = std::result::Result<T, E>;

pub(crate) fn encode(e: der::Error) -> AuthenticodeError {
    AuthenticodeError::Encode(e)
}
