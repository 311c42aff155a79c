//! Joliet (Microsoft, "Joliet Specification" 1995): a second directory tree, named by a Supplementary Volume
//! Descriptor, whose identifiers are UCS-2 big-endian, so Windows shows real names. Files are shared with the
//! primary tree; only directories and names differ.

use std::collections::BTreeSet;

/// Joliet 3.1 (UCS-2 level 3) escape sequence, recorded at SVD offset 88.
pub(crate) const ESCAPE_UCS2_LEVEL3: &[u8] = b"%/E";
/// Joliet 3.3: identifiers are at most 64 characters (we count the ";1" of files in them).
const MAX_UNITS: usize = 64;
/// Extensions up to this many units survive when a name has to be cut or numbered.
const MAX_KEPT_EXT: usize = 16;
/// Joliet 3.3: characters an identifier must not contain; we write `_` instead.
const FORBIDDEN: &[char] = &['*', '/', ':', ';', '?', '\\'];

fn clean(s: &str) -> Vec<char> {
    s.chars().map(|c| if FORBIDDEN.contains(&c) || c < ' ' { '_' } else { c }).collect()
}

fn units(chars: &[char]) -> usize {
    chars.iter().map(|c| c.len_utf16()).sum()
}

/// The longest prefix of `chars` within `max` UTF-16 units (never splitting a surrogate pair).
fn cut(chars: &[char], max: usize) -> &[char] {
    let mut used = 0;
    let mut n = 0;
    for c in chars {
        if used + c.len_utf16() > max {
            break;
        }
        used += c.len_utf16();
        n += 1;
    }
    &chars[..n]
}

/// `s` as UTF-16 big-endian bytes.
pub(crate) fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// `s` as UCS-2 big-endian, cut to `len` bytes and padded with UCS-2 spaces, for descriptor fields.
pub(crate) fn ucs2_field(s: &str, len: usize) -> Vec<u8> {
    let chars: Vec<char> = s.chars().collect();
    let kept: String = cut(&chars, len / 2).iter().collect();
    let mut b = ucs2(&kept);
    while b.len() + 2 <= len {
        b.extend_from_slice(&[0, b' ']);
    }
    b.resize(len, 0);
    b
}

/// Gives each child of one directory its Joliet identifier (UCS-2 BE bytes), in the order given:
/// `(real name, is a directory)`. Files get ";1". Names cut to fit or colliding get a counter before the extension.
pub(crate) fn identifiers<'a>(children: impl IntoIterator<Item = (&'a str, bool)>) -> Vec<Vec<u8>> {
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for (name, is_dir) in children {
        let max = if is_dir { MAX_UNITS } else { MAX_UNITS - 2 };
        let chars = clean(name);
        let (stem, ext): (&[char], &[char]) = match chars.iter().rposition(|&c| c == '.') {
            Some(i) if !is_dir && i > 0 && units(&chars[i..]) <= MAX_KEPT_EXT => (&chars[..i], &chars[i..]),
            _ => (&chars, &[]),
        };
        let mut n = 0u64;
        let mut candidate: String = chars.iter().collect();
        while (n == 0 && units(&chars) > max) || used.contains(&candidate.to_lowercase()) {
            n += 1;
            let digits: Vec<char> = format!("~{n}").chars().collect();
            let room = max.saturating_sub(units(ext) + digits.len());
            candidate = cut(stem, room).iter().chain(&digits).chain(ext).collect();
        }
        // Windows compares names without case, so collisions are judged the same way.
        used.insert(candidate.to_lowercase());
        let mut ident = ucs2(&candidate);
        if !is_dir {
            ident.extend_from_slice(&ucs2(";1"));
        }
        out.push(ident);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(children: &[(&str, bool)]) -> Vec<String> {
        identifiers(children.iter().copied())
            .into_iter()
            .map(|b| {
                let u: Vec<u16> = b.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                String::from_utf16(&u).unwrap()
            })
            .collect()
    }

    #[test]
    fn names_keep_case_and_get_numbered_when_cut_or_colliding() {
        let long = format!("{}.conf", "x".repeat(70));
        assert_eq!(
            names(&[("Readme.TXT", false), ("a:b", true), ("README.txt", false), (&long, false), ("é😀", false)]),
            [
                "Readme.TXT;1".to_owned(),
                "a_b".to_owned(),
                "README~1.txt;1".to_owned(),
                format!("{}~1.conf;1", "x".repeat(55)),
                "é😀;1".to_owned()
            ]
        );
        assert_eq!(ucs2_field("AB", 8), [0, b'A', 0, b'B', 0, b' ', 0, b' ']);
    }
}
