#!/bin/bash
# The whole test suite, as CI runs it: formatting, lints, then every test, boot tests included (they boot real
# kernels under QEMU and wait for markers on the serial console). Run as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# A one-shot run gains nothing from incremental state, which is over a gigabyte beside the build itself; CI
# machines may have little disk. Say how much there is, so a run that still runs out is explained at its top.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
fi
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
free_mib=$(df --output=avail -m "$target" | tail -n 1 | tr -d ' ')
echo "test: ${free_mib} MiB free for $target (a cold run of the whole suite needs about 3 GiB)"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets are a workspace of their own (docs/fuzzing.md); this keeps them building as the crates change.
cargo clippy --manifest-path fuzz/Cargo.toml --locked -- -D warnings
cargo test --workspace --locked
