#!/usr/bin/env bash
# Runs smelt-kernels' tests built for aarch64 under qemu-user: the NEON kernels (f32 GEMMs
# and the blocked micro-kernel, int8 MatMulInteger, the packed 4-bit and ternary GEMVs) meet
# the same differential, bit-for-bit and thread tests as the x86-64 tiers, and int8 again on
# the dot-product extension (tier neon-dot, which qemu's CPU has).
#
# Not part of tools/test-all.sh: it needs Rust's standard library for aarch64, which rustup
# downloads from outside the package registries, and the CI machine cannot fetch it. Run it
# by hand after changing a kernel (about 9 minutes on 2 cores, mostly building).
#
#   bash tools/test-aarch64.sh [extra cargo test arguments]
#
# Needs: rustup (adds the aarch64-unknown-linux-gnu standard library when missing), the
# cross linker aarch64-linux-gnu-gcc and its libc (Debian: gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross) and qemu-aarch64 (Debian: qemu-user).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=aarch64-unknown-linux-gnu
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null 2>&1 || { echo "test-aarch64: $tool is missing (see the header of $0)" >&2; exit 1; }
done
if ! rustc --print sysroot >/dev/null 2>&1 || [ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]; then
    rustup target add "$target"
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# The tests print which tiers they ran; require NEON among them so that a dispatch change
# cannot turn this into a second scalar run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --target "$target" -p smelt-kernels "$@" -- --nocapture >"$log" 2>&1 || status=$?
grep -E "^test result|FAILED|panicked" "$log" || true
if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "test-aarch64: cargo test failed (exit $status)" >&2
    exit 1
fi
grep -q "testing scalar + \[neon, neon-dot\]" "$log" || { echo "test-aarch64: no test ran the NEON and NEON dot-product tiers" >&2; exit 1; }
echo "test-aarch64: smelt-kernels passed on $target (NEON and neon-dot tiers included)"
