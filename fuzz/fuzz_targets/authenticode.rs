//! Authenticode: the digest of an image, its certificate table and the PKCS#7 signatures in it.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = clay_authenticode::authenticode_digest(&mut Cursor::new(data));
    let _ = clay_authenticode::signatures(&mut Cursor::new(data));
    let _ = clay_authenticode::signer_certificates(&mut Cursor::new(data));
});
