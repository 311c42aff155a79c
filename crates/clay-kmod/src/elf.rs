//! Just enough ELF to read a module's `.modinfo` section: the header, the section header table and the section
//! name string table (the ELF gABI, "Sections"). 32- and 64-bit, either byte order; every offset is checked.

/// Why a module's bytes yield no modinfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("it does not start with the ELF magic (\\x7fELF)")]
    NotElf,
    #[error("its ELF class {0} is neither 32-bit (1) nor 64-bit (2)")]
    Class(u8),
    #[error("its ELF byte order {0} is neither little-endian (1) nor big-endian (2)")]
    ByteOrder(u8),
    #[error("its ELF {0} lies outside the file")]
    Truncated(&'static str),
    #[error("it has no .modinfo section")]
    NoModinfo,
}

/// Reads integers of one ELF file's width and byte order.
struct Reader<'a> {
    bytes: &'a [u8],
    big: bool,
    wide: bool,
}

impl<'a> Reader<'a> {
    fn slice(&self, offset: u64, len: u64, what: &'static str) -> Result<&'a [u8], ElfError> {
        let start = usize::try_from(offset).map_err(|_| ElfError::Truncated(what))?;
        let len = usize::try_from(len).map_err(|_| ElfError::Truncated(what))?;
        let end = start.checked_add(len).ok_or(ElfError::Truncated(what))?;
        self.bytes.get(start..end).ok_or(ElfError::Truncated(what))
    }

    fn uint(&self, offset: u64, len: u64, what: &'static str) -> Result<u64, ElfError> {
        let raw = self.slice(offset, len, what)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Ok(if self.big { raw.iter().fold(0, fold) } else { raw.iter().rev().fold(0, fold) })
    }

    /// An address-sized field (`Elf64_Off`, `Elf64_Xword` or their 32-bit forms).
    fn addr(&self, offset: u64, what: &'static str) -> Result<u64, ElfError> {
        self.uint(offset, if self.wide { 8 } else { 4 }, what)
    }
}

/// One section header: the fields we use.
struct Section {
    name: u64,
    kind: u64,
    offset: u64,
    size: u64,
    link: u64,
}

const SHT_NOBITS: u64 = 8;
/// `e_shstrndx` value meaning "the index is in section 0's `sh_link`".
const SHN_XINDEX: u64 = 0xffff;

/// Every `key=value` string of a module's `.modinfo` section, in file order (`depends`, `alias`, `softdep`,
/// `vermagic`, ...). A string without `=` gives an empty value; bytes that are not UTF-8 are replaced.
pub fn modinfo(bytes: &[u8]) -> Result<Vec<(String, String)>, ElfError> {
    let data = modinfo_section(bytes)?;
    Ok(data
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = String::from_utf8_lossy(s);
            match s.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (s.into_owned(), String::new()),
            }
        })
        .collect())
}

fn modinfo_section(bytes: &[u8]) -> Result<&[u8], ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    let class = *bytes.get(4).ok_or(ElfError::NotElf)?;
    let order = *bytes.get(5).ok_or(ElfError::NotElf)?;
    let wide = match class {
        1 => false,
        2 => true,
        c => return Err(ElfError::Class(c)),
    };
    let big = match order {
        1 => false,
        2 => true,
        o => return Err(ElfError::ByteOrder(o)),
    };
    let r = Reader { bytes, big, wide };
    // e_shoff, e_shentsize, e_shnum, e_shstrndx.
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (r.addr(0x28, "header")?, r.uint(0x3a, 2, "header")?, r.uint(0x3c, 2, "header")?, r.uint(0x3e, 2, "header")?)
    } else {
        (r.addr(0x20, "header")?, r.uint(0x2e, 2, "header")?, r.uint(0x30, 2, "header")?, r.uint(0x32, 2, "header")?)
    };
    if shoff == 0 {
        return Err(ElfError::NoModinfo);
    }
    let min_entsize = if wide { 64 } else { 40 };
    if shentsize < min_entsize {
        return Err(ElfError::Truncated("section header table"));
    }
    let section = |i: u64| -> Result<Section, ElfError> {
        let what = "section header table";
        let at = i.checked_mul(shentsize).and_then(|o| o.checked_add(shoff)).ok_or(ElfError::Truncated(what))?;
        let field = |off: u64| at.checked_add(off).ok_or(ElfError::Truncated(what));
        Ok(if wide {
            Section {
                name: r.uint(field(0)?, 4, what)?,
                kind: r.uint(field(4)?, 4, what)?,
                offset: r.addr(field(24)?, what)?,
                size: r.addr(field(32)?, what)?,
                link: r.uint(field(40)?, 4, what)?,
            }
        } else {
            Section {
                name: r.uint(field(0)?, 4, what)?,
                kind: r.uint(field(4)?, 4, what)?,
                offset: r.addr(field(16)?, what)?,
                size: r.addr(field(20)?, what)?,
                link: r.uint(field(24)?, 4, what)?,
            }
        })
    };
    // Extended numbering: more than 0xff00 sections keep their count and the string table index in section 0.
    let first = section(0)?;
    let count = if shnum == 0 { first.size } else { shnum };
    let strndx = if shstrndx == SHN_XINDEX { first.link } else { shstrndx };
    if strndx >= count {
        return Err(ElfError::Truncated("section name table"));
    }
    let names = section(strndx)?;
    let names = r.slice(names.offset, names.size, "section name table")?;
    for i in 1..count {
        let s = section(i)?;
        let name = usize::try_from(s.name).ok().and_then(|n| names.get(n..)).unwrap_or_default();
        let name = name.split(|b| *b == 0).next().unwrap_or_default();
        if name == b".modinfo" {
            return if s.kind == SHT_NOBITS { Ok(&[]) } else { r.slice(s.offset, s.size, ".modinfo section") };
        }
    }
    Err(ElfError::NoModinfo)
}
