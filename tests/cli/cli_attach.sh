#!/usr/bin/env bash
# arbor attach: a local block device of a volume (nbdfuse + loop device here). mkfs.ext4, mount,
# write, umount, e2fsck -fn must be clean; an attached volume cannot be deleted; detach undoes it.
# Skips (exit 77) where FUSE or loop devices are not available.
source "$(dirname "$0")/lib.sh" "$@"
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ] || [ ! -e /dev/loop-control ] || ! command -v nbdfuse >/dev/null; then
  echo "SKIP: needs root, /dev/fuse, /dev/loop-control and nbdfuse"
  exit 77
fi
start_daemon
"$ARBOR" volume create pg --size 256M >/dev/null

step "attach"
dev=$("$ARBOR" attach pg)
echo "attached at $dev"
CLEANUP_HOOK="umount '$WORK/mnt' 2>/dev/null; '$ARBOR' detach pg >/dev/null 2>&1"
[ -b "$dev" ] || fail "$dev is not a block device"
[ "$(blockdev --getsize64 "$dev")" -eq $((256 << 20)) ] || fail "device size"
[ "$(json info pg | jq -r .attached)" = "$dev" ] || fail "info does not show the attachment"
expect_error_matching "already attached" "$ARBOR" attach pg

step "an attached volume cannot be deleted"
expect_error_matching "attached" "$ARBOR" delete pg

step "mkfs.ext4, mount, write, umount, e2fsck -fn"
mkfs.ext4 -q -F "$dev"
mkdir -p "$WORK/mnt"
mount "$dev" "$WORK/mnt"
head -c 20M /dev/urandom >"$WORK/payload"
cp "$WORK/payload" "$WORK/mnt/payload"
sync
expect_error_matching "mounted" "$ARBOR" detach pg
expect_error_matching "mounted" "$ARBOR" daemon stop
umount "$WORK/mnt"
e2fsck -fn "$dev" || fail "e2fsck found problems"

step "detach, then the data is in the volume: attach again and read it back"
"$ARBOR" detach pg | grep -q "detached pg" || fail "detach"
[ "$(json info pg | jq -r .attached)" = null ] || fail "still shown attached"
dev=$("$ARBOR" attach pg)
mount -o ro "$dev" "$WORK/mnt"
cmp "$WORK/payload" "$WORK/mnt/payload" || fail "file differs after reattach"
umount "$WORK/mnt"

step "a branch of the filesystem volume is a clean, separate filesystem"
"$ARBOR" branch create pg2 --from pg >/dev/null
dev2=$("$ARBOR" attach pg2)
e2fsck -fn "$dev2" || fail "e2fsck on the branch"
"$ARBOR" detach pg2 >/dev/null
"$ARBOR" detach pg >/dev/null
CLEANUP_HOOK=""
"$ARBOR" delete pg >/dev/null || fail "delete after detach"
[ -z "$(ls -A "$ARBOR_HOME/attach" 2>/dev/null)" ] || fail "attach mountpoints left behind"

step "a reused loop device someone set to 'write through' still passes flushes on to the store"
# The kernel keeps a sysfs "write through" on a loop device across detach and reuse; such a device
# completes flushes without passing them on, so a flushed write would still sit in arbord's open
# record, which a kill -9 loses.
free=$(losetup -f)
echo "write through" >"/sys/block/${free#/dev/}/queue/write_cache"
"$ARBOR" volume create wt --size 64M >/dev/null
dev4=$("$ARBOR" attach wt)
[ "$dev4" = "$free" ] || fail "attach took $dev4, not the free $free this step prepared"
[ "$(cat "/sys/block/${dev4#/dev/}/queue/write_cache")" = "write back" ] || fail "$dev4 still drops flushes"
head -c 64K /dev/urandom >"$WORK/wt.bin"  # 16 blocks: they stay in the open record until a flush
dd if="$WORK/wt.bin" of="$dev4" bs=64K oflag=direct conv=fsync status=none
kill -9 "$DAEMON_PID"
for _ in $(seq 1000); do alive "$DAEMON_PID" || break; sleep 0.01; done
start_daemon
nbdcopy "nbd+unix:///wt?socket=$ARBOR_HOME/nbd.sock" "$WORK/wt.img"
cmp -n 65536 "$WORK/wt.bin" "$WORK/wt.img" || fail "a write flushed through $dev4 was lost by kill -9"
"$ARBOR" delete wt >/dev/null

step "kill -9 of arbord with an attachment: the next arbord clears the stale loop device and mount"
dev3=$("$ARBOR" attach pg2)
kill -9 "$DAEMON_PID"
for _ in $(seq 1000); do alive "$DAEMON_PID" || break; sleep 0.01; done
start_daemon
! losetup -j "$ARBOR_HOME/attach/pg2/disk" | grep -q . || fail "stale loop device $dev3 left behind"
! grep -q " $ARBOR_HOME/attach/pg2 " /proc/mounts || fail "stale FUSE mount left behind"
grep -q "stale" "$ARBOR_HOME/arbord.log" || fail "cleanup not logged"
"$ARBOR" delete pg2 >/dev/null || fail "delete after the stale attachment was cleared"
echo PASS
