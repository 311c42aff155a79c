//! Parsing of PE/COFF image headers and the section table, bounds-checked against the bytes given.
//!
//! Implements the Microsoft "PE Format" specification, section 3 (File Headers: MS-DOS stub, signature, COFF file
//! header, optional header and its data directories) and section 4 (Section Table). Offsets below are relative to
//! the start of the structure they belong to, as the specification's tables give them.

use crate::error::{malformed, PeError};

/// "MZ": the first two bytes of every image (PE Format 3.1, MS-DOS Stub).
pub(crate) const DOS_MAGIC: &[u8; 2] = b"MZ";
/// Offset of `e_lfanew`, the file offset of the PE signature (PE Format 3.1, "at offset 0x3c").
pub(crate) const DOS_LFANEW_OFFSET: usize = 0x3c;
/// "PE\0\0" (PE Format 3.2, Signature).
pub(crate) const PE_SIGNATURE: &[u8; 4] = b"PE\0\0";

/// COFF file header size and field offsets (PE Format 3.3).
pub(crate) const COFF_HEADER_LEN: usize = 20;
pub(crate) const COFF_MACHINE: usize = 0;
pub(crate) const COFF_NUMBER_OF_SECTIONS: usize = 2;
pub(crate) const COFF_TIME_DATE_STAMP: usize = 4;
pub(crate) const COFF_POINTER_TO_SYMBOL_TABLE: usize = 8;
pub(crate) const COFF_NUMBER_OF_SYMBOLS: usize = 12;
pub(crate) const COFF_SIZE_OF_OPTIONAL_HEADER: usize = 16;

/// IMAGE_FILE_MACHINE_AMD64 and IMAGE_FILE_MACHINE_ARM64 (PE Format 3.3.1, Machine Types).
pub const MACHINE_X86_64: u16 = 0x8664;
pub const MACHINE_AARCH64: u16 = 0xaa64;

/// Optional header magic numbers (PE Format 3.4.1, Optional Header Standard Fields).
pub(crate) const PE32_MAGIC: u16 = 0x10b;
pub(crate) const PE32_PLUS_MAGIC: u16 = 0x20b;

/// Optional header field offsets shared by PE32 and PE32+ (PE Format 3.4.1 and 3.4.2).
pub(crate) const OPT_MAGIC: usize = 0;
pub(crate) const OPT_SIZE_OF_CODE: usize = 4;
pub(crate) const OPT_SIZE_OF_INITIALIZED_DATA: usize = 8;
pub(crate) const OPT_SECTION_ALIGNMENT: usize = 32;
pub(crate) const OPT_FILE_ALIGNMENT: usize = 36;
pub(crate) const OPT_SIZE_OF_IMAGE: usize = 56;
pub(crate) const OPT_SIZE_OF_HEADERS: usize = 60;
pub(crate) const OPT_CHECKSUM: usize = 64;
/// `NumberOfRvaAndSizes` and the first data directory: PE32+ widens the stack and heap fields to 64 bits, which
/// moves both (PE Format 3.4.2).
const PE32_NUMBER_OF_RVA_AND_SIZES: usize = 92;
const PE32_PLUS_NUMBER_OF_RVA_AND_SIZES: usize = 108;
/// Each data directory is an RVA and a size, 4 bytes each (PE Format 3.4.3).
pub(crate) const DATA_DIRECTORY_LEN: usize = 8;
/// Data directory indexes (PE Format 3.4.3): the certificate table holds a *file offset*, not an RVA.
pub(crate) const DIR_CERTIFICATE_TABLE: usize = 4;
pub(crate) const DIR_DEBUG: usize = 6;

/// Section header size and field offsets (PE Format 4, Section Table).
pub(crate) const SECTION_HEADER_LEN: usize = 40;
pub(crate) const SECTION_NAME_LEN: usize = 8;
pub(crate) const SEC_VIRTUAL_SIZE: usize = 8;
pub(crate) const SEC_VIRTUAL_ADDRESS: usize = 12;
pub(crate) const SEC_SIZE_OF_RAW_DATA: usize = 16;
pub(crate) const SEC_POINTER_TO_RAW_DATA: usize = 20;
pub(crate) const SEC_CHARACTERISTICS: usize = 36;

/// Section flags (PE Format 4.1): what the UKI's added sections are marked with.
pub const IMAGE_SCN_CNT_CODE: u32 = 0x0000_0020;
pub const IMAGE_SCN_CNT_INITIALIZED_DATA: u32 = 0x0000_0040;
pub const IMAGE_SCN_MEM_READ: u32 = 0x4000_0000;

/// Debug directory entry size and the offset of its `PointerToRawData`, a file offset (PE Format 6.1.1).
pub(crate) const DEBUG_ENTRY_LEN: usize = 28;
pub(crate) const DEBUG_POINTER_TO_RAW_DATA: usize = 24;

/// A PE image's headers as [`read_sections`](crate::read_sections) reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeInfo {
    pub machine: u16,
    pub timestamp: u32,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub checksum: u32,
    /// File offset and size of the Authenticode signatures, when the image is signed.
    pub certificate_table: Option<(u32, u32)>,
    /// In section-table order.
    pub sections: Vec<SectionInfo>,
}

/// One section header. The raw range may lie beyond the end of the file in a malformed image: check it before
/// seeking there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: String,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub raw_offset: u32,
    pub raw_size: u32,
    pub characteristics: u32,
}

/// One raw section header, kept whole so the fields this crate does not interpret are written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectionHeader {
    pub(crate) bytes: [u8; SECTION_HEADER_LEN],
}

impl SectionHeader {
    pub(crate) fn new(name: &[u8], virtual_address: u32, virtual_size: u32, raw: (u32, u32), flags: u32) -> Self {
        let mut bytes = [0; SECTION_HEADER_LEN];
        let n = name.len().min(SECTION_NAME_LEN);
        bytes[..n].copy_from_slice(&name[..n]);
        let mut h = SectionHeader { bytes };
        h.set(SEC_VIRTUAL_SIZE, virtual_size);
        h.set(SEC_VIRTUAL_ADDRESS, virtual_address);
        h.set(SEC_POINTER_TO_RAW_DATA, raw.0);
        h.set(SEC_SIZE_OF_RAW_DATA, raw.1);
        h.set(SEC_CHARACTERISTICS, flags);
        h
    }

    /// The name without its NUL padding.
    pub(crate) fn name(&self) -> &[u8] {
        let raw = &self.bytes[..SECTION_NAME_LEN];
        raw.iter().position(|&b| b == 0).map_or(raw, |end| &raw[..end])
    }

    pub(crate) fn get(&self, field: usize) -> u32 {
        // Field offsets are constants inside the 40-byte header.
        u32::from_le_bytes([self.bytes[field], self.bytes[field + 1], self.bytes[field + 2], self.bytes[field + 3]])
    }

    pub(crate) fn set(&mut self, field: usize, value: u32) {
        self.bytes[field..field + 4].copy_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn virtual_address(&self) -> u32 {
        self.get(SEC_VIRTUAL_ADDRESS)
    }
    pub(crate) fn virtual_size(&self) -> u32 {
        self.get(SEC_VIRTUAL_SIZE)
    }
    pub(crate) fn raw_offset(&self) -> u32 {
        self.get(SEC_POINTER_TO_RAW_DATA)
    }
    pub(crate) fn raw_size(&self) -> u32 {
        self.get(SEC_SIZE_OF_RAW_DATA)
    }

    /// End of the section's address range. A zero VirtualSize means "as much as the raw data", which some linkers
    /// still emit.
    pub(crate) fn virtual_end(&self) -> u64 {
        let size = if self.virtual_size() == 0 { self.raw_size() } else { self.virtual_size() };
        u64::from(self.virtual_address()) + u64::from(size)
    }

    fn info(&self) -> SectionInfo {
        SectionInfo {
            name: String::from_utf8_lossy(self.name()).into_owned(),
            virtual_address: self.virtual_address(),
            virtual_size: self.virtual_size(),
            raw_offset: self.raw_offset(),
            raw_size: self.raw_size(),
            characteristics: self.get(SEC_CHARACTERISTICS),
        }
    }
}

/// Where the headers sit in the file and what they say, every offset already checked against the bytes given.
#[derive(Debug, Clone)]
pub(crate) struct Headers {
    /// File offset of the COFF file header.
    pub(crate) coff: usize,
    /// File offset of the optional header.
    pub(crate) opt: usize,
    /// File offset of the section table.
    pub(crate) section_table: usize,
    pub(crate) magic: u16,
    pub(crate) machine: u16,
    pub(crate) timestamp: u32,
    pub(crate) section_alignment: u32,
    pub(crate) file_alignment: u32,
    pub(crate) size_of_image: u32,
    pub(crate) size_of_headers: u32,
    pub(crate) checksum: u32,
    /// `(RVA or file offset, size)` per data directory present.
    pub(crate) data_directories: Vec<(u32, u32)>,
    pub(crate) sections: Vec<SectionHeader>,
}

impl Headers {
    /// Parses the headers from `bytes`, a prefix of the file at least as long as the section table's end.
    pub(crate) fn parse(bytes: &[u8], image: &'static str) -> Result<Self, PeError> {
        let at = |offset: usize, len: usize, what: &'static str| -> Result<&[u8], PeError> {
            let end = offset.checked_add(len).ok_or_else(|| malformed(image, format!("its {what} overflows")))?;
            bytes.get(offset..end).ok_or(PeError::Truncated { image, what, end: to_u64(end), len: to_u64(bytes.len()) })
        };
        if at(0, DOS_MAGIC.len(), "MS-DOS header")? != DOS_MAGIC {
            return Err(PeError::MissingMz { image });
        }
        let pe = usize::try_from(le32(at(DOS_LFANEW_OFFSET, 4, "MS-DOS header")?))
            .map_err(|_| malformed(image, "its PE header offset does not fit this machine"))?;
        if at(pe, PE_SIGNATURE.len(), "PE signature")? != PE_SIGNATURE {
            return Err(PeError::MissingPeSignature { image, offset: to_u64(pe) });
        }
        let coff = pe + PE_SIGNATURE.len();
        let coff_bytes = at(coff, COFF_HEADER_LEN, "COFF file header")?;
        let machine = le16(&coff_bytes[COFF_MACHINE..]);
        let number_of_sections = usize::from(le16(&coff_bytes[COFF_NUMBER_OF_SECTIONS..]));
        let timestamp = le32(&coff_bytes[COFF_TIME_DATE_STAMP..]);
        let opt_len = usize::from(le16(&coff_bytes[COFF_SIZE_OF_OPTIONAL_HEADER..]));
        let opt = coff + COFF_HEADER_LEN;
        let opt_bytes = at(opt, opt_len, "optional header")?;

        let magic = le16(opt_bytes.get(OPT_MAGIC..).unwrap_or_default());
        let rva_count_offset = match magic {
            PE32_MAGIC => PE32_NUMBER_OF_RVA_AND_SIZES,
            PE32_PLUS_MAGIC => PE32_PLUS_NUMBER_OF_RVA_AND_SIZES,
            _ => return Err(PeError::NotPe32Plus { image, magic, hint: "" }),
        };
        let dirs_offset = rva_count_offset + 4;
        if opt_len < dirs_offset {
            return Err(malformed(
                image,
                format!("its optional header is {opt_len:#x} bytes, too short for its fields"),
            ));
        }
        let field = |offset: usize| le32(&opt_bytes[offset..]);
        let rva_count = usize::try_from(field(rva_count_offset)).unwrap_or(usize::MAX);
        let dirs_fit = (opt_len - dirs_offset) / DATA_DIRECTORY_LEN;
        if rva_count > dirs_fit {
            return Err(malformed(
                image,
                format!("its optional header claims {rva_count} data directories but has room for {dirs_fit}"),
            ));
        }
        let data_directories = (0..rva_count)
            .map(|i| {
                let d = dirs_offset + i * DATA_DIRECTORY_LEN;
                (field(d), field(d + 4))
            })
            .collect();

        let section_table = opt + opt_len;
        let table = at(section_table, number_of_sections * SECTION_HEADER_LEN, "section table")?;
        let sections = table
            .chunks_exact(SECTION_HEADER_LEN)
            .map(|chunk| {
                let mut bytes = [0; SECTION_HEADER_LEN];
                bytes.copy_from_slice(chunk);
                SectionHeader { bytes }
            })
            .collect();

        Ok(Headers {
            coff,
            opt,
            section_table,
            magic,
            machine,
            timestamp,
            section_alignment: field(OPT_SECTION_ALIGNMENT),
            file_alignment: field(OPT_FILE_ALIGNMENT),
            size_of_image: field(OPT_SIZE_OF_IMAGE),
            size_of_headers: field(OPT_SIZE_OF_HEADERS),
            checksum: field(OPT_CHECKSUM),
            data_directories,
            sections,
        })
    }

    /// File offset of the optional header's CheckSum field.
    pub(crate) fn checksum_offset(&self) -> usize {
        self.opt + OPT_CHECKSUM
    }

    /// The certificate table, when its entry is present and not empty.
    pub(crate) fn certificate_table(&self) -> Option<(u32, u32)> {
        self.data_directories.get(DIR_CERTIFICATE_TABLE).copied().filter(|&(offset, size)| offset != 0 || size != 0)
    }

    pub(crate) fn info(&self) -> PeInfo {
        PeInfo {
            machine: self.machine,
            timestamp: self.timestamp,
            section_alignment: self.section_alignment,
            file_alignment: self.file_alignment,
            size_of_image: self.size_of_image,
            size_of_headers: self.size_of_headers,
            checksum: self.checksum,
            certificate_table: self.certificate_table(),
            sections: self.sections.iter().map(SectionHeader::info).collect(),
        }
    }
}

/// Parses a PE image's headers and section table from a prefix of the file (the first 64 KiB is always enough).
/// Accepts PE32 as well as PE32+ and any machine: this is for looking, not for building.
pub fn read_sections(header_bytes: &[u8]) -> Result<PeInfo, PeError> {
    Ok(Headers::parse(header_bytes, crate::error::IMAGE)?.info())
}

/// A readable listing of the section table, one line per section, for `clay inspect` and snapshot tests.
pub fn dump(info: &PeInfo) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for s in &info.sections {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<8} va {:#010x} vsize {:#010x} raw {:#010x} rawsize {:#010x}",
            s.name, s.virtual_address, s.virtual_size, s.raw_offset, s.raw_size
        );
    }
    out
}

/// Little-endian reads from a slice already checked to be long enough.
pub(crate) fn le16(b: &[u8]) -> u16 {
    match b {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    }
}

pub(crate) fn le32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

pub(crate) fn put32(buf: &mut [u8], offset: usize, value: u32) {
    if let Some(dst) = buf.get_mut(offset..offset + 4) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

pub(crate) fn put16(buf: &mut [u8], offset: usize, value: u16) {
    if let Some(dst) = buf.get_mut(offset..offset + 2) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

/// usize → u64 never loses bits on the 32- and 64-bit targets Rust supports.
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
