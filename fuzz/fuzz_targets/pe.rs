//! PE headers and section tables, as `clay inspect` and `clay sign` read a UKI a user hands them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = clay_pe::checksum_field_offset(data);
    if let Ok(info) = clay_pe::read_sections(data) {
        let _ = clay_pe::dump(&info);
    }
});
