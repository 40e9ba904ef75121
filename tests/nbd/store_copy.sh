#!/usr/bin/env bash
# A random 1 GiB image into a volume and back out through arbord's NBD with nbdcopy: byte-identical
# (cmp), qemu-img compare agrees, and it disagrees once one byte of the volume changes.
# Usage: store_copy.sh ARBOR_BINARY
source "$(dirname "$0")/../cli/lib.sh" "$1"
start_daemon
"$ARBOR" volume create img --size 1G >/dev/null
URI="nbd+unix:///img?socket=$ARBOR_HOME/nbd.sock"
head -c 1G /dev/urandom > "$WORK/in.img"
step "nbdcopy in (4 connections)"
nbdcopy --connections=4 "$WORK/in.img" "$URI"
step "nbdcopy out"
nbdcopy "$URI" "$WORK/out.img"
cmp "$WORK/in.img" "$WORK/out.img" || fail "image changed on the way through arbord"
step "qemu-img compare"
qemu-img compare -f raw -F raw "$WORK/in.img" "$URI" || fail "qemu-img compare disagrees"
printf 'x' | dd of="$WORK/in.img" bs=1 seek=$((512*1024*1024+7)) conv=notrunc status=none
if qemu-img compare -q -f raw -F raw "$WORK/in.img" "$URI"; then fail "qemu-img compare missed a changed byte"; fi
echo "PASS"
