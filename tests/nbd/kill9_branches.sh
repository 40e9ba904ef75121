#!/usr/bin/env bash
# Branches of a volume whose block map is not yet checkpointed share its unwritten nodes; after
# writes to both sides, arbord is killed with -9 and restarted: journal replay must rebuild every
# volume byte for byte (nbdcopy out before and after, cmp), and the sides must still differ.
# Usage: kill9_branches.sh ARBOR_BINARY
source "$(dirname "$0")/../cli/lib.sh" "$1"
uri() { echo "nbd+unix:///$1?socket=$ARBOR_HOME/nbd.sock"; }
# Random 4 KiB writes through fio's nbd engine, flushed at the end (NBD_CMD_FLUSH).
writes() {  # VOLUME SEED MiB
  fio --name=w --ioengine=nbd --uri="$(uri "$1")" --rw=randwrite --bs=4k --iodepth=16 --size=64M \
      --io_size="${3}M" --randseed="$2" --end_fsync=1 --output="$WORK/fio.txt" >/dev/null 2>&1 ||
    fail "fio on $1: $(cat "$WORK/fio.txt")"
}
start_daemon
"$ARBOR" volume create v --size 256M >/dev/null
volumes=(v)
for round in 1 2 3; do
  step "round $round: write v, branch it, write both, kill -9"
  writes v "$round" 16
  "$ARBOR" branch create "b$round" --from v >/dev/null
  volumes+=("b$round")
  writes "b$round" $((round + 100)) 4
  writes v $((round + 200)) 4
  for n in "${volumes[@]}"; do nbdcopy "$(uri "$n")" "$WORK/$n.before"; done
  if cmp -s "$WORK/v.before" "$WORK/b$round.before"; then fail "b$round reads the same as v after both were written"; fi
  kill -9 "$DAEMON_PID"
  while alive "$DAEMON_PID"; do sleep 0.05; done
  start_daemon
  for n in "${volumes[@]}"; do
    nbdcopy "$(uri "$n")" "$WORK/$n.after"
    cmp "$WORK/$n.before" "$WORK/$n.after" || fail "round $round: $n changed across kill -9 and replay"
  done
  echo "ok: ${volumes[*]} identical after kill -9"
done
echo PASS
