//! Reading a root filesystem tarball (plain, gzip, zstd or xz) into a tree, without unpacking it on the host.
//!
//! A plain tarball's file contents are referenced in place (byte ranges of the archive). A compressed one is
//! decompressed once into an unlinked spill file, which is then read the same way: the image never has to fit
//! in memory, and nothing appears on the host's filesystem.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use clay_oci::tarentry::{tar_entry_inode, TarEntry};
use clay_tree::{Metadata, Tree};

use crate::{SourceError, Warning};

/// Magic numbers of the compressed containers we accept (RFC 1952 2.3.1, RFC 8878 3.1.1, xz-file-format 2.1.1.1).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Reads the tarball at `path` into a tree.
pub fn read_tar(path: &Path, warn: &mut dyn FnMut(Warning)) -> Result<Tree, SourceError> {
    let io_err = |source| SourceError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound(path.to_owned()),
        _ => SourceError::Io { path: path.to_owned(), source: e },
    })?;
    if file.metadata().map_err(io_err)?.is_dir() {
        return Err(SourceError::TarIsDirectory(path.to_owned()));
    }
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut file, &mut magic).map_err(io_err)?;
    let magic = &magic[..n];
    let decompress_err = |source| SourceError::Decompress { archive: path.to_owned(), source };
    let archive = if magic.starts_with(GZIP_MAGIC) {
        spill(flate2::read::MultiGzDecoder::new(reopen(path)?)).map_err(decompress_err)?
    } else if magic.starts_with(ZSTD_MAGIC) {
        spill(zstd::stream::read::Decoder::new(reopen(path)?).map_err(decompress_err)?).map_err(decompress_err)?
    } else if magic.starts_with(XZ_MAGIC) {
        spill(xz2::read::XzDecoder::new_multi_decoder(reopen(path)?)).map_err(decompress_err)?
    } else {
        reopen(path)?
    };
    parse(path, archive, warn)
}

fn reopen(path: &Path) -> Result<File, SourceError> {
    File::open(path).map_err(|source| SourceError::Io { path: path.to_owned(), source })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Decompresses into an unlinked temporary file (in `$TMPDIR`), so contents can be referenced by range.
fn spill(decoder: impl Read) -> io::Result<File> {
    let file = tempfile::tempfile()?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    io::copy(&mut BufReader::with_capacity(1 << 20, decoder), &mut out)?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

fn parse(path: &Path, archive_file: File, warn: &mut dyn FnMut(Warning)) -> Result<Tree, SourceError> {
    let tar_err = |source| SourceError::Tar { archive: path.to_owned(), source };
    let data = Arc::new(archive_file.try_clone().map_err(tar_err)?);
    let mut archive = tar::Archive::new(archive_file);
    let parent_meta = Metadata::root_owned(0o755, 0);
    let mut tree = Tree::new(parent_meta.clone());

    for entry in archive.entries_with_seek().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let name = entry.path_bytes().into_owned();
        let entry_err = |reason: String| SourceError::Entry {
            archive: path.to_owned(),
            entry: String::from_utf8_lossy(&name).into_owned(),
            reason,
        };
        match tar_entry_inode(&mut entry, &data, 0).map_err(|e| entry_err(e.0))? {
            TarEntry::Inode(inode) => {
                tree.insert(&name, inode, &parent_meta).map_err(|e| entry_err(e.to_string()))?;
            }
            TarEntry::HardLink(target) => {
                tree.link(&name, &target, &parent_meta).map_err(|e| entry_err(e.to_string()))?;
            }
            TarEntry::Unsupported(what) => {
                warn(Warning(format!("skipping tarball entry `{}` of {what}", String::from_utf8_lossy(&name))))
            }
        }
    }
    Ok(tree)
}
