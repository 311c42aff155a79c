//! The lz4 "legacy frame", the only lz4 container the kernel's `lib/decompress_unlz4.c` reads.
//!
//! Layout (lz4's `lz4_Frame_format.md`, "Legacy frame"): the magic number 0x184C2102 (little endian), then
//! blocks, each a little-endian u32 compressed size followed by one lz4 block holding up to 8 MiB of input.

use std::io::{self, Write};

/// Legacy frame magic number (`lz4_Frame_format.md`, "Legacy frame").
const LEGACY_MAGIC: u32 = 0x184C_2102;
/// Uncompressed bytes per block; unlz4's `LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE` is exactly 8 MiB.
const CHUNK: usize = 8 << 20;

/// Writes the lz4 legacy frame, one 8 MiB block at a time.
#[derive(Debug)]
pub struct Lz4LegacyEncoder<W: Write> {
    out: W,
    buf: Vec<u8>,
    wrote_magic: bool,
}

impl<W: Write> Lz4LegacyEncoder<W> {
    pub fn new(out: W) -> Self {
        Lz4LegacyEncoder { out, buf: Vec::with_capacity(CHUNK), wrote_magic: false }
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if !self.wrote_magic {
            self.out.write_all(&LEGACY_MAGIC.to_le_bytes())?;
            self.wrote_magic = true;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = lz4_flex::block::compress(&self.buf);
        let len = u32::try_from(block.len()).map_err(io::Error::other)?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&block)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for Lz4LegacyEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write + Send> crate::Encoder for Lz4LegacyEncoder<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush_block()?;
        self.out.flush()
    }
}
