//! Text from users and registries: image references, digests, platforms, auth challenges and registries.conf.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = clay_registry::Reference::parse(text);
    let _ = clay_digest::Digest::parse(text);
    let _ = clay_registry::Platform::parse(text);
    let _ = clay_registry::parse_challenges(text);
    for drop_in in [false, true] {
        if let Ok(conf) = clay_registry::RegistriesConf::parse(text, Path::new("fuzz.conf"), drop_in) {
            if let Ok(reference) = clay_registry::Reference::parse("registry.example/a/b:1") {
                let _ = conf.pull_sources(&reference);
            }
        }
    }
});
