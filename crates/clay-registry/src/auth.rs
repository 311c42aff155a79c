//! Credentials: where podman and docker keep them (containers-auth.json(5), docker's config.json, and the
//! credential helpers those files name: docker-credential-helpers' `get` protocol) and the `WWW-Authenticate`
//! challenges (RFC 9110 §11.6.1, the Docker token flow) that say how to present them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Refused, RegistryError, Result};
use crate::reference::DEFAULT_REGISTRY;

/// Auth files larger than this are refused rather than read.
const MAX_AUTH_FILE_SIZE: u64 = 16 << 20;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The auth file they came from, for error messages; `None` when given directly.
    pub origin: Option<PathBuf>,
    /// The credential helper that gave them (`NAME` of `docker-credential-NAME`), named by `origin`.
    pub helper: Option<String>,
    /// An identity token (an OAuth 2 refresh token: docker's `identitytoken`, a helper's `<token>` answer, as
    /// `az acr login` leaves them) to trade at the registry's token server instead of presenting the password.
    pub identity_token: Option<String>,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: password.into(), origin: None, helper: None, identity_token: None }
    }

    /// What a registry refusing these credentials refused.
    pub(crate) fn refused(&self) -> Refused {
        match &self.identity_token {
            Some(_) => Refused::IdentityToken,
            None => Refused::User(self.username.clone()),
        }
    }

    /// `Authorization: Basic …` value.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    /// "from /path/auth.json" or "given on the command line", to finish a sentence.
    pub(crate) fn origin_phrase(&self) -> String {
        match (&self.helper, &self.origin) {
            (Some(h), Some(p)) => format!("from `{HELPER_PREFIX}{h}` (the credential helper {} names)", p.display()),
            (_, Some(p)) => format!("from {}", p.display()),
            _ => "given directly".to_owned(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("origin", &self.origin)
            .field("helper", &self.helper)
            .field("identity_token", &self.identity_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The auth files to search, in order; the first one with an entry for the registry wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthFiles {
    paths: Vec<PathBuf>,
    /// Where credential helpers are looked for instead of `PATH` (tests).
    helper_path: Option<OsString>,
}

/// What [`AuthFiles::lookup`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    pub credentials: Option<Credentials>,
    /// The files that were searched (existing or not).
    pub searched: Vec<PathBuf>,
    /// When nothing matched but a file names a credential helper (`credsStore`, `credHelpers`) that could not
    /// help: "PATH names the credential helper `NAME`, but …".
    pub helper: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFileJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl AuthFiles {
    /// Exactly these files, in this order.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths, helper_path: None }
    }

    /// Credential helpers are looked for in `path` instead of `PATH`.
    #[cfg(test)]
    pub(crate) fn with_helper_path(self, path: impl Into<OsString>) -> Self {
        Self { helper_path: Some(path.into()), ..self }
    }

    /// No files at all: anonymous unless credentials are given directly.
    pub fn none() -> Self {
        Self::default()
    }

    /// podman's and docker's order, from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// podman's and docker's order from these variables: `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config`),
    /// `$DOCKER_CONFIG/config.json` (default `~/.docker`).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = var("HOME");
        let mut paths = Vec::new();
        paths.extend(var("REGISTRY_AUTH_FILE"));
        paths.extend(var("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
        if let Some(config) = var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config"))) {
            paths.push(config.join("containers/auth.json"));
        }
        if let Some(docker) = var("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker"))) {
            paths.push(docker.join("config.json"));
        }
        paths.dedup();
        Self { paths, helper_path: None }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The credentials for `repository` on `registry` (as a [`crate::Reference`] names them: `docker.io`,
    /// `host:port`). Within a file, `registry/namespace/repo` keys beat shorter ones (podman); a missing file is
    /// skipped, a malformed one is an error naming it.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Lookup> {
        let mut out = Lookup { searched: self.paths.clone(), ..Lookup::default() };
        for path in &self.paths {
            let Some(file) = read_auth_file(path)? else { continue };
            // As docker reads its config.json: a helper for this registry (`credHelpers`), else the default one
            // (`credsStore`), is asked before the file's own entries.
            // An empty name means none, as docker reads it.
            let helper = file.cred_helpers.get(registry).or(file.creds_store.as_ref()).filter(|h| !h.is_empty());
            if let Some(helper) = helper {
                match run_helper(helper, registry, path, self.helper_path.as_deref())? {
                    HelperAnswer::Found(credentials) => {
                        out.credentials = Some(credentials);
                        out.helper = None;
                        return Ok(out);
                    }
                    HelperAnswer::NotFound(why) => {
                        out.helper.get_or_insert_with(|| {
                            format!("{} names the credential helper `{helper}`, but {why}", path.display())
                        });
                    }
                }
            }
            if let Some(credentials) = match_entry(&file, path, registry, repository)? {
                out.credentials = Some(credentials);
                out.helper = None;
                return Ok(out);
            }
        }
        Ok(out)
    }
}

/// Credential helpers are programs named `docker-credential-NAME` on `PATH`.
const HELPER_PREFIX: &str = "docker-credential-";
/// The most a helper may print (real answers are a few hundred bytes); more is refused, and messages are cut there.
const MAX_HELPER_OUTPUT: usize = 1 << 20;

enum HelperAnswer {
    Found(Credentials),
    /// Why not, to finish a sentence: "it has no credentials for docker.io".
    NotFound(String),
}

#[derive(Deserialize)]
struct HelperJson {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Asks the credential helper `name` (named in `path`) for `registry`'s credentials, as docker does: `get`, the
/// server on stdin, `{"Username", "Secret"}` on stdout. Docker Hub is asked for by its legacy URL, as docker
/// stores it. A helper that is not installed, or has nothing for the registry, leaves the lookup to go on.
fn run_helper(name: &str, registry: &str, path: &Path, search: Option<&std::ffi::OsStr>) -> Result<HelperAnswer> {
    let bad = |reason: String| RegistryError::AuthFile { path: path.to_owned(), reason };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(bad(format!("the credential helper name `{name}` is not a plain program name")));
    }
    let program = format!("{HELPER_PREFIX}{name}");
    let server = if registry == DEFAULT_REGISTRY { "https://index.docker.io/v1/" } else { registry };
    let failed = |reason: String| RegistryError::CredentialHelper { program: program.clone(), reason };
    let mut command = Command::new(&program);
    if let Some(search) = search {
        command.env("PATH", search);
    }
    let mut child = match command.arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HelperAnswer::NotFound(format!("`{program}` is not installed (not on PATH)")))
        }
        Err(e) => return Err(failed(format!("it cannot be started ({e})"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input says why on its output; that is what counts.
        let _ = writeln!(stdin, "{server}");
    }
    let output = child.wait_with_output().map_err(|e| failed(format!("it cannot be read ({e})")))?;
    let said = |bytes: &[u8]| String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_HELPER_OUTPUT)]).trim().to_owned();
    if !output.status.success() {
        let message = [said(&output.stdout), said(&output.stderr)].into_iter().find(|m| !m.is_empty());
        let message = message.unwrap_or_else(|| output.status.to_string());
        // docker-credential-helpers' own wording for "nothing stored for this server".
        if message.to_ascii_lowercase().contains("credentials not found") {
            return Ok(HelperAnswer::NotFound(format!("it has no credentials for {server}")));
        }
        return Err(failed(message.lines().next().unwrap_or_default().to_owned()));
    }
    if output.stdout.len() > MAX_HELPER_OUTPUT {
        return Err(failed(format!("it printed more than {MAX_HELPER_OUTPUT} bytes")));
    }
    let answer: HelperJson = serde_json::from_slice(&output.stdout)
        .map_err(|e| failed(format!("it did not print credentials as JSON ({e})")))?;
    if answer.secret.is_empty() {
        return Ok(HelperAnswer::NotFound(format!("it has no credentials for {server}")));
    }
    // docker-credential-helpers' convention: the user `<token>` means the secret is an identity token.
    let (password, identity_token) = match answer.username.as_str() {
        "<token>" => (String::new(), Some(answer.secret)),
        _ => (answer.secret, None),
    };
    Ok(HelperAnswer::Found(Credentials {
        username: answer.username,
        password,
        origin: Some(path.to_owned()),
        helper: Some(name.to_owned()),
        identity_token,
    }))
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFileJson>> {
    let bad = |reason: String| RegistryError::AuthFile { path: path.to_owned(), reason };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_AUTH_FILE_SIZE => {
            return Err(bad(format!("it is larger than {MAX_AUTH_FILE_SIZE} bytes")));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::io("reading", path, e)),
    }
    let bytes = std::fs::read(path).map_err(|e| RegistryError::io("reading", path, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(AuthFileJson::default()));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| bad(format!("it is not valid JSON ({e})")))
}

/// A key of `auths` as the `host[:port][/path]` it stands for: docker's legacy keys are URLs
/// (`https://index.docker.io/v1/`) whose path means nothing, podman's may name a namespace.
fn normalise_key(key: &str) -> String {
    let (had_scheme, rest) = match key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")) {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    let rest = rest.trim_end_matches('/');
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DEFAULT_REGISTRY,
        h => h,
    };
    match path {
        Some(p) if !had_scheme && !p.is_empty() => format!("{host}/{p}"),
        _ => host.to_owned(),
    }
}

fn match_entry(file: &AuthFileJson, path: &Path, registry: &str, repository: &str) -> Result<Option<Credentials>> {
    // Most specific first: host/a/b/c, host/a/b, host/a, host.
    let mut wanted = vec![format!("{registry}/{repository}")];
    let mut repo = repository;
    while let Some((parent, _)) = repo.rsplit_once('/') {
        wanted.push(format!("{registry}/{parent}"));
        repo = parent;
    }
    wanted.push(registry.to_owned());
    for want in &wanted {
        // Exact keys before normalised ones, so `docker.io` beats `https://index.docker.io/v1/` when both are there.
        let entry = file
            .auths
            .get(want)
            .map(|e| (want.as_str(), e))
            .or_else(|| file.auths.iter().find(|(k, _)| normalise_key(k) == *want).map(|(k, e)| (k.as_str(), e)));
        let Some((key, entry)) = entry else { continue };
        if let Some(credentials) = decode_entry(entry, key, path)? {
            return Ok(Some(credentials));
        }
    }
    Ok(None)
}

/// The credentials of one `auths` entry: `auth` (base64 `user:password`), else `username` and `password`; an
/// `identitytoken` beside them is what is presented (docker's config.json and containers-auth.json(5) both have it).
fn decode_entry(entry: &AuthEntry, key: &str, path: &Path) -> Result<Option<Credentials>> {
    let bad = |reason: String| RegistryError::AuthFile { path: path.to_owned(), reason };
    let (username, password) = match entry.auth.as_deref().map(str::trim) {
        Some(auth) if !auth.is_empty() => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .map_err(|_| bad(format!("the `auth` of `{key}` is not base64")))?;
            let raw = String::from_utf8(raw).map_err(|_| bad(format!("the `auth` of `{key}` is not UTF-8")))?;
            let Some((username, password)) = raw.split_once(':') else {
                return Err(bad(format!("the `auth` of `{key}` is not `user:password`")));
            };
            (username.to_owned(), password.to_owned())
        }
        _ => match (&entry.username, &entry.password) {
            (Some(u), Some(p)) if !u.is_empty() => (u.clone(), p.clone()),
            _ => (String::new(), String::new()),
        },
    };
    let identity_token = entry.identitytoken.clone().filter(|t| !t.is_empty());
    if username.is_empty() && password.is_empty() && identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials { username, password, origin: Some(path.to_owned()), helper: None, identity_token }))
}

/// One `WWW-Authenticate` challenge: the scheme (lower-cased) and its parameters (names lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value, which may hold several challenges (`Bearer realm="…",scope="a,b", Basic
/// realm="…"`). Never fails: whatever does not parse is skipped.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser { s: header.as_bytes(), i: 0 };
    let mut out = Vec::new();
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        if p.i >= p.s.len() {
            break;
        }
        let Some(scheme) = p.token() else {
            p.i += 1; // Not a token character: skip it.
            continue;
        };
        let mut challenge = Challenge { scheme: scheme.to_ascii_lowercase(), params: BTreeMap::new() };
        loop {
            p.skip(|b| b == b' ' || b == b'\t' || b == b',');
            let start = p.i;
            let Some(name) = p.token() else { break };
            p.skip(|b| b == b' ' || b == b'\t');
            if p.peek() != Some(b'=') {
                p.i = start; // The next challenge's scheme.
                break;
            }
            p.i += 1;
            p.skip(|b| b == b' ' || b == b'\t');
            let value = if p.peek() == Some(b'"') { p.quoted() } else { p.token().unwrap_or_default() };
            // token68 (`Basic abc==`) trailing `=` signs parse as empty values of an odd name: harmless.
            challenge.params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(challenge);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    /// RFC 9110 `token` (tchar+), also taking `/` so token68-ish values survive.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b));
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted string with `\` escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
