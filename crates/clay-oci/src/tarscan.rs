//! Following a tar stream while it is decompressed, to hand each regular file's data to a [`Lookahead`] in full
//! blocks before the layer is read for real.
//!
//! This is a hint, not a parser anyone relies on: the layer is still read entry by entry by the `tar` crate once
//! it is complete. A block handed out is named by its offset in the stream, so it stands for exactly those bytes
//! whatever entry they belong to; a stream this scanner misreads only costs work done for nothing. It follows
//! ustar headers, PAX `size` records and GNU long names, and gives up on anything else it cannot size.

use std::fs::File;
use std::sync::Arc;

use crate::Lookahead;

const HEADER: usize = 512;
/// PAX records longer than this are skipped unread (the `size` they may hold is then not known).
const MAX_PAX: u64 = 64 << 10;

#[derive(Debug)]
enum State {
    /// Collecting the next 512-byte header.
    Header,
    /// Passing over bytes nobody wants, up to `end`.
    Skip { end: u64 },
    /// Collecting a PAX extended header's records up to `data_end`, then skipping to `end`.
    Pax { data_end: u64, end: u64 },
    /// A regular file's data: its full blocks end at `full_end`; the rest, up to `end`, is skipped.
    Data { full_end: u64, end: u64 },
    /// The stream made no sense; nothing more is handed out.
    Lost,
}

/// See the module documentation.
pub(crate) struct TarScan<'a> {
    lookahead: &'a dyn Lookahead,
    file: &'a Arc<File>,
    block: u64,
    /// Stream offset of the next byte fed.
    pos: u64,
    state: State,
    header: Vec<u8>,
    pax: Vec<u8>,
    /// The PAX `size` for the next file entry.
    pax_size: Option<u64>,
    /// A block being assembled across chunks.
    pending: Vec<u8>,
}

impl<'a> TarScan<'a> {
    /// Scans the tar stream written to `file` from its start.
    pub fn new(lookahead: &'a dyn Lookahead, file: &'a Arc<File>) -> Self {
        let block = lookahead.block_size().max(1);
        TarScan {
            lookahead,
            file,
            block,
            pos: 0,
            state: State::Header,
            header: Vec::with_capacity(HEADER),
            pax: Vec::new(),
            pax_size: None,
            pending: Vec::new(),
        }
    }

    /// The next bytes of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let taken = match self.state {
                State::Lost => return,
                State::Header => {
                    let n = (HEADER - self.header.len()).min(chunk.len());
                    self.header.extend_from_slice(&chunk[..n]);
                    n
                }
                State::Skip { end } => len_to(self.pos, end, chunk.len()),
                State::Pax { data_end, .. } => {
                    let n = len_to(self.pos, data_end, chunk.len());
                    self.pax.extend_from_slice(&chunk[..n]);
                    n
                }
                State::Data { full_end, .. } => {
                    let n = len_to(self.pos, full_end, chunk.len());
                    self.data(&chunk[..n]);
                    n
                }
            };
            self.pos += taken as u64;
            chunk = &chunk[taken..];
            self.advance();
        }
    }

    /// Hands out the full blocks in `bytes`, the file data at `self.pos`.
    fn data(&mut self, mut bytes: &[u8]) {
        let block = usize::try_from(self.block).unwrap_or(usize::MAX);
        let mut at = self.pos;
        while !bytes.is_empty() {
            if self.pending.is_empty() && bytes.len() >= block {
                self.lookahead.block(self.file, at, &bytes[..block]);
                bytes = &bytes[block..];
                at += self.block;
                continue;
            }
            let n = (block - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            at += n as u64;
            if self.pending.len() == block {
                self.lookahead.block(self.file, at - self.block, &self.pending);
                self.pending.clear();
            }
        }
    }

    /// Moves to the next state once the current one is complete.
    fn advance(&mut self) {
        self.state = match self.state {
            State::Header if self.header.len() == HEADER => {
                let header = std::mem::take(&mut self.header);
                self.header.reserve(HEADER);
                self.on_header(&header)
            }
            State::Skip { end } if self.pos == end => State::Header,
            State::Pax { data_end, end } if self.pos == data_end => {
                if let Some(size) = pax_size(&self.pax) {
                    self.pax_size = Some(size);
                }
                self.pax.clear();
                skip_to(self.pos, end)
            }
            State::Data { full_end, end } if self.pos == full_end => skip_to(self.pos, end),
            _ => return,
        }
    }

    fn on_header(&mut self, h: &[u8]) -> State {
        if h.iter().all(|b| *b == 0) {
            return State::Header; // the end-of-archive blocks, or padding
        }
        let Some(size) = number(&h[124..136]) else { return State::Lost };
        let kind = h[156];
        let size = match kind {
            b'x' | b'g' | b'L' | b'K' => size,
            _ => self.pax_size.take().unwrap_or(size),
        };
        let start = self.pos;
        let Some(end) = size.checked_next_multiple_of(HEADER as u64).and_then(|n| start.checked_add(n)) else {
            return State::Lost;
        };
        match kind {
            b'x' if size <= MAX_PAX => State::Pax { data_end: start + size, end },
            b'0' | b'\0' | b'7' => State::Data { full_end: start + size / self.block * self.block, end },
            _ => skip_to(start, end),
        }
    }
}

fn skip_to(pos: u64, end: u64) -> State {
    if pos == end {
        State::Header
    } else {
        State::Skip { end }
    }
}

/// How many of `available` bytes at `pos` lie before `end`.
fn len_to(pos: u64, end: u64, available: usize) -> usize {
    usize::try_from(end - pos).unwrap_or(usize::MAX).min(available)
}

/// A header's numeric field: octal digits (NUL or space ended), or GNU base-256 with the high bit set.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `size` record of PAX extended header data (`LEN KEY=VALUE\n` records).
fn pax_size(mut data: &[u8]) -> Option<u64> {
    let mut size = None;
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        let record = data.get(space + 1..len)?;
        if let Some(value) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(value.strip_suffix(b"\n")?).ok()?.parse().ok();
        }
        data = &data[len..];
    }
    size
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<(u64, Vec<u8>)>>);

    impl Lookahead for Seen {
        fn block_size(&self) -> u64 {
            4096
        }
        fn block(&self, _: &Arc<File>, offset: u64, data: &[u8]) {
            self.0.lock().unwrap().push((offset, data.to_vec()));
        }
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 256).unwrap().wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// A layer as the tar crate writes it, with what a scan must hand out: every full block of every regular
    /// file, at the offset the tar crate reads its data from.
    fn layer() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, kind: tar::EntryType, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add("dir/", tar::EntryType::Directory, &[]);
        add("small", tar::EntryType::Regular, &bytes(100, 1));
        add("three-blocks-and-a-bit", tar::EntryType::Regular, &bytes(3 * 4096 + 7, 2));
        add(&"long/".repeat(40), tar::EntryType::Directory, &[]); // a GNU long name entry first
        add(&format!("{}file", "long/".repeat(40)), tar::EntryType::Regular, &bytes(2 * 4096, 3));
        add("link", tar::EntryType::Symlink, &[]);
        // A PAX header whose size record matches the entry, as podman writes for large or odd files.
        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("size", b"8192".as_slice()), ("path", b"pax-file".as_slice())]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(8192);
        h.set_mode(0o644);
        pax.append_data(&mut h, "pax-file", &bytes(8192, 4)[..]).unwrap();
        let mut out = b.into_inner().unwrap();
        out.truncate(out.len() - 1024); // the end-of-archive blocks
        out.extend(pax.into_inner().unwrap());

        let mut expected = Vec::new();
        let mut archive = tar::Archive::new(std::io::Cursor::new(out.clone()));
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            if entry.header().entry_type().is_file() {
                let (start, size) = (entry.raw_file_position(), entry.size());
                for i in 0..size / 4096 {
                    let at = usize::try_from(start + i * 4096).unwrap();
                    expected.push((start + i * 4096, out[at..at + 4096].to_vec()));
                }
            }
        }
        assert_eq!(expected.len(), 3 + 2 + 2);
        (out, expected)
    }

    #[test]
    fn hands_out_every_full_block_of_every_file_in_any_chunking() {
        let (stream, expected) = layer();
        let file = Arc::new(tempfile::tempfile().unwrap());
        for chunk in [1, 7, 511, 512, 4096, 10_000, stream.len()] {
            let seen = Seen::default();
            let mut scan = TarScan::new(&seen, &file);
            for piece in stream.chunks(chunk) {
                scan.feed(piece);
            }
            assert!(*seen.0.lock().unwrap() == expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_stream_that_is_not_tar_hands_out_nothing() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let seen = Seen::default();
        let mut scan = TarScan::new(&seen, &file);
        scan.feed(&[b'z'; 100_000]);
        assert!(seen.0.lock().unwrap().is_empty());
    }

    #[test]
    fn numbers_and_pax_sizes() {
        assert_eq!(number(b"00000001750\0"), Some(0o1750));
        assert_eq!(number(b"     17 \0\0\0\0"), Some(0o17));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(b"12x"), None);
        assert_eq!(pax_size(b"13 size=4096\n19 path=some/where\n"), Some(4096));
        assert_eq!(pax_size(b"19 path=some/where\n"), None);
        assert_eq!(pax_size(b"99 size=1\n"), None);
    }
}
