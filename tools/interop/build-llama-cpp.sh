#!/usr/bin/env bash
# Builds smelt-llama-eval (tools/interop/llama-eval/main.cpp) against llama.cpp, so that a GGUF
# smelt wrote can be loaded and run by llama.cpp itself (tools/interop/check_llama_cpp.py).
#
#   tools/interop/build-llama-cpp.sh            # prints the binary's path on its last line
#
# llama.cpp comes from a pinned llama-cpp-python sdist on PyPI, which vendors the llama.cpp
# source (vendor/llama.cpp); pip is the only network client used. Idempotent: everything lives
# under target/llama.cpp/ and a finished build is reused (a stamp records the sdist version
# and the hash of the eval program's sources). Only libllama, ggml's CPU backend and the eval
# program are compiled (about 10 minutes on 2 cores).
#
# Needs: python3 (venv), cmake >= 3.21 (apt-get install cmake), a C++17 compiler.
# JOBS (default 2) sets the build parallelism.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
SDIST=llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# scikit-build-core is llama-cpp-python's build backend: pip needs it (and cmake) to read the
# sdist's metadata, even for a download.
SCIKIT_BUILD_CORE_VERSION=1.1.2

root=$(cd "$(dirname "$0")/../.." && pwd)
cache="$root/target/llama.cpp"
eval_src="$root/tools/interop/llama-eval"
bin="$cache/build/smelt-llama-eval"

for tool in python3 cmake c++ sha256sum; do
  command -v "$tool" >/dev/null || { echo "build-llama-cpp.sh: $tool not found" >&2; exit 1; }
done

stamp_want="$LLAMA_CPP_PYTHON_VERSION $(cat "$eval_src/main.cpp" "$eval_src/CMakeLists.txt" | sha256sum | cut -d' ' -f1)"
if [ -x "$bin" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp_want" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"

# 1. The sdist, verified.
if [ ! -f "$cache/$SDIST" ] || ! echo "$SDIST_SHA256  $cache/$SDIST" | sha256sum -c --status; then
  if [ ! -x "$cache/venv/bin/pip" ]; then
    python3 -m venv "$cache/venv"
  fi
  "$cache/venv/bin/pip" install --quiet --disable-pip-version-check \
    "scikit-build-core==$SCIKIT_BUILD_CORE_VERSION"
  rm -f "$cache/$SDIST"
  "$cache/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: --no-build-isolation -d "$cache" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  echo "$SDIST_SHA256  $cache/$SDIST" | sha256sum -c --status || {
    echo "build-llama-cpp.sh: $SDIST does not have the pinned SHA-256" >&2
    exit 1
  }
fi

# 2. The vendored llama.cpp source.
src="$cache/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
if [ ! -f "$src/CMakeLists.txt" ]; then
  rm -rf "$cache/src"
  mkdir -p "$cache/src"
  tar -xzf "$cache/$SDIST" -C "$cache/src" "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
fi

# 3. Configure and build only what the eval program links.
cmake -S "$eval_src" -B "$cache/build" \
  -DLLAMA_CPP_DIR="$src" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF \
  -DGGML_OPENMP=OFF \
  -DLLAMA_BUILD_COMMON=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_OPENSSL=OFF >"$cache/configure.log" 2>&1 || {
  echo "build-llama-cpp.sh: cmake configure failed, see $cache/configure.log" >&2
  exit 1
}
cmake --build "$cache/build" --target smelt-llama-eval -j "${JOBS:-2}" >"$cache/build.log" 2>&1 || {
  echo "build-llama-cpp.sh: build failed, see $cache/build.log" >&2
  exit 1
}
echo "$stamp_want" >"$cache/stamp"
echo "$bin"
