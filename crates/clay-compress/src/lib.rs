//! Compressors whose output the Linux kernel's initramfs unpacker accepts (`lib/decompress_*.c`).
//!
//! Each one is chosen for what the kernel can read, not for what the command-line tools default to:
//! zstd keeps its window at 8 MiB or below (the kernel's unzstd refuses larger windows), xz uses CRC32
//! (the in-kernel xz decoder has no CRC64), and lz4 uses the legacy frame (the only one unlz4 reads).

mod lz4legacy;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

pub use lz4legacy::Lz4LegacyEncoder;

/// A compression algorithm and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd { level: i32 },
    Gzip { level: u32 },
    Xz { level: u32 },
    Lz4,
    None,
}

/// The zstd window log the kernel's decompressor accepts at most: `ZSTD_WINDOWSIZE_MAX` for initramfs is
/// 8 MiB (lib/decompress_unzstd.c, "ZSTD_WINDOWSIZE_MAX ... (1 << 23)").
const ZSTD_MAX_WINDOW_LOG: u32 = 23;

/// Levels up to 18 choose a window of at most 2^23 on their own for inputs of unknown size (zstd's
/// `clevels.h`); higher levels would choose up to 2^27 and must be capped.
const ZSTD_LEVEL_MAX_SAFE_WINDOW: i32 = 18;

impl Compression {
    pub const DEFAULT: Compression = Compression::Zstd { level: 3 };

    /// The algorithm's name as `--compression` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Zstd { .. } => "zstd",
            Compression::Gzip { .. } => "gzip",
            Compression::Xz { .. } => "xz",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
            Compression::Gzip { level } | Compression::Xz { level } => write!(f, "{}:{level}", self.name()),
            Compression::Lz4 | Compression::None => f.write_str(self.name()),
        }
    }
}

/// `--compression` was given something we cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseCompressionError {
    #[error("unknown compression `{0}`; use zstd, gzip, xz, lz4 or none (optionally with a level, e.g. zstd:19)")]
    Unknown(String),
    #[error("compression level `{level}` for {name} is out of range; use {range}")]
    Level { name: &'static str, level: String, range: &'static str },
}

impl FromStr for Compression {
    type Err = ParseCompressionError;

    /// `zstd`, `zstd:19`, `gzip:9`, `xz`, `lz4`, `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        fn level_in<T: FromStr + PartialOrd>(
            name: &'static str,
            level: Option<&str>,
            default: T,
            min: T,
            max: T,
            range: &'static str,
        ) -> Result<T, ParseCompressionError> {
            let Some(text) = level else { return Ok(default) };
            match text.parse::<T>() {
                Ok(v) if v >= min && v <= max => Ok(v),
                _ => Err(ParseCompressionError::Level { name, level: text.to_owned(), range }),
            }
        }
        match name {
            "zstd" => Ok(Compression::Zstd { level: level_in("zstd", level, 3, 1, 22, "1 to 22")? }),
            "gzip" | "gz" => Ok(Compression::Gzip { level: level_in("gzip", level, 6, 1, 9, "1 to 9")? }),
            "xz" => Ok(Compression::Xz { level: level_in("xz", level, 6, 0, 9, "0 to 9")? }),
            "lz4" if level.is_none() => Ok(Compression::Lz4),
            "none" if level.is_none() => Ok(Compression::None),
            _ => Err(ParseCompressionError::Unknown(s.to_owned())),
        }
    }
}

/// A compressing writer that must be finished to write its trailer.
pub trait Encoder: Write + Send {
    /// Flushes the last block and the stream trailer.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Wraps `out` in an encoder for `compression`, using up to `threads` threads where the algorithm can.
///
/// Output depends only on the input, the algorithm and the level, never on `threads`: builds stay reproducible
/// across machines.
pub fn encoder<'a, W: Write + Send + 'a>(
    compression: Compression,
    out: W,
    threads: u32,
) -> io::Result<Box<dyn Encoder + 'a>> {
    Ok(match compression {
        Compression::Zstd { level } => {
            let mut enc = zstd::stream::write::Encoder::new(out, level)?;
            // zstd's output is identical for any worker count of one or more, but differs from its
            // single-threaded mode (0 workers): always use workers so every machine writes the same bytes.
            enc.multithread(threads.max(1))?;
            if level > ZSTD_LEVEL_MAX_SAFE_WINDOW {
                enc.window_log(ZSTD_MAX_WINDOW_LOG)?;
            }
            enc.include_checksum(true)?;
            Box::new(enc)
        }
        Compression::Gzip { level } => Box::new(flate2::write::GzEncoder::new(out, flate2::Compression::new(level))),
        Compression::Xz { level } => {
            let stream =
                xz2::stream::Stream::new_easy_encoder(level, xz2::stream::Check::Crc32).map_err(io::Error::other)?;
            Box::new(xz2::write::XzEncoder::new_stream(out, stream))
        }
        Compression::Lz4 => Box::new(Lz4LegacyEncoder::new(out)),
        Compression::None => Box::new(Plain(out)),
    })
}

impl<W: Write + Send> Encoder for zstd::stream::write::Encoder<'_, W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish().map(drop)
    }
}

impl<W: Write + Send> Encoder for flate2::write::GzEncoder<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish().map(drop)
    }
}

impl<W: Write + Send> Encoder for xz2::write::XzEncoder<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish().map(drop)
    }
}

/// No compression: the cpio archive as it is.
struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Encoder for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// The compression a stream starting with `magic` uses, told by its magic number; `None` for a plain stream or one
/// this crate cannot read back (lz4's legacy frame).
pub fn detect(magic: &[u8]) -> Option<&'static str> {
    match magic {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some("xz"),
        _ => None,
    }
}

/// A reader that decompresses `input`, whose stream is `algorithm` as [`detect`] named it (concatenated streams
/// and members are read through, as the kernel's unpacker does).
pub fn decoder<'a>(algorithm: &str, input: impl io::BufRead + 'a) -> io::Result<Box<dyn io::Read + 'a>> {
    Ok(match algorithm {
        "zstd" => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        "xz" => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(input)),
        other => return Err(io::Error::new(io::ErrorKind::Unsupported, format!("cannot decompress {other} streams"))),
    })
}
