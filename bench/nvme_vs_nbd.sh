#!/bin/bash
# bench/nvme_vs_nbd.sh [BUILD_DIR] [SECONDS]: 4 KiB random read/write IOPS and latency at queue
# depth 1 and 32 on one arbord volume, over NVMe/TCP (our userspace initiator,
# arbor-nvme-initiator bench: one I/O queue, one TCP connection) and over NBD (fio's nbd engine:
# one TCP connection), both on 127.0.0.1, in the same run. Prints a markdown table.
# Needs: fio with the nbd engine (libnbd), jq. Runs on a private store and free ports.
set -euo pipefail
B=$(cd "${1:-build}" && pwd); SECS=${2:-8}
ARBOR=$B/src/cli/arbor; ARBORD=$B/src/daemon/arbord; INI=$B/src/nvme_initiator/arbor-nvme-initiator
for f in "$ARBOR" "$ARBORD" "$INI"; do [ -x "$f" ] || { echo "nvme_vs_nbd: build $f first (cmake --build $B --target arbor arbord arbor-nvme-initiator)" >&2; exit 1; }; done
command -v fio >/dev/null && fio --enghelp 2>/dev/null | grep -qx '[[:space:]]*nbd' || { echo "nvme_vs_nbd: needs fio with the nbd engine" >&2; exit 1; }
S=$(mktemp -d /tmp/arbor-nvme-vs-nbd.XXXXXX)
A() { "$ARBOR" --store "$S" "$@"; }
"$ARBORD" --store "$S" --nbd-listen 127.0.0.1:0 --nvme-listen 127.0.0.1:0 --nvme-discovery-listen none > "$S/out" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null; wait $P 2>/dev/null; rm -rf "$S"' EXIT
for _ in $(seq 100); do A daemon status > /dev/null 2>&1 && break; kill -0 $P || { cat "$S/out"; exit 1; }; sleep 0.1; done
ST=$(A --json daemon status)
NBD=$(echo "$ST" | jq -r '.endpoints[] | select(.protocol=="nbd") | .uri' | head -1)      # nbd://127.0.0.1:PORT
NVME=$(echo "$ST" | jq -r '.endpoints[] | select(.protocol=="nvme-tcp") | .uri' | sed 's/.*://')
SIZE=1G
A volume create b --size $SIZE > /dev/null
URI="$NBD/b"
# Fill the volume so reads hit data, not holes.
fio --name=fill --ioengine=nbd --uri="$URI" --rw=write --bs=1M --iodepth=8 --size=$SIZE > /dev/null
# ...then read it once, so neither path is measured while the fill is still being written back
# (the first run after the fill was 4x slower whichever path it was).
fio --name=warm --ioengine=nbd --uri="$URI" --rw=read --bs=1M --iodepth=8 --size=$SIZE > /dev/null
nbd_run() {  # rw qd -> "IOPS MEAN_US P99_US"
  local k; k=$([ "$1" = randread ] && echo read || echo write)
  fio --name=r --ioengine=nbd --uri="$URI" --rw="$1" --bs=4k --iodepth="$2" --size=$SIZE --randrepeat=0 \
    --time_based --runtime="$SECS" --output-format=json 2>/dev/null | sed -n '/^{/,$p' |
    jq -r --arg k "$k" '.jobs[0][$k] | "\(.iops | floor) \(.lat_ns.mean / 1000 | floor) \(.clat_ns.percentile["99.000000"] / 1000 | floor)"'
}
nvme_run() {
  "$INI" bench --addr 127.0.0.1 --port "$NVME" --nqn nqn.2026-01.dev.arbor:b --rw "$1" --qd "$2" --seconds "$SECS" --span-mib 1024 |
    jq -r '"\(.iops | floor) \(.lat_us_mean | floor) \(.lat_us_p99 | floor)"'
}
echo "### 4 KiB random I/O on one arbord volume (1 GiB, filled), 127.0.0.1, ${SECS} s per run, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| workload | qd | NVMe/TCP IOPS | NVMe/TCP mean / p99 us | NBD IOPS | NBD mean / p99 us | NVMe/NBD |"
echo "|---|---|---|---|---|---|---|"
for rw in randread randwrite; do
  for qd in 1 32; do
    read -r ni nl np < <(nvme_run $rw $qd)
    read -r bi bl bp < <(nbd_run $rw $qd)
    echo "| $rw | $qd | $ni | $nl / $np | $bi | $bl / $bp | $(awk -v a="$ni" -v b="$bi" 'BEGIN { printf "%.2fx", a / b }') |"
  done
done
