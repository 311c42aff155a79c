//! Writes a directory as a squashfs image, for comparing with mksquashfs:
//! `cargo run --release --example sqfs -- DIR OUT [zstd-level]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tree = clay_source::read_dir(std::path::Path::new(&args[1]), &mut |_| {}).unwrap();
    let level = args.get(3).map_or(15, |l| l.parse().unwrap());
    let opts = clay_squashfs::Options {
        compression: clay_squashfs::Compression::Zstd { level },
        clamp_mtime: Some(0),
        ..Default::default()
    };
    let mut out = std::fs::File::create(&args[2]).unwrap();
    let start = std::time::Instant::now();
    let stats = clay_squashfs::write_squashfs(&tree, &opts, &mut out).unwrap();
    eprintln!("{stats:?} in {:?}", start.elapsed());
}
