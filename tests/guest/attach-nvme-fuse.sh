#!/bin/bash
# attach-nvme-fuse.sh ARBOR: `arbor attach NAME --transport nvme-tcp` on a host whose kernel has no
# nvme-tcp (this one): our initiator behind a one-file FUSE mount (arbor-nvme-fuse) + loop device.
# mkfs.ext4, mount, write, unmount, e2fsck -fn clean, data read back after detach + re-attach,
# refusals (already attached, delete while attached, detach of what is not attached), a snapshot
# attaches read-only. Exit 0 = pass, 77 = no FUSE/loop/root here, or the kernel has nvme-tcp.
set -u
ARBOR=$1
[ "$(id -u)" = 0 ] && [ -e /dev/fuse ] && [ -e /dev/loop-control ] && command -v losetup > /dev/null || { echo "skipped: needs root, FUSE and loop devices"; exit 77; }
[ -e /sys/module/nvme_tcp ] && { echo "skipped: this kernel has nvme-tcp (the kernel path is used)"; exit 77; }
S=$(mktemp -d /tmp/arbor-nvfuse.XXXXXX)
export ARBORD_OPTS="--nbd-listen unix://$S/nbd.sock --nvme-listen 127.0.0.1:0 --nvme-discovery-listen none"
A() { "$ARBOR" --store "$S" "$@"; }
trap 'umount "$S/m" 2>/dev/null; A detach v --transport nvme-tcp > /dev/null 2>&1; A detach v@s --transport nvme-tcp > /dev/null 2>&1; A daemon stop --force > /dev/null 2>&1; rm -rf "$S"' EXIT
source "$(dirname "$0")/checks.sh"
A volume create v --size 64M > /dev/null || exit 1
D=$(A attach v --transport nvme-tcp)
check attach '[ -b "$D" ]'
check mkfs-mount-write 'mkfs.ext4 -q "$D" && mkdir -p "$S/m" && mount "$D" "$S/m" && head -c 3M /dev/urandom > "$S/m/f" && md5sum < "$S/m/f" > "$S/sum" && umount "$S/m"'
check e2fsck-clean 'e2fsck -fn "$D" > /dev/null 2>&1'
expect_error already-attached "already attached over NVMe/TCP as $D" A attach v --transport nvme-tcp
expect_error delete-while-attached "in use" A delete v
check detach 'A detach v --transport nvme-tcp | grep -q "^detached v ($D)"'
expect_error detach-not-attached "not connected over NVMe/TCP|not attached over NVMe/TCP" A detach v --transport nvme-tcp
D=$(A attach v --transport nvme-tcp)
check data-after-reattach 'mount "$D" "$S/m" && [ "$(md5sum < "$S/m/f")" = "$(cat "$S/sum")" ] && umount "$S/m"'
A detach v --transport nvme-tcp > /dev/null
A snapshot create v@s > /dev/null
D=$(A attach v@s --transport nvme-tcp)
check snapshot-read-only '[ "$(blockdev --getro "$D")" = 1 ]'
A detach v@s --transport nvme-tcp > /dev/null
check no-state-left '[ -z "$(ls "$S/attach-nvme" 2>/dev/null)" ]'
exit $fail
