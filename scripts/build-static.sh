#!/bin/bash
# Builds a fully static `clay` (musl libc, no interpreter, no shared libraries): the binary the imager image carries
# and the one to drop onto any Linux machine. Prints the binary's path on the last line of stdout.
#
#   scripts/build-static.sh            # -> $CARGO_TARGET_DIR (default target/)/x86_64-unknown-linux-musl/release/clay
#
# Needs the musl target (`rustup target add x86_64-unknown-linux-musl`) and musl-gcc (package musl-tools) for the C
# code some crates carry (ring, zstd, liblzma); scripts/setup.sh installs both. Cargo caches in the target
# directory, so a second run only relinks what changed. Nothing here changes the default (glibc) build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

target=x86_64-unknown-linux-musl
triple=X86_64_UNKNOWN_LINUX_MUSL

command -v musl-gcc >/dev/null || { echo "build-static: musl-gcc is missing; install the musl-tools package" >&2; exit 1; }
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
  echo "build-static: the Rust target $target is missing; run: rustup target add $target" >&2
  exit 1
fi

# C code of -sys crates is compiled with musl-gcc and archived into the binary.
export CC_x86_64_unknown_linux_musl=musl-gcc
export AR_x86_64_unknown_linux_musl=ar
# lzma-sys links the host's shared liblzma when pkg-config finds one; this makes it compile its bundled copy instead
# (what xz2's `static` feature does, without a Cargo feature). zstd-sys builds its bundled zstd by default.
export LZMA_API_STATIC=1
# Rust's musl target links statically already (+crt-static is its default); the static relocation model makes a
# classic static executable instead of static-pie, so `file` says "statically linked" and nothing self-relocates.
# Only the target's flags: build scripts still run as ordinary host (glibc) programs.
export "CARGO_TARGET_${triple}_RUSTFLAGS=-Ctarget-feature=+crt-static -Crelocation-model=static"
export "CARGO_TARGET_${triple}_LINKER=musl-gcc"

cargo build --release --locked --package clay --bin clay --target "$target" >&2

binary="${CARGO_TARGET_DIR:-target}/$target/release/clay"
# The proof it is static: no program interpreter and no dynamic section.
if LC_ALL=C readelf -lW "$binary" | grep -q 'INTERP\|DYNAMIC'; then
  echo "build-static: $binary is not static:" >&2
  readelf -lW "$binary" | grep 'INTERP\|DYNAMIC' >&2
  exit 1
fi
echo "$binary"
