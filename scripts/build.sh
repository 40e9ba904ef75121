#!/usr/bin/env bash
# Installs Arbor's Debian packages (when missing) and builds everything into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DARBOR_ENGINE_ONLY=OFF >/dev/null
cmake --build build -j2 2>&1 | grep -vE '^\[ *[0-9]+%\]|^Consolidate compiler|^-- ' || true
test -x build/src/cli/arbor && test -x build/src/daemon/arbord || { echo "arbor: build failed" >&2; exit 1; }
