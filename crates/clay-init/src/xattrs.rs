//! Step 3: apply the extended attributes the cpio archive could not carry, then delete their manifest.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use clay_manifest::XATTR_MANIFEST_PATH;
use rustix::fs::XattrFlags;
use rustix::io::Errno;

use crate::console::{describe, say, Failure, Log, OrFail};

/// Failures of one kind: how many, and the first one as an example.
struct FailureKind {
    errno: Errno,
    count: usize,
    example: String,
}

pub fn apply_manifest(log: &mut Log) -> Result<(), Failure> {
    let manifest = PathBuf::from("/").join(XATTR_MANIFEST_PATH);
    let shown = manifest.display();
    let bytes = match fs::read(&manifest) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            log.step(format_args!("no xattr manifest at {shown}"));
            return Ok(());
        }
        Err(err) => return Err(Failure::io(format!("cannot read the xattr manifest {shown}"), err)),
    };
    let records = clay_manifest::decode(&bytes).map_err(|err| Failure::new(format!("cannot apply {shown}"), err))?;

    let mut applied = 0usize;
    let mut failures: Vec<FailureKind> = Vec::new();
    for record in &records {
        let mut path = Vec::with_capacity(record.path.len() + 1);
        path.push(b'/');
        path.extend_from_slice(&record.path);
        match rustix::fs::lsetxattr(&path, &record.name, &record.value, XattrFlags::empty()) {
            Ok(()) => applied += 1,
            Err(errno) => match failures.iter_mut().find(|kind| kind.errno == errno) {
                Some(kind) => kind.count += 1,
                None => failures.push(FailureKind {
                    errno,
                    count: 1,
                    example: format!("{} on {}", String::from_utf8_lossy(&record.name), String::from_utf8_lossy(&path)),
                }),
            },
        }
    }
    // One line per kind of error: a filesystem without xattr support would otherwise print one per file.
    for kind in &failures {
        let plural = if kind.count == 1 { "" } else { "s" };
        say(format_args!(
            "warning: cannot set {} extended attribute{plural} (first: {}): {}",
            kind.count,
            kind.example,
            describe(&kind.errno.into())
        ));
    }
    log.step(format_args!("applied {applied} of {} extended attributes from {shown}", records.len()));

    fs::remove_file(&manifest).or_fail(|| format!("cannot delete the xattr manifest {shown}"))?;
    if let Some(dir) = manifest.parent() {
        // Only when empty: the image may keep other things there.
        if let Err(err) = fs::remove_dir(dir) {
            log.step(format_args!("kept {}: {}", dir.display(), describe(&err)));
        }
    }
    Ok(())
}
