//! Loads the kernel modules the boot plan lists, in its order (dependencies first), with `finit_module(2)`.
//!
//! The image builder resolved the dependencies and decompressed the files, so each is one plain ELF module.

use std::fs::File;
use std::path::Path;

use clay_manifest::boot::Module;
use rustix::io::Errno;

use crate::console::{describe, Failure, Log};

pub fn load(log: &mut Log, modules: &[Module]) -> Result<(), Failure> {
    for module in modules {
        let path = Path::new("/").join(&module.path);
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| module.path.clone());
        let what = || format!("cannot load the kernel module {name} ({})", path.display());
        let file = File::open(&path).map_err(|err| Failure::io(what(), err))?;
        match rustix::system::finit_module(&file, c"", 0) {
            Ok(()) => log.step(format_args!("loaded the kernel module {name}")),
            Err(Errno::EXIST) => log.step(format_args!("the kernel module {name} is loaded already")),
            // A driver for hardware this machine does not have (ENODEV, ENXIO) or a duplicate: not needed here.
            Err(errno) if !module.required => {
                log.step(format_args!("skipped the kernel module {name}: {}", describe(&errno.into())))
            }
            Err(errno) => {
                let hint = match errno {
                    Errno::KEYREJECTED | Errno::NOKEY => {
                        "; the kernel only accepts modules signed with its vendor's key (Secure Boot lockdown)"
                    }
                    Errno::NOEXEC | Errno::INVAL => "; it was built for another kernel",
                    _ => "",
                };
                return Err(Failure::new(what(), format_args!("{}{hint}", describe(&errno.into()))));
            }
        }
        // The file has done its job; in a RAM root it would otherwise stay visible (and in memory) for good.
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}
