//! One block at a time through the chosen compressor, with settings the kernel's decompressors accept
//! (fs/squashfs/{zstd,xz,zlib}_wrapper.c): every block is a complete, independent stream.

use std::io::{self, Write};

use crate::ondisk::{COMPRESSION_GZIP, COMPRESSION_XZ, COMPRESSION_ZSTD};
use crate::Compression;

/// A compressor for one thread. Output depends only on the input and the settings.
pub(crate) struct BlockCompressor {
    inner: Inner,
}

enum Inner {
    Zstd(zstd::bulk::Compressor<'static>),
    Xz { preset: u32, dict_size: u32 },
    Gzip(u32),
}

impl Compression {
    /// The superblock's compressor id.
    pub(crate) fn id(self) -> u16 {
        match self {
            Compression::Zstd { .. } => COMPRESSION_ZSTD,
            Compression::Xz { .. } => COMPRESSION_XZ,
            Compression::Gzip { .. } => COMPRESSION_GZIP,
        }
    }
}

impl BlockCompressor {
    pub(crate) fn new(compression: Compression, block_log: u16) -> io::Result<Self> {
        let inner = match compression {
            Compression::Zstd { level } => {
                let mut c = zstd::bulk::Compressor::new(level)?;
                // The kernel sizes its zstd window to the block size; a frame asking for more would not unpack.
                c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(u32::from(block_log)))?;
                c.include_checksum(false)?;
                Inner::Zstd(c)
            }
            // Without compressor options the kernel preallocates a dictionary of exactly the block size.
            Compression::Xz { preset } => Inner::Xz { preset, dict_size: 1 << block_log },
            Compression::Gzip { level } => Inner::Gzip(level),
        };
        Ok(BlockCompressor { inner })
    }

    /// The compressed form of `data`, or `None` when compressing does not make it smaller (the block is then
    /// stored as it is).
    pub(crate) fn compress(&mut self, data: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let out = match &mut self.inner {
            Inner::Zstd(c) => c.compress(data)?,
            Inner::Xz { preset, dict_size } => {
                let mut opts = xz2::stream::LzmaOptions::new_preset(*preset).map_err(io::Error::other)?;
                opts.dict_size(*dict_size);
                let mut filters = xz2::stream::Filters::new();
                filters.lzma2(&opts);
                // CRC32: the kernel's xz decoder may not know CRC64 (lib/xz, XZ_DEC_ANY_CHECK).
                let stream = xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::Crc32)
                    .map_err(io::Error::other)?;
                let mut enc = xz2::write::XzEncoder::new_stream(Vec::with_capacity(data.len()), stream);
                enc.write_all(data)?;
                enc.finish()?
            }
            // Squashfs "gzip" is a zlib stream (RFC 1950), not a gzip file.
            Inner::Gzip(level) => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len()), flate2::Compression::new(*level));
                enc.write_all(data)?;
                enc.finish()?
            }
        };
        Ok((out.len() < data.len()).then_some(out))
    }
}
