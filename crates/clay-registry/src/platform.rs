//! Platforms (`os/arch[/variant]`, OCI image-index.md "platform") and picking an image index's manifest for one, with
//! containerd's normalisation (`x86_64` → `amd64`, `aarch64` → `arm64`, arm64's `v8` is its default variant).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::manifest::Descriptor;

/// The platform of an image index entry, or the one asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]` (as `--platform` spells it), normalising the architecture names.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| RegistryError::BadPlatform { platform: s.to_owned(), reason: reason.to_owned() };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad("it needs two or three `/`-separated parts"));
        }
        let part_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !parts.iter().all(|p| part_ok(p)) {
            return Err(bad("each part must be a non-empty word of letters, digits, `_` and `-`"));
        }
        let os = parts[0].to_ascii_lowercase();
        let (architecture, variant) =
            normalise_arch(&parts[1].to_ascii_lowercase(), parts.get(2).map(|v| v.to_ascii_lowercase()));
        Ok(Self { architecture, os, variant, ..Self::default() })
    }

    /// The platform this program runs on.
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Self {
            architecture: arch.to_owned(),
            os: std::env::consts::OS.to_owned(),
            variant: variant.map(str::to_owned),
            ..Self::default()
        }
    }

    /// How well `candidate` serves a request for `self`: `None` when it cannot, higher is better (the exact variant
    /// first, then no variant, then older compatible variants, newest first).
    fn score(&self, candidate: &Platform) -> Option<u32> {
        let (arch, variant) = normalise_arch(&candidate.architecture, candidate.variant.clone());
        if candidate.os != self.os || arch != self.architecture {
            return None;
        }
        if self.variant == variant {
            return Some(1000);
        }
        match (&self.variant, &variant) {
            (None, _) | (_, None) => Some(500),
            (Some(want), Some(got)) => {
                // v7 hardware runs v6 and v5 code; amd64 v3 runs v2 code.
                let (w, g) = (variant_level(want)?, variant_level(got)?);
                (g < w).then_some(g)
            }
        }
    }
}

fn variant_level(v: &str) -> Option<u32> {
    v.strip_prefix('v')?.parse().ok()
}

fn normalise_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    let (arch, variant) = match (arch, variant.as_deref()) {
        ("x86_64" | "x86-64", _) => ("amd64", variant),
        ("i386" | "i486" | "i586" | "i686", _) => ("386", None),
        ("aarch64" | "arm64", Some("v8")) | ("aarch64" | "arm64", None) => ("arm64", None),
        ("aarch64", _) => ("arm64", variant),
        ("armhf", _) => ("arm", Some("v7".to_owned())),
        ("armel", _) => ("arm", Some("v6".to_owned())),
        ("arm", Some("7" | "8")) => ("arm", variant.map(|v| format!("v{v}"))),
        _ => (arch, variant),
    };
    (arch.to_owned(), variant)
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The index entry serving `want` best (the first of equals), skipping entries without a platform.
pub fn select<'a>(manifests: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in manifests {
        let Some(score) = d.platform.as_ref().and_then(|p| want.score(p)) else { continue };
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, d));
        }
    }
    best.map(|(_, d)| d)
}

/// The platforms an index offers, for an error message (attestations' `unknown/unknown` left out).
pub fn available(manifests: &[Descriptor]) -> String {
    let list: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown" && p.architecture != "unknown")
        .map(ToString::to_string)
        .collect();
    if list.is_empty() {
        "no platform-specific manifests".to_owned()
    } else {
        list.join(", ")
    }
}
