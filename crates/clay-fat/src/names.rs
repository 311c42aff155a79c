//! File names: 8.3 short names, long names (FAT spec §6.1, §7) and the short name Windows would generate for a
//! long one (§7.4, the basis-name algorithm with a numeric tail).

use crate::ondisk::{LFN_MAX_UNITS, LFN_UNITS_PER_ENTRY};

/// FAT spec §6.1: characters a short name may hold besides A-Z and 0-9 (bytes ≥ 0x80 are code-page dependent and
/// never written here).
const SHORT_NAME_SPECIALS: &[u8] = b"!#$%&'()-@^_`{}~";
/// FAT spec §7.1: characters a long name may not hold (besides control characters).
const LONG_NAME_FORBIDDEN: &[char] = &['"', '*', '/', ':', '<', '>', '?', '\\', '|'];

pub fn is_short_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_NAME_SPECIALS.contains(&b)
}

/// Why a path component cannot be a FAT name, or `None` if it can.
pub fn long_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it has an empty component");
    }
    if name == "." || name == ".." {
        return Some("`.` and `..` are not file names");
    }
    if name.chars().any(|c| c < ' ' || LONG_NAME_FORBIDDEN.contains(&c)) {
        return Some("names may not hold control characters or any of \" * : < > ? \\ |");
    }
    if name.ends_with(['.', ' ']) {
        return Some("names may not end with a period or a space");
    }
    if name.encode_utf16().count() > LFN_MAX_UNITS {
        return Some("names are at most 255 UTF-16 code units long");
    }
    None
}

/// The 11-byte directory form of `name` if it is already a valid uppercase 8.3 name (`BOOTX64.EFI`, `EFI`).
pub fn exact_short_name(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    let ok = |part: &str, max: usize| part.len() <= max && part.bytes().all(is_short_char);
    if base.is_empty() || !ok(base, 8) || !ok(ext, 3) || (name.contains('.') && ext.is_empty()) {
        return None;
    }
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base.as_bytes());
    out[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Some(out)
}

/// FAT spec §7.4's basis name of a long name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Basis {
    pub base: [u8; 8],
    pub base_len: usize,
    pub ext: [u8; 3],
    /// The conversion lost something or did not fit 8.3, so the short name needs a numeric tail.
    pub needs_tail: bool,
}

impl Basis {
    /// FAT spec §7.4: uppercased, invalid characters as `_`, spaces and leading periods dropped, the base cut to 8
    /// and the extension (after the last period) to 3.
    pub fn of(name: &str) -> Basis {
        let mut lossy = false;
        let mut map = |c: char| -> Option<u8> {
            if c == ' ' {
                lossy = true;
                return None;
            }
            match u8::try_from(c.to_ascii_uppercase()) {
                Ok(b) if is_short_char(b) => Some(b),
                _ => {
                    lossy = true;
                    Some(b'_')
                }
            }
        };
        let trimmed = name.trim_start_matches('.');
        let (base_part, ext_part) = match trimmed.rsplit_once('.') {
            Some((base, ext)) => (base, ext),
            None => (trimmed, ""),
        };
        let base: Vec<u8> = base_part.chars().filter(|&c| c != '.').filter_map(&mut map).collect();
        let ext: Vec<u8> = ext_part.chars().filter_map(&mut map).collect();
        let dropped = trimmed.len() != name.len() || base_part.contains('.');
        let mut out = Basis { base: [b' '; 8], base_len: base.len().min(8), ext: [b' '; 3], needs_tail: false };
        out.base[..out.base_len].copy_from_slice(&base[..out.base_len]);
        let ext_len = ext.len().min(3);
        out.ext[..ext_len].copy_from_slice(&ext[..ext_len]);
        if base.is_empty() {
            out.base[0] = b'_';
            out.base_len = 1;
        }
        out.needs_tail = lossy || dropped || base.is_empty() || base.len() > 8 || ext.len() > 3;
        out
    }

    /// The short name without a tail.
    pub fn plain(&self) -> [u8; 11] {
        let mut out = [b' '; 11];
        out[..8].copy_from_slice(&self.base);
        out[8..].copy_from_slice(&self.ext);
        out
    }

    /// `BASE~N.EXT`, the base cut so base and tail fit in 8 bytes (FAT spec §7.4).
    pub fn with_tail(&self, n: u32) -> [u8; 11] {
        let tail = format!("~{n}");
        let keep = self.base_len.min(8usize.saturating_sub(tail.len()));
        let mut out = [b' '; 11];
        out[..keep].copy_from_slice(&self.base[..keep]);
        for (slot, b) in out[keep..8].iter_mut().zip(tail.bytes()) {
            *slot = b;
        }
        out[8..].copy_from_slice(&self.ext);
        out
    }
}

/// Case-insensitive key under which FAT compares names.
pub fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// FAT spec §7.2: the checksum of a short name that ties its long-name entries to it.
pub fn short_name_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &b| ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(b))
}

/// Number of long-name entries `name` needs.
pub fn lfn_entry_count(name: &str) -> usize {
    name.encode_utf16().count().div_ceil(LFN_UNITS_PER_ENTRY)
}

/// The 11-byte short name as text: `BASE.EXT`, lowercased where DIR_NTRes says so.
pub fn short_name_text(short: &[u8; 11], lower_base: bool, lower_ext: bool) -> String {
    let part = |bytes: &[u8], lower: bool| -> String {
        let text: String = bytes.iter().map(|&b| char::from(b)).collect::<String>().trim_end_matches(' ').to_owned();
        if lower {
            text.to_ascii_lowercase()
        } else {
            text
        }
    };
    let base = part(&short[..8], lower_base);
    let ext = part(&short[8..], lower_ext);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}
