#!/usr/bin/env bash
# Runs every test smelt has. This is the README's test command, and what CI runs.
#
#   bash tools/test-all.sh
#
# 1. sets up the pinned Python venv (.venv) used by the interop and fixture checks;
# 2. checks that the committed fixtures are exactly what their generators make;
# 3. runs the Rust test suite (unit, crate API, end-to-end);
# 4. runs it again with SMELT_FORCE_SCALAR=1 (every SIMD kernel's scalar twin).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
venv=$(tools/python/setup-venv.sh "$root/.venv" | tail -n 1)
export SMELT_PYTHON="$venv/bin/python"

echo "== fixtures: regenerate and compare with the committed files"
"$SMELT_PYTHON" tools/fixtures/check_fixtures.py

echo "== cargo test (dispatched kernels)"
cargo test --workspace --locked

echo "== cargo test (SMELT_FORCE_SCALAR=1)"
SMELT_FORCE_SCALAR=1 cargo test --workspace --locked
