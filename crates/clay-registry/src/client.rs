//! One conversation with one repository of one registry: the `/v2/` ping that picks https or http and learns the
//! auth scheme, the Basic and Bearer token flows (distribution's docs/spec/auth/token.md), and retries with backoff
//! on transient failures.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use serde::Deserialize;
use ureq::http::{self, Response};
use ureq::{Agent, Body, SendBody};

use crate::auth::{parse_challenges, AuthFiles, Challenge, Credentials};
use crate::error::{RegistryError, Result};
use crate::reference::Reference;
use crate::tls::{self, CertDirs};
use crate::{BlobRole, ProgressEvent, ProgressState, RetryPolicy};

/// Token responses and error bodies are small; refuse to buffer more.
const MAX_SMALL_BODY: u64 = 1 << 20;
/// The `User-Agent` we send.
const USER_AGENT: &str = concat!("claylinux/", env!("CARGO_PKG_VERSION"));
/// Longest `Retry-After` we honour, so a hostile server cannot park us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The `client_id` of the OAuth 2 token requests that trade an identity token.
const OAUTH_CLIENT_ID: &str = "claylinux";
/// Progress events are sent at most every this many bytes (and at the end).
pub(crate) const PROGRESS_STEP: u64 = 256 << 10;

/// What the session needs from the public option structs.
pub(crate) struct SessionOptions<'a> {
    pub tls_verify: bool,
    pub auth: Option<&'a Credentials>,
    pub auth_files: &'a AuthFiles,
    pub cert_dirs: &'a CertDirs,
    pub retry: RetryPolicy,
    pub progress: Option<&'a dyn Fn(ProgressEvent)>,
    pub upload_chunk: u64,
}

/// The body of a request, re-readable so that a retry can send it again.
#[derive(Clone, Copy)]
pub(crate) enum ReqBody<'b> {
    Empty,
    Bytes(&'b [u8]),
    /// `len` bytes of a file from `offset` on: part of the blob `digest` of `total` bytes, as progress reports it.
    File {
        path: &'b Path,
        offset: u64,
        len: u64,
        total: u64,
        digest: &'b str,
        role: BlobRole,
    },
}

pub(crate) struct Req<'b> {
    pub method: http::Method,
    /// An absolute URL, or a path starting with `/` on the registry.
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReqBody<'b>,
    /// What the request is for, to finish error sentences ("the manifest `latest` of clay/test").
    pub what: String,
    /// Sent at most once: a blind retry could corrupt what the registry holds (an upload's data). The caller
    /// recovers, and a transient failure comes back as [`RegistryError::Unreachable`].
    pub once: bool,
}

impl<'b> Req<'b> {
    pub fn new(method: http::Method, url: impl Into<String>, what: impl Into<String>) -> Self {
        Self { method, url: url.into(), headers: Vec::new(), body: ReqBody::Empty, what: what.into(), once: false }
    }

    /// See [`Req::once`].
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: ReqBody<'b>) -> Self {
        self.body = body;
        self
    }
}

#[derive(Clone, Debug)]
enum AuthState {
    /// Nothing known yet, or the registry needs none.
    None,
    Basic,
    Bearer {
        challenge: Challenge,
        token: Option<String>,
    },
}

pub(crate) struct Session<'a> {
    agent: Agent,
    /// The registry as the reference names it, for messages and credential look-up.
    pub registry: String,
    pub repository: String,
    /// `https://host` or `http://host`.
    base: String,
    /// `pull` or `pull,push`.
    actions: &'static str,
    credentials: Option<Credentials>,
    searched: Vec<std::path::PathBuf>,
    helper: Option<String>,
    auth: AuthState,
    pub retry: RetryPolicy,
    pub progress: Option<&'a dyn Fn(ProgressEvent)>,
    pub upload_chunk: u64,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("base", &self.base).field("repository", &self.repository).finish()
    }
}

/// Whether a transport error may go away if we try again.
fn transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::TimedOut
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
        ),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

/// A handshake or certificate failure (rustls reports those inside an `InvalidData` I/O error).
fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => true,
        ureq::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

pub(crate) fn transient_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

impl<'a> Session<'a> {
    /// Opens a session for `reference`'s repository with `actions` (`pull` or `pull,push`): looks up credentials,
    /// pings `/v2/` (https; with `tls_verify` off, https without verification and then plain http) and notes the
    /// auth challenge.
    pub fn open(reference: &Reference, opts: &SessionOptions<'a>, actions: &'static str) -> Result<Self> {
        let (credentials, searched, helper) = match opts.auth {
            Some(c) => (Some(c.clone()), Vec::new(), None),
            None => {
                let found = opts.auth_files.lookup(&reference.registry, &reference.repository)?;
                (found.credentials, found.searched, found.helper)
            }
        };
        let host = reference.api_host();
        let certs = opts.cert_dirs.load(host)?;
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .tls_config(tls::config(opts.tls_verify, &certs))
            .timeout_connect(Some(opts.retry.connect_timeout))
            .timeout_recv_response(Some(opts.retry.response_timeout))
            .timeout_per_read(Some(opts.retry.response_timeout))
            .build()
            .into();
        let mut session = Self {
            agent,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            base: format!("https://{host}"),
            actions,
            credentials,
            searched,
            helper,
            auth: AuthState::None,
            retry: opts.retry,
            progress: opts.progress,
            upload_chunk: opts.upload_chunk,
        };
        let schemes: &[&str] = if opts.tls_verify { &["https"] } else { &["https", "http"] };
        let mut last_err = None;
        for attempt in 1..=session.retry.attempts.max(1) {
            for scheme in schemes {
                let url = format!("{scheme}://{host}/v2/");
                match session.agent.get(&url).call() {
                    Ok(resp) => {
                        session.base = format!("{scheme}://{host}");
                        session.note_challenge(&resp);
                        return Ok(session);
                    }
                    Err(e) => last_err = Some((url, e)),
                }
            }
            let retryable = last_err.as_ref().is_some_and(|(_, e)| transient(e));
            if !retryable || attempt >= session.retry.attempts {
                let (url, source) = last_err.unwrap_or_else(|| (host.to_owned(), ureq::Error::ConnectionFailed));
                if is_tls_failure(&source) {
                    let advice = opts.cert_dirs.advice(host, certs.dir.as_deref());
                    let source = Box::new(source);
                    return Err(RegistryError::Tls { registry: session.registry, url, advice, source });
                }
                return Err(RegistryError::Unreachable { registry: session.registry, url, attempts: attempt, source });
            }
            sleep(session.retry.backoff(attempt));
        }
        let (url, source) = last_err.unwrap_or_else(|| (host.to_owned(), ureq::Error::ConnectionFailed));
        Err(RegistryError::Unreachable { registry: session.registry, url, attempts: session.retry.attempts, source })
    }

    fn note_challenge(&mut self, resp: &Response<Body>) {
        if resp.status() != 401 {
            return;
        }
        let challenges = challenges_of(resp);
        if let Some(b) = challenges.iter().find(|c| c.scheme == "bearer") {
            self.auth = AuthState::Bearer { challenge: b.clone(), token: None };
        } else if challenges.iter().any(|c| c.scheme == "basic")
            && self.credentials.as_ref().is_some_and(|c| c.identity_token.is_none())
        {
            // (An identity token cannot be presented as Basic: the first 401 says so, in `authenticate`.)
            self.auth = AuthState::Basic;
        }
    }

    /// `/v2/<repository>/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repository)
    }

    /// Resolves a `Location` header against the registry (it may be relative, or on another host).
    pub fn resolve(&self, location: &str) -> Result<String> {
        let bad = || RegistryError::BadLocation { registry: self.registry.clone(), location: location.to_owned() };
        if location.starts_with("https://") || location.starts_with("http://") {
            location.parse::<http::Uri>().map_err(|_| bad())?;
            Ok(location.to_owned())
        } else if location.starts_with('/') && !location.starts_with("//") {
            let url = format!("{}{location}", self.base);
            url.parse::<http::Uri>().map_err(|_| bad())?;
            Ok(url)
        } else {
            Err(bad())
        }
    }

    fn authorization(&self) -> Option<String> {
        match (&self.auth, &self.credentials) {
            (AuthState::Basic, Some(c)) => Some(c.basic_header()),
            (AuthState::Bearer { token: Some(t), .. }, _) => Some(format!("Bearer {t}")),
            _ => None,
        }
    }

    /// Sends `req`, retrying transient failures and answering auth challenges. Returns any response but a 401.
    pub fn send(&mut self, req: &Req<'_>) -> Result<Response<Body>> {
        if let AuthState::Bearer { challenge, token: None } = &self.auth {
            let challenge = challenge.clone();
            self.fetch_token(&challenge, false)?;
        }
        let had_auth = self.authorization().is_some();
        let resp = self.send_retrying(req)?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let challenges = challenges_of(&resp);
        drop(resp);
        let refreshed = match (had_auth, &self.auth) {
            // A token for too narrow a scope (pushing after pulling): ask once for the scope the registry names.
            (true, AuthState::Bearer { .. }) => match challenges.iter().find(|c| c.scheme == "bearer") {
                Some(b) => {
                    self.fetch_token(b, true)?;
                    true
                }
                None => false,
            },
            (true, _) => false,
            (false, _) => {
                self.authenticate(&challenges)?;
                true
            }
        };
        if refreshed {
            let resp = self.send_retrying(req)?;
            if resp.status() != 401 {
                return Ok(resp);
            }
        }
        Err(self.refused())
    }

    /// The error for a registry that keeps answering 401.
    fn refused(&self) -> RegistryError {
        match (&self.auth, &self.credentials) {
            (AuthState::Basic, Some(c)) => self.bad_credentials(c),
            (_, Some(c)) => RegistryError::Denied {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                action: self.actions.to_owned(),
                username: Some(c.username.clone()),
            },
            (_, None) => self.auth_required(),
        }
    }

    fn bad_credentials(&self, c: &Credentials) -> RegistryError {
        RegistryError::BadCredentials {
            registry: self.registry.clone(),
            refused: c.refused(),
            origin: c.origin_phrase(),
        }
    }

    fn auth_required(&self) -> RegistryError {
        RegistryError::AuthRequired {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            searched: self.searched.clone(),
            helper: self.helper.clone(),
        }
    }

    fn authenticate(&mut self, challenges: &[Challenge]) -> Result<()> {
        if let Some(b) = challenges.iter().find(|c| c.scheme == "bearer") {
            self.fetch_token(b, false)
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            match &self.credentials {
                None => Err(self.auth_required()),
                Some(c) if c.identity_token.is_some() => Err(RegistryError::IdentityTokenNeedsBearer {
                    registry: self.registry.clone(),
                    origin: c.origin_phrase(),
                }),
                Some(_) => {
                    self.auth = AuthState::Basic;
                    Ok(())
                }
            }
        } else if challenges.is_empty() {
            Err(self.auth_required())
        } else {
            let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
            Err(RegistryError::UnsupportedAuth { registry: self.registry.clone(), schemes: schemes.join(", ") })
        }
    }

    /// Asks the challenge's token server for a token for our scope and keeps it: with an identity token, the OAuth 2
    /// refresh-token POST; otherwise GET realm?service=…&scope=… (with Basic credentials when known). With
    /// `extra_scope`, the challenge's own scope is asked for too.
    fn fetch_token(&mut self, challenge: &Challenge, extra_scope: bool) -> Result<()> {
        let realm = challenge.param("realm").unwrap_or_default().to_owned();
        let bad = |reason: String| RegistryError::TokenServer {
            registry: self.registry.clone(),
            realm: realm.clone(),
            reason,
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(bad("the challenge's realm is not an http(s) URL".to_owned()));
        }
        let ours = format!("repository:{}:{}", self.repository, self.actions);
        let mut scopes = vec![ours.as_str()];
        scopes.extend(challenge.param("scope").filter(|s| extra_scope && *s != ours));
        let service = challenge.param("service");
        let what = format!("a token for {}", self.repository);
        let form;
        let req = match self.credentials.as_ref().and_then(|c| c.identity_token.as_deref()) {
            // An identity token is traded for an access token the OAuth 2 way (distribution's
            // docs/spec/auth/oauth.md): a form POSTed to the realm, the scopes space-separated in one field.
            Some(refresh_token) => {
                let mut fields = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                    ("client_id", OAUTH_CLIENT_ID),
                ];
                fields.extend(service.map(|s| ("service", s)));
                let scope = scopes.join(" ");
                fields.push(("scope", &scope));
                form = fields.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&");
                Req::new(http::Method::POST, realm.clone(), what)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(ReqBody::Bytes(form.as_bytes()))
            }
            // Otherwise GET realm?service=…&scope=…, with the credentials as Basic auth (token.md).
            None => {
                let mut query: Vec<String> =
                    service.map(|s| format!("service={}", percent_encode(s))).into_iter().collect();
                query.extend(scopes.iter().map(|s| format!("scope={}", percent_encode(s))));
                let sep = if realm.contains('?') { '&' } else { '?' };
                let mut req = Req::new(http::Method::GET, format!("{realm}{sep}{}", query.join("&")), what);
                if let Some(c) = &self.credentials {
                    req = req.header("authorization", c.basic_header());
                }
                req
            }
        };
        let mut resp = self.send_raw_retrying(&req, None)?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(match &self.credentials {
                    Some(c) => self.bad_credentials(c),
                    None => self.auth_required(),
                })
            }
            status => return Err(bad(format!("it answered {status}"))),
        }
        #[derive(Deserialize)]
        struct TokenJson {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = read_small(&mut resp, MAX_SMALL_BODY).map_err(|e| bad(format!("reading its answer failed: {e}")))?;
        let json: TokenJson =
            serde_json::from_slice(&body).map_err(|e| bad(format!("its answer is not a token: {e}")))?;
        let token = json
            .token
            .filter(|t| !t.is_empty())
            .or(json.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| bad("its answer has neither `token` nor `access_token`".to_owned()))?;
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("its token has characters a header cannot carry".to_owned()));
        }
        self.auth = AuthState::Bearer { challenge: challenge.clone(), token: Some(token) };
        Ok(())
    }

    fn send_retrying(&self, req: &Req<'_>) -> Result<Response<Body>> {
        self.send_raw_retrying(req, self.authorization_for(&req.url))
    }

    /// The registry's credentials go to the registry only, not to a cross-origin upload location.
    fn authorization_for(&self, url: &str) -> Option<String> {
        if url.starts_with('/') || url.starts_with(&format!("{}/", self.base)) {
            self.authorization()
        } else {
            None
        }
    }

    fn send_raw_retrying(&self, req: &Req<'_>, authorization: Option<String>) -> Result<Response<Body>> {
        let url = if req.url.starts_with('/') { format!("{}{}", self.base, req.url) } else { req.url.clone() };
        let attempts = if req.once { 1 } else { self.retry.attempts.max(1) };
        let mut attempt = 1;
        loop {
            let result = self.send_once(req, &url, authorization.as_deref());
            let wait = match &result {
                Ok(resp) if transient_status(resp.status().as_u16()) => {
                    Some(retry_after(resp).unwrap_or_else(|| self.retry.backoff(attempt)))
                }
                Ok(_) => None,
                Err(RegistryError::Request { source, .. }) if transient(source) => Some(self.retry.backoff(attempt)),
                Err(_) => None,
            };
            match (wait, result) {
                (Some(wait), _) if attempt < attempts => {
                    if let ReqBody::File { digest, role, offset, total, .. } = req.body {
                        self.report(digest, role, offset, total, ProgressState::Retrying { attempt });
                    }
                    sleep(wait);
                    attempt += 1;
                }
                (_, Err(RegistryError::Request { source, .. })) if transient(&source) => {
                    return Err(RegistryError::Unreachable {
                        registry: self.registry.clone(),
                        url,
                        attempts: attempt,
                        source,
                    })
                }
                (_, result) => return result,
            }
        }
    }

    fn send_once(&self, req: &Req<'_>, url: &str, authorization: Option<&str>) -> Result<Response<Body>> {
        let mut builder = http::Request::builder().method(req.method.clone()).uri(url);
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        for (name, value) in &req.headers {
            builder = builder.header(*name, value.as_str());
        }
        let request_error = |source: ureq::Error| RegistryError::Request {
            registry: self.registry.clone(),
            what: req.what.clone(),
            source,
        };
        let http_error = |e: http::Error| request_error(ureq::Error::Http(e));
        let resp = match req.body {
            ReqBody::Empty => {
                let request = builder.body(()).map_err(http_error)?;
                self.agent.run(request)
            }
            ReqBody::Bytes(bytes) => {
                let request = builder.header("content-length", bytes.len()).body(bytes).map_err(http_error)?;
                self.agent.run(request)
            }
            ReqBody::File { path, offset, len, total, digest, role } => {
                let mut file = File::open(path).map_err(|e| RegistryError::io("opening", path, e))?;
                file.seek(SeekFrom::Start(offset)).map_err(|e| RegistryError::io("reading", path, e))?;
                let mut reader = ProgressReader {
                    inner: file.take(len),
                    done: 0,
                    last: 0,
                    total: len,
                    report: &|done| self.report(digest, role, offset + done, total, ProgressState::Transferring),
                };
                let request = builder
                    .header("content-length", len)
                    .body(SendBody::from_reader(&mut reader))
                    .map_err(http_error)?;
                self.agent.run(request)
            }
        };
        resp.map_err(request_error)
    }

    pub fn report(&self, digest: &str, role: BlobRole, done: u64, total: u64, state: ProgressState) {
        if let Some(progress) = self.progress {
            progress(ProgressEvent { digest: digest.to_owned(), role, done, total, state });
        }
    }

    /// Turns a non-success response into the error it means.
    pub fn status_error(&self, mut resp: Response<Body>, what: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let message = registry_message(&mut resp);
        match status {
            404 => RegistryError::NotFound { registry: self.registry.clone(), what: what.to_owned() },
            403 => RegistryError::Denied {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                action: self.actions.to_owned(),
                username: self.credentials.as_ref().map(|c| c.username.clone()),
            },
            _ => RegistryError::Status { registry: self.registry.clone(), what: what.to_owned(), status, message },
        }
    }

    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }
}

fn challenges_of(resp: &Response<Body>) -> Vec<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let secs: u64 = resp.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Reads a body of at most `limit` bytes.
pub(crate) fn read_small(resp: &mut Response<Body>, limit: u64) -> std::result::Result<Vec<u8>, ureq::Error> {
    resp.body_mut().with_config().limit(limit).read_to_vec()
}

/// The `message`s of a registry's `{"errors":[{"code":…,"message":…}]}` body, or nothing.
fn registry_message(resp: &mut Response<Body>) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorJson>,
    }
    #[derive(Deserialize)]
    struct ErrorJson {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(body) = read_small(resp, 64 << 10) else { return String::new() };
    let Ok(errors) = serde_json::from_slice::<Errors>(&body) else { return String::new() };
    let parts: Vec<String> = errors
        .errors
        .iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{} ({})", e.message, e.code),
            (true, false) => e.message.clone(),
            _ => e.code.clone(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    let joined = parts.join("; ");
    // A hostile server could send a huge message; keep the sentence readable.
    joined.chars().take(300).collect()
}

fn percent_encode(s: &str) -> String {
    use std::fmt::Write;
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// Reports upload progress as the body is read.
struct ProgressReader<'r, R> {
    inner: R,
    done: u64,
    last: u64,
    total: u64,
    report: &'r dyn Fn(u64),
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done = self.done.saturating_add(n as u64);
        if self.done - self.last >= PROGRESS_STEP || (n > 0 && self.done == self.total) {
            self.last = self.done;
            (self.report)(self.done);
        }
        Ok(n)
    }
}

/// Query parameters of a URL-to-be, in order (for `?digest=`).
pub(crate) fn append_query(url: &str, params: &BTreeMap<&str, String>) -> String {
    let mut out = url.to_owned();
    for (k, v) in params {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(k);
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}
