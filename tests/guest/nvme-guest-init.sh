#!/bin/busybox sh
# /init of the NVMe/TCP guest test. Drives the Linux kernel initiator against arbor-nvme-testtarget
# on the host (10.0.2.2) and prints markers the host script asserts:
#   GUEST-OK <step> / GUEST-FAIL <step> <why>, and GUEST-DONE at the end.
# Parameters come on the kernel command line: nvmeport= discport= (and the NQN prefix is fixed).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m.ko 2>/dev/null || echo "insmod $m failed"; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
for kv in $(cat /proc/cmdline); do case $kv in nvmeport=*) P=${kv#nvmeport=};; discport=*) D=${kv#discport=};; esac; done
mkdir -p /host; mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host || echo "GUEST-FAIL 9p mount"
mount -t devtmpfs dev /host/dev; mount -t proc proc /host/proc; mount -t sysfs sys /host/sys
mount -t tmpfs tmp /host/tmp; mount -t tmpfs run /host/run
H="chroot /host"
T0=$(cut -d' ' -f1 /proc/uptime)
A=10.0.2.2
PFX=nqn.2026-01.dev.arbor:
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:6c0a3a1e-0000-4000-8000-000000000001
HOSTID=6c0a3a1e-0000-4000-8000-000000000001
OTHERNQN=nqn.2014-08.org.nvmexpress:uuid:6c0a3a1e-0000-4000-8000-0000000000ff
echo $HOSTNQN > /etc/nvme/hostnqn; echo $HOSTID > /etc/nvme/hostid
ok() { echo "GUEST-OK $* t=$(cut -d' ' -f1 /proc/uptime)"; }
bad() { echo "GUEST-FAIL $*"; }
# The block device of a connected subsystem (waits up to 15 s for it to appear).
dev_for() {
  for i in $(seq 1 30); do
    for d in /sys/block/nvme*n1; do
      [ -e "$d" ] || continue
      case $(basename $d) in *c*n1) continue;; esac  # hidden multipath paths (nvme0c0n1)
      [ "$(cat $d/device/subsysnqn 2>/dev/null)" = "$1" ] && { echo /dev/$(basename $d); return 0; }
    done
    sleep 0.5
  done
  return 1
}
conn() { nvme connect -t tcp -a $A -s $P --hostnqn=$HOSTNQN --hostid=$HOSTID -n "$@"; }
FIOV="fio --name=v --direct=1 --ioengine=libaio --bsrange=4k-256k --size=24m --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse --terse-version=3"
echo "GUEST: setup done t=$T0 nvmeport=$P discport=$D"

# 1. discovery lists the exports this host may see (and not the one it may not).
nvme discover -t tcp -a $A -s $D --hostnqn=$HOSTNQN > /tmp/disc.txt 2>&1
cat /tmp/disc.txt | grep -E 'subnqn|trsvcid' | sed 's/^/GUEST-DISC /'
if grep -q "${PFX}vol1\$" /tmp/disc.txt && grep -q "${PFX}vol1@snap1" /tmp/disc.txt && ! grep -q "${PFX}secret" /tmp/disc.txt; then
  ok discover; else bad discover "log page: $(grep -c subnqn /tmp/disc.txt) entries"; fi

# 1b. the log page entries are usable as they stand: connect-all reaches both listed subsystems.
nvme connect-all -v -t tcp -a $A -s $D --hostnqn=$HOSTNQN --hostid=$HOSTID > /tmp/ca.txt 2>&1
if dev_for ${PFX}vol1 > /dev/null && dev_for ${PFX}vol1@snap1 > /dev/null; then ok connect-all; else bad connect-all "$(tail -2 /tmp/ca.txt)"; cat /tmp/ca.txt | sed "s/^/GUEST-CA /"; dmesg | tail -6 | sed "s/^/GUEST-DMESG /"; fi
nvme disconnect -n ${PFX}vol1 > /dev/null 2>&1; nvme disconnect -n ${PFX}vol1@snap1 > /dev/null 2>&1
sleep 1

# 2. header + data digests, 2 I/O queues, fio verify at iodepth 1 and 32.
if conn ${PFX}vol1 --hdr-digest --data-digest --nr-io-queues=2; then
  DEV=$(dev_for ${PFX}vol1) && ok connect-digest $DEV || bad connect-digest "no device"
  nvme list | sed 's/^/GUEST-LIST /'
  SZ=$(cat /sys/block/$(basename $DEV)/size); [ "$SZ" = 524288 ] && ok size 256MiB || bad size "$SZ sectors"
  dmesg | grep -E 'nvme.*(queues|digest)' | tail -3 | sed 's/^/GUEST-DMESG /'
  dmesg | grep -q 'creating 2 I/O queues' && ok io-queues-2 || bad io-queues-2 "$(dmesg | grep 'I/O queues' | tail -1)"
  $H $FIOV --filename=$DEV --rw=randwrite --iodepth=1 > /tmp/fio1.txt 2>&1 && ok fio-verify-qd1-digest || { bad fio-verify-qd1-digest; tail -5 /tmp/fio1.txt; }
  $H $FIOV --filename=$DEV --rw=randwrite --iodepth=32 --numjobs=2 --offset_increment=64m > /tmp/fio32.txt 2>&1 && ok fio-verify-qd32-2jobs-digest || { bad fio-verify-qd32-2jobs-digest; tail -5 /tmp/fio32.txt; }
  nvme disconnect -n ${PFX}vol1 > /dev/null && ok disconnect-digest || bad disconnect-digest
else bad connect-digest "nvme connect failed"; fi

# 3. no digests: fio verify qd 32, then ext4 + e2fsck, then disconnect/reconnect with data intact.
if conn ${PFX}vol1 --nr-io-queues=2; then
  DEV=$(dev_for ${PFX}vol1) && ok connect-plain $DEV || bad connect-plain "no device"
  $H $FIOV --filename=$DEV --rw=randwrite --iodepth=32 > /tmp/fio3.txt 2>&1 && ok fio-verify-qd32-plain || { bad fio-verify-qd32-plain; tail -5 /tmp/fio3.txt; }
  $H mkfs.ext4 -q -F $DEV && ok mkfs || bad mkfs
  mkdir -p /mnt/v && mount -t ext4 $DEV /mnt/v && ok mount || bad mount
  dd if=/dev/urandom of=/mnt/v/big bs=1M count=20 2>/dev/null
  for i in $(seq 1 50); do echo "file $i $(cat /proc/uptime)" > /mnt/v/f$i; done
  mkdir -p /mnt/v/d/e/f; cp /mnt/v/f1 /mnt/v/d/e/f/
  (cd /mnt/v && md5sum big f* d/e/f/f1) > /tmp/sums
  umount /mnt/v && ok umount || bad umount
  $H e2fsck -fn $DEV > /tmp/fsck.txt 2>&1 && ok e2fsck-clean || { bad e2fsck-clean; tail -5 /tmp/fsck.txt; }
  nvme disconnect -n ${PFX}vol1 > /dev/null && ok disconnect-plain || bad disconnect-plain
  sleep 1
  if conn ${PFX}vol1; then
    DEV=$(dev_for ${PFX}vol1) && ok reconnect $DEV || bad reconnect "no device"
    mount -t ext4 $DEV /mnt/v && (cd /mnt/v && md5sum -c /tmp/sums > /tmp/sumcheck 2>&1) && ok data-intact-after-reconnect || { bad data-intact-after-reconnect; tail -3 /tmp/sumcheck; }
    umount /mnt/v
    $H e2fsck -fn $DEV > /tmp/fsck2.txt 2>&1 && ok e2fsck-clean-after-reconnect || bad e2fsck-clean-after-reconnect
    nvme disconnect -n ${PFX}vol1 > /dev/null
  else bad reconnect "nvme connect failed"; fi
else bad connect-plain "nvme connect failed"; fi

# 4. host NQN allow-list: "secret" admits only OTHERNQN.
if conn ${PFX}secret > /tmp/refuse.txt 2>&1; then bad refused-host "connect succeeded"; nvme disconnect -n ${PFX}secret > /dev/null
else ok refused-host "$(head -1 /tmp/refuse.txt)"; fi
dmesg | grep -iE 'connect.*(host|fail)' | tail -2 | sed 's/^/GUEST-DMESG /'
if nvme connect -t tcp -a $A -s $P --hostnqn=$OTHERNQN -n ${PFX}secret > /dev/null 2>&1; then
  ok allowed-host; nvme disconnect -n ${PFX}secret > /dev/null; else bad allowed-host "connect failed"; fi

# 5. a snapshot is read-only.
if conn ${PFX}vol1@snap1; then
  DEV=$(dev_for ${PFX}vol1@snap1)
  [ "$(cat /sys/block/$(basename $DEV)/ro)" = 1 ] && ok snapshot-read-only || bad snapshot-read-only "ro=$(cat /sys/block/$(basename $DEV)/ro)"
  nvme disconnect -n ${PFX}vol1@snap1 > /dev/null
else bad snapshot-read-only "connect failed"; fi

echo "GUEST-DONE t=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
