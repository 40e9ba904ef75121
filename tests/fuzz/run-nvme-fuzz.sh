#!/bin/bash
# run-nvme-fuzz.sh [SECONDS] [BUILD_DIR]
# Builds the NVMe/TCP session fuzzer with clang + libFuzzer (ASan, UBSan) in its own build
# directory and runs it for SECONDS (default 30). Crashes land in BUILD_DIR/src/proto/nvme_tcp/ as
# crash-*; replay one with `nvme_tcp_fuzz_replay FILE` from a normal build or `nvme_tcp_fuzz FILE`.
set -euo pipefail
SECS=${1:-30}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${2:-$ROOT/build-nvme/fuzz}
command -v clang++ >/dev/null || { echo "clang++ not found (apt-get install clang)"; exit 77; }
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$B" -DARBOR_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$B.configure.log" 2>&1 \
  || { tail -20 "$B.configure.log"; exit 1; }
cmake --build "$B" --target nvme_tcp_fuzz nvme_tcp_fuzz_replay -j2
CORPUS=$B/nvme-fuzz-corpus
mkdir -p "$CORPUS"
"$B/src/proto/nvme_tcp/nvme_tcp_fuzz_replay" --write-seeds "$CORPUS"
cd "$B/src/proto/nvme_tcp"
./nvme_tcp_fuzz -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=70000 -timeout=10 -print_final_stats=1 "$CORPUS"
