//! System Use Sharing Protocol (SUSP 1.12) and Rock Ridge (RRIP 1.12, IEEE P1282) entries: the POSIX names,
//! modes and times readers on Linux and the BSDs show instead of the ISO 9660 identifiers.

use crate::bytes::both_u32;

/// SUSP 5.3: "SP" entry, its check bytes, and LEN_SKP 0 (system use fields start at their first byte).
const SP: [u8; 7] = [b'S', b'P', 7, 1, 0xBE, 0xEF, 0];
/// SUSP 5.1: a "CE" entry's length: header, then block, offset and length as both-byte-order numbers.
pub(crate) const CE_LEN: usize = 28;
/// RRIP 1.12 4.1.1: "PX" with file serial number (44 bytes; RRIP 1.10 had 36).
const PX_LEN: u8 = 44;
/// RRIP 1.12 4.1.6: TF flags: modify, access and attributes (ctime) times follow, in the 7-byte form.
const TF_MODIFY_ACCESS_ATTRIBUTES: u8 = 0b0000_1110;
/// RRIP 1.12 4.1.4: NM flag CONTINUE: the name goes on in the next NM entry.
const NM_CONTINUE: u8 = 1;
/// The most name bytes one NM entry holds: its length field is one byte and its header five.
const NM_MAX_PART: usize = 255 - 5;

/// RRIP 1.12 4.3 and 5.5: the extension reference for Rock Ridge 1.12, recorded once in the root's "." record.
const ER_ID: &[u8] = b"IEEE_P1282";
const ER_DESCRIPTOR: &[u8] = b"THE IEEE P1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS.";
const ER_SOURCE: &[u8] =
    b"PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR THE P1282 SPECIFICATION.";

fn entry(sig: &[u8; 2], body: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + body.len());
    e.extend_from_slice(sig);
    // Callers keep bodies short (at most NM_MAX_PART or the fixed ER text); the fallback never triggers.
    e.push(u8::try_from(4 + body.len()).unwrap_or(u8::MAX));
    e.push(1);
    e.extend_from_slice(body);
    e
}

pub(crate) fn sp() -> Vec<u8> {
    SP.to_vec()
}

/// SUSP 5.5 "ER": identifier, descriptor and source lengths, extension version 1, then the three texts.
pub(crate) fn er() -> Vec<u8> {
    let lens = [ER_ID.len(), ER_DESCRIPTOR.len(), ER_SOURCE.len()].map(|l| u8::try_from(l).unwrap_or(u8::MAX));
    let mut body = vec![lens[0], lens[1], lens[2], 1];
    body.extend_from_slice(ER_ID);
    body.extend_from_slice(ER_DESCRIPTOR);
    body.extend_from_slice(ER_SOURCE);
    entry(b"ER", &body)
}

/// RRIP 4.1.1 "PX": mode, links, uid, gid (root) and serial number.
pub(crate) fn px(mode: u32, nlink: u32, serial: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(usize::from(PX_LEN) - 4);
    for v in [mode, nlink, 0, 0, serial] {
        body.extend_from_slice(&both_u32(v));
    }
    entry(b"PX", &body)
}

/// RRIP 4.1.6 "TF": the same recording date for modification, access and attribute change.
pub(crate) fn tf(date: [u8; 7]) -> Vec<u8> {
    let mut body = vec![TF_MODIFY_ACCESS_ATTRIBUTES];
    for _ in 0..3 {
        body.extend_from_slice(&date);
    }
    entry(b"TF", &body)
}

/// RRIP 4.1.4 "NM": the name, in as many entries as it takes.
pub(crate) fn nm(name: &[u8]) -> Vec<Vec<u8>> {
    let parts: Vec<&[u8]> = name.chunks(NM_MAX_PART).collect();
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut body = vec![if i < last { NM_CONTINUE } else { 0 }];
            body.extend_from_slice(part);
            entry(b"NM", &body)
        })
        .collect()
}

/// SUSP 5.1 "CE": where the system use area continues.
pub(crate) fn ce(block: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(CE_LEN - 4);
    for v in [block, offset, len] {
        body.extend_from_slice(&both_u32(v));
    }
    entry(b"CE", &body)
}

/// A record's system use entries, split between the record itself and a continuation area.
#[derive(Debug, Clone, Default)]
pub(crate) struct SystemUse {
    pub inline: Vec<u8>,
    /// Entries that did not fit; non-empty means the record ends with a CE entry pointing at them.
    pub overflow: Vec<u8>,
}

impl SystemUse {
    /// Bytes the record needs for its system use field, counting the CE entry.
    pub(crate) fn inline_len(&self) -> usize {
        self.inline.len() + if self.overflow.is_empty() { 0 } else { CE_LEN }
    }
}

/// Keeps entries in the record while they fit in `room` bytes (leaving room for a CE entry when some do not), and
/// moves the rest, in order, to the continuation area.
pub(crate) fn split(entries: Vec<Vec<u8>>, room: usize) -> SystemUse {
    let total: usize = entries.iter().map(Vec::len).sum();
    let mut su = SystemUse::default();
    if total <= room {
        su.inline = entries.concat();
        return su;
    }
    let mut spilled = false;
    for e in entries {
        if !spilled && su.inline.len() + e.len() + CE_LEN <= room {
            su.inline.extend_from_slice(&e);
        } else {
            spilled = true;
            su.overflow.extend_from_slice(&e);
        }
    }
    su
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_their_spec_lengths() {
        assert_eq!(px(0o100_644, 1, 7).len(), 44);
        assert_eq!(tf([0; 7]).len(), 26);
        assert_eq!(ce(1, 2, 3).len(), CE_LEN);
        let er = er();
        assert_eq!(usize::from(er[2]), er.len());
        assert_eq!(&er[8..18], b"IEEE_P1282");
        let long = nm(&[b'x'; 255]);
        assert_eq!(long.len(), 2);
        assert_eq!((long[0][2], long[0][4], long[1][2], long[1][4]), (255, NM_CONTINUE, 10, 0));
    }

    #[test]
    fn split_moves_the_tail_to_the_continuation_area() {
        let su = split(vec![vec![1; 44], vec![2; 26], vec![3; 10]], 100);
        assert_eq!((su.inline.len(), su.overflow.len(), su.inline_len()), (80, 0, 80));
        let su = split(vec![vec![1; 44], vec![2; 26], vec![3; 100], vec![4; 4]], 120);
        assert_eq!((su.inline.len(), su.overflow.len(), su.inline_len()), (70, 104, 98));
    }
}
