//! A client for container registries (Docker Registry HTTP API v2, the OCI distribution spec): pulls an image into
//! an OCI image layout and pushes blobs, manifests, images and artifacts.
//!
//! Everything a registry sends is untrusted: digests are validated before they name a file, every blob is streamed
//! to a hidden file while its digest and size are checked and only then renamed into `blobs/<algorithm>/`,
//! manifests are read with a size bound, and no input makes this crate panic. Only the layout directory the caller hands over (a
//! private temporary directory) is written.
//!
//! Authentication follows podman: credentials given directly, else the first auth file with an entry for the
//! registry ([`AuthFiles::from_env`]), presented as HTTP Basic or through the Bearer token flow the registry's
//! `WWW-Authenticate` challenge asks for (an identity token is traded with the OAuth 2 refresh-token POST). TLS is rustls trusting the system's CAs and those of the registry's
//! certificate directory ([`CertDirs`], containers-certs.d(5)), which may also hold a client certificate; a host
//! without a CA bundle gets the Mozilla roots built in (`webpki-roots`), so a static binary works anywhere.
//! `tls_verify: Some(false)` accepts any certificate and falls back to plain HTTP, like podman's `--tls-verify=false`;
//! left `None`, that is what registries.conf's `insecure` asks for ([`RegistriesConf`], which also blocks, moves and
//! mirrors what is pulled).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod client;
mod digest;
mod error;
mod layout;
pub mod manifest;
mod platform;
mod pull;
mod push;
mod reference;
mod registries;
mod tls;

use std::time::Duration;

pub use auth::{parse_challenges, AuthFiles, Challenge, Credentials, Lookup};
pub use digest::{digest_file, Digest};
pub use error::{Refused, RegistryError, Result};
pub use manifest::Descriptor;
pub use platform::{select as select_platform, Platform};
pub use pull::pull;
pub use push::{push_blob, push_image, push_manifest, BlobPart, BlobSource, ImageParts, PushSource, Pushed};
pub use reference::{Reference, DEFAULT_REGISTRY, DEFAULT_TAG, DOCKER_HUB_API_HOST, TRANSPORT_PREFIX};
pub use registries::{Mirror, MirrorUse, PullSource, PullSources, RegistriesConf, RegistryTable, REGISTRIES_CONF_VAR};
pub use tls::CertDirs;

use client::SessionOptions;

/// How hard to try before giving up on a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request (and per blob download) before giving up; at least one is made.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// The longest wait for a response's headers, or between two reads of a body.
    pub response_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based). Deterministic: no jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Which blob of an image a [`ProgressEvent`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobRole {
    Config,
    /// The layer with this index (0 is the base layer).
    Layer(usize),
    /// A blob pushed on its own with [`push_blob`].
    Blob,
}

/// Where a blob transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// About to transfer `total` bytes.
    Started,
    /// `done` of `total` bytes so far (sent at most every 256 KiB).
    Transferring,
    /// All `total` bytes transferred and verified.
    Finished,
    /// Already present (in the layout when pulling, in the registry when pushing): nothing transferred.
    Cached,
    /// Attempt number `attempt` failed; starting over from byte 0 after a backoff.
    Retrying { attempt: u32 },
}

/// A progress report about one blob, for the CLI to draw a bar per digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressEvent {
    pub digest: String,
    pub role: BlobRole,
    pub done: u64,
    pub total: u64,
    pub state: ProgressState,
}

/// How clay reaches a registry: TLS, credentials, progress reports and retries.
#[derive(Clone)]
pub struct Access<'a> {
    /// `Some(false)`: accept any certificate, and fall back to plain HTTP (podman's `--tls-verify=false`).
    /// `Some(true)`: verify, even a registry registries.conf calls `insecure`. `None`: verify unless it does.
    pub tls_verify: Option<bool>,
    /// registries.conf: which registries are insecure or blocked, and where pulls go.
    pub registries: RegistriesConf,
    /// Credentials to use; `None` looks them up in `auth_files`.
    pub auth: Option<Credentials>,
    pub auth_files: AuthFiles,
    /// Where the registry's CA certificates and client certificate are looked for.
    pub cert_dirs: CertDirs,
    pub progress: Option<&'a dyn Fn(ProgressEvent)>,
    pub retry: RetryPolicy,
    /// Blobs larger than this are uploaded in chunks of this size (or of the registry's `OCI-Chunk-Min-Length`,
    /// when larger), so that an upload cut off halfway resumes where the registry says it stopped.
    pub upload_chunk: u64,
}

/// The default [`Access::upload_chunk`]: 32 MiB.
pub const DEFAULT_UPLOAD_CHUNK: u64 = 32 << 20;

impl Default for Access<'_> {
    fn default() -> Self {
        Self {
            tls_verify: None,
            registries: RegistriesConf::none(),
            auth: None,
            auth_files: AuthFiles::from_env(),
            cert_dirs: CertDirs::from_env(),
            progress: None,
            retry: RetryPolicy::default(),
            upload_chunk: DEFAULT_UPLOAD_CHUNK,
        }
    }
}

impl std::fmt::Debug for Access<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tls_verify", &self.tls_verify)
            .field("registries", &self.registries)
            .field("auth", &self.auth)
            .field("auth_files", &self.auth_files)
            .field("cert_dirs", &self.cert_dirs)
            .field("progress", &self.progress.is_some())
            .field("retry", &self.retry)
            .field("upload_chunk", &self.upload_chunk)
            .finish()
    }
}

impl Access<'_> {
    /// How to reach the registry `reference` is pushed to: registries.conf's moves and mirrors are for pulls only.
    fn push_session(&self, reference: &Reference) -> SessionOptions<'_> {
        self.session(self.registries.insecure(&reference.registry), true)
    }

    /// How to reach a registry that registries.conf calls `insecure` or not. Credentials given directly go only to
    /// the registry they were given for (`own_registry`), never to a mirror elsewhere.
    fn session(&self, insecure: bool, own_registry: bool) -> SessionOptions<'_> {
        SessionOptions {
            tls_verify: self.tls_verify.unwrap_or(!insecure),
            auth: self.auth.as_ref().filter(|_| own_registry),
            auth_files: &self.auth_files,
            cert_dirs: &self.cert_dirs,
            retry: self.retry,
            progress: self.progress,
            upload_chunk: self.upload_chunk,
        }
    }
}

/// Options of [`pull`].
#[derive(Debug, Default)]
pub struct PullOptions<'a> {
    /// `os/arch[/variant]` to pick from a multi-platform image; `None` is the host's ([`Platform::host`]).
    pub platform: Option<String>,
    pub access: Access<'a>,
}

/// Options of [`push_blob`], [`push_manifest`] and [`push_image`]: only how to reach the registry.
pub type PushOptions<'a> = Access<'a>;

/// What [`pull`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    pub reference: Reference,
    /// Where it was pulled from: the reference itself, or where registries.conf moved or mirrored it.
    pub source: Reference,
    /// The digest of what the reference resolved to in the registry (the index, for a multi-platform image): the
    /// `name@digest` that pins this pull.
    pub registry_digest: Digest,
    /// The image manifest's entry in the layout's index.json (OCI media type, ref-name annotation = the tag).
    pub manifest: Descriptor,
    /// The platform of the index entry that was chosen, when the reference named an index.
    pub platform: Option<Platform>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The layout's name for the image (`org.opencontainers.image.ref.name`), the reference's tag.
    pub ref_name: Option<String>,
    /// Bytes fetched, not counting blobs already in the layout.
    pub bytes_downloaded: u64,
}

#[cfg(test)]
mod tests;
