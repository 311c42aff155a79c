//! Compressing the root image while an image's layers are still being decompressed.
//!
//! Inflating a gzip layer keeps one core busy while the others mostly wait. When the build will write a
//! squashfs image, clay-squashfs's [`Precompressor`] takes the layer's file data as clay-oci decompresses it
//! ([`clay_source::Lookahead`]) and compresses blocks on the idle cores; writing the image then takes them instead
//! of compressing them again. The image is the same bytes either way.

use std::fs::File;
use std::sync::{Arc, Mutex};

use clay_source::SourceSpec;
use clay_squashfs::{AheadBlocks, Precompressor};

use super::root::{self, RootFs, RootModel};
use super::{BuildArgs, Format};

/// clay-squashfs's compressor as the layer reader's lookahead.
#[derive(Debug)]
pub struct SquashfsAhead(Precompressor);

impl clay_source::Lookahead for SquashfsAhead {
    fn block_size(&self) -> u64 {
        self.0.block_size()
    }

    fn block(&self, file: &Arc<File>, offset: u64, data: &[u8]) {
        self.0.offer(file, offset, data);
    }
}

impl SquashfsAhead {
    /// A compressor working ahead, when the source is a container image and the build writes a squashfs image
    /// of it (`-f squashfs`, or a root model that keeps the OS in one).
    pub fn start(args: &BuildArgs, spec: &SourceSpec, formats: &[Format]) -> Option<Arc<SquashfsAhead>> {
        let image = matches!(
            spec,
            SourceSpec::Oci { .. }
                | SourceSpec::OciArchive { .. }
                | SourceSpec::DockerArchive { .. }
                | SourceSpec::Registry { .. }
        );
        let root_image = args.root_fs == RootFs::Squashfs
            && root::model(args) != RootModel::Ram
            && formats.iter().any(|f| f.boots());
        if !image || !(root_image || formats.contains(&Format::Squashfs)) {
            return None;
        }
        // A compressor squashfs cannot use is refused later, with its own message.
        let opts = root::squashfs_options(args.compression, None).ok()?;
        Precompressor::new(&opts).ok().map(|p| Arc::new(SquashfsAhead(p)))
    }

    /// Stops the compressing threads; what they finished, for the image writer.
    pub fn finish(&self) -> Blocks {
        Mutex::new(Some(self.0.finish()))
    }
}

/// Blocks compressed ahead, taken whole by the first squashfs image written.
pub type Blocks = Mutex<Option<AheadBlocks>>;
