//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// A failure while talking to a registry or writing what it sent. Each message is one sentence naming the registry,
/// the image or the blob concerned.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("`{platform}` is not a valid platform (expected OS/ARCH[/VARIANT], like linux/amd64): {reason}")]
    BadPlatform { platform: String, reason: String },
    #[error("`{digest}` is not a valid digest: {reason}")]
    BadDigest { digest: String, reason: String },
    #[error("could not reach the registry {registry} ({url}) after {attempts} attempt(s)")]
    Unreachable {
        registry: String,
        url: String,
        attempts: u32,
        #[source]
        source: ureq::Error,
    },
    #[error("the registry {registry} ({url}) failed the TLS handshake{advice}")]
    Tls {
        registry: String,
        url: String,
        /// Which CAs were trusted and what to do about it, from "; " or " (".
        advice: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("the registry {registry} answered {status} to {what}{}", message_suffix(.message))]
    Status { registry: String, what: String, status: u16, message: String },
    #[error("the registry {registry} has no {what}")]
    NotFound { registry: String, what: String },
    #[error("the registry {registry} requires credentials for {repository} and none were found{}", searched_suffix(.searched, .helper))]
    AuthRequired { registry: String, repository: String, searched: Vec<PathBuf>, helper: Option<String> },
    #[error("the registry {registry} refused {refused} {origin}{}", refused.hint())]
    BadCredentials { registry: String, refused: Refused, origin: String },
    #[error(
        "the registry {registry} asks for a user name and password (Basic auth), but the credentials {origin} are an \
         identity token, which only a token server takes; log in with a user name and password"
    )]
    IdentityTokenNeedsBearer { registry: String, origin: String },
    #[error("the registry {registry} denied {action} access to {repository}{}", user_suffix(.username))]
    Denied { registry: String, repository: String, action: String, username: Option<String> },
    #[error("the registry {registry} asks for `{schemes}` authentication, which is not supported (only Basic and Bearer are)")]
    UnsupportedAuth { registry: String, schemes: String },
    #[error("the token server {realm} for the registry {registry} answered badly: {reason}")]
    TokenServer { registry: String, realm: String, reason: String },
    #[error("the auth file {} is unusable: {reason}", path.display())]
    AuthFile { path: PathBuf, reason: String },
    #[error("the registry certificate directory {} is unusable: {reason}", dir.display())]
    CertDir { dir: PathBuf, reason: String },
    #[error("the registry certificate file {} is unusable: {reason}", path.display())]
    CertFile { path: PathBuf, reason: String },
    #[error("the registries configuration {} is unusable: {reason}", path.display())]
    RegistriesConf { path: PathBuf, reason: String },
    #[error("pulling {image} is blocked: {} blocks `{prefix}`", origin.display())]
    Blocked { image: String, prefix: String, origin: PathBuf },
    #[error("pulling {image} failed at its mirrors ({mirrors}), and at its registry")]
    MirrorsFailed {
        image: String,
        /// Each mirror with why it failed.
        mirrors: String,
        #[source]
        primary: Box<RegistryError>,
    },
    #[error("the credential helper `{program}` failed: {reason}")]
    CredentialHelper { program: String, reason: String },
    #[error("the {what} from the registry {registry} is invalid: {reason}")]
    BadManifest { registry: String, what: String, reason: String },
    #[error("the {what} from the registry {registry} has the media type `{media_type}`, which is not supported{}", message_suffix(.hint))]
    UnsupportedMediaType { registry: String, what: String, media_type: String, hint: String },
    #[error("the image {image} has no manifest for the platform {wanted}; it has: {available}")]
    NoPlatform { image: String, wanted: String, available: String },
    #[error("the blob {digest} ({what}) from the registry {registry} does not match its digest: its content hashes to {actual}")]
    DigestMismatch { registry: String, what: String, digest: String, actual: String },
    #[error(
        "the blob {digest} ({what}) from the registry {registry} is {actual} bytes but its descriptor says {expected}"
    )]
    SizeMismatch { registry: String, what: String, digest: String, expected: u64, actual: String },
    #[error("the blob {digest} in {} does not match its digest or size", dir.display())]
    LayoutBlobMismatch { dir: PathBuf, digest: String },
    #[error("the OCI layout {} is unusable: {reason}", dir.display())]
    BadLayout { dir: PathBuf, reason: String },
    #[error("the registry {registry} sent a bad upload location `{location}`")]
    BadLocation { registry: String, location: String },
    #[error("the registry {registry} answered an upload of {what} with the range `{range}`, which does not follow the {sent} bytes sent")]
    BadUploadRange { registry: String, what: String, range: String, sent: u64 },
    #[error("the registry {registry} stored the manifest of {image} as {actual}, not {expected}")]
    ManifestDigestMismatch { registry: String, image: String, expected: String, actual: String },
    #[error("{action} {} failed", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the {what} from the registry {registry} failed")]
    Transfer {
        registry: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("the request for {what} to the registry {registry} failed")]
    Request {
        registry: String,
        what: String,
        #[source]
        source: ureq::Error,
    },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn user_suffix(username: &Option<String>) -> String {
    match username {
        Some(u) => format!(" for user `{u}`"),
        None => " to anonymous users".to_owned(),
    }
}

fn searched_suffix(searched: &[PathBuf], helper: &Option<String>) -> String {
    let mut s = if searched.is_empty() {
        " (no auth file was searched)".to_owned()
    } else {
        let list: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
        format!(" in {}", list.join(", "))
    };
    if let Some(helper) = helper {
        s.push_str(&format!("; {helper}"));
    }
    s
}

/// What a registry refused in [`RegistryError::BadCredentials`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A user name and password.
    User(String),
    /// An identity token (traded at the token server), which expires.
    IdentityToken,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::User(user) => write!(f, "the credentials for user `{user}`"),
            Refused::IdentityToken => f.write_str("the identity token"),
        }
    }
}

impl Refused {
    /// What to do about it, after the sentence: an identity token may just have expired.
    fn hint(&self) -> &'static str {
        match self {
            Refused::User(_) => "",
            Refused::IdentityToken => "; it may have expired: log in again",
        }
    }
}

impl From<clay_digest::BadDigest> for RegistryError {
    fn from(e: clay_digest::BadDigest) -> Self {
        Self::BadDigest { digest: e.digest, reason: e.reason }
    }
}

impl RegistryError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}

/// This crate's `Result`.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
