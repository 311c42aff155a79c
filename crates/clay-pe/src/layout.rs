//! The UKI layout: where every section of the stub and every added section goes, decided before a byte is written.
//!
//! Implements the UAPI "Unified Kernel Image" specification's section rules as ukify applies them, on the PE
//! Format's rules for images (4, Section Table): raw data at FileAlignment multiples, addresses at SectionAlignment
//! multiples, SizeOfHeaders covering the section table and below the first section's address.
//!
//! The stub's sections keep their addresses (its code refers to them) but not their file offsets: raw data is laid
//! out again, contiguous from SizeOfHeaders, so the headers can grow when the section table needs the room and a
//! section can leave (a `.sbat` too small to merge into). File offsets only appear in the section table, the
//! certificate table (refused) and debug directory entries (fixed up).

use std::borrow::Cow;
use std::ops::Range;

use crate::error::{malformed, PeError, STUB};
use crate::headers::{
    le32, put16, put32, to_u64, Headers, SectionHeader, COFF_NUMBER_OF_SECTIONS, COFF_NUMBER_OF_SYMBOLS,
    COFF_POINTER_TO_SYMBOL_TABLE, COFF_TIME_DATE_STAMP, DEBUG_ENTRY_LEN, DEBUG_POINTER_TO_RAW_DATA, DIR_DEBUG,
    IMAGE_SCN_CNT_CODE, IMAGE_SCN_CNT_INITIALIZED_DATA, IMAGE_SCN_MEM_READ, MACHINE_AARCH64, MACHINE_X86_64,
    OPT_CHECKSUM, OPT_SIZE_OF_CODE, OPT_SIZE_OF_HEADERS, OPT_SIZE_OF_IMAGE, OPT_SIZE_OF_INITIALIZED_DATA, PE32_MAGIC,
    PE32_PLUS_MAGIC, SECTION_HEADER_LEN, SECTION_NAME_LEN, SEC_POINTER_TO_RAW_DATA, SEC_SIZE_OF_RAW_DATA,
    SEC_VIRTUAL_SIZE,
};
use crate::SECTION_ORDER;

/// The section that carries the kernel. ukify marks it as code, not data: the legacy EFI handover protocol may
/// run the kernel in place, and firmware that maps data sections non-executable would then fault.
const LINUX: &str = ".linux";
/// The SBAT section (shim SBAT.md), the one section a stub may already have that the UKI merges into.
pub(crate) const SBAT: &str = ".sbat";

/// A stub checked for everything building a UKI on it needs.
#[derive(Debug)]
pub(crate) struct Stub<'s> {
    pub(crate) bytes: &'s [u8],
    pub(crate) headers: Headers,
}

impl<'s> Stub<'s> {
    pub(crate) fn parse(bytes: &'s [u8]) -> Result<Self, PeError> {
        let headers = Headers::parse(bytes, STUB)?;
        match headers.magic {
            PE32_PLUS_MAGIC => {}
            PE32_MAGIC => {
                return Err(PeError::NotPe32Plus {
                    image: STUB,
                    magic: PE32_MAGIC,
                    hint: " (it is a 32-bit PE32 image; use the 64-bit stub)",
                })
            }
            magic => return Err(PeError::NotPe32Plus { image: STUB, magic, hint: "" }),
        }
        if ![MACHINE_X86_64, MACHINE_AARCH64].contains(&headers.machine) {
            return Err(PeError::UnsupportedMachine { machine: headers.machine });
        }
        if headers.certificate_table().is_some() {
            return Err(PeError::AlreadySigned);
        }
        for (field, value) in
            [("FileAlignment", headers.file_alignment), ("SectionAlignment", headers.section_alignment)]
        {
            if !value.is_power_of_two() {
                return Err(malformed(STUB, format!("its {field} {value:#x} is not a power of two")));
            }
        }
        let stub = Stub { bytes, headers };
        for s in &stub.headers.sections {
            stub.raw_range(s)?;
        }
        Ok(stub)
    }

    /// The stub's section called `name`.
    pub(crate) fn section(&self, name: &str) -> Option<&SectionHeader> {
        self.headers.sections.iter().find(|s| s.name() == name.as_bytes())
    }

    /// A section's bytes in the stub file, checked to be inside it.
    fn raw_range(&self, s: &SectionHeader) -> Result<Range<usize>, PeError> {
        if s.raw_size() == 0 {
            return Ok(0..0);
        }
        let start = usize::try_from(s.raw_offset()).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(s.raw_size()).unwrap_or(usize::MAX));
        if end > self.bytes.len() {
            return Err(malformed(
                STUB,
                format!(
                    "its section `{}` claims file bytes {start:#x}..{end:#x} but the file has only {:#x} bytes",
                    String::from_utf8_lossy(s.name()),
                    self.bytes.len()
                ),
            ));
        }
        Ok(start..end)
    }

    /// A section's content: its raw data cut to VirtualSize, which drops the FileAlignment padding.
    pub(crate) fn content(&self, s: &SectionHeader) -> &'s [u8] {
        let raw = self.raw_range(s).map_or(&[][..], |r| &self.bytes[r]);
        let vsize = usize::try_from(s.virtual_size()).unwrap_or(usize::MAX);
        if vsize == 0 {
            raw
        } else {
            &raw[..vsize.min(raw.len())]
        }
    }
}

/// Checks the names, order and sizes of the sections to add: the UAPI UKI order, extra sections last, names of at
/// most 8 bytes, no duplicates, `.linux` present, no empty section, none of 4 GiB or more.
pub(crate) fn validate_inputs<'n>(inputs: impl IntoIterator<Item = (&'n str, u64)>) -> Result<(), PeError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut last_known: Option<(usize, &str)> = None;
    let mut first_extra: Option<&str> = None;
    for (name, len) in inputs {
        if name.is_empty() || name.contains('\0') {
            return Err(PeError::InvalidName { name: name.to_owned() });
        }
        if name.len() > SECTION_NAME_LEN {
            return Err(PeError::NameTooLong { name: name.to_owned() });
        }
        if seen.contains(&name) {
            return Err(PeError::DuplicateSection { name: name.to_owned() });
        }
        seen.push(name);
        match SECTION_ORDER.iter().position(|&known| known == name) {
            Some(rank) => {
                if let Some(extra) = first_extra {
                    return Err(PeError::KnownAfterExtra { name: name.to_owned(), extra: extra.to_owned() });
                }
                if let Some((last_rank, last_name)) = last_known {
                    if rank < last_rank {
                        return Err(PeError::SectionOrder {
                            name: name.to_owned(),
                            after: last_name.to_owned(),
                            order: SECTION_ORDER.join(" "),
                        });
                    }
                }
                last_known = Some((rank, name));
            }
            None => {
                first_extra.get_or_insert(name);
            }
        }
        if len == 0 {
            return Err(PeError::EmptySection { name: name.to_owned() });
        }
        if u32::try_from(len).is_err() {
            return Err(PeError::SectionTooLarge { name: name.to_owned(), len });
        }
    }
    if !seen.contains(&LINUX) {
        return Err(PeError::MissingLinux);
    }
    Ok(())
}

/// Where one piece of raw data goes in the output.
#[derive(Debug)]
pub(crate) struct Piece<'s> {
    pub(crate) offset: u64,
    /// SizeOfRawData: the data, then zeros up to here.
    pub(crate) raw_size: u64,
    pub(crate) data: Data<'s>,
}

#[derive(Debug)]
pub(crate) enum Data<'s> {
    /// Bytes known now: the stub's sections and a merged `.sbat`.
    Bytes(Cow<'s, [u8]>),
    /// `len` bytes streamed from the caller's section at this index.
    Input { index: usize, len: u64 },
}

/// The whole output: headers, then pieces in file order, ending exactly at `file_len`.
#[derive(Debug)]
pub(crate) struct Plan<'s> {
    pub(crate) headers: Vec<u8>,
    pub(crate) pieces: Vec<Piece<'s>>,
    pub(crate) file_len: u64,
}

/// The stub's `.sbat` merged with the caller's: the caller's section index and the merged text.
#[derive(Debug)]
pub(crate) struct MergedSbat {
    pub(crate) index: usize,
    pub(crate) content: Vec<u8>,
}

/// A stub section that stays, with its header as it will be written.
struct Kept<'s> {
    header: SectionHeader,
    old_range: Range<usize>,
    data: Cow<'s, [u8]>,
    /// New file offset of the raw data, once laid out.
    offset: u64,
}

/// Lays out `stub` plus `inputs` (names and lengths, already validated and checked against the stub's names).
pub(crate) fn plan<'s>(
    stub: &Stub<'s>,
    inputs: &[(&str, u64)],
    merged_sbat: Option<MergedSbat>,
    timestamp: Option<u32>,
) -> Result<Plan<'s>, PeError> {
    let h = &stub.headers;
    let file_alignment = u64::from(h.file_alignment);
    let section_alignment = u64::from(h.section_alignment);

    let mut kept = Vec::with_capacity(h.sections.len());
    for s in &h.sections {
        let range = stub.raw_range(s)?;
        kept.push(Kept {
            header: s.clone(),
            data: Cow::Borrowed(&stub.bytes[range.clone()]),
            old_range: range,
            offset: 0,
        });
    }

    // The stub's `.sbat` takes the merged text in place when its address range has room; otherwise (the systemd
    // 252 stub: `.sdmagic` follows 0x100 bytes after `.sbat`) it leaves, and the merged `.sbat` is added at its place
    // in the UKI order. shim refuses an image with two `.sbat` sections, so one of the two must go.
    let mut in_place = None;
    let mut moved = None;
    if let Some(merged) = merged_sbat {
        let at = kept
            .iter()
            .position(|k| k.header.name() == SBAT.as_bytes())
            .ok_or_else(|| malformed(STUB, "it has no `.sbat` section to merge into"))?;
        let va = kept[at].header.virtual_address();
        let room = kept
            .iter()
            .enumerate()
            .filter(|&(i, k)| i != at && k.header.virtual_address() >= va)
            .map(|(_, k)| u64::from(k.header.virtual_address() - va))
            .min();
        if room.is_none_or(|room| to_u64(merged.content.len()) <= room) {
            kept[at].header.set(SEC_VIRTUAL_SIZE, fit32(to_u64(merged.content.len()))?);
            kept[at].data = Cow::Owned(merged.content);
            in_place = Some(merged.index);
        } else {
            kept.remove(at);
            moved = Some(merged);
        }
    }

    // Section headers: the table may grow into the zeros before the first section's data, and past them by
    // moving all raw data, but never into the first section's address range, which the loader fills from the
    // headers' end.
    let added = inputs.len() - usize::from(in_place.is_some());
    let count = kept.len() + added;
    let number_of_sections = u16::try_from(count).map_err(|_| PeError::TooManySections { count })?;
    let old_table_end = h.section_table + h.sections.len() * SECTION_HEADER_LEN;
    let table_end = h.section_table + count * SECTION_HEADER_LEN;
    let old_size_of_headers = usize::try_from(h.size_of_headers).unwrap_or(usize::MAX);
    if old_size_of_headers > stub.bytes.len() {
        return Err(PeError::Truncated {
            image: STUB,
            what: "headers (SizeOfHeaders)",
            end: u64::from(h.size_of_headers),
            len: to_u64(stub.bytes.len()),
        });
    }
    if old_size_of_headers < old_table_end {
        return Err(malformed(
            STUB,
            format!("its SizeOfHeaders {old_size_of_headers:#x} ends inside its section table"),
        ));
    }
    let overwritten = old_table_end..table_end.min(old_size_of_headers);
    if let Some(pos) = stub.bytes.get(overwritten.clone()).and_then(|b| b.iter().position(|&b| b != 0)) {
        return Err(PeError::HeaderAreaInUse { offset: to_u64(overwritten.start + pos) });
    }
    let size_of_headers = align(to_u64(table_end.max(old_size_of_headers)), file_alignment);
    let lowest_va = kept.iter().map(|k| u64::from(k.header.virtual_address())).min();
    if lowest_va.is_some_and(|va| size_of_headers > va) {
        return Err(PeError::NoHeaderRoom { count: added, size_of_headers: h.size_of_headers });
    }

    // The stub's raw data, in its file order, contiguous from the headers' end.
    let mut file_order: Vec<usize> = (0..kept.len()).filter(|&i| !kept[i].data.is_empty()).collect();
    file_order.sort_by_key(|&i| kept[i].old_range.start);
    let mut cursor = size_of_headers;
    let mut previous_end = 0;
    for &i in &file_order {
        let k = &mut kept[i];
        if k.old_range.start < previous_end {
            let name = String::from_utf8_lossy(k.header.name()).into_owned();
            return Err(malformed(STUB, format!("its section `{name}` overlaps the one before it in the file")));
        }
        previous_end = k.old_range.end;
        let raw_size = align(to_u64(k.data.len()), file_alignment);
        k.offset = cursor;
        k.header.set(SEC_POINTER_TO_RAW_DATA, fit32(cursor)?);
        k.header.set(SEC_SIZE_OF_RAW_DATA, fit32(raw_size)?);
        cursor += raw_size;
    }

    // Debug directory entries point at file offsets of data that moved with its section.
    let mut header_patches = Vec::new();
    for (field_at, old) in debug_pointers(stub)? {
        let new = if old == 0 || usize::try_from(old).is_ok_and(|old| old < old_size_of_headers) {
            u64::from(old)
        } else {
            kept.iter()
                .filter(|k| in_place.is_none() || k.header.name() != SBAT.as_bytes())
                .find_map(|k| {
                    let rel = u64::from(old).checked_sub(to_u64(k.old_range.start))?;
                    (rel < to_u64(k.old_range.len())).then_some(k.offset + rel)
                })
                .ok_or(PeError::DebugDataOutsideSections { offset: old })?
        };
        let new = fit32(new)?;
        match kept.iter_mut().find(|k| k.old_range.contains(&field_at)) {
            Some(k) => put32(k.data.to_mut(), field_at - k.old_range.start, new),
            None if field_at < old_size_of_headers => header_patches.push((field_at, new)),
            // The entry sat in the stub's `.sbat`, which left the image.
            None => {}
        }
    }

    let mut pieces = Vec::with_capacity(file_order.len() + added);
    for &i in &file_order {
        let k = &mut kept[i];
        let raw_size = u64::from(k.header.raw_size());
        pieces.push(Piece { offset: k.offset, raw_size, data: Data::Bytes(std::mem::take(&mut k.data)) });
    }

    // The added sections, after the stub's highest address and file offset, without gaps beyond alignment.
    let mut next_va = kept.iter().map(|k| k.header.virtual_end()).max().unwrap_or(size_of_headers);
    let mut table: Vec<SectionHeader> = kept.into_iter().map(|k| k.header).collect();
    let (mut size_of_code, mut size_of_data) = (0u64, 0u64);
    for (index, &(name, len)) in inputs.iter().enumerate() {
        if in_place == Some(index) {
            continue;
        }
        let data = match moved.take_if(|m| m.index == index) {
            Some(m) => Data::Bytes(Cow::Owned(m.content)),
            None => Data::Input { index, len },
        };
        let len = match &data {
            Data::Bytes(bytes) => to_u64(bytes.len()),
            Data::Input { len, .. } => *len,
        };
        let va = align(next_va, section_alignment);
        let raw_size = align(len, file_alignment);
        let flags = if name == LINUX {
            size_of_code += raw_size;
            IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_READ
        } else {
            size_of_data += raw_size;
            IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
        };
        let raw = (fit32(cursor)?, fit32(raw_size)?);
        table.push(SectionHeader::new(name.as_bytes(), fit32(va)?, fit32(len)?, raw, flags));
        pieces.push(Piece { offset: cursor, raw_size, data });
        next_va = va + len;
        cursor += raw_size;
    }
    let file_len = cursor;
    fit32(file_len)?;
    let image_end = table.iter().map(SectionHeader::virtual_end).max().unwrap_or(0).max(size_of_headers);
    let size_of_image = fit32(align(image_end, section_alignment))?;

    let mut out = stub.bytes[..old_size_of_headers].to_vec();
    out.resize(usize::try_from(size_of_headers).map_err(|_| PeError::ImageTooLarge { end: size_of_headers })?, 0);
    out[h.section_table..old_table_end.max(table_end)].fill(0);
    for (i, s) in table.iter().enumerate() {
        let at = h.section_table + i * SECTION_HEADER_LEN;
        out[at..at + SECTION_HEADER_LEN].copy_from_slice(&s.bytes);
    }
    for (at, value) in header_patches {
        put32(&mut out, at, value);
    }
    let coff = h.coff;
    put16(&mut out, coff + COFF_NUMBER_OF_SECTIONS, number_of_sections);
    if let Some(t) = timestamp {
        put32(&mut out, coff + COFF_TIME_DATE_STAMP, t);
    }
    // Image files should carry no COFF symbol table (PE Format 3.3, PointerToSymbolTable); old stubs keep one after
    // their last section, which is not copied: the added sections go there.
    put32(&mut out, coff + COFF_POINTER_TO_SYMBOL_TABLE, 0);
    put32(&mut out, coff + COFF_NUMBER_OF_SYMBOLS, 0);
    let opt = h.opt;
    // The stub's own accounting is kept as it is; only the added sections are added to it.
    let new_code = fit32(u64::from(le32(&out[opt + OPT_SIZE_OF_CODE..])) + size_of_code)?;
    let new_data = fit32(u64::from(le32(&out[opt + OPT_SIZE_OF_INITIALIZED_DATA..])) + size_of_data)?;
    put32(&mut out, opt + OPT_SIZE_OF_CODE, new_code);
    put32(&mut out, opt + OPT_SIZE_OF_INITIALIZED_DATA, new_data);
    put32(&mut out, opt + OPT_SIZE_OF_IMAGE, size_of_image);
    put32(&mut out, opt + OPT_SIZE_OF_HEADERS, fit32(size_of_headers)?);
    // Zero, as ukify writes it: the header goes out before the streamed sections are read (see `checksum`).
    put32(&mut out, opt + OPT_CHECKSUM, 0);

    Ok(Plan { headers: out, pieces, file_len })
}

/// `(file offset of the field, its value)` for the PointerToRawData of every debug directory entry.
fn debug_pointers(stub: &Stub<'_>) -> Result<Vec<(usize, u32)>, PeError> {
    let h = &stub.headers;
    let Some(&(rva, size)) = h.data_directories.get(DIR_DEBUG).filter(|&&(_, size)| size != 0) else {
        return Ok(Vec::new());
    };
    // The directory's own file offset: inside the headers or inside some section's raw data.
    let start = if rva < h.size_of_headers {
        Some(u64::from(rva))
    } else {
        h.sections.iter().find_map(|s| {
            let rel = rva.checked_sub(s.virtual_address())?;
            (rel < s.raw_size()).then(|| u64::from(s.raw_offset()) + u64::from(rel))
        })
    };
    let start = start.and_then(|s| usize::try_from(s).ok()).ok_or_else(|| {
        malformed(STUB, format!("its debug directory at RVA {rva:#x} is not inside any section's file data"))
    })?;
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    let dir = start.checked_add(len).and_then(|end| stub.bytes.get(start..end)).ok_or_else(|| {
        malformed(STUB, format!("its debug directory ({size:#x} bytes at {start:#x}) runs past the file"))
    })?;
    Ok(dir
        .chunks_exact(DEBUG_ENTRY_LEN)
        .enumerate()
        .map(|(i, entry)| {
            (start + i * DEBUG_ENTRY_LEN + DEBUG_POINTER_TO_RAW_DATA, le32(&entry[DEBUG_POINTER_TO_RAW_DATA..]))
        })
        .collect())
}

/// `value` rounded up to a multiple of `alignment`, a power of two checked at parse time.
pub(crate) fn align(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

fn fit32(value: u64) -> Result<u32, PeError> {
    u32::try_from(value).map_err(|_| PeError::ImageTooLarge { end: value })
}
