#!/bin/busybox sh
# /init of the NBD guest test: the Linux kernel's NBD client (nbd.ko driven by nbd-client 3.24,
# netlink) against arbord's NBD server on the host (10.0.2.2:nport=). Volumes made by the host:
# nvol 512 MiB (fio, ext4), rawvol 64 MiB (the guest writes it, the host compares), svol@s1 (a
# snapshot whose content has md5 smd5=, taken before the host overwrote svol), kvol 64 MiB (kill -9
# of arbord: the host kills and restarts it when the guest prints GUEST-KILLME, and says so in the
# file `state` of the 9p share ctl: run, killing, restarted). The same share holds the host's
# arbor and arbord, which then run in this guest for `arbor attach` over the kernel's client. Prints
#   GUEST-OK <step> / GUEST-FAIL <step> <why>, GUEST-MD5 <volume> <md5>, GUEST-DONE at the end.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m.ko 2>/dev/null || echo "insmod $m failed"; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
for kv in $(cat /proc/cmdline); do case $kv in nport=*) P=${kv#nport=};; smd5=*) SMD5=${kv#smd5=};; esac; done
# The host root, read-only and cached (fio, mkfs, e2fsck, dd run from it with chroot).
mkdir -p /host; mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || echo "GUEST-FAIL 9p mount"
mount -t devtmpfs dev /host/dev; mount -t proc proc /host/proc; mount -t sysfs sys /host/sys
mount -t tmpfs tmp /host/tmp; mount -t tmpfs run /host/run
mkdir -p /host/run/ctl; mount -t 9p -o trans=virtio,version=9p2000.L,cache=none ctl /host/run/ctl || echo "GUEST-FAIL 9p ctl mount"
state() { cat /host/run/ctl/state 2>/dev/null; }
H="chroot /host"
A=10.0.2.2
ok() { echo "GUEST-OK $* t=$(cut -d' ' -f1 /proc/uptime)"; }
bad() { echo "GUEST-FAIL $*"; }
sectors() { cat /sys/block/$1/size; }
nbd_in_use() { local n=0 d; for d in /sys/block/nbd*; do [ "$(cat $d/size)" != 0 ] && n=$((n + 1)); done; echo $n; }
# Established TCP connections from this guest to arbord's NBD port (/proc/net/tcp, state 01).
conns() { awk -v p=$(printf '%04X' $P) 'NR > 1 && $4 == "01" && substr($3, index($3, ":") + 1) == p' /proc/net/tcp | wc -l; }
FIOV="fio --name=v --direct=1 --bsrange=4k-256k --size=24m --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse --terse-version=3"
echo "GUEST: setup done, arbord NBD port $P"

# 1. NBD_OPT_LIST: every volume and snapshot is an export.
nbd-client -l $A $P > /tmp/list.txt 2>&1
sed 's/^/GUEST-LIST /' /tmp/list.txt
if grep -q '^nvol:' /tmp/list.txt && grep -q '^rawvol:' /tmp/list.txt && grep -q '^svol:' /tmp/list.txt \
  && grep -q '^svol@s1:' /tmp/list.txt; then ok list; else bad list "$(tr '\n' ' ' < /tmp/list.txt)"; fi

# 2. Two connections to one export (multi-conn), 4 KiB blocks; the device says what the server
# advertised: its size, a volatile cache (flush), and discard (trim).
if nbd-client $A $P /dev/nbd0 -N nvol -b 4096 -C 2 > /tmp/c0.txt 2>&1; then
  ok connect-2-connections
  [ "$(sectors nbd0)" = 1048576 ] && ok size 512MiB || bad size "$(sectors nbd0) sectors"
  [ "$(cat /sys/block/nbd0/queue/logical_block_size)" = 4096 ] && ok block-size-4096 || bad block-size-4096 "$(cat /sys/block/nbd0/queue/logical_block_size)"
  [ "$(cat /sys/block/nbd0/queue/write_cache)" = "write back" ] && ok flush-advertised || bad flush-advertised "$(cat /sys/block/nbd0/queue/write_cache)"
  [ "$(cat /sys/block/nbd0/queue/discard_max_bytes)" -gt 0 ] && ok trim-advertised || bad trim-advertised
  [ "$(conns)" = 2 ] && ok two-tcp-connections || bad two-tcp-connections "$(conns) established"

  # 3. fio verify (crc32c) at queue depth 1 and 32 (two jobs, both connections busy), then with
  # FUA writes (O_SYNC) and with fdatasync every 4 writes (NBD_CMD_FLUSH).
  $H $FIOV --filename=/dev/nbd0 --ioengine=libaio --rw=randwrite --iodepth=1 > /tmp/f1.txt 2>&1 && ok fio-verify-qd1 || { bad fio-verify-qd1; tail -5 /tmp/f1.txt; }
  $H $FIOV --filename=/dev/nbd0 --ioengine=libaio --rw=randwrite --iodepth=32 --numjobs=2 --offset_increment=128m > /tmp/f32.txt 2>&1 \
    && ok fio-verify-qd32-2jobs || { bad fio-verify-qd32-2jobs; tail -5 /tmp/f32.txt; }
  $H $FIOV --filename=/dev/nbd0 --ioengine=libaio --rw=randwrite --iodepth=4 --sync=1 --offset=256m > /tmp/fs.txt 2>&1 \
    && ok fio-verify-fua || { bad fio-verify-fua; tail -5 /tmp/fs.txt; }
  $H $FIOV --filename=/dev/nbd0 --ioengine=psync --rw=randwrite --fdatasync=4 --offset=300m > /tmp/ff.txt 2>&1 \
    && ok fio-verify-flush || { bad fio-verify-flush; tail -5 /tmp/ff.txt; }

  # 4. Discard (NBD_CMD_TRIM) and zero-out read back as zeros.
  $H sh -c 'head -c 2M /dev/urandom > /tmp/rnd && dd if=/tmp/rnd of=/dev/nbd0 bs=1M seek=400 oflag=direct conv=fsync status=none \
    && head -c 2M /dev/zero > /tmp/zero' || bad discard "cannot write the pattern"
  $H blkdiscard -o $((400 << 20)) -l $((1 << 20)) /dev/nbd0 > /tmp/d.txt 2>&1 || bad discard "blkdiscard: $(cat /tmp/d.txt)"
  $H blkdiscard -z -o $((401 << 20)) -l $((1 << 20)) /dev/nbd0 > /tmp/z.txt 2>&1 || bad zeroout "blkdiscard -z: $(cat /tmp/z.txt)"
  $H sh -c 'dd if=/dev/nbd0 bs=1M skip=400 count=1 iflag=direct status=none | cmp -s - /tmp/zero -n 1048576' && ok discard || bad discard "not zeros after trim"
  $H sh -c 'dd if=/dev/nbd0 bs=1M skip=401 count=1 iflag=direct status=none | cmp -s - /tmp/zero -n 1048576' && ok zeroout || bad zeroout "not zeros after zero-out"

  # 5. ext4: mkfs (which discards the device), files, e2fsck, and the files again after a remount.
  $H mkfs.ext4 -q -F /dev/nbd0 > /tmp/mkfs.txt 2>&1 && ok mkfs || { bad mkfs; cat /tmp/mkfs.txt; }
  mkdir -p /mnt/v
  if mount -t ext4 /dev/nbd0 /mnt/v; then
    ok mount
    $H sh -c 'head -c 32M /dev/urandom > /tmp/big'; cp /host/tmp/big /mnt/v/big
    mkdir -p /mnt/v/tree; for i in $(seq 1 200); do echo "file $i" > /mnt/v/tree/f$i; done
    BIG=$(md5sum /host/tmp/big | cut -d' ' -f1)
    sync; umount /mnt/v && ok umount || bad umount
    $H e2fsck -fn /dev/nbd0 > /tmp/fsck.txt 2>&1 && ok e2fsck-clean || { bad e2fsck-clean; tail -5 /tmp/fsck.txt; }
    mount -t ext4 /dev/nbd0 /mnt/v && [ "$(md5sum /mnt/v/big | cut -d' ' -f1)" = "$BIG" ] && [ "$(cat /mnt/v/tree/f137)" = "file 137" ] \
      && ok files-intact-after-remount || bad files-intact-after-remount
    umount /mnt/v
  else bad mount; fi
  nbd-client -d /dev/nbd0 > /dev/null 2>&1
  for i in $(seq 1 20); do [ "$(sectors nbd0)" = 0 ] && break; sleep 0.5; done
  [ "$(sectors nbd0)" = 0 ] && [ "$(conns)" = 0 ] && ok disconnect || bad disconnect "$(sectors nbd0) sectors, $(conns) connections"
else bad connect-2-connections "$(cat /tmp/c0.txt)"; fi

# 6. A whole volume written from the guest with one final flush; the host compares its own copy.
if nbd-client $A $P /dev/nbd1 -N rawvol -b 4096 > /tmp/c1.txt 2>&1; then
  $H sh -c 'head -c 64M /dev/urandom > /tmp/raw && dd if=/tmp/raw of=/dev/nbd1 bs=1M oflag=direct conv=fsync status=none' \
    && ok raw-written || bad raw-written
  echo "GUEST-MD5 rawvol $(md5sum /host/tmp/raw | cut -d' ' -f1)"
  nbd-client -d /dev/nbd1 > /dev/null 2>&1
else bad raw-written "$(cat /tmp/c1.txt)"; fi

# 7. A snapshot is a read-only export: the device is read-only, writes fail, and it reads what the
# volume held when the snapshot was taken.
if nbd-client $A $P /dev/nbd2 -N svol@s1 -b 4096 > /tmp/c2.txt 2>&1; then
  [ "$(cat /sys/block/nbd2/ro)" = 1 ] && ok snapshot-device-read-only || bad snapshot-device-read-only "ro=$(cat /sys/block/nbd2/ro)"
  $H dd if=/dev/zero of=/dev/nbd2 bs=4k count=1 oflag=direct status=none 2>/dev/null && bad snapshot-write-refused "a write succeeded" \
    || ok snapshot-write-refused
  [ "$($H md5sum /dev/nbd2 | cut -d' ' -f1)" = "$SMD5" ] && ok snapshot-content || bad snapshot-content "md5 differs"
  nbd-client -d /dev/nbd2 > /dev/null 2>&1
else bad snapshot-device-read-only "$(cat /tmp/c2.txt)"; fi

# 8. An export that does not exist is refused at the handshake; no device is made.
if nbd-client $A $P /dev/nbd3 -N nosuch > /tmp/c3.txt 2>&1; then bad unknown-export-refused "connected"
else [ "$(sectors nbd3)" = 0 ] && ok unknown-export-refused "$(tail -1 /tmp/c3.txt)" || bad unknown-export-refused "nbd3 has a size"; fi

dmesg | grep -iE 'nbd.*(error|timed out|dead)|I/O error' > /tmp/errs.txt

# 9. Flush means durable, through the kernel client with two connections (a flush on one covers
# writes completed on both): 4 KiB blocks, each written and fsynced (NBD_CMD_FLUSH); small enough
# that a flush which did not write the store's open record would lose them (checked: it does). A block
# counts as flushed before the kill only if its fsync returned while the host still said "run".
# arbord is killed (-9) mid-stream; the writes then fail, the guest reconnects to the restarted
# arbord, and every block flushed before the kill must read back intact.
mkdir -p /host/tmp/kb; : > /tmp/before
if nbd-client $A $P /dev/nbd4 -N kvol -b 4096 -C 2 > /tmp/c4.txt 2>&1; then
  ok kill-connect
  i=0; asked=0; failed_at=-1
  while [ $i -lt 400 ]; do
    head -c 4096 /dev/urandom > /host/tmp/kb/$i
    $H dd if=/tmp/kb/$i of=/dev/nbd4 bs=4k seek=$i count=1 oflag=direct conv=fsync,notrunc 2>/dev/null; rc=$?
    s1=$(state)
    [ $rc = 0 ] && [ "$s1" = run ] && echo $i >> /tmp/before
    [ $rc != 0 ] && { failed_at=$i; break; }
    if [ $asked = 0 ] && [ $(wc -l < /tmp/before) -ge 8 ]; then echo "GUEST-KILLME t=$(cut -d' ' -f1 /proc/uptime)"; asked=1; fi
    i=$((i + 1))
  done
  [ $asked = 1 ] && [ $failed_at -ge 8 ] && ok kill-writes-fail-when-killed "$(wc -l < /tmp/before) blocks flushed before the kill, block $failed_at failed" \
    || bad kill-writes-fail-when-killed "asked=$asked failed_at=$failed_at"
  nbd-client -d /dev/nbd4 > /dev/null 2>&1
  for i in $(seq 1 60); do [ "$(state)" = restarted ] && break; sleep 0.5; done
  if [ "$(state)" = restarted ] && nbd-client $A $P /dev/nbd5 -N kvol -b 4096 > /tmp/c5.txt 2>&1; then
    ok kill-reconnected
    lost=0
    for j in $(cat /tmp/before); do
      a=$(md5sum < /host/tmp/kb/$j); b=$($H dd if=/dev/nbd5 bs=4k skip=$j count=1 iflag=direct 2>/dev/null | md5sum)
      [ "$a" = "$b" ] || { lost=$((lost + 1)); echo "GUEST: block $j differs"; }
    done
    [ $lost = 0 ] && ok kill-flushed-blocks-intact "$(wc -l < /tmp/before) blocks" || bad kill-flushed-blocks-intact "$lost blocks differ"
    nbd-client -d /dev/nbd5 > /dev/null 2>&1
  else bad kill-reconnected "state $(state): $(cat /tmp/c5.txt 2>/dev/null)"; fi
else bad kill-connect "$(cat /tmp/c4.txt)"; fi
[ -s /tmp/errs.txt ] && { bad no-io-errors; sed 's/^/GUEST-DMESG /' /tmp/errs.txt | head -10; } || ok no-io-errors

# 10. `arbor attach` where the kernel has nbd: arbord and arbor run in this guest on a store in its
# tmpfs; attach makes /dev/nbdN through the kernel's NBD client (no FUSE mount, no loop device),
# the volume cannot be deleted while attached, detach disconnects it, and after a kill -9 of arbord
# the restarted one disconnects the stale device itself. They run in a root of their own: /usr and
# /etc of the host, and this guest's /proc, /sys, /dev and tmpfs. (Under /host, 9p shows the
# host's /proc and /sys as one directory, so arbord would not see /proc/mounts there.)
mkdir -p /r; mount -t tmpfs r /r; mkdir -p /r/usr /r/etc /r/proc /r/sys /r/dev /r/tmp /r/run/ctl /r/var/tmp
mount --bind /host/usr /r/usr; mount --bind /host/etc /r/etc; mount --bind /host/run/ctl /r/run/ctl
for l in bin sbin lib lib64; do ln -s usr/$l /r/$l; done
mount -t proc proc /r/proc; mount -t sysfs sys /r/sys; mount -t devtmpfs dev /r/dev
G="chroot /r"
GA="$G /run/ctl/arbor --store /tmp/gstore"
att() { $GA attach "$1" 2>/tmp/att.txt | grep -o '^/dev/[a-z0-9]*'; }
# kill -9 of arbord under a Postgres on /dev/nbdN that commits one row per transaction: after a new
# arbord and `arbor pg start` (which takes down the server left on the dead device, unmounts it,
# and attaches again: the stale device is disconnected then), every acknowledged commit is there.
pg_kill_step() {
  local port acked last count used
  port=$($GA --json pg list | $G jq -r --arg n "$1" '.servers[] | select(.name == $n) | .port')
  $GA pg psql "$1" -qc "create table acked(id int primary key)" > /dev/null 2>&1
  # psql itself, not arbor pg psql: the arbor CLI would start a new arbord once this one is killed.
  ( i=0; while $G /usr/lib/postgresql/15/bin/psql -X -q -h 127.0.0.1 -p $port -U postgres \
        -c "insert into acked values ($((i + 1)))" postgres > /dev/null 2>&1; do i=$((i + 1)); echo $i >> /tmp/acked; done ) &
  local writer=$!
  for i in $(seq 1 600); do [ "$(wc -l < /tmp/acked 2>/dev/null || echo 0)" -ge 20 ] && break; sleep 0.1; done
  kill -9 $($GA --json daemon status | $G jq -r .pid)
  wait $writer
  last=$(tail -1 /tmp/acked 2>/dev/null || echo 0)
  [ "$last" -ge 20 ] || { bad pg-kill-acked "only '$last' commits before the kill"; return; }
  if $GA daemon start --no-nvme > /tmp/gd4.txt 2>&1 && $GA pg start "$1" > /tmp/pgs.txt 2>&1; then
    count=$($GA pg psql "$1" -tAc "select count(*) from acked where id <= $last" 2>&1)
    [ "$count" = "$last" ] && ok pg-kill-acked-commits-kept "$last of $last" || bad pg-kill-acked-commits-kept "$count of $last"
  else bad pg-kill-acked-commits-kept "restart: $(tail -2 /tmp/gd4.txt /tmp/pgs.txt)"; fi
  # The other server, $2, died with the devices too: one restarted, the other left for pg delete.
  # In use: the restarted server's new device, and $2's dead one (mounted); not $1's dead one.
  used=$(nbd_in_use)
  [ $used = 2 ] && ok pg-kill-stale-device-disconnected || bad pg-kill-stale-device-disconnected "$used NBD devices in use"
}
if $GA daemon start --no-nvme > /tmp/gd.txt 2>&1 && $GA volume create av --size 256M > /dev/null; then
  DEV=$(att av)
  case "$DEV" in
    /dev/nbd*) ok attach-kernel-nbd $DEV;;
    *) bad attach-kernel-nbd "got '$DEV': $(cat /tmp/att.txt)"; DEV=;;
  esac
else bad attach-kernel-nbd "arbor daemon start / volume create: $(cat /tmp/gd.txt)"; DEV=; fi
if [ -n "$DEV" ]; then
  N=$(basename $DEV)
  [ -z "$($G losetup -a)" ] && ! grep -q fuse /proc/mounts && ok attach-no-loop-no-fuse || bad attach-no-loop-no-fuse "$($G losetup -a)"
  [ "$(sectors $N)" = 524288 ] && ok attach-size || bad attach-size "$(sectors $N) sectors"
  $G mkfs.ext4 -q -F $DEV > /tmp/amkfs.txt 2>&1 && mkdir -p /mnt/a && mount -t ext4 $DEV /mnt/a \
    && head -c 16777216 /dev/urandom > /r/tmp/a16 && cp /r/tmp/a16 /mnt/a/a16 && umount /mnt/a \
    && $G e2fsck -fn $DEV > /tmp/afsck.txt 2>&1 && ok attach-ext4 || { bad attach-ext4; tail -3 /tmp/amkfs.txt /tmp/afsck.txt; }
  $GA delete av > /tmp/adel.txt 2>&1 && bad attach-delete-refused "deleted" || ok attach-delete-refused "$(cat /tmp/adel.txt)"
  $GA detach av > /dev/null 2>&1 && [ "$(sectors $N)" = 0 ] && ok detach-kernel-nbd || bad detach-kernel-nbd "$(sectors $N) sectors"
  DEV=$(att av)
  mount -t ext4 -o ro $DEV /mnt/a && [ "$(md5sum < /mnt/a/a16)" = "$(md5sum < /r/tmp/a16)" ] && ok reattach-data-intact $DEV \
    || bad reattach-data-intact "$DEV"
  umount /mnt/a 2>/dev/null
  $GA snapshot create av@s > /dev/null && SDEV=$(att av@s) && [ "$(cat /sys/block/$(basename $SDEV)/ro)" = 1 ] \
    && ok attach-snapshot-read-only $SDEV || bad attach-snapshot-read-only "$SDEV"
  $GA detach av@s > /dev/null 2>&1
  # kill -9 with av attached (not mounted), then a new arbord on the same store.
  APID=$($GA --json daemon status | $G jq -r .pid)
  kill -9 $APID; for i in $(seq 1 50); do kill -0 $APID 2>/dev/null || break; sleep 0.1; done
  N=$(basename $DEV)
  $GA daemon start --no-nvme > /tmp/gd2.txt 2>&1
  if [ "$(sectors $N)" = 0 ] && grep -q "disconnected stale NBD device $DEV" /r/tmp/gstore/arbord.log; then ok stale-nbd-disconnected-at-start
  else bad stale-nbd-disconnected-at-start "$(sectors $N) sectors: $(cat /tmp/gd2.txt) $(tail -2 /r/tmp/gstore/arbord.log)"; fi
  DEV=$(att av) && ok attach-after-restart $DEV || bad attach-after-restart "$(cat /tmp/att.txt)"
  # kill -9 with av attached and mounted: the new arbord leaves the mounted device (and says so);
  # once unmounted, the next attach of av disconnects it (what arbor pg start does after a crash).
  # Mounted in arbord's root: its /proc/mounts shows only the mounts under it.
  $G mkdir -p /tmp/am; $G mount -t ext4 $DEV /tmp/am; N=$(basename $DEV)
  APID=$($GA --json daemon status | $G jq -r .pid)
  kill -9 $APID; for i in $(seq 1 50); do kill -0 $APID 2>/dev/null || break; sleep 0.1; done
  $GA daemon start --no-nvme > /tmp/gd3.txt 2>&1
  grep -q "stale attachment of av at $DEV is still mounted" /r/tmp/gstore/arbord.log && [ "$(sectors $N)" != 0 ] \
    && ok stale-mounted-nbd-left-and-reported || bad stale-mounted-nbd-left-and-reported "$(sectors $N) sectors: $(grep stale /r/tmp/gstore/arbord.log | tail -2)"
  # An attach while the stale device is still mounted gets a device of its own, and the stale one
  # stays listed (a detach keeps it there): once unmounted, the next attach disconnects it.
  MARK=/r/tmp/gstore/attach/av/kernel-nbd
  DEV2=$(att av)
  [ -n "$DEV2" ] && [ "$DEV2" != "$DEV" ] && grep -qx "$DEV" $MARK && grep -qx "$DEV2" $MARK \
    && ok attach-while-stale-mounted "$DEV2; $DEV still listed" || bad attach-while-stale-mounted "new '$DEV2': $(cat $MARK 2>&1)"
  $GA detach av > /dev/null 2>&1 && [ "$(cat $MARK 2>&1)" = "$DEV" ] && ok detach-keeps-stale-listed || bad detach-keeps-stale-listed "$(cat $MARK 2>&1)"
  $G umount /tmp/am
  DEV2=$(att av)
  used=$(nbd_in_use)
  [ -n "$DEV2" ] && [ $used = 1 ] && ok stale-nbd-disconnected-at-attach "$DEV2 (was $DEV)" \
    || bad stale-nbd-disconnected-at-attach "new '$DEV2', $used NBD devices in use: $(cat /tmp/att.txt)"
  $G mount -t ext4 -o ro $DEV2 /tmp/am && [ "$(md5sum < /r/tmp/am/a16)" = "$(md5sum < /r/tmp/a16)" ] && ok data-intact-after-kill-mounted \
    || bad data-intact-after-kill-mounted
  $G umount /tmp/am 2>/dev/null
  $GA detach av > /dev/null 2>&1
  # Postgres on /dev/nbdN: arbor pg create, a branch, writes on each side seen only there.
  T=$(cut -d' ' -f1 /proc/uptime)
  if $GA pg create gp --size 1G > /tmp/pgc.txt 2>&1; then
    ok pg-create "$(tail -1 /tmp/pgc.txt) t0=$T"
    $GA pg psql gp -qc "create table t(a int); insert into t select generate_series(1, 1000)" > /dev/null 2>&1
    $GA pg branch gb --from gp > /tmp/pgb.txt 2>&1 && ok pg-branch "$(tail -1 /tmp/pgb.txt)" || bad pg-branch "$(cat /tmp/pgb.txt)"
    $GA pg psql gb -qc "insert into t select generate_series(1, 500)" > /dev/null 2>&1
    pc=$($GA pg psql gp -tAc "select count(*) from t" 2>&1); bc=$($GA pg psql gb -tAc "select count(*) from t" 2>&1)
    [ "$pc" = 1000 ] && [ "$bc" = 1500 ] && ok pg-branch-isolated || bad pg-branch-isolated "parent $pc, branch $bc"
    $GA --json pg list > /tmp/pgl.txt 2>&1
    [ "$(grep -c '"device": "/dev/nbd' /tmp/pgl.txt)" = 2 ] && ok pg-on-kernel-nbd || bad pg-on-kernel-nbd "$(grep device /tmp/pgl.txt)"
    pg_kill_step gp gb
    # gb's server is the one left on a dead device: pg delete takes it down and disconnects that.
    $GA pg delete gb > /tmp/pgd.txt 2>&1 && $GA pg delete gp >> /tmp/pgd.txt 2>&1 && ok pg-delete || bad pg-delete "$(tail -2 /tmp/pgd.txt)"
    used=$(nbd_in_use)
    [ $used = 0 ] && ok pg-delete-no-nbd-left || bad pg-delete-no-nbd-left "$used NBD devices in use"
  else bad pg-create "$(tail -3 /tmp/pgc.txt)"; fi
  $GA daemon stop > /dev/null 2>&1
fi
echo "GUEST-DONE t=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
