//! Converts a raw disk file: `cargo run --release --example convert RAW FORMAT OUT` (the speed check).
#![allow(clippy::unwrap_used)]
use std::fs::File;
use std::os::unix::fs::FileExt;

struct FileDisk {
    file: File,
    size: u64,
    extents: Vec<(u64, u64)>,
}

impl clay_vdisk::RawDisk for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn data_extents(&self) -> Vec<(u64, u64)> {
        self.extents.clone()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

fn main() {
    use rustix::fs::{seek, SeekFrom};
    let args: Vec<String> = std::env::args().collect();
    let file = File::open(&args[1]).unwrap();
    let size = file.metadata().unwrap().len();
    let mut extents = Vec::new();
    let mut pos = 0;
    while pos < size {
        let Ok(data) = seek(&file, SeekFrom::Data(pos)) else { break };
        let hole = seek(&file, SeekFrom::Hole(data)).unwrap();
        extents.push((data, hole - data));
        pos = hole;
    }
    let disk = FileDisk { file, size, extents };
    let format: clay_vdisk::VmFormat = args[2].parse().unwrap();
    let mut out = File::create(&args[3]).unwrap();
    let start = std::time::Instant::now();
    let n = clay_vdisk::write_vm_disk(&disk, format, &clay_vdisk::VdiskOptions::default(), &mut out).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!("{format}: {n} bytes in {secs:.3} s, {:.0} MB/s of raw disk", size as f64 / secs / 1e6);
}
