//! Checks the embedded binary with a small ELF64 reader of our own (System V gABI, "ELF Header" and "Program
//! Header" chapters), so the test depends on no parser.

use super::*;

/// `e_ident[EI_MAG0..=EI_MAG3]`.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `e_ident[EI_CLASS]` for 64-bit objects.
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` for little-endian objects.
const ELFDATA2LSB: u8 = 1;
/// `e_type` of a fixed-address executable; a PIE or static-pie is `ET_DYN` (3).
const ET_EXEC: u16 = 2;
/// Offsets of `e_type`, `e_phoff`, `e_phentsize` and `e_phnum` in the ELF64 header.
const E_TYPE: usize = 0x10;
const E_PHOFF: usize = 0x20;
const E_PHENTSIZE: usize = 0x36;
const E_PHNUM: usize = 0x38;
/// Size of one ELF64 program header.
const PHDR64_SIZE: usize = 56;
/// `p_type` values: the program interpreter, present only in dynamically linked executables; and `PT_DYNAMIC`.
const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;

const MAX_SIZE: usize = 2 * 1024 * 1024;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn program_header_types(elf: &[u8]) -> Vec<u32> {
    let phoff = usize::try_from(u64_at(elf, E_PHOFF)).unwrap();
    let entsize = usize::from(u16_at(elf, E_PHENTSIZE));
    let count = usize::from(u16_at(elf, E_PHNUM));
    assert_eq!(entsize, PHDR64_SIZE);
    assert!(phoff + count * entsize <= elf.len(), "program headers run past the end");
    (0..count).map(|i| u32_at(elf, phoff + i * entsize)).collect()
}

#[test]
fn init_is_a_static_elf64_executable() {
    assert_eq!(&INIT[..4], ELF_MAGIC);
    assert_eq!(INIT[4], ELFCLASS64, "not ELF64");
    assert_eq!(INIT[5], ELFDATA2LSB, "not little-endian");
    assert_eq!(u16_at(INIT, E_TYPE), ET_EXEC, "not a fixed-address executable (static-pie?)");
    let types = program_header_types(INIT);
    assert!(!types.is_empty());
    assert!(!types.contains(&PT_INTERP), "has a program interpreter: dynamically linked");
    assert!(!types.contains(&PT_DYNAMIC), "has a dynamic section");
}

#[test]
fn init_is_small() {
    assert!(INIT.len() < MAX_SIZE, "clay-init is {} bytes", INIT.len());
}

#[test]
fn target_is_this_build() {
    // Unit tests run on the host they were built for, so the target names this machine.
    assert!(INIT_TARGET.starts_with(std::env::consts::ARCH), "{INIT_TARGET}");
    assert!(INIT_TARGET.contains(std::env::consts::OS), "{INIT_TARGET}");
}
