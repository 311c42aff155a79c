//! newc cpio archives, as `clay inspect` lists an initramfs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = clay_cpio::Reader::new(data);
    for _ in 0..10_000 {
        match reader.next_entry() {
            Ok(Some(entry)) => {
                if reader.read_data(&entry).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
});
