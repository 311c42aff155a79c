//! ISO 9660 file identifiers for the primary tree (ECMA-119 7.5, 7.6) and their ordering (9.3).
//!
//! The real names travel in Rock Ridge NM entries; these identifiers are what a reader without Rock Ridge sees, so
//! they only need to be valid and unique: d-characters (A-Z, 0-9, _), "NAME.EXT;1" for files with name and
//! extension together at most 30 characters (interchange level 2, 7.5.1), directories at most 31.

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// ECMA-119 7.5.1: the name and extension of a file identifier have at most 30 characters together (level 2).
const FILE_NAME_CHARS: usize = 30;
/// ECMA-119 7.6.3: a directory identifier has at most 31 characters (level 2).
const DIR_NAME_CHARS: usize = 31;
/// Extensions longer than this are cut, so the name keeps some room.
const MAX_EXT_CHARS: usize = 8;
/// ECMA-119 7.5.1: SEPARATOR 2 and the file version number we give every file.
const VERSION_SUFFIX: &[u8] = b";1";

/// Maps a name to d-characters (ECMA-119 7.4.1): ASCII letters upper-cased, digits and `_` kept, anything else
/// (including each non-ASCII character) becomes `_`. Cut to `max` characters.
fn d_chars(s: &str, max: usize) -> Vec<u8> {
    s.chars()
        .take(max)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => u8::try_from(c.to_ascii_uppercase()).unwrap_or(b'_'),
            _ => b'_',
        })
        .collect()
}

/// Gives each child of one directory its identifier, in the order given: `(real name, is a directory)`.
/// Collisions after mapping get a decimal counter at the end of the name part.
pub(crate) fn identifiers<'a>(children: impl IntoIterator<Item = (&'a str, bool)>) -> Vec<Vec<u8>> {
    let mut used: BTreeSet<(Vec<u8>, Vec<u8>)> = BTreeSet::new();
    let mut out = Vec::new();
    for (name, is_dir) in children {
        let (base, ext, max_base) = if is_dir {
            (d_chars(name, DIR_NAME_CHARS), Vec::new(), DIR_NAME_CHARS)
        } else {
            let (stem, ext) = match name.rfind('.') {
                Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
                _ => (name, ""),
            };
            let ext = d_chars(ext, MAX_EXT_CHARS);
            let max_base = FILE_NAME_CHARS - ext.len();
            (d_chars(stem, max_base), ext, max_base)
        };
        let base = if base.is_empty() && ext.is_empty() { b"_".to_vec() } else { base };
        let mut candidate = base.clone();
        let mut n = 0u64;
        while used.contains(&(candidate.clone(), ext.clone())) {
            n += 1;
            let digits = n.to_string().into_bytes();
            candidate = base[..base.len().min(max_base.saturating_sub(digits.len()))].to_vec();
            candidate.extend_from_slice(&digits);
        }
        used.insert((candidate.clone(), ext.clone()));
        let mut ident = candidate;
        if !is_dir {
            ident.push(b'.');
            ident.extend_from_slice(&ext);
            ident.extend_from_slice(VERSION_SUFFIX);
        }
        out.push(ident);
    }
    out
}

/// ECMA-119 9.3: records are ordered by name, then extension, each compared as if padded with spaces (0x20),
/// then by version number, highest first.
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let (an, ae, av) = parts(a);
    let (bn, be, bv) = parts(b);
    padded(an, bn).then_with(|| padded(ae, be)).then_with(|| bv.cmp(av))
}

/// Splits "NAME.EXT;V" into its parts; a directory identifier is all name.
fn parts(ident: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (rest, version) = match ident.iter().position(|&c| c == b';') {
        Some(i) => (&ident[..i], &ident[i + 1..]),
        None => (ident, &[][..]),
    };
    match rest.iter().position(|&c| c == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..], version),
        None => (rest, &[][..], version),
    }
}

fn padded(a: &[u8], b: &[u8]) -> Ordering {
    let len = a.len().max(b.len());
    let pad = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(b' ');
    (0..len).map(|i| pad(a, i).cmp(&pad(b, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(names: &[(&str, bool)]) -> Vec<String> {
        identifiers(names.iter().copied()).into_iter().map(|i| String::from_utf8(i).unwrap()).collect()
    }

    #[test]
    fn names_become_unique_d_characters() {
        assert_eq!(
            idents(&[
                ("vmlinuz", false),
                ("isolinux.bin", false),
                (".bashrc", false),
                ("a.tar.gz", false),
                ("EFI", true),
                ("x86_64-linux.gnu", true),
                ("Straße.txt", false),
                ("Strasse.txt", false),
                ("STRA_E.TXT", false),
            ]),
            [
                "VMLINUZ.;1",
                "ISOLINUX.BIN;1",
                "_BASHRC.;1",
                "A_TAR.GZ;1",
                "EFI",
                "X86_64_LINUX_GNU",
                "STRA_E.TXT;1",
                "STRASSE.TXT;1",
                "STRA_E1.TXT;1"
            ]
        );
        let long = "a".repeat(40);
        let got = idents(&[(&format!("{long}.conf"), false), (&format!("{long}x.conf"), false)]);
        assert_eq!(got, [format!("{}.CONF;1", "A".repeat(26)), format!("{}1.CONF;1", "A".repeat(25))]);
    }

    #[test]
    fn ordering_pads_with_spaces() {
        let mut v: Vec<&[u8]> = vec![b"AB.;1", b"A.B;1", b"A1.;1", b"A", b"A_"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(v, [&b"A"[..], b"A.B;1", b"A1.;1", b"AB.;1", b"A_"]);
    }
}
