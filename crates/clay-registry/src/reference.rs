//! Image references (`docker://REF`), normalised the way docker, podman and skopeo do (the grammar of
//! distribution/reference: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`).

use std::fmt;

use crate::digest::Digest;
use crate::error::{RegistryError, Result};

/// The registry a reference without a host names.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Where [`DEFAULT_REGISTRY`]'s API actually answers.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The namespace of single-component Docker Hub names (`alpine` → `library/alpine`).
const DOCKER_HUB_LIBRARY: &str = "library";
/// The tag a reference with neither tag nor digest means.
pub const DEFAULT_TAG: &str = "latest";
/// distribution/reference: a repository name is at most 255 characters.
const MAX_NAME_LEN: usize = 255;
/// distribution/reference: a tag is at most 128 characters.
const MAX_TAG_LEN: usize = 128;
/// The transport prefix skopeo uses for registry references.
pub const TRANSPORT_PREFIX: &str = "docker://";

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host as written (normalised: `docker.io` for Docker Hub), with its port if any.
    pub registry: String,
    /// The repository path, like `library/alpine` or `clay/test`.
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// The manifest digest, when pinned.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses `REF` or `docker://REF`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| RegistryError::BadReference { reference: input.to_owned(), reason: reason.to_owned() };
        let s = input.strip_prefix(TRANSPORT_PREFIX).unwrap_or(input);
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|e| bad(&format!("its digest is invalid: {e}")))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/', so `host:5000/repo` has none.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|r| bad(&r))?;
        }
        let (registry, repository) = split_domain(name);
        let registry = match registry {
            Some(host) => {
                check_host(host).map_err(|r| bad(&r))?;
                normalise_host(host)
            }
            None => DEFAULT_REGISTRY.to_owned(),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{DOCKER_HUB_LIBRARY}/{repository}")
        } else {
            repository.to_owned()
        };
        check_repository(&repository).map_err(|r| bad(&r))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad(&format!("the name is longer than {MAX_NAME_LEN} characters")));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self { registry, repository, tag, digest })
    }

    /// Whether `input`, a reference as written, names its registry; one that does not means Docker Hub.
    pub fn names_registry(input: &str) -> bool {
        let s = input.strip_prefix(TRANSPORT_PREFIX).unwrap_or(input);
        let name = s.split_once('@').map_or(s, |(name, _)| name);
        split_domain(name).0.is_some()
    }

    /// The host (and port) the registry API answers on: Docker Hub's differs from its name.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// What to put after `/manifests/`: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image with another tag and no digest (where to push).
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        check_tag(tag).map_err(|reason| RegistryError::BadReference { reference: tag.to_owned(), reason })?;
        Ok(Self { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// distribution/reference's `splitDomain`: the first component is a host when it has a `.` or a `:`, is
/// `localhost`, or has upper-case letters (which a path component may not).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn normalise_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DEFAULT_REGISTRY.to_owned(),
        _ => host.to_owned(),
    }
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional numeric port.
fn check_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = if let Some(after) = host.strip_prefix('[') {
        let Some((ip, rest)) = after.split_once(']') else {
            return Err(format!("the registry host `{host}` has an unclosed `[`"));
        };
        if ip.is_empty() || !ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(format!("`{ip}` is not an IPv6 address"));
        }
        match rest.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if rest.is_empty() => (None, None),
            None => return Err(format!("the registry host `{host}` has junk after `]`")),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the registry port `{port}` is not a number"));
        }
    }
    if let Some(name) = name {
        if name.is_empty() {
            return Err("the registry host is empty".to_owned());
        }
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!("the registry host `{name}` is not a valid host name"));
            }
        }
    }
    Ok(())
}

/// Path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
fn check_repository(repo: &str) -> std::result::Result<(), String> {
    if repo.is_empty() {
        return Err("the repository name is empty".to_owned());
    }
    for component in repo.split('/') {
        if component.is_empty() {
            return Err("the repository name has an empty path component".to_owned());
        }
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("the repository name `{repo}` must be lower-case"));
        }
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let mut i = 0;
        let mut ok = !bytes.is_empty() && alnum(bytes[0]);
        while ok && i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            // A separator run: `.`, `_`, `__` or any number of `-`; it must be followed by an alphanumeric.
            let start = i;
            match bytes[i] {
                b'.' => i += 1,
                b'_' => {
                    i += 1;
                    if bytes.get(i) == Some(&b'_') {
                        i += 1;
                    }
                }
                b'-' => {
                    while bytes.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => {
                    ok = false;
                    break;
                }
            }
            ok = i > start && bytes.get(i).is_some_and(|&b| alnum(b));
        }
        if !ok {
            return Err(format!(
                "the repository path component `{component}` may only use a-z, 0-9 and single `.`, `_`, `__` or `-` \
                 separators between them"
            ));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !first_ok || !rest_ok || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "the tag `{tag}` must be 1 to {MAX_TAG_LEN} of A-Z, a-z, 0-9, `_`, `.` and `-`, not starting with `.` or `-`"
        ));
    }
    Ok(())
}
