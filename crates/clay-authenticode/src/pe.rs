//! What Authenticode needs from a PE image: which bytes the digest covers, where the certificate table is, and the
//! streaming passes over the file (digest and CheckSum) that never hold more than one buffer of it.
//!
//! Implements section "Calculating the PE Image Hash" of Microsoft's "Windows Authenticode Portable Executable
//! Signature Format", and section 5.7 (The Attribute Certificate Table) of the "PE Format" specification.

use std::io::{self, Read, Seek, SeekFrom, Write};

use clay_pe::{PeChecksum, PeError};
use sha2::{Digest, Sha256};

use crate::error::{AuthenticodeError, Result};

/// COFF file header fields (PE Format 3.3) and the section header size (PE Format 4).
const COFF_HEADER_LEN: u64 = 20;
const COFF_NUMBER_OF_SECTIONS: u64 = 2;
const COFF_SIZE_OF_OPTIONAL_HEADER: u64 = 16;
const SECTION_HEADER_LEN: u64 = 40;
/// Optional header fields (PE Format 3.4): `Magic`, and the offsets of `NumberOfRvaAndSizes` and of the first data
/// directory, which PE32+ moves by widening the stack and heap fields to 64 bits.
const OPT_MAGIC: u64 = 0;
const OPT_CHECKSUM: u64 = 64;
const PE32_MAGIC: u16 = 0x10b;
const PE32_NUMBER_OF_RVA_AND_SIZES: u64 = 92;
const PE32_PLUS_NUMBER_OF_RVA_AND_SIZES: u64 = 108;
/// Data directory entries are 8 bytes; the Certificate Table is entry 4 (PE Format 3.4.3).
const DATA_DIRECTORY_LEN: u64 = 8;
const DIR_CERTIFICATE_TABLE: u32 = 4;
/// How much of the file is read to find the headers; a larger section table is read on demand.
const HEADER_PREFIX: u64 = 64 * 1024;
/// The headers of any sane image fit in this; it bounds what a malformed one makes us read.
const MAX_HEADERS: u64 = 16 * 1024 * 1024;
/// A certificate table holds a few certificates; this bounds what a malformed one makes us read.
const MAX_CERTIFICATE_TABLE: u64 = 16 * 1024 * 1024;
/// The streaming buffer.
const CHUNK: usize = 1 << 20;

/// `WIN_CERTIFICATE` (PE Format 5.7): `dwLength`, `wRevision`, `wCertificateType`, then the data; entries start
/// 8-byte aligned.
pub(crate) const WIN_CERTIFICATE_HEADER_LEN: usize = 8;
pub(crate) const WIN_CERT_REVISION_2_0: u16 = 0x0200;
pub(crate) const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;
pub(crate) const CERTIFICATE_ALIGNMENT: usize = 8;

/// Where the fields and ranges Authenticode cares about lie in one image.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// File offset of the optional header's CheckSum (4 bytes, not hashed).
    pub(crate) checksum_offset: u64,
    /// File offset of the Certificate Table data directory entry (8 bytes, not hashed).
    pub(crate) cert_dir_offset: u64,
    /// File offset and size of the certificate table, when the image is signed.
    pub(crate) cert_table: Option<(u64, u64)>,
    /// The file's length.
    pub(crate) len: u64,
}

impl Layout {
    /// Reads and checks the headers of the image in `file`.
    pub(crate) fn read<R: Read + Seek>(file: &mut R) -> Result<Self> {
        let len = file.seek(SeekFrom::End(0)).map_err(AuthenticodeError::Read)?;
        let mut prefix = read_at(file, 0, len.min(HEADER_PREFIX))?;
        let info = loop {
            match clay_pe::read_sections(&prefix) {
                // A section table beyond the first 64 KiB: read as far as it says it goes.
                Err(PeError::Truncated { end, .. })
                    if end <= len.min(MAX_HEADERS) && end > u64::try_from(prefix.len()).unwrap_or(u64::MAX) =>
                {
                    prefix = read_at(file, 0, end)?;
                }
                other => break other?,
            }
        };
        let checksum_offset = clay_pe::checksum_field_offset(&prefix)?;
        // `read_sections` checked that the optional header, with every data directory it declares, lies in `prefix`.
        let opt = checksum_offset - OPT_CHECKSUM;
        let le = |at: u64, width: usize| -> u32 {
            let at = usize::try_from(at).unwrap_or(usize::MAX);
            let mut bytes = [0; 4];
            if let Some(src) = prefix.get(at..at.saturating_add(width)) {
                bytes[..width].copy_from_slice(src);
            }
            u32::from_le_bytes(bytes)
        };
        let rva_count_offset = if le(opt + OPT_MAGIC, 2) == u32::from(PE32_MAGIC) {
            PE32_NUMBER_OF_RVA_AND_SIZES
        } else {
            PE32_PLUS_NUMBER_OF_RVA_AND_SIZES
        };
        let count = le(opt + rva_count_offset, 4);
        if count <= DIR_CERTIFICATE_TABLE {
            return Err(AuthenticodeError::NoCertificateDirectory { count });
        }
        let cert_dir_offset = opt + rva_count_offset + 4 + u64::from(DIR_CERTIFICATE_TABLE) * DATA_DIRECTORY_LEN;

        // The headers that are hashed must at least hold the section table.
        let coff = opt - COFF_HEADER_LEN;
        let optional_header_len = u64::from(le(coff + COFF_SIZE_OF_OPTIONAL_HEADER, 2));
        let table_end =
            opt + optional_header_len + SECTION_HEADER_LEN * u64::from(le(coff + COFF_NUMBER_OF_SECTIONS, 2));
        let size_of_headers = u64::from(info.size_of_headers);
        if size_of_headers < table_end {
            return Err(AuthenticodeError::HeadersTooShort { size_of_headers, table_end });
        }

        // Sections in file order must tile the file from the headers' end on: the Authenticode hash covers the
        // headers, then each section's raw data, then whatever follows the last one, and a verifier that counts
        // bytes (as the specification's SUM_OF_BYTES_HASHED does) would disagree with one that follows offsets
        // wherever a gap or an overlap lies.
        if size_of_headers > len {
            let (image, what) = ("PE image", "header area (SizeOfHeaders)");
            return Err(PeError::Truncated { image, what, end: size_of_headers, len }.into());
        }
        let mut sections: Vec<_> = info.sections.iter().filter(|s| s.raw_size > 0).collect();
        sections.sort_by_key(|s| s.raw_offset);
        let mut end = size_of_headers;
        let mut previous = "headers";
        for s in sections {
            let offset = u64::from(s.raw_offset);
            let name = s.name.clone();
            if offset > end {
                return Err(AuthenticodeError::SectionGap { name, offset, previous, expected: end });
            }
            if offset < end {
                return Err(AuthenticodeError::SectionOverlap { name, offset, previous, expected: end });
            }
            end = offset + u64::from(s.raw_size);
            previous = "previous section";
            if end > len {
                return Err(AuthenticodeError::SectionBeyondEnd { name, end, len });
            }
        }

        let cert_table = info.certificate_table.map(|(offset, size)| (u64::from(offset), u64::from(size)));
        if let Some((offset, size)) = cert_table {
            let bad = |reason: String| AuthenticodeError::BadCertificateTable { reason };
            if offset < end {
                return Err(bad(format!("it starts at {offset:#x}, inside the section data, which ends at {end:#x}")));
            }
            if offset + size != len {
                return Err(bad(format!(
                    "it spans {offset:#x}..{:#x} but the file is {len:#x} bytes; Authenticode requires it to end the \
                     file",
                    offset + size
                )));
            }
        }
        Ok(Layout { checksum_offset, cert_dir_offset, cert_table, len })
    }

    /// Where the hashed data ends: at the certificate table, or at the end of an unsigned file.
    pub(crate) fn hashed_end(&self) -> u64 {
        self.cert_table.map_or(self.len, |(offset, _)| offset)
    }

    /// The Authenticode SHA-256 digest of the image, as if `zero_padding` zero bytes followed its data (the padding
    /// that signing adds before the certificate table).
    pub(crate) fn digest<R: Read + Seek>(&self, file: &mut R, zero_padding: u64) -> Result<[u8; 32]> {
        let mut hash = Sha256::new();
        let mut feed = |bytes: &[u8]| hash.update(bytes);
        // Headers minus CheckSum and the Certificate Table entry, then sections and trailing data in one run: the
        // sections tile the file from the headers' end (checked in `read`).
        stream(file, 0, self.checksum_offset, &mut feed)?;
        stream(file, self.checksum_offset + 4, self.cert_dir_offset, &mut feed)?;
        stream(file, self.cert_dir_offset + DATA_DIRECTORY_LEN, self.hashed_end(), &mut feed)?;
        let zeros = [0u8; CERTIFICATE_ALIGNMENT];
        let pad = usize::try_from(zero_padding).unwrap_or(zeros.len()).min(zeros.len());
        feed(&zeros[..pad]);
        Ok(hash.finalize().into())
    }

    /// The raw certificate table.
    pub(crate) fn read_cert_table<R: Read + Seek>(&self, file: &mut R) -> Result<Vec<u8>> {
        let (offset, size) = self.cert_table.ok_or(AuthenticodeError::Unsigned)?;
        if size > MAX_CERTIFICATE_TABLE {
            return Err(AuthenticodeError::BadCertificateTable {
                reason: format!("it is {size} bytes, more than the {MAX_CERTIFICATE_TABLE} any signature needs"),
            });
        }
        read_at(file, offset, size)
    }
}

/// Writes the Certificate Table entry and recomputes the CheckSum over the whole file as it now is.
pub(crate) fn write_directory_and_checksum<F: Read + Write + Seek>(
    file: &mut F,
    layout: &Layout,
    table: (u32, u32),
) -> Result<()> {
    let mut entry = [0; 8];
    entry[..4].copy_from_slice(&table.0.to_le_bytes());
    entry[4..].copy_from_slice(&table.1.to_le_bytes());
    write_at(file, layout.cert_dir_offset, &entry)?;
    let len = file.seek(SeekFrom::End(0)).map_err(AuthenticodeError::Read)?;
    let mut sum = PeChecksum::new(layout.checksum_offset);
    stream(file, 0, len, &mut |bytes| sum.update(bytes))?;
    write_at(file, layout.checksum_offset, &sum.finish().to_le_bytes())?;
    file.flush().map_err(AuthenticodeError::Write)
}

/// Splits a certificate table into its `WIN_CERTIFICATE` entries of type PKCS#7 SignedData, returning each one's
/// data (which may end in zero padding).
pub(crate) fn pkcs7_entries(table: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = |reason: String| AuthenticodeError::BadCertificateTable { reason };
    let mut entries = Vec::new();
    let mut at = 0usize;
    // Up to 7 bytes of padding may follow the last entry.
    while table.len().saturating_sub(at) >= WIN_CERTIFICATE_HEADER_LEN {
        let header = &table[at..at + WIN_CERTIFICATE_HEADER_LEN];
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let revision = u16::from_le_bytes([header[4], header[5]]);
        let kind = u16::from_le_bytes([header[6], header[7]]);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let end = at.checked_add(length).filter(|&end| end <= table.len() && length > WIN_CERTIFICATE_HEADER_LEN);
        let Some(end) = end else {
            return Err(bad(format!(
                "the entry at table offset {at:#x} claims {length} bytes but {} remain",
                table.len() - at
            )));
        };
        if revision != WIN_CERT_REVISION_2_0 {
            return Err(bad(format!("the entry at table offset {at:#x} has revision {revision:#06x}, not 0x0200")));
        }
        if kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA {
            entries.push(&table[at + WIN_CERTIFICATE_HEADER_LEN..end]);
        }
        at = end.next_multiple_of(CERTIFICATE_ALIGNMENT);
    }
    Ok(entries)
}

/// Reads `len` bytes at `offset`.
pub(crate) fn read_at<R: Read + Seek>(file: &mut R, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buf =
        vec![0; usize::try_from(len).map_err(|_| AuthenticodeError::Read(io::ErrorKind::OutOfMemory.into()))?];
    file.seek(SeekFrom::Start(offset)).map_err(AuthenticodeError::Read)?;
    file.read_exact(&mut buf).map_err(AuthenticodeError::Read)?;
    Ok(buf)
}

pub(crate) fn write_at<W: Write + Seek>(file: &mut W, offset: u64, bytes: &[u8]) -> Result<()> {
    file.seek(SeekFrom::Start(offset)).map_err(AuthenticodeError::Write)?;
    file.write_all(bytes).map_err(AuthenticodeError::Write)
}

/// Feeds the bytes `from..to` of `file` to `sink`, one buffer at a time.
fn stream<R: Read + Seek>(file: &mut R, from: u64, to: u64, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
    file.seek(SeekFrom::Start(from)).map_err(AuthenticodeError::Read)?;
    let mut left = to.saturating_sub(from);
    let mut buf = vec![0; usize::try_from(left).unwrap_or(CHUNK).min(CHUNK)];
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        file.read_exact(&mut buf[..n]).map_err(AuthenticodeError::Read)?;
        sink(&buf[..n]);
        left -= u64::try_from(n).unwrap_or(left);
    }
    Ok(())
}
