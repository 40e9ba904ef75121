#!/usr/bin/env bash
# A full disk under the store. Something else fills it: writes get ENOSPC, the checkpoint at stop
# fails and `arbor daemon stop` says so (not "stopped cleanly"), start says there is no space, and
# once space is freed the store opens with everything flushed. arbord's own writes fill it: NBD
# writes get ENOSPC (nbdcopy sees "No space left on device"), new volumes and branches are
# refused with a clear message, everyone else is still served, and the space checkpoints and
# recovery need stays free, so the store stops cleanly and opens again (three times) with every
# acknowledged write, and deleting a volume makes room again.
source "$(dirname "$0")/lib.sh" "$@"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (a loop-mounted file system)"; exit 77; }
command -v nbdcopy >/dev/null || fail "needs nbdcopy (libnbd-bin)"
FS=$WORK/fs
mkdir -p "$FS"
truncate -s 320M "$WORK/fs.img"
mkfs.ext4 -q -F "$WORK/fs.img"
mount -o loop "$WORK/fs.img" "$FS" || { echo "SKIP: cannot loop-mount a file system here"; exit 77; }
CLEANUP_HOOK='"$ARBOR" daemon stop --force >/dev/null 2>&1; umount "$FS"'
export ARBOR_HOME=$FS/store
export ARBORD_OPTS="--nbd-listen unix://$ARBOR_HOME/nbd.sock --no-nvme"
start_daemon
URI_V="nbd+unix:///v?socket=$ARBOR_HOME/nbd.sock"

step "something else fills the file system: the stop's checkpoint fails and says so; nothing flushed is lost"
"$ARBOR" volume create w --size 128M >/dev/null
head -c 128M /dev/urandom >"$WORK/w"
nbdcopy "$WORK/w" "nbd+unix:///w?socket=$ARBOR_HOME/nbd.sock"
"$ARBOR" snapshot create w@before-filler >/dev/null  # a control operation: durable from here
"$ARBOR" volume create big --size 8G >/dev/null
dd if=/dev/zero of="$FS/filler" bs=1M status=none 2>/dev/null || true  # until the file system is full
# 4 KiB every MiB of a large volume (fio's nbd engine): each write dirties a map node of its own.
# They fill what is left of the open segment, then are refused; the checkpoint at stop then has
# more nodes to write than that segment holds, and no new segment to write them in (a fresh store
# has no spare segment files yet).
fio --name=scatter --ioengine=nbd --uri="nbd+unix:///big?socket=$ARBOR_HOME/nbd.sock" --rw=write:1020k \
  --bs=4k --size=8g --iodepth=8 >"$WORK/fio.out" 2>&1 || true
grep -q "No space left on device" "$WORK/fio.out" || fail "the scattered writes were not refused: $(tail -3 "$WORK/fio.out")"
expect_error_matching "not cleanly: .*no space" "$ARBOR" daemon stop
! alive "$DAEMON_PID" || fail "arbord did not exit"
# The next start may fit its recovery in the tail of the last segment, or say there is no space.
if "$ARBOR" daemon start $ARBORD_OPTS >/dev/null 2>"$WORK/start.err"; then
  "$ARBOR" daemon stop >/dev/null || true
else
  grep -q "no space" "$WORK/start.err" || fail "start failed without saying why: $(cat "$WORK/start.err")"
  echo "ok (refused): $(cat "$WORK/start.err")"
fi
rm -f "$FS/filler"
start_daemon
nbdcopy "nbd+unix:///w@before-filler?socket=$ARBOR_HOME/nbd.sock" "$WORK/back"
cmp "$WORK/w" "$WORK/back" || fail "w@before-filler lost data"
"$ARBOR" volume delete big >/dev/null
"$ARBOR" volume delete w@before-filler >/dev/null
"$ARBOR" volume delete w >/dev/null

step "one writer fills the store: ENOSPC, in order, at a known offset"
"$ARBOR" volume create v --size 512M >/dev/null
head -c 512M /dev/urandom >"$WORK/src"
# One connection, one request at a time: every block before the failed one was acknowledged.
if nbdcopy --connections=1 --requests=1 "$WORK/src" "$URI_V" 2>"$WORK/copy.err"; then fail "nbdcopy filled 512 MiB into a 320 MiB file system"; fi
grep -q "No space left on device" "$WORK/copy.err" || fail "nbdcopy did not see ENOSPC: $(cat "$WORK/copy.err")"
FAILED_AT=$(grep -oP 'write at offset \K[0-9]+' "$WORK/copy.err" | head -1)
[ -n "$FAILED_AT" ] && [ "$FAILED_AT" -gt $((64 << 20)) ] || fail "failed too early: $(cat "$WORK/copy.err")"
echo "refused at $((FAILED_AT >> 20)) MiB: $(cat "$WORK/copy.err")"

step "everyone else is still served: listing, reads; no new volumes or branches, with a clear message"
nbdinfo --list "nbd+unix:///?socket=$ARBOR_HOME/nbd.sock" | grep -q '^export="v":' || fail "nbdinfo --list lost v"
rm -f "$WORK/back"
nbdcopy "$URI_V" "$WORK/back" && cmp -n "$FAILED_AT" "$WORK/src" "$WORK/back" || fail "acknowledged writes do not read back"
expect_error_matching "store is full \\(.* kept for checkpoints" "$ARBOR" volume create small --size 16M
expect_error_matching "store is full" "$ARBOR" branch create nope --from v
json usage | jq -e '.store.full == true and .store.reserved_bytes > 0' >/dev/null || fail "usage does not say full: $(json usage | jq -c .store)"
"$ARBOR" usage | grep -q "FULL, new data is refused" || fail "arbor usage does not say FULL"
json daemon status | jq -e '.notes | any(test("the store is full"))' >/dev/null || fail "status has no note: $(json daemon status | jq -c .notes)"

step "a full store stops cleanly and opens again, three times, with every acknowledged write"
for i in 1 2 3; do
  "$ARBOR" daemon stop | grep -q "stopped" || fail "stop $i"
  [ "$(tail -1 "$ARBOR_HOME/arbord.stopped")" = ok ] || fail "stop $i was not clean: $(cat "$ARBOR_HOME/arbord.stopped")"
  start_daemon
done
rm -f "$WORK/back"
nbdcopy "$URI_V" "$WORK/back" && cmp -n "$FAILED_AT" "$WORK/src" "$WORK/back" || fail "acknowledged writes lost across restarts"

step "deleting the volume makes room: 128 MiB write and read back"
"$ARBOR" volume delete v >/dev/null
"$ARBOR" volume create w --size 128M >/dev/null
nbdcopy "$WORK/w" "nbd+unix:///w?socket=$ARBOR_HOME/nbd.sock" || fail "writes refused after the delete"
rm -f "$WORK/back"
nbdcopy "nbd+unix:///w?socket=$ARBOR_HOME/nbd.sock" "$WORK/back" && cmp "$WORK/w" "$WORK/back" || fail "w reads back wrong"
json usage | jq -e '.store.full == false' >/dev/null || fail "usage still says full"

echo PASS
