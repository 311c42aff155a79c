//! Splitting archive and tree paths into names, refusing the shapes that escape a root.

/// A path that cannot name anything inside a tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path `{0}` contains `..`, which could reach outside the root; refusing it")]
    DotDot(String),
    #[error("path `{0}` contains a NUL byte")]
    Nul(String),
}

/// Splits `path` into its names. Leading `/` and `./`, repeated slashes and `.` components are dropped, so
/// absolute names stay inside the root as GNU tar keeps them; `..` anywhere is refused.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>, PathError> {
    if path.contains(&0) {
        return Err(PathError::Nul(crate::lossy(path)));
    }
    let mut out = Vec::new();
    for name in path.split(|b| *b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => return Err(PathError::DotDot(crate::lossy(path))),
            _ => out.push(name),
        }
    }
    Ok(out)
}
