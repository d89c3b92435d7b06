#!/usr/bin/env bash
# Creates (or reuses) the Python venv used by fixture generators and interop tests.
# Usage: tools/python/setup-venv.sh [VENV_DIR]   (default: .venv at the repository root)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tools/python/requirements.txt"
echo "$venv"
