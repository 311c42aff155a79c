//! The xattr manifest and the boot plan that clay-init reads at boot.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = clay_manifest::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = clay_manifest::boot::BootPlan::decode(text);
    }
});
