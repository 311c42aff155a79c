//! A 200 MB file streams through the writer: the peak resident memory of the process barely moves, and the file
//! reads back intact. Alone in its test binary so nothing else moves the peak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

const BIG: u64 = 200 << 20;

/// Deterministic content without a buffer behind it: 64 KiB blocks of a fixed pattern, each starting with its
/// own number, so a misplaced block shows.
struct Pattern {
    at: u64,
    len: u64,
    block: Vec<u8>,
}

impl Pattern {
    fn new(len: u64) -> Pattern {
        Pattern { at: 0, len, block: (0..BLOCK).map(|i| u8::try_from(i * 7 % 251).unwrap()).collect() }
    }
}

const BLOCK: usize = 64 * 1024;

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let in_block = usize::try_from(self.at % BLOCK as u64).unwrap();
        let left = usize::try_from((self.len - self.at).min(BLOCK as u64)).unwrap();
        let n = buf.len().min(BLOCK - in_block).min(left);
        self.block[..8].copy_from_slice(&(self.at / BLOCK as u64).to_le_bytes());
        buf[..n].copy_from_slice(&self.block[in_block..in_block + n]);
        self.at += n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_200_mb_file_streams_without_being_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.iso");
    let before = peak_rss_kib();
    {
        let mut big = Pattern::new(BIG);
        let mut small: &[u8] = b"small\n";
        let mut files = [
            clay_iso::IsoFile { path: "data/big.bin", len: BIG, data: &mut big, mode: 0o644 },
            clay_iso::IsoFile { path: "small.txt", len: 6, data: &mut small, mode: 0o644 },
        ];
        let opts = clay_iso::IsoOptions {
            volume_id: "BIG".into(),
            timestamp: 0,
            bios: None,
            uefi: None,
            hybrid: true,
            seed: [0; 16],
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let n = clay_iso::write_iso(&mut files, &opts, &mut out).unwrap();
        out.flush().unwrap();
        assert_eq!(n, std::fs::metadata(&path).unwrap().len());
        assert_eq!(n % (1 << 20), 0);
    }
    let grown = peak_rss_kib().saturating_sub(before);
    eprintln!("peak RSS grew by {grown} KiB");
    assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB while writing a 200 MB file");

    let mut want = Sha256::new();
    std::io::copy(&mut Pattern::new(BIG), &mut want).unwrap();
    let want = format!("{:x}", want.finalize());
    let got = clay_testkit::sh(&format!("bsdtar -xOf {} data/big.bin | sha256sum", path.display()));
    assert_eq!(got.split_whitespace().next().unwrap(), want);
}
