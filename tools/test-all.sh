#!/usr/bin/env bash
# Runs every test smelt has. This is the README's test command, and what CI runs.
#
#   bash tools/test-all.sh
#
# 1. sets up the pinned Python venv (.venv) used by the interop and fixture checks;
# 2. checks that the committed fixtures are exactly what their generators make;
# 3. builds llama.cpp (from the source in a pinned PyPI sdist; cached under target/llama.cpp)
#    so that llama.cpp itself loads and runs the GGUF files smelt writes;
# 4. runs the Rust test suite — unit, crate API, end-to-end and interop — including the
#    llama.cpp tests that a plain `cargo test` leaves out;
# 5. runs the ONNX backend node tests (materialized from the pinned onnx wheel) through
#    `smelt run` (tools/conformance/run_onnx_node_tests.py; ~30 s).
#
# Needs: cargo, a C/C++ compiler, cmake >= 3.21, python3 with venv (.ci/run installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
venv=$(tools/python/setup-venv.sh "$root/.venv" | tail -n 1)
export SMELT_PYTHON="$venv/bin/python"

echo "== fixtures: regenerate and compare with the committed files"
"$SMELT_PYTHON" tools/fixtures/check_fixtures.py

echo "== llama.cpp (for interop tests)"
SMELT_LLAMA_EVAL=$(bash tools/interop/build-llama-cpp.sh | tail -n 1)
export SMELT_LLAMA_EVAL

echo "== cargo test (all tests, llama.cpp interop included)"
cargo test --workspace --locked -- --include-ignored

echo "== cargo test, scalar kernels forced (the SIMD-less path every CPU can take)"
SMELT_FORCE_SCALAR=1 cargo test --locked -p smelt-tensor -p smelt-kernels -p smelt-quant -p smelt-convert -p smelt-runtime -- --include-ignored

echo "== ONNX backend node tests through smelt run (tools/conformance)"
cargo build --locked -p smelt-cli
"$SMELT_PYTHON" tools/conformance/run_onnx_node_tests.py --smelt "${CARGO_TARGET_DIR:-$root/target}/debug/smelt"
