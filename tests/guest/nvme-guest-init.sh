#!/bin/busybox sh
# /init of the NVMe/TCP guest test. Drives the Linux kernel initiator against arbord on the host
# (10.0.2.2; volumes avol 512 MiB, avol@s1, pgvol 1 GiB, asecret 64 MiB allowing only OTHERNQN),
# then the kernel's own nvmet-tcp on loopback, and prints markers the host script asserts:
#   GUEST-OK <step> / GUEST-FAIL <step> <why>, GUEST-TABLE <markdown>, GUEST-DONE at the end.
# Parameters come on the kernel command line: aport= adisc= (arbord's I/O and discovery ports),
# 9p tag ctl (a host directory whose file `state` the host script sets to run / killing /
# restarted around its kill -9 of arbord, mounted at /host/run/ctl), ini= (our userspace initiator,
# arbor-nvme-initiator, which the host copies into the ctl share; run in the chroot). The NQN
# prefix is fixed.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m.ko 2>/dev/null || echo "insmod $m failed"; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
for kv in $(cat /proc/cmdline); do case $kv in
  aport=*) P=${kv#aport=};; adisc=*) D=${kv#adisc=};; ctl=*) CTL=${kv#ctl=};; ini=*) INI=${kv#ini=};; esac; done
AP=$P
# The host root is read-only and does not change under us: cache it (cache=loose), or every exec
# and page fault of postgres and fio is a 9p round trip. The control directory is a separate,
# uncached 9p mount at /host/run/ctl (the host rewrites its file during the run, and puts our
# initiator there: the build may live under the host's /tmp, which the guest covers with tmpfs).
mkdir -p /host; mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || echo "GUEST-FAIL 9p mount"
mount -t devtmpfs dev /host/dev; mount -t proc proc /host/proc; mount -t sysfs sys /host/sys
mount -t tmpfs tmp /host/tmp; mount -t tmpfs run /host/run
mkdir -p /host/run/ctl; mount -t 9p -o trans=virtio,version=9p2000.L,cache=none ctl /host/run/ctl || echo "GUEST-FAIL 9p ctl mount"
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
# Waits (up to 15 s) until no NVMe block device is left after disconnects.
none_left() { for i in $(seq 1 30); do ls /sys/block | grep -q '^nvme' || return 0; sleep 0.5; done; return 1; }
conn() { nvme connect -t tcp -a $A -s $P --hostnqn=$HOSTNQN --hostid=$HOSTID -n "$@"; }
FIOV="fio --name=v --direct=1 --ioengine=libaio --bsrange=4k-256k --size=24m --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse --terse-version=3"
echo "GUEST: setup done t=$T0 arbord io port=$P discovery port=$D"

# 1. discovery lists the exports this host may see (and not the one it may not), at the address
# and port the host reaches (arbord --nvme-advertise 10.0.2.2).
nvme discover -t tcp -a $A -s $D --hostnqn=$HOSTNQN > /tmp/disc.txt 2>&1
cat /tmp/disc.txt | grep -E 'subnqn|trsvcid' | sed 's/^/GUEST-DISC /'
if grep -q "${PFX}avol\$" /tmp/disc.txt && grep -q "${PFX}avol@s1\$" /tmp/disc.txt && grep -q "${PFX}pgvol\$" /tmp/disc.txt \
  && ! grep -q "${PFX}asecret" /tmp/disc.txt && grep -q "trsvcid: *$P\$" /tmp/disc.txt && grep -q "traddr: *10.0.2.2\$" /tmp/disc.txt; then
  ok discover; else bad discover "log page: $(grep -c subnqn /tmp/disc.txt) entries"; fi

# 1b. the log page entries are usable as they stand: connect-all reaches both listed subsystems.
nvme connect-all -v -t tcp -a $A -s $D --hostnqn=$HOSTNQN --hostid=$HOSTID > /tmp/ca.txt 2>&1
if dev_for ${PFX}avol > /dev/null && dev_for ${PFX}avol@s1 > /dev/null; then ok connect-all; else bad connect-all "$(tail -2 /tmp/ca.txt)"; cat /tmp/ca.txt | sed "s/^/GUEST-CA /"; dmesg | tail -6 | sed "s/^/GUEST-DMESG /"; fi
for n in avol avol@s1 pgvol; do nvme disconnect -n ${PFX}$n > /dev/null 2>&1; done
none_left || bad connect-all "devices left after disconnect"

# 2. header + data digests, 2 I/O queues, fio verify at iodepth 1 and 32.
if conn ${PFX}avol --hdr-digest --data-digest --nr-io-queues=2; then
  DEV=$(dev_for ${PFX}avol) && ok connect-digest $DEV || bad connect-digest "no device"
  nvme list | sed 's/^/GUEST-LIST /'
  SZ=$(cat /sys/block/$(basename $DEV)/size); [ "$SZ" = 1048576 ] && ok size 512MiB || bad size "$SZ sectors"
  dmesg | grep -E 'nvme.*(queues|digest)' | tail -3 | sed 's/^/GUEST-DMESG /'
  dmesg | grep -q 'creating 2 I/O queues' && ok io-queues-2 || bad io-queues-2 "$(dmesg | grep 'I/O queues' | tail -1)"
  $H $FIOV --filename=$DEV --rw=randwrite --iodepth=1 > /tmp/fio1.txt 2>&1 && ok fio-verify-qd1-digest || { bad fio-verify-qd1-digest; tail -5 /tmp/fio1.txt; }
  $H $FIOV --filename=$DEV --rw=randwrite --iodepth=32 --numjobs=2 --offset_increment=128m > /tmp/fio32.txt 2>&1 && ok fio-verify-qd32-2jobs-digest || { bad fio-verify-qd32-2jobs-digest; tail -5 /tmp/fio32.txt; }
  nvme disconnect -n ${PFX}avol > /dev/null && ok disconnect-digest || bad disconnect-digest
else bad connect-digest "nvme connect failed"; fi

# 3. no digests: fio verify qd 32, then ext4 + e2fsck, then disconnect/reconnect with data intact.
if conn ${PFX}avol --nr-io-queues=2; then
  DEV=$(dev_for ${PFX}avol) && ok connect-plain $DEV || bad connect-plain "no device"
  $H $FIOV --filename=$DEV --rw=randwrite --iodepth=32 > /tmp/fio3.txt 2>&1 && ok fio-verify-qd32-plain || { bad fio-verify-qd32-plain; tail -5 /tmp/fio3.txt; }
  # Discard as mkfs does (Linux sends DSM with a 4 KiB range buffer whatever NR says).
  $H blkdiscard -o 0 -l 1048576 $DEV > /tmp/discard.txt 2>&1 && ok discard || { bad discard "$(tail -1 /tmp/discard.txt)"; dmesg | tail -2 | sed 's/^/GUEST-DMESG /'; }
  $H mkfs.ext4 -q -F $DEV && ok mkfs || bad mkfs
  mkdir -p /mnt/v && mount -t ext4 $DEV /mnt/v && ok mount || bad mount
  dd if=/dev/urandom of=/mnt/v/big bs=1M count=20 2>/dev/null
  for i in $(seq 1 50); do echo "file $i $(cat /proc/uptime)" > /mnt/v/f$i; done
  mkdir -p /mnt/v/d/e/f; cp /mnt/v/f1 /mnt/v/d/e/f/
  (cd /mnt/v && md5sum big f* d/e/f/f1) > /tmp/sums
  umount /mnt/v && ok umount || bad umount
  $H e2fsck -fn $DEV > /tmp/fsck.txt 2>&1 && ok e2fsck-clean || { bad e2fsck-clean; tail -5 /tmp/fsck.txt; }
  dmesg | grep -q 'I/O Error' && { bad no-io-errors; dmesg | grep 'I/O Error' | tail -2 | sed 's/^/GUEST-DMESG /'; } || ok no-io-errors
  nvme disconnect -n ${PFX}avol > /dev/null && none_left && ok disconnect-plain || bad disconnect-plain
  if conn ${PFX}avol; then
    DEV=$(dev_for ${PFX}avol) && ok reconnect $DEV || bad reconnect "no device"
    mount -t ext4 $DEV /mnt/v && (cd /mnt/v && md5sum -c /tmp/sums > /tmp/sumcheck 2>&1) && ok data-intact-after-reconnect || { bad data-intact-after-reconnect; tail -3 /tmp/sumcheck; }
    umount /mnt/v
    $H e2fsck -fn $DEV > /tmp/fsck2.txt 2>&1 && ok e2fsck-clean-after-reconnect || bad e2fsck-clean-after-reconnect
    nvme disconnect -n ${PFX}avol > /dev/null
  else bad reconnect "nvme connect failed"; fi
else bad connect-plain "nvme connect failed"; fi

# 4. host NQN allow-list: `arbor export allow asecret OTHERNQN` on the host admits only OTHERNQN.
if conn ${PFX}asecret > /tmp/refuse.txt 2>&1; then bad refused-host "connect succeeded"; nvme disconnect -n ${PFX}asecret > /dev/null
else ok refused-host "$(head -1 /tmp/refuse.txt)"; fi
dmesg | grep -iE 'connect.*(host|fail)' | tail -2 | sed 's/^/GUEST-DMESG /'
if nvme connect -t tcp -a $A -s $P --hostnqn=$OTHERNQN -n ${PFX}asecret > /dev/null 2>&1; then
  ok allowed-host; nvme disconnect -n ${PFX}asecret > /dev/null; else bad allowed-host "connect failed"; fi

# 5. a snapshot is read-only.
if conn ${PFX}avol@s1; then
  DEV=$(dev_for ${PFX}avol@s1)
  [ "$(cat /sys/block/$(basename $DEV)/ro)" = 1 ] && ok snapshot-read-only || bad snapshot-read-only "ro=$(cat /sys/block/$(basename $DEV)/ro)"
  nvme disconnect -n ${PFX}avol@s1 > /dev/null
else bad snapshot-read-only "connect failed"; fi

# 6. Postgres 15 on an arbord volume: mkfs, initdb (-N: its final sync of every file costs minutes
# under emulation; the server itself runs with fsync on), pgbench, clean shutdown, e2fsck.
if conn ${PFX}pgvol --nr-io-queues=2; then
  DEV=$(dev_for ${PFX}pgvol)
  mkdir -p /host/tmp/mnt
  $H mkfs.ext4 -q -F $DEV && mount -t ext4 $DEV /host/tmp/mnt && ok pg-mkfs $DEV || bad pg-mkfs
  mkdir -p /host/tmp/mnt/pg /host/tmp/sock; $H chown postgres:postgres /tmp/mnt/pg /tmp/sock; chmod 700 /host/tmp/mnt/pg
  B=/usr/lib/postgresql/15/bin
  PGU="$H runuser -u postgres --"
  $PGU $B/initdb -N -D /tmp/mnt/pg -A trust -U postgres > /tmp/initdb.log 2>&1 && ok pg-initdb || { bad pg-initdb; tail -3 /tmp/initdb.log; }
  $PGU $B/pg_ctl -D /tmp/mnt/pg -l /tmp/sock/pg.log -w -t 120 -o "-p 5499 -c listen_addresses= -c unix_socket_directories=/tmp/sock" start > /dev/null \
    && ok pg-start || { bad pg-start; tail -5 /host/tmp/sock/pg.log; }
  $PGU $B/pgbench -h /tmp/sock -p 5499 -i -s 1 postgres > /tmp/pgi.log 2>&1 || { bad pg-pgbench "init: $(tail -1 /tmp/pgi.log)"; }
  $PGU $B/pgbench -h /tmp/sock -p 5499 -c 2 -j 2 -T 10 postgres > /tmp/pgb.log 2>&1
  TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' /tmp/pgb.log | head -1)
  grep -q 'number of failed transactions: 0' /tmp/pgb.log && [ -n "$TPS" ] && ok pg-pgbench "scale 1, 2 clients, 10 s: tps=$TPS" \
    || { bad pg-pgbench; tail -5 /tmp/pgb.log; }
  echo "GUEST-TABLE pgbench on arbord over NVMe/TCP in the guest (TCG): scale 1, 2 clients, 10 s, tps $TPS"
  $PGU $B/pg_ctl -D /tmp/mnt/pg -w -m fast stop > /dev/null && ok pg-stop || bad pg-stop
  umount /host/tmp/mnt
  $H e2fsck -fn $DEV > /tmp/fsck3.txt 2>&1 && ok pg-e2fsck || { bad pg-e2fsck; tail -3 /tmp/fsck3.txt; }
  nvme disconnect -n ${PFX}pgvol > /dev/null
else bad pg-mkfs "nvme connect pgvol failed"; fi

# 7. kill -9 of arbord while writing with flushes. avol layout: [0,64M) fio region flushed before
# the kill (verify=crc32c, end_fsync); [64M,128M) 64 KiB blocks, each written O_DIRECT and fsync'd
# (an NVMe Flush) one after another; [128M,256M) fio randwrite with fsync=4 running across the
# kill. The host kills arbord when it sees GUEST-KILLME and restarts it on the same port; the
# initiator reconnects (reconnect-delay 1 s, ctrl-loss-tmo 120 s). A block counts as flushed before
# the kill when its fsync returned while $CTL/state still read "run" (the host writes "killing"
# before it kills). Every such block, every block written after the restart and the fio region
# must read back intact.
state() { cat /host/run/ctl/state 2>/dev/null; }
if conn ${PFX}avol --nr-io-queues=2 --ctrl-loss-tmo=120 --reconnect-delay=1; then
  DEV=$(dev_for ${PFX}avol) && ok kill-connect $DEV || bad kill-connect "no device"
  FIOK="fio --name=k --filename=$DEV --direct=1 --ioengine=libaio --bs=16k --iodepth=8 --size=64m --offset=0 --rw=randwrite --randseed=4242 --verify=crc32c --verify_fatal=1 --output-format=terse --terse-version=3"
  $H $FIOK --do_verify=0 --end_fsync=1 > /tmp/kfio1.txt 2>&1 && ok kill-flushed-region || { bad kill-flushed-region; tail -3 /tmp/kfio1.txt; }
  $H fio --name=bg --filename=$DEV --direct=1 --ioengine=libaio --bs=4k --iodepth=16 --offset=128m --size=128m --rw=randwrite --fsync=4 \
    --time_based --runtime=30 --output-format=terse > /tmp/bgfio.txt 2>&1 &
  BG=$!
  mkdir -p /host/tmp/kb; : > /tmp/before; : > /tmp/after
  i=0; asked=0; seen_restart=-1; werr=0
  while [ $i -lt 400 ]; do
    s0=$(state)
    head -c 65536 /dev/urandom > /host/tmp/kb/$i
    $H dd if=/tmp/kb/$i of=$DEV bs=64k seek=$((1024 + i)) count=1 oflag=direct conv=fsync,notrunc 2>/dev/null || { werr=$((werr+1)); }
    s1=$(state)
    [ "$s1" = run ] && echo $i >> /tmp/before
    [ "$s0" = restarted ] && echo $i >> /tmp/after
    [ "$s0" = restarted ] && [ $seen_restart -lt 0 ] && seen_restart=$i
    if [ $asked = 0 ] && [ $(wc -l < /tmp/before) -ge 8 ]; then echo "GUEST-KILLME t=$(cut -d' ' -f1 /proc/uptime)"; asked=1; fi
    [ $seen_restart -ge 0 ] && [ $i -ge $((seen_restart + 8)) ] && break
    i=$((i + 1))
  done
  [ $asked = 1 ] && [ $werr = 0 ] && ok kill-writes-started "$(wc -l < /tmp/before) blocks flushed before the kill, $i written" \
    || bad kill-writes-started "asked=$asked write errors=$werr"
  wait $BG; BGRC=$?
  echo "GUEST: background fio across the kill exited $BGRC: $(tail -1 /tmp/bgfio.txt | cut -c1-80)"
  dmesg | grep -iE 'nvme.*(reconnect|error recovery|Successfully)' | tail -4 | sed 's/^/GUEST-DMESG /'
  dmesg | grep -q 'Successfully reconnected' && ok kill-reconnected || bad kill-reconnected "no reconnect in dmesg"
  [ $(wc -l < /tmp/after) -ge 8 ] && ok kill-writes-after-restart "$(wc -l < /tmp/after) blocks" || bad kill-writes-after-restart "$(wc -l < /tmp/after) blocks"
  lost=0
  for j in $(cat /tmp/before /tmp/after); do
    a=$(md5sum < /host/tmp/kb/$j); b=$($H dd if=$DEV bs=64k skip=$((1024 + j)) count=1 iflag=direct 2>/dev/null | md5sum)
    [ "$a" = "$b" ] || { lost=$((lost + 1)); echo "GUEST: block $j differs"; }
  done
  [ $lost = 0 ] && ok kill-flushed-blocks-intact "$(cat /tmp/before /tmp/after | wc -l) blocks" || bad kill-flushed-blocks-intact "$lost blocks differ"
  $H $FIOK --verify_only > /tmp/kfio2.txt 2>&1 && ok kill-fio-region-intact || { bad kill-fio-region-intact; tail -3 /tmp/kfio2.txt; }
  nvme disconnect -n ${PFX}avol > /dev/null
else bad kill-connect "nvme connect avol failed"; fi

# 8. Reference: the same fio jobs (4 KiB random read/write, iodepth 1 and 32, libaio, 4 s each)
# against the kernel's own nvmet-tcp target on loopback in this guest and against arbord over
# 10.0.2.2 (QEMU user networking). Printed as a markdown table (GUEST-TABLE lines).
FIOP="fio --name=p --direct=1 --ioengine=libaio --bs=4k --size=128m --runtime=4 --time_based --group_reporting --output-format=terse --terse-version=3"
perf() {  # $1 device, $2 label: one table row per job
  for rw in randread randwrite; do for qd in 1 32; do
    $H $FIOP --filename=$1 --rw=$rw --iodepth=$qd 2>/dev/null | awk -F';' -v l="$2" -v j="$rw qd$qd" '
      /^3;/ { r = ($0 ~ /./) ; if ($8 > 0) printf "%s|%s|%d|%.0f\n", l, j, $8, $40; else printf "%s|%s|%d|%.0f\n", l, j, $49, $81 }' >> /tmp/perf.txt
  done; done
}
: > /tmp/perf.txt
mount -t configfs none /sys/kernel/config 2>/dev/null
mkdir -p /tmp/nvmet; mount -t tmpfs -o size=300m nvmet /tmp/nvmet; dd if=/dev/zero of=/tmp/nvmet/backing bs=1M count=200 2>/dev/null
C=/sys/kernel/config/nvmet; S=$C/subsystems/nqn.2026-01.dev.arbor.ref:loop
if mkdir $S 2>/dev/null; then
  echo 1 > $S/attr_allow_any_host; mkdir $S/namespaces/1
  echo -n /tmp/nvmet/backing > $S/namespaces/1/device_path; echo 1 > $S/namespaces/1/buffered_io; echo 1 > $S/namespaces/1/enable
  mkdir $C/ports/1; echo 127.0.0.1 > $C/ports/1/addr_traddr; echo tcp > $C/ports/1/addr_trtype; echo 4420 > $C/ports/1/addr_trsvcid; echo ipv4 > $C/ports/1/addr_adrfam
  ln -s $S $C/ports/1/subsystems/
  if nvme connect -t tcp -a 127.0.0.1 -s 4420 -n nqn.2026-01.dev.arbor.ref:loop --hostnqn=$HOSTNQN --hostid=$HOSTID --nr-io-queues=2 > /dev/null; then
    DEV=$(dev_for nqn.2026-01.dev.arbor.ref:loop) && ok nvmet-connect $DEV && perf $DEV nvmet-tcp
    nvme disconnect -n nqn.2026-01.dev.arbor.ref:loop > /dev/null
    # Our userspace initiator against the kernel's target: plain, then both digests.
    IV="$H $INI verify --addr 127.0.0.1 --port 4420 --nqn nqn.2026-01.dev.arbor.ref:loop --hostnqn $HOSTNQN"
    $IV --seed 3 > /tmp/ini1.txt 2>&1 && ok initiator-nvmet-verify "$(cat /tmp/ini1.txt)" || bad initiator-nvmet-verify "$(tail -1 /tmp/ini1.txt)"
    $IV --seed 4 --offset-mib 64 --hdgst --ddgst > /tmp/ini2.txt 2>&1 && ok initiator-nvmet-verify-digest "$(cat /tmp/ini2.txt)" \
      || bad initiator-nvmet-verify-digest "$(tail -1 /tmp/ini2.txt)"
  else bad nvmet-connect "nvme connect to nvmet-tcp failed"; fi
else bad nvmet-connect "no nvmet configfs"; fi
if conn ${PFX}avol --nr-io-queues=2; then
  DEV=$(dev_for ${PFX}avol) && perf $DEV arbord
  nvme disconnect -n ${PFX}avol > /dev/null
fi
# ... and against arbord from the guest (the host runs it against arbord on loopback too).
$H $INI verify --addr $A --port $P --nqn ${PFX}avol --hostnqn $HOSTNQN --hdgst --ddgst --offset-mib 300 > /tmp/ini3.txt 2>&1 \
  && ok initiator-arbord-verify-digest "$(cat /tmp/ini3.txt)" || bad initiator-arbord-verify-digest "$(tail -1 /tmp/ini3.txt)"
[ $(grep -c . /tmp/perf.txt) = 8 ] && ok perf-table || bad perf-table "$(grep -c . /tmp/perf.txt) of 8 rows"
echo "GUEST-TABLE | job (4 KiB, libaio) | nvmet-tcp IOPS | nvmet-tcp mean lat us | arbord IOPS | arbord mean lat us | arbord/nvmet |"
echo "GUEST-TABLE |---|---|---|---|---|---|"
for j in "randread qd1" "randread qd32" "randwrite qd1" "randwrite qd32"; do
  n=$(grep "^nvmet-tcp|$j|" /tmp/perf.txt); a=$(grep "^arbord|$j|" /tmp/perf.txt)
  ni=$(echo "$n" | cut -d'|' -f3); nl=$(echo "$n" | cut -d'|' -f4); ai=$(echo "$a" | cut -d'|' -f3); al=$(echo "$a" | cut -d'|' -f4)
  echo "GUEST-TABLE | $j | $ni | $nl | $ai | $al | $(awk -v a="${ai:-0}" -v n="${ni:-0}" 'BEGIN { if (n > 0) printf "%.2f", a / n; else print "-" }') |"
done

echo "GUEST-DONE t=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
