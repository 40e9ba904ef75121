#!/bin/bash
# run-nbd-guest.sh ARBOR ARBORD CACHE_DIR
# The Linux kernel's NBD client (nbd.ko + nbd-client) against the real arbord: boots Debian's
# generic kernel under QEMU (TCG) with an initramfs whose /init (nbd-guest-init.sh) lists the
# exports, connects with two connections and 4 KiB blocks, runs fio verify (queue depth 1 and 32,
# FUA, flushes), trims and zeroes, makes and checks ext4, writes a whole volume, and reads a
# read-only snapshot; then writes with a flush per block while this script kills arbord (-9) and
# restarts it, and checks every flushed block after reconnecting. This script makes the volumes,
# then checks what the guest wrote from its own side and that arbord still serves other clients. Kernel and initramfs are cached in CACHE_DIR.
# Exit 0 = every step passed; 1 = a step failed; 77 = the environment cannot run the test.
set -uo pipefail
ARBOR=$1; ARBORD=$2; CACHE=$3
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$CACHE"; CACHE=$(cd "$CACHE" && pwd)
. "$HERE/guest-lib.sh"
guest_tools "$CACHE" qemu-system-x86_64=qemu-system-x86 /usr/sbin/nbd-client=nbd-client fio=fio \
  mkfs.ext4=e2fsprogs jq=jq nbdinfo=libnbd-bin
guest_kernel "$CACHE"
guest_initrd "$CACHE" nbd "$HERE/nbd-guest-init.sh" /usr/sbin/nbd-client

STORE=$(mktemp -d /tmp/arbor-nbd-guest.XXXXXX)
APID=
cleanup() {
  if [ -n "$APID" ] && kill -0 "$APID" 2>/dev/null; then kill "$APID"; wait "$APID" 2>/dev/null; fi
  rm -rf "$STORE"
}
trap cleanup EXIT

# arbord with NBD on 127.0.0.1 (the guest's 10.0.2.2) on a free port, and its unix socket.
A() { "$ARBOR" --store "$STORE" "$@"; }
start_arbord() {  # $1: the TCP port (0: a free one)
  guest_start_arbord "$CACHE/arbord-nbd.out" --nbd-listen "tcp://127.0.0.1:$1" --nbd-listen "unix://$STORE/nbd.sock" --no-nvme
}
: > "$CACHE/arbord-nbd.out"
start_arbord 0 || exit 1
PORT=$(A --json daemon status 2>/dev/null | jq -r '.endpoints[] | select(.uri | startswith("nbd://")) | .uri' | sed 's/.*://')
[ -n "$PORT" ] || { log "no nbd:// endpoint in arbor daemon status"; exit 1; }
CTL=$STORE/ctl   # the guest reads $CTL/state over 9p: run -> killing -> restarted
mkdir -p "$CTL"; echo run > "$CTL/state"
# arbor and arbord also run in the guest (its chroot sees the share at /run/ctl; the build may be
# under /tmp, which the guest covers with its own tmpfs).
cp "$ARBOR" "$CTL/arbor" && cp "$ARBORD" "$CTL/arbord" || { log "cannot copy arbor and arbord"; exit 1; }

# svol holds R1 when the snapshot is taken, then the host overwrites its first 16 MiB.
head -c 64M /dev/urandom > "$STORE/r1"; head -c 16M /dev/urandom > "$STORE/r2"
SMD5=$(md5sum < "$STORE/r1" | cut -d' ' -f1)
A volume create nvol --size 512M > /dev/null && A volume create rawvol --size 64M > /dev/null \
  && A volume create kvol --size 64M > /dev/null \
  && A import svol "$STORE/r1" > /dev/null && A snapshot create svol@s1 > /dev/null \
  && A import svol "$STORE/r2" > /dev/null || { log "making the volumes failed"; exit 1; }
log "arbord pid $APID, NBD on 127.0.0.1:$PORT, store $STORE"

SERIAL=$CACHE/serial-nbd.log
T0=$(date +%s)
guest_boot "$SERIAL" "nport=$PORT smd5=$SMD5" -virtfs local,path="$CTL",mount_tag=ctl,security_model=none
guest_wait "$SERIAL" "$CTL" start_arbord "$PORT"

fail=0
guest_steps "$SERIAL" list connect-2-connections size block-size-4096 flush-advertised trim-advertised two-tcp-connections \
  fio-verify-qd1 fio-verify-qd32-2jobs fio-verify-fua fio-verify-flush discard zeroout mkfs mount umount e2fsck-clean \
  files-intact-after-remount disconnect raw-written snapshot-device-read-only snapshot-write-refused snapshot-content \
  unknown-export-refused no-io-errors kill-connect kill-writes-fail-when-killed kill-reconnected kill-flushed-blocks-intact \
  attach-kernel-nbd attach-no-loop-no-fuse attach-size attach-ext4 attach-delete-refused detach-kernel-nbd reattach-data-intact \
  attach-snapshot-read-only stale-nbd-disconnected-at-start attach-after-restart stale-mounted-nbd-left-and-reported \
  attach-while-stale-mounted detach-keeps-stale-listed stale-nbd-disconnected-at-attach data-intact-after-kill-mounted \
  pg-create pg-branch pg-branch-isolated pg-on-kernel-nbd pg-kill-acked-commits-kept pg-kill-stale-device-disconnected \
  pg-delete pg-delete-no-nbd-left
# What the guest wrote is what the store holds, read back on the host; the overwritten volume
# kept its new data; arbord still serves.
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }
check arbord-killed-and-restarted '[ $killed = 1 ] && kill -0 $APID'
GMD5=$(grep '^GUEST-MD5 rawvol ' "$SERIAL" | awk '{print $3}' | tr -d '\r')  # the console ends lines in CR LF
A export rawvol "$STORE/raw.out" > /dev/null 2>&1
check raw-data-on-host '[ -n "$GMD5" ] && [ "$(md5sum < "$STORE/raw.out" | cut -d" " -f1)" = "$GMD5" ]'
A export svol "$STORE/svol.out" > /dev/null 2>&1
check volume-after-snapshot '[ "$(head -c 16M "$STORE/svol.out" | md5sum)" = "$(md5sum < "$STORE/r2")" ]'
check serves-after-guest 'nbdinfo --list "nbd+unix:///?socket=$STORE/nbd.sock" 2>/dev/null | grep -q "export=.svol@s1"'
[ $fail = 0 ] && log "all NBD guest steps passed in $((T1 - T0)) s" || log "NBD guest test FAILED (serial log: $SERIAL)"
exit $fail
