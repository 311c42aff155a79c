//! The clay-init executable as bytes, for the `clay` CLI to place at `/init` in every initramfs it writes.
//!
//! `build.rs` compiles clay-init in a nested cargo build for the target of this build: static (no `PT_INTERP`,
//! `file` says "statically linked"), stripped, size-optimized, `panic=abort`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// The static, stripped clay-init ELF executable for [`INIT_TARGET`].
pub static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clay-init"));

/// The target triple [`INIT`] was built for (the target of this build).
pub const INIT_TARGET: &str = env!("CLAY_INIT_TARGET");

#[cfg(test)]
mod tests;
