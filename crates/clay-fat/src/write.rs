//! Formatting a volume and writing the files, each in one contiguous run of clusters.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use crate::{FatError, FatFile, FatLayout, FatOptions};

/// Size of the buffer file data is copied through.
const COPY_BUFFER: usize = 1 << 20;

/// Formats `size` bytes of `dev`, starting at its current position, as FAT32 and writes `files` into it, in order.
///
/// Deterministic: the volume ID, label and every timestamp come from `opts`; nothing depends on the clock. Every
/// metadata byte (reserved area, both FATs, directories) is written, and each file's last cluster is padded with
/// zeros; free clusters are not touched, so the caller should hand in zeroed space (a fresh sparse file is) and
/// gets a sparse image back. This is [`FatLayout::plan`], [`FatLayout::write_metadata`], then each file's data
/// copied to its [`FatLayout::file_offset`].
pub fn write_fat(
    dev: &mut (impl Read + Write + Seek),
    size: u64,
    files: &mut [FatFile<'_>],
    opts: &FatOptions,
) -> Result<(), FatError> {
    let sizes: Vec<(&str, u64)> = files.iter().map(|f| (f.path, f.len)).collect();
    let layout = FatLayout::plan(size, &sizes, opts)?;
    let base = dev.stream_position()?;
    layout.write_metadata(dev)?;
    let cluster = layout.cluster_bytes();
    let mut buffer = vec![0u8; COPY_BUFFER];
    for (index, file) in files.iter_mut().enumerate() {
        let Some(offset) = layout.file_offset(index) else {
            expect_end(file)?;
            continue;
        };
        dev.seek(SeekFrom::Start(base + offset))?;
        copy_file(dev, file, &mut buffer)?;
        let slack = (cluster - file.len % cluster) % cluster;
        let slack = usize::try_from(slack).unwrap_or(0).min(buffer.len());
        buffer[..slack].fill(0);
        dev.write_all(&buffer[..slack])?;
    }
    dev.flush()?;
    Ok(())
}

/// Copies exactly `file.len` bytes of the file's data to `dev` and checks that the data ends there.
fn copy_file(dev: &mut impl Write, file: &mut FatFile<'_>, buffer: &mut [u8]) -> Result<(), FatError> {
    let mut done = 0u64;
    while done < file.len {
        let want = usize::try_from(file.len - done).unwrap_or(usize::MAX).min(buffer.len());
        let n = match file.data.read(&mut buffer[..want]) {
            Ok(0) => {
                return Err(FatError::ShortData { path: file.path.to_owned(), expected: file.len, got: done });
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        dev.write_all(&buffer[..n])?;
        done += n as u64;
    }
    expect_end(file)
}

fn expect_end(file: &mut FatFile<'_>) -> Result<(), FatError> {
    let mut probe = [0u8; 1];
    loop {
        match file.data.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(FatError::LongData { path: file.path.to_owned(), expected: file.len }),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
