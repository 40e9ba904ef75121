#!/bin/bash
# Crash soak of the file backend with the cleaner and segment recycling busy. Not run by ctest: it
# takes minutes and its crash points are random. Each round:
#   1. nbdcopy a fresh random 16 MiB image over one of four slot volumes, with --flush (durable);
#   2. fio overwrites a 128 MiB churn volume in the same store with random 4 KiB writes, so segments
#      mixing slot data and garbage are cleaned (every 100 ms) and recycled;
#   3. kill -9 arbord at a random moment of that, and restart it on the same store;
#   4. every slot must read back exactly as last flushed.
#   tests/soak/kill9_recycle.sh [BUILD_DIR] [ROUNDS]     (defaults: build, 20)
set -euo pipefail
B=$(cd "${1:-build}" && pwd); ROUNDS=${2:-20}
S=$(mktemp -d /var/tmp/arbor-soak.XXXXXX)
P=""
trap '[ -n "$P" ] && kill -9 $P 2>/dev/null; rm -rf "$S"' EXIT
uri() { echo "nbd+unix:///$1?socket=$S/nbd.sock"; }
start() {
  rm -f "$S/nbd.sock"
  "$B/src/daemon/arbord" --store "$S/store" --nbd-listen "unix://$S/nbd.sock" --no-nvme \
    --maintenance-interval-ms 100 >> "$S/arbord.out" 2>&1 &
  P=$!
  for _ in $(seq 200); do
    [ -S "$S/nbd.sock" ] && "$B/src/cli/arbor" --store "$S/store" daemon status > /dev/null 2>&1 && return 0
    kill -0 $P 2>/dev/null || break
    sleep 0.05
  done
  echo "arbord did not come up; its output:" >&2
  tail -20 "$S/arbord.out" >&2
  exit 1
}
mkdir -p "$S/store"
start
for v in slot0 slot1 slot2 slot3; do "$B/src/cli/arbor" --store "$S/store" volume create $v --size 16M > /dev/null; done
"$B/src/cli/arbor" --store "$S/store" volume create churn --size 128M > /dev/null
for v in 0 1 2 3; do
  head -c 16M /dev/urandom > "$S/slot$v.img"
  nbdcopy --flush "$S/slot$v.img" "$(uri slot$v)"
done
echo "soak: $ROUNDS rounds in $S"
for r in $(seq "$ROUNDS"); do
  v=$((r % 4))
  head -c 16M /dev/urandom > "$S/slot$v.img"
  nbdcopy --flush "$S/slot$v.img" "$(uri slot$v)"
  fio --name=churn --ioengine=nbd --uri="$(uri churn)" --rw=randwrite --bs=4k --iodepth=16 \
      --size=128M --time_based --runtime=60 --fsync=256 > /dev/null 2>&1 &
  F=$!
  sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"  # the crash point: random on purpose
  kill -9 $P
  wait $P 2>/dev/null || true
  wait $F 2>/dev/null || true
  start
  for s in 0 1 2 3; do
    nbdcopy "$(uri slot$s)" "$S/back.img"
    if ! cmp -s "$S/back.img" "$S/slot$s.img"; then
      echo "round $r: slot$s differs from what was flushed" >&2
      exit 1
    fi
  done
  echo "round $r: 4 slots intact; $(ls "$S/store/segments" | grep -c '\.seg$') segments, $(ls "$S/store/segments/spare" | wc -l) spare files"
done
kill $P
wait $P 2>/dev/null || true
P=""
echo "soak: OK, $ROUNDS crashes, every flushed slot intact"
