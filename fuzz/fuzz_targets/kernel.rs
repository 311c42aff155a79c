//! What clay reads from files of an untrusted root filesystem: a kernel's bzImage header and a module's `.modinfo`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = clay_kernel::bzimage_release(data);
    let _ = clay_kmod::modinfo(data);
});
