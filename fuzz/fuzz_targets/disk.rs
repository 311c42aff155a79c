//! A disk a user hands `clay inspect`, `clay sign` or `clay run`: its GPT, and which VM disk format it is.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first eight bytes choose the disk size the table is checked against.
    let (size, rest) = match data.split_first_chunk::<8>() {
        Some((size, rest)) => (u64::from_le_bytes(*size), rest),
        None => (data.len() as u64, data),
    };
    let _ = clay_gpt::read_gpt(rest, size);
    let _ = clay_gpt::read_gpt(rest, rest.len() as u64);
    let half = rest.len() / 2;
    let _ = clay_vdisk::identify(rest, &rest[half..], size);
    let _ = clay_vdisk::identify(rest, rest, rest.len() as u64);
});
