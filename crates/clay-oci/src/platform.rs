//! Platforms as image indexes name them (OCI image-spec "Image Index", `platform`): `os/architecture[/variant]`.

use std::fmt;
use std::str::FromStr;

/// A platform to pick from a multi-platform image, e.g. `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// `--platform` was not `OS/ARCH[/VARIANT]`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a platform; write it as OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm64/v8")]
pub struct ParsePlatformError(pub String);

impl FromStr for Platform {
    type Err = ParsePlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(ParsePlatformError(s.to_owned()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl Platform {
    /// The platform this program runs on, spelled as Go's GOOS/GOARCH (which the image world uses).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform { os: std::env::consts::OS.to_owned(), architecture: architecture.to_owned(), variant: None }
    }

    /// Whether an image for `os/architecture/variant` runs here. Without a wanted variant any variant matches;
    /// arm64's only variant `v8` is the same as none.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let normal = |v: Option<&str>| match (architecture, v) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.filter(|v| !v.is_empty()).map(str::to_owned),
        };
        self.os == os
            && self.architecture == architecture
            && (self.variant.is_none() || normal(self.variant.as_deref()) == normal(variant))
    }

    /// How an index names a platform, for messages.
    pub fn describe(os: &str, architecture: &str, variant: Option<&str>) -> String {
        match variant.filter(|v| !v.is_empty()) {
            Some(v) => format!("{os}/{architecture}/{v}"),
            None => format!("{os}/{architecture}"),
        }
    }
}
