#!/usr/bin/env bash
# Cold reads through arbord's NBD while the cleaner moves blocks and frees segments: fio (nbd
# engine) verifies every block at queue depth 32, three times, with the page cache dropped before
# and during each pass. A miss is read on the event loop's io_uring (io/planned_read.h): a wrong
# file run, a reply sent before its runs are in, or a block the cleaner moved and the map no longer
# names shows here as a verify error. (A pin released too early needs a read in flight across a
# segment's reuse, too narrow a window to hit from outside: store_test's PlannedRead test makes it
# happen deterministically.) Writes to another range of the volume run beside the last two passes.
# Usage: cold_verify.sh ARBOR_BINARY
source "$(dirname "$0")/../cli/lib.sh" "$1"
command -v fio >/dev/null || fail "needs fio"
start_daemon
"$ARBOR" volume create v --size 256M >/dev/null
URI="nbd+unix:///v?socket=$ARBOR_HOME/nbd.sock"
VERIFIED=(--name=v --ioengine=nbd "--uri=$URI" --rw=randwrite --bs=4k --iodepth=32 --size=192M
          --verify=crc32c --randrepeat=0 --randseed=4
          --verify_state_save=0)  # fio would leave a verify state file in the current directory

step "write 192 MiB four times over (the first three leave dead blocks for the cleaner)"
for seed in 1 2 3; do
  fio --name=w --ioengine=nbd "--uri=$URI" --rw=randwrite --bs=4k --iodepth=32 --size=192M \
      --randrepeat=0 --randseed=$seed >/dev/null || fail "write pass $seed"
done
fio "${VERIFIED[@]}" --do_verify=0 >/dev/null || fail "verified write pass"

# The churn: drop the page cache and clean (segments at most 90% live), again and again, until told to stop.
touch "$WORK/churn"
( while [ -e "$WORK/churn" ]; do
    echo 3 > /proc/sys/vm/drop_caches
    "$ARBOR" --json clean --max-live-fraction 0.9 | jq -r .segments_cleaned >> "$WORK/cleaned"
  done ) &
CHURN=$!
CLEANUP_HOOK='rm -f "$WORK/churn"; kill $CHURN 2>/dev/null; wait $CHURN 2>/dev/null'

for pass in 1 2 3; do
  step "verify pass $pass (cold)"
  echo 3 > /proc/sys/vm/drop_caches
  if [ "$pass" -gt 1 ]; then
    fio --name=o --ioengine=nbd "--uri=$URI" --rw=randwrite --bs=4k --iodepth=8 --size=64M --offset=192M \
        --randseed=$pass >/dev/null &
    OTHER=$!
  fi
  fio "${VERIFIED[@]}" --verify_only --verify_fatal=1 > "$WORK/verify.log" 2>&1 ||
    { cat "$WORK/verify.log" >&2; fail "verify pass $pass: wrong data read back"; }
  [ "$pass" -gt 1 ] && { wait $OTHER || fail "writes beside verify pass $pass"; }
  grep -E "read:" "$WORK/verify.log"
done
rm -f "$WORK/churn"
wait $CHURN
CLEANUP_HOOK=""
cleaned=$(awk '{s+=$1} END {print s+0}' "$WORK/cleaned")
echo "segments cleaned during the passes: $cleaned"
[ "$cleaned" -gt 0 ] || fail "the cleaner freed no segment while reads ran: this test did not test that"
"$ARBOR" daemon status | grep "nbd:"
on_ring=$("$ARBOR" --json daemon status | jq -r .nbd.reads.on_ring)
[ "$on_ring" -gt 1000 ] || fail "only $on_ring reads went through the event loops' io_uring: the cold path was not tested"
echo "PASS"
