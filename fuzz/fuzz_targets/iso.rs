//! An ISO image a user hands `clay inspect` or `clay sign`: volume descriptors, boot catalog, system area.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = clay_iso::read_iso_info(&mut Cursor::new(data));
});
