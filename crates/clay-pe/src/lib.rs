//! PE/COFF code for Unified Kernel Images: append the UKI sections to an EFI stub, and read a PE section table.
//!
//! Implements the UAPI Group "Unified Kernel Image" specification (section names and order) on the Microsoft "PE
//! Format" specification, following what systemd's ukify does to a systemd-stub. Pure: no files, no processes; the
//! caller hands in the stub's bytes and a reader per section, and the UKI streams out, so a large `.initrd` is never
//! held in memory.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod checksum;
mod error;
mod headers;
mod layout;
mod sbat;

use std::fmt;
use std::io::{self, Read, Write};

pub use checksum::{checksum_field_offset, PeChecksum};
pub use error::PeError;
pub use headers::{
    dump, read_sections, PeInfo, SectionInfo, IMAGE_SCN_CNT_CODE, IMAGE_SCN_CNT_INITIALIZED_DATA, IMAGE_SCN_MEM_READ,
    MACHINE_AARCH64, MACHINE_X86_64,
};
pub use sbat::{default_sbat, SBAT_HEADER};

use layout::{Data, MergedSbat, Stub, SBAT};

/// The canonical UKI section order of the UAPI spec. Sections given to [`write_uki`] follow it; sections with
/// other names may follow all of these.
pub const SECTION_ORDER: &[&str] =
    &[".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrsig", ".pcrpkey"];

/// One section to append to the stub.
pub struct SectionInput<'a> {
    pub name: &'a str,
    /// Exactly how many bytes `data` yields.
    pub len: u64,
    pub data: &'a mut dyn Read,
}

impl fmt::Debug for SectionInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionInput").field("name", &self.name).field("len", &self.len).finish_non_exhaustive()
    }
}

/// Writes `stub` with `sections` appended as one PE image to `out`, streaming each section's data, and returns the
/// number of bytes written.
///
/// `sections` follow [`SECTION_ORDER`] (other names last), include `.linux`, and are neither empty nor 4 GiB or
/// more. `timestamp`: `Some(t)` sets the COFF TimeDateStamp (from SOURCE_DATE_EPOCH), `None` keeps the stub's.
///
/// The stub's sections keep their addresses; its raw data moves only when the section table needs more header room.
/// A `.sbat` given when the stub has one is merged into it: the stub's lines, then the caller's minus its header
/// line (see [`default_sbat`]). The stub's COFF symbol table, if any, is dropped: nothing follows the last section.
/// `.linux` is marked as code, like ukify does, every other added section as read-only initialized data. The
/// CheckSum is written as 0, like ukify; [`PeChecksum`] computes the real one from the output if wanted.
pub fn write_uki(
    stub: &[u8],
    sections: &mut [SectionInput<'_>],
    timestamp: Option<u32>,
    out: &mut dyn Write,
) -> Result<u64, PeError> {
    let stub = Stub::parse(stub)?;
    let inputs: Vec<(&str, u64)> = sections.iter().map(|s| (s.name, s.len)).collect();
    let read_sbat = |index: usize| {
        let mut caller = Vec::new();
        // `plan_uki` only asks for indexes of `inputs`, which has one per section.
        if let Some(s) = sections.get_mut(index) {
            copy_exact(s, &mut caller)?;
        }
        Ok(caller)
    };
    let plan = plan_uki(&stub, &inputs, read_sbat, timestamp)?;

    let mut out = Counting { inner: out, written: 0 };
    out.write_all(&plan.headers).map_err(PeError::Write)?;
    for piece in plan.pieces {
        out.pad_to(piece.offset)?;
        match piece.data {
            Data::Bytes(bytes) => out.write_all(&bytes).map_err(PeError::Write)?,
            Data::Input { index, .. } => {
                // Indexes come from `sections` itself.
                if let Some(s) = sections.get_mut(index) {
                    copy_exact(s, &mut out)?;
                }
            }
        }
        out.pad_to(piece.offset + piece.raw_size)?;
    }
    out.pad_to(plan.file_len)?;
    out.flush().map_err(PeError::Write)?;
    Ok(out.written)
}

/// The number of bytes [`write_uki`] writes for sections of these names and lengths, without writing anything, so
/// a caller can place the UKI (inside a disk image, say) before it exists. `sbat` is the content of the `.sbat`
/// section when `sections` has one (it is merged with the stub's, which changes the length).
pub fn uki_len(stub: &[u8], sections: &[(&str, u64)], sbat: &[u8]) -> Result<u64, PeError> {
    let stub = Stub::parse(stub)?;
    Ok(plan_uki(&stub, sections, |_| Ok(sbat.to_vec()), None)?.file_len)
}

/// Checks the inputs, merges a `.sbat` section (its content from `read_sbat(index)`) with the stub's, and lays out
/// the image.
fn plan_uki<'s>(
    stub: &Stub<'s>,
    inputs: &[(&str, u64)],
    mut read_sbat: impl FnMut(usize) -> Result<Vec<u8>, PeError>,
    timestamp: Option<u32>,
) -> Result<layout::Plan<'s>, PeError> {
    layout::validate_inputs(inputs.iter().copied())?;
    let mut merged_sbat = None;
    for (index, &(name, len)) in inputs.iter().enumerate() {
        let Some(existing) = stub.section(name) else { continue };
        if name != SBAT {
            return Err(PeError::StubHasSection { name: name.to_owned() });
        }
        if len > sbat::MAX_SBAT_LEN {
            return Err(PeError::SbatTooLarge { len, max: sbat::MAX_SBAT_LEN });
        }
        let caller = read_sbat(index)?;
        merged_sbat = Some(MergedSbat { index, content: sbat::merge(stub.content(existing), &caller)? });
    }
    layout::plan(stub, inputs, merged_sbat, timestamp)
}

/// Copies exactly `s.len` bytes of `s.data` to `out`, and checks that is all the data there is.
fn copy_exact(s: &mut SectionInput<'_>, out: &mut dyn Write) -> Result<(), PeError> {
    let read_error = |source| PeError::Read { name: s.name.to_owned(), source };
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < s.len {
        let want = usize::try_from(s.len - done).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match s.data.read(&mut buf[..want]) {
            Ok(0) => return Err(PeError::ShortSection { name: s.name.to_owned(), expected: s.len, got: done }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        out.write_all(&buf[..n]).map_err(PeError::Write)?;
        done += headers::to_u64(n);
    }
    loop {
        match s.data.read(&mut buf[..1]) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(PeError::LongSection { name: s.name.to_owned(), expected: s.len }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        }
    }
}

/// Counts what goes out, so padding lands every piece at its planned offset.
struct Counting<'w> {
    inner: &'w mut dyn Write,
    written: u64,
}

impl Counting<'_> {
    fn pad_to(&mut self, offset: u64) -> Result<(), PeError> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while self.written < offset {
            let n = usize::try_from(offset - self.written).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
            self.write_all(&ZEROS[..n]).map_err(PeError::Write)?;
        }
        Ok(())
    }
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += headers::to_u64(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
