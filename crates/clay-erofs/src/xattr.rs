//! Inline extended attributes (Documentation/filesystems/erofs.rst, "Extended attributes"): after the inode, an
//! `erofs_xattr_ibody_header`, then one `erofs_xattr_entry` per attribute with its name suffix and value, each
//! padded to 4 bytes. Names are stored as a prefix index and the rest; shared xattrs are not used.

use clay_tree::{lossy, Metadata};
use zerocopy::IntoBytes;

use crate::ondisk::{XattrEntry, XattrIbodyHeader, XATTR_ALIGN, XATTR_PREFIXES, XATTR_VALUE_MAX};
use crate::ErofsError;

/// The prefix index and suffix of a full xattr name, if EROFS has a prefix for it.
fn split_name(name: &[u8]) -> Option<(u8, &[u8])> {
    XATTR_PREFIXES.iter().find_map(|(prefix, index)| {
        let whole_name = *index == 2 || *index == 3;
        if whole_name {
            (name == *prefix).then_some((*index, &b""[..]))
        } else {
            name.strip_prefix(*prefix).map(|rest| (*index, rest))
        }
    })
}

/// The inline xattr body of an inode and its `i_xattr_icount`; empty and 0 when it has no attributes. Names EROFS
/// cannot store are left out with a note.
pub fn ibody(meta: &Metadata, path: &str, notes: &mut Vec<String>) -> Result<(Vec<u8>, u16), ErofsError> {
    let mut body = Vec::new();
    for (name, value) in &meta.xattrs {
        let Some((index, suffix)) = split_name(name) else {
            notes.push(format!(
                "`{path}`: extended attribute `{}` left out; EROFS stores only user., trusted., security., lustre. \
                 and POSIX ACL ones",
                lossy(name)
            ));
            continue;
        };
        let too_large = || ErofsError::XattrTooLarge { path: path.to_owned(), name: lossy(name) };
        let name_len = u8::try_from(suffix.len()).map_err(|_| too_large())?;
        if value.len() > XATTR_VALUE_MAX {
            return Err(too_large());
        }
        let value_size = u16::try_from(value.len()).map_err(|_| too_large())?;
        if body.is_empty() {
            body.extend_from_slice(
                XattrIbodyHeader { reserved: 0.into(), shared_count: 0, reserved2: [0; 7] }.as_bytes(),
            );
        }
        body.extend_from_slice(XattrEntry { name_len, name_index: index, value_size: value_size.into() }.as_bytes());
        body.extend_from_slice(suffix);
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(XATTR_ALIGN), 0);
    }
    if body.is_empty() {
        return Ok((body, 0));
    }
    // The header counts as one 4-byte slot (erofs_xattr_ibody_size).
    let slots = (body.len() - size_of::<XattrIbodyHeader>()) / XATTR_ALIGN + 1;
    let icount = u16::try_from(slots).map_err(|_| ErofsError::XattrsTooLarge { path: path.to_owned() })?;
    Ok((body, icount))
}
