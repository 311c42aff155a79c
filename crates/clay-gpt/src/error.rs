//! The one error type of this crate.

use std::io;

use crate::Guid;

/// A failure while planning, writing or reading a GPT.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("{count} partitions were given but a GPT holds at most {max}")]
    TooManyPartitions { count: usize, max: u32 },
    #[error("partition {index} (`{name}`) has size 0")]
    EmptyPartition { index: usize, name: String },
    #[error("partition {index}'s name `{name}` is {units} UTF-16 code units long but a GPT name holds at most {max}")]
    NameTooLong { index: usize, name: String, units: usize, max: usize },
    #[error("partition {index}'s name `{name}` contains a NUL character")]
    NulInName { index: usize, name: String },
    #[error("partition {index} (`{name}`) has the nil type GUID, which marks an unused entry")]
    NilType { index: usize, name: String },
    #[error("partitions {first} and {second} share the GUID {guid}")]
    DuplicateGuid { first: usize, second: usize, guid: Guid },
    #[error(
        "the partitions need a disk of at least {needed} bytes ({} MiB) but the requested size is {requested} bytes",
        needed.div_ceil(1 << 20)
    )]
    DoesNotFit { needed: u64, requested: u64 },
    #[error("the partitions add up to more bytes than a disk can address")]
    TooLarge,
    #[error("the layout is inconsistent: {0}")]
    InvalidLayout(String),
    #[error("the MBR boot code is {len} bytes but at most {max} fit before the disk signature")]
    BootCodeTooLong { len: usize, max: usize },
    #[error("the partition table needs the first {needed} bytes of the disk but only {got} were given")]
    Truncated { needed: u64, got: u64 },
    #[error("not a GPT disk: {0}")]
    NotGpt(&'static str),
    #[error("the GPT {what} CRC32 is {stored:#010x} but its bytes give {computed:#010x}")]
    BadCrc { what: &'static str, stored: u32, computed: u32 },
    #[error("the GPT header is invalid: {0}")]
    BadHeader(String),
    #[error("`{0}` is not a GUID: expected 32 hexadecimal digits in the 8-4-4-4-12 form")]
    BadGuid(String),
    #[error("cannot write the partition table: {0}")]
    Io(#[from] io::Error),
}
