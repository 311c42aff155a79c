//! Certificates as users have them: DER, or PEM (RFC 7468) as `openssl req -x509` writes them.

use crate::{EfiVarsError, Result};

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";
/// X.690 §8.9: a DER SEQUENCE (every certificate) starts with this tag.
const DER_SEQUENCE: u8 = 0x30;

/// The DER bytes of a certificate given as DER or as the first PEM `CERTIFICATE` block of `input`.
pub fn certificate_der(input: &[u8]) -> Result<Vec<u8>> {
    if input.first() == Some(&DER_SEQUENCE) {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input).map_err(|_| EfiVarsError::BadCertificate("it is neither DER nor text"))?;
    let start = text.find(PEM_BEGIN).ok_or(EfiVarsError::BadCertificate("no `BEGIN CERTIFICATE` line"))?;
    let body = &text[start + PEM_BEGIN.len()..];
    let end = body.find(PEM_END).ok_or(EfiVarsError::BadCertificate("no `END CERTIFICATE` line"))?;
    let der = base64_decode(&body[..end]).ok_or(EfiVarsError::BadCertificate("its base64 is invalid"))?;
    if der.first() != Some(&DER_SEQUENCE) {
        return Err(EfiVarsError::BadCertificate("the PEM block does not hold a DER SEQUENCE"));
    }
    Ok(der)
}

/// RFC 4648 §4 base64, ignoring whitespace; `None` on any other character or bad padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let chars: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if chars.len() % 4 != 0 {
        return None;
    }
    let padding = chars.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(chars.len() / 4 * 3);
    for (index, quad) in chars.chunks_exact(4).enumerate() {
        let last = index + 1 == chars.len() / 4;
        let pad = if last { padding } else { 0 };
        let mut bits = 0u32;
        for &c in &quad[..4 - pad] {
            bits = (bits << 6) | value(c)?;
        }
        bits <<= 6 * pad;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}
