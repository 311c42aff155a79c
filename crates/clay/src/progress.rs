//! Progress of blob transfers (pulls and pushes) on a terminal: one line per blob, redrawn in place. Nothing is
//! drawn when stderr is not a terminal, so logs and CI output stay clean.

use std::io::{IsTerminal, Write};

use clay_registry::{BlobRole, ProgressEvent, ProgressState};

use crate::commands::build::human;

/// A progress sink for clay-registry when stderr is a terminal.
pub fn blobs() -> Option<impl Fn(ProgressEvent)> {
    std::io::stderr().is_terminal().then_some(draw)
}

fn draw(e: ProgressEvent) {
    let what = match e.role {
        BlobRole::Config => "config".to_owned(),
        BlobRole::Layer(i) => format!("layer {}", i + 1),
        BlobRole::Blob => "blob".to_owned(),
    };
    let short = e.digest.strip_prefix("sha256:").unwrap_or(&e.digest).get(..12).unwrap_or(&e.digest).to_owned();
    let state = match e.state {
        ProgressState::Cached => "already there".to_owned(),
        ProgressState::Retrying { attempt } => format!("retrying (attempt {attempt})"),
        _ => format!("{} / {}", human(e.done), human(e.total)),
    };
    let end = if matches!(e.state, ProgressState::Finished | ProgressState::Cached) { "\n" } else { "" };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[Kclay: {what} {short}: {state}{end}");
    let _ = err.flush();
}
