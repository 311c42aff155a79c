#!/bin/bash
# The whole test suite, as CI runs it: formatting, lints, then every test, boot tests included (they boot real
# kernels under QEMU and wait for markers on the serial console). Run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
