#!/usr/bin/env bash
# Builds Arbor and runs every test through ctest (engine, simulation, CLI, NBD peers, NVMe/TCP
# target including the Linux kernel initiator in a QEMU guest). Ends with ctest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 1200 "$@"
