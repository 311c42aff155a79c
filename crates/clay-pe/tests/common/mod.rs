//! A small synthetic PE32+ stub builder and helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::io::Read;

use clay_pe::{write_uki, PeError, SectionInput};

pub const PE_OFFSET: usize = 0x40;
pub const COFF: usize = PE_OFFSET + 4;
pub const OPT: usize = COFF + 20;
pub const OPT_LEN: usize = 112 + 16 * 8;
pub const TABLE: usize = OPT + OPT_LEN;
pub const STUB_TIMESTAMP: u32 = 0x5eed_0001;

/// One section of a synthetic stub.
#[derive(Debug, Clone)]
pub struct StubSection {
    pub name: &'static str,
    pub va: u32,
    pub data: Vec<u8>,
    pub flags: u32,
}

/// What to build: a PE32+ EFI application with the given sections, raw data contiguous after the headers.
#[derive(Debug, Clone)]
pub struct StubSpec {
    pub machine: u16,
    pub magic: u16,
    pub size_of_headers: u32,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub sections: Vec<StubSection>,
    pub certificate_table: Option<(u32, u32)>,
    /// A debug directory at the start of this section (index), whose one entry points 0x40 bytes into it.
    pub debug_in: Option<usize>,
    /// Bytes appended after the last section, announced as a COFF symbol table.
    pub symbol_table: Option<Vec<u8>>,
}

impl Default for StubSpec {
    fn default() -> Self {
        StubSpec {
            machine: 0x8664,
            magic: 0x20b,
            size_of_headers: 0x400,
            section_alignment: 0x1000,
            file_alignment: 0x200,
            sections: vec![
                StubSection { name: ".text", va: 0x1000, data: pattern(0x30, 1), flags: 0x6000_0020 },
                StubSection { name: ".data", va: 0x2000, data: pattern(0x120, 2), flags: 0xc000_0040 },
            ],
            certificate_table: None,
            debug_in: None,
            symbol_table: None,
        }
    }
}

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
pub fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Deterministic bytes, different per seed.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).rotate_left(u32::from(seed % 7))).collect()
}

impl StubSpec {
    pub fn build(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.size_of_headers as usize];
        f[0..2].copy_from_slice(b"MZ");
        put32(&mut f, 0x3c, PE_OFFSET as u32);
        f[PE_OFFSET..PE_OFFSET + 4].copy_from_slice(b"PE\0\0");
        put16(&mut f, COFF, self.machine);
        put16(&mut f, COFF + 2, self.sections.len() as u16);
        put32(&mut f, COFF + 4, STUB_TIMESTAMP);
        put16(&mut f, COFF + 16, OPT_LEN as u16);
        put16(&mut f, COFF + 18, 0x0206);
        put16(&mut f, OPT, self.magic);
        put32(&mut f, OPT + 16, 0x1000); // AddressOfEntryPoint
        put32(&mut f, OPT + 32, self.section_alignment);
        put32(&mut f, OPT + 36, self.file_alignment);
        put32(&mut f, OPT + 60, self.size_of_headers);
        put32(&mut f, OPT + 64, 0x1234);
        put16(&mut f, OPT + 68, 10); // EFI application
        put32(&mut f, OPT + 108, 16);
        if let Some((offset, size)) = self.certificate_table {
            put32(&mut f, OPT + 112 + 4 * 8, offset);
            put32(&mut f, OPT + 112 + 4 * 8 + 4, size);
        }
        let fa = u64::from(self.file_alignment);
        let mut end = 0u64;
        for (i, s) in self.sections.iter().enumerate() {
            let offset = align(f.len() as u64, fa) as usize;
            let raw = align(s.data.len() as u64, fa) as usize;
            f.resize(offset, 0);
            f.extend_from_slice(&s.data);
            f.resize(offset + raw, 0);
            let h = TABLE + i * 40;
            f[h..h + s.name.len()].copy_from_slice(s.name.as_bytes());
            put32(&mut f, h + 8, s.data.len() as u32);
            put32(&mut f, h + 12, s.va);
            put32(&mut f, h + 16, raw as u32);
            put32(&mut f, h + 20, offset as u32);
            put32(&mut f, h + 36, s.flags);
            end = end.max(u64::from(s.va) + s.data.len() as u64);
            if self.debug_in == Some(i) {
                put32(&mut f, OPT + 112 + 6 * 8, s.va);
                put32(&mut f, OPT + 112 + 6 * 8 + 4, 28);
                put32(&mut f, offset + 12, 2); // IMAGE_DEBUG_TYPE_CODEVIEW
                put32(&mut f, offset + 16, 0x10);
                put32(&mut f, offset + 20, s.va + 0x40);
                put32(&mut f, offset + 24, offset as u32 + 0x40);
            }
        }
        put32(&mut f, OPT + 56, align(end, u64::from(self.section_alignment)) as u32);
        if let Some(symbols) = &self.symbol_table {
            let at = f.len() as u32;
            put32(&mut f, COFF + 8, at);
            put32(&mut f, COFF + 12, (symbols.len() / 18) as u32);
            f.extend_from_slice(symbols);
        }
        f
    }
}

/// A named input held in memory.
pub struct Owned {
    pub name: &'static str,
    pub data: Vec<u8>,
}

pub fn owned(name: &'static str, data: impl Into<Vec<u8>>) -> Owned {
    Owned { name, data: data.into() }
}

/// Builds a UKI from in-memory inputs.
pub fn build(stub: &[u8], inputs: &[Owned], timestamp: Option<u32>) -> Result<Vec<u8>, PeError> {
    let mut readers: Vec<&[u8]> = inputs.iter().map(|i| i.data.as_slice()).collect();
    let mut sections: Vec<SectionInput<'_>> = inputs
        .iter()
        .zip(readers.iter_mut())
        .map(|(i, r)| SectionInput { name: i.name, len: i.data.len() as u64, data: r as &mut dyn Read })
        .collect();
    let mut out = Vec::new();
    let written = write_uki(stub, &mut sections, timestamp, &mut out)?;
    assert_eq!(written, out.len() as u64, "write_uki reports the bytes it wrote");
    let lens: Vec<(&str, u64)> = inputs.iter().map(|i| (i.name, i.data.len() as u64)).collect();
    let sbat = inputs.iter().find(|i| i.name == ".sbat").map_or(&[][..], |i| i.data.as_slice());
    assert_eq!(clay_pe::uki_len(stub, &lens, sbat).unwrap(), written, "uki_len predicts the length");
    Ok(out)
}

/// A section's raw data in a built image.
pub fn raw(image: &[u8], s: &clay_pe::SectionInfo) -> Vec<u8> {
    image[s.raw_offset as usize..(s.raw_offset + s.raw_size) as usize].to_vec()
}

/// A small xorshift generator: deterministic "random" bytes without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A reader of `len` pseudo-random bytes handed out in small, uneven reads, like a pipe.
pub struct SlowReader {
    pub data: Rng,
    pub sizes: Rng,
    pub left: u64,
}

impl SlowReader {
    pub fn new(seed: u64, len: u64) -> Self {
        SlowReader { data: Rng(seed), sizes: Rng(seed ^ 0x9e37_79b9_7f4a_7c15), left: len }
    }
}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX)).min(1 + self.sizes.below(70_000));
        for b in &mut buf[..n] {
            *b = self.data.next() as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The bytes a [`SlowReader`] with this seed yields.
pub fn slow_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut r = SlowReader::new(seed, len);
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

/// Runs `objdump -h` (binutils) on `image` and checks it reports the same sections as `read_sections`: names,
/// addresses, file offsets and sizes (BFD shows the VirtualSize when the raw data is padded beyond it).
pub fn check_with_objdump(image: &[u8], tag: &str) {
    let path = std::env::temp_dir().join(format!("clay-pe-test-{}-{tag}.efi", std::process::id()));
    std::fs::write(&path, image).unwrap();
    let output = std::process::Command::new("objdump").arg("-h").arg(&path).output();
    std::fs::remove_file(&path).unwrap();
    let output = output.expect("running objdump: install the binutils package");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "objdump -h failed: {stderr}");
    assert!(stderr.is_empty(), "objdump warns: {stderr}");
    assert!(stdout.contains("file format pei-"), "objdump sees a PE image: {stdout}");
    let rows: Vec<(String, u64, u64, u64)> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
            (f[1].to_owned(), hex(f[2]), hex(f[3]), hex(f[5]))
        })
        .collect();
    let info = clay_pe::read_sections(image).unwrap();
    let expected: Vec<(String, u64, u64, u64)> = info
        .sections
        .iter()
        .map(|s| {
            let size = if s.virtual_size > 0 && s.raw_size > s.virtual_size { s.virtual_size } else { s.raw_size };
            (s.name.clone(), u64::from(size), u64::from(s.virtual_address), u64::from(s.raw_offset))
        })
        .collect();
    assert_eq!(rows, expected, "objdump -h against read_sections:\n{stdout}");
}
