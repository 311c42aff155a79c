//! The one error type of this crate: every way a stub, an image or a section list can be refused.

use std::io;

/// Which file a header problem was found in: the EFI stub given to [`write_uki`](crate::write_uki), or the image
/// given to [`read_sections`](crate::read_sections).
pub(crate) const STUB: &str = "EFI stub";
pub(crate) const IMAGE: &str = "PE image";

/// A PE image or UKI section list that cannot be used, or an I/O failure while streaming the UKI.
#[derive(Debug, thiserror::Error)]
pub enum PeError {
    #[error("the {image} is not a PE image: it does not start with 'MZ'")]
    MissingMz { image: &'static str },
    #[error("the {image} is not a PE32+ image: missing the 'PE\\0\\0' signature at offset {offset:#x}")]
    MissingPeSignature { image: &'static str, offset: u64 },
    #[error("the {image} is not a PE32+ image: its optional header magic is {magic:#x}, not 0x20b{hint}")]
    NotPe32Plus { image: &'static str, magic: u16, hint: &'static str },
    #[error(
        "the EFI stub is for machine type {machine:#06x}; only x86-64 (0x8664) and aarch64 (0xaa64) are supported"
    )]
    UnsupportedMachine { machine: u16 },
    #[error("the {image} is truncated: its {what} ends at offset {end:#x} but only {len:#x} bytes are there")]
    Truncated { image: &'static str, what: &'static str, end: u64, len: u64 },
    #[error("the {image} is malformed: {reason}")]
    Malformed { image: &'static str, reason: String },
    #[error("the EFI stub is already signed (it has a certificate table); use an unsigned stub")]
    AlreadySigned,
    #[error("the EFI stub has no room for {count} more section headers (SizeOfHeaders {size_of_headers:#x})")]
    NoHeaderRoom { count: usize, size_of_headers: u32 },
    #[error(
        "the EFI stub keeps data at offset {offset:#x}, after its section table, where new section headers must go"
    )]
    HeaderAreaInUse { offset: u64 },
    #[error("the EFI stub's debug directory points at file offset {offset:#x}, outside every section it keeps")]
    DebugDataOutsideSections { offset: u32 },
    #[error("section name `{name}` is longer than 8 bytes")]
    NameTooLong { name: String },
    #[error("section name {name:?} is empty or contains a NUL byte")]
    InvalidName { name: String },
    #[error("section `{name}` is given twice")]
    DuplicateSection { name: String },
    #[error("the EFI stub already has a `{name}` section, so the UKI cannot add another")]
    StubHasSection { name: String },
    #[error("section `{name}` must come before `{after}`: UKI sections go in the order {order}")]
    SectionOrder { name: String, after: String, order: String },
    #[error("section `{name}` is a UKI section but follows the extra section `{extra}`; extra sections go last")]
    KnownAfterExtra { name: String, extra: String },
    #[error("a UKI needs a `.linux` section (the kernel)")]
    MissingLinux,
    #[error("section `{name}` is empty; leave it out instead")]
    EmptySection { name: String },
    #[error("section `{name}` is {len} bytes; PE sections must be smaller than 4 GiB")]
    SectionTooLarge { name: String, len: u64 },
    #[error("the UKI would reach {end:#x}, beyond the 4 GiB that PE's 32-bit offsets and sizes can express")]
    ImageTooLarge { end: u64 },
    #[error("the UKI would have {count} sections; PE counts them in 16 bits")]
    TooManySections { count: usize },
    #[error("the `.sbat` section given is {len} bytes; SBAT data is a few lines of text, at most {max} bytes")]
    SbatTooLarge { len: u64, max: u64 },
    #[error("the {origin} `.sbat` section is not UTF-8 text")]
    SbatNotText { origin: &'static str },
    #[error("section `{name}` ended after {got} of its {expected} bytes")]
    ShortSection { name: String, expected: u64, got: u64 },
    #[error("section `{name}` has more data than the {expected} bytes it declared")]
    LongSection { name: String, expected: u64 },
    #[error("cannot read the data of section `{name}`")]
    Read {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the UKI")]
    Write(#[source] io::Error),
}

pub(crate) fn malformed(image: &'static str, reason: impl Into<String>) -> PeError {
    PeError::Malformed { image, reason: reason.into() }
}
