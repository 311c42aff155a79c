//! SBAT (Secure Boot Advanced Targeting) metadata: the `.sbat` text shim checks before it runs an image.
//!
//! Format: shim's SBAT.md — CSV lines `component,generation,vendor,package,version,url`, the first of which must
//! be the `sbat,1,…` line naming the format's own version. A UKI carries the stub's lines and its own, after a
//! single header line, as ukify's `merge_sbat` does.

use crate::error::PeError;

/// The first line of every `.sbat` section (shim SBAT.md, "sbat,1,SBAT Version,...").
pub const SBAT_HEADER: &str = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n";
/// How a header line starts; its generation may differ from ours, but there must only ever be one.
const SBAT_HEADER_PREFIX: &str = "sbat,";
/// A caller's `.sbat` is buffered to be merged: SBAT data is a few lines, so anything larger is a mistake.
pub(crate) const MAX_SBAT_LEN: u64 = 64 * 1024;

/// The default `.sbat` content for a claylinux UKI: the header line, then claylinux's own line at `version`.
/// Commas and control characters in `version` would break the CSV, so they become `_`.
pub fn default_sbat(version: &str) -> String {
    let version: String = version.chars().map(|c| if c == ',' || c.is_control() { '_' } else { c }).collect();
    format!("{SBAT_HEADER}claylinux,1,claylinux,claylinux,{version},https://github.com/claylinux/claylinux\n")
}

/// The stub's `.sbat` (NUL padding trimmed) with the caller's lines appended, minus the caller's header line.
/// The stub's text is kept byte for byte, so its own header line stays the one and only first line.
pub(crate) fn merge(stub: &[u8], caller: &[u8]) -> Result<Vec<u8>, PeError> {
    let stub = std::str::from_utf8(trim_nul(stub)).map_err(|_| PeError::SbatNotText { origin: "EFI stub's" })?;
    let caller = std::str::from_utf8(trim_nul(caller)).map_err(|_| PeError::SbatNotText { origin: "UKI's" })?;
    let mut out = String::with_capacity(SBAT_HEADER.len() + stub.len() + caller.len() + 1);
    if stub.trim().is_empty() {
        // Nothing to keep from the stub: the caller's text must then supply the header itself.
        out.push_str(SBAT_HEADER);
    } else {
        if !stub.starts_with(SBAT_HEADER_PREFIX) {
            out.push_str(SBAT_HEADER);
        }
        out.push_str(stub);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    let mut lines = caller.lines().peekable();
    if lines.peek().is_some_and(|first| first.starts_with(SBAT_HEADER_PREFIX)) {
        lines.next();
    }
    for line in lines.filter(|l| !l.trim().is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    Ok(out.into_bytes())
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sbat_lines() {
        assert_eq!(
            default_sbat("1.2,3\n"),
            "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
             claylinux,1,claylinux,claylinux,1.2_3_,https://github.com/claylinux/claylinux\n"
        );
    }

    #[test]
    fn merge_keeps_stub_then_caller_lines() {
        let stub = format!("{SBAT_HEADER}systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n\0\0\0");
        let merged = merge(stub.as_bytes(), default_sbat("0.1.0").as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(merged).unwrap(),
            format!(
                "{SBAT_HEADER}systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n\
                 claylinux,1,claylinux,claylinux,0.1.0,https://github.com/claylinux/claylinux\n"
            )
        );
    }

    #[test]
    fn merge_adds_missing_newline_and_header() {
        let merged = merge(b"a,1,A,a,1,u", b"b,1,B,b,1,u\r\n\n").unwrap();
        assert_eq!(String::from_utf8(merged).unwrap(), format!("{SBAT_HEADER}a,1,A,a,1,u\nb,1,B,b,1,u\n"));
        let merged = merge(b"\0\0", b"sbat,1,x\nb,1\n").unwrap();
        assert_eq!(String::from_utf8(merged).unwrap(), format!("{SBAT_HEADER}b,1\n"));
    }

    #[test]
    fn merge_refuses_binary() {
        assert!(matches!(merge(b"\xff\xfe", b""), Err(PeError::SbatNotText { .. })));
        assert!(matches!(merge(b"", b"\xff"), Err(PeError::SbatNotText { .. })));
    }
}
