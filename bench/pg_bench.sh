#!/usr/bin/env bash
# Postgres and NBD benchmarks for Arbor, each against a baseline measured in the same run. Prints
# markdown tables. Needs root, postgresql-15, fio (nbd engine), nbdkit. Runs on a private store.
#   bench/pg_bench.sh [--arbor build/src/cli/arbor] [--scales "10 100 500"] [--tps-seconds 20]
#                     [--fio-seconds 8] [--rounds 3] [--warmup-seconds 20] [--only tps|branch|fio]
# (a) and (c) alternate baseline and arbor --rounds times and report the medians: on a shared
# machine one pair of runs can land in different minutes of the host's load.
# (a) pgbench TPS: data directory on an attached volume vs on the local filesystem (goal >= 80%)
# (b) `arbor pg branch` wall time under pgbench at each scale (goal: flat, < 1 s incl. recovery)
# (c) fio 4 KiB random read/write IOPS, qd 1 and 32: arbord NBD vs nbdkit file plugin (goal 1.5x at 32)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARBOR=$ROOT/build/src/cli/arbor
SCALES="10 100 500"
TPS_S=20
FIO_S=8
ROUNDS=3
WARMUP_S=20
ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --arbor) ARBOR=$(readlink -f "$2"); shift 2 ;;
    --scales) SCALES=$2; shift 2 ;;
    --tps-seconds) TPS_S=$2; shift 2 ;;
    --fio-seconds) FIO_S=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --warmup-seconds) WARMUP_S=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
PGBIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /var/tmp/arbor-pg-bench.XXXXXX)
chmod 755 "$WORK"
export ARBOR_HOME=$WORK/store
"$ARBOR" daemon start --nbd-listen "unix://$ARBOR_HOME/nbd.sock" --no-nvme >/dev/null
LOCAL_PORT=""
NBDKIT_PID=""
cleanup() {
  set +e
  [ -n "$NBDKIT_PID" ] && kill "$NBDKIT_PID" 2>/dev/null
  [ -n "$LOCAL_PORT" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/local/pgdata" -m immediate -s stop 2>/dev/null
  for f in "$ARBOR_HOME"/pg/*.json; do [ -e "$f" ] && "$ARBOR" pg delete "$(basename "$f" .json)" >/dev/null; done
  "$ARBOR" daemon stop >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
pgb() { local port=$1; shift; "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@" postgres; }
port_of() { "$ARBOR" --json pg list | jq -r --arg n "$1" '.servers[] | select(.name==$n) | .port'; }
tps_of() { grep -oP 'tps = \K[0-9.]+' "$1" | tail -1; }
ms_now() { date +%s%3N; }
ms_of() { jq -r ".$1/1000000 | floor" "$WORK/br.json"; }  # a duration of the last `pg branch --json`
log() { echo "$*" >&2; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }

if [ -z "$ONLY" ] || [ "$ONLY" = tps ]; then
  log "(a) pgbench: local filesystem vs attached volume, scale 10, 4 clients, ${TPS_S}s each, $ROUNDS rounds"
  mkdir -p "$WORK/local/pgdata" && chown -R postgres: "$WORK/local" && chmod 700 "$WORK/local/pgdata"
  runuser -u postgres -- env -C / "$PGBIN/initdb" -D "$WORK/local/pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
  # The same settings `arbor pg create` writes, so the two servers differ only in their storage.
  printf "listen_addresses = '127.0.0.1'\ncheckpoint_timeout = 30s\nmax_wal_size = 128MB\n" >>"$WORK/local/pgdata/postgresql.conf"
  LOCAL_PORT=5499
  runuser -u postgres -- env -C / "$PGBIN/pg_ctl" -D "$WORK/local/pgdata" -l "$WORK/local/log" -w -s -o "-p $LOCAL_PORT -k $WORK/local" start
  "$ARBOR" pg create tps --size 8G >/dev/null
  AP=$(port_of tps)
  for p in $LOCAL_PORT $AP; do pgb "$p" -i -s 10 -q >/dev/null 2>&1; done
  LS=""; RS=""; PAIRS=""
  for _ in $(seq "$ROUNDS"); do
    pgb $LOCAL_PORT -c 4 -j 2 -T "$TPS_S" >"$WORK/tps-local" 2>&1
    pgb "$AP" -c 4 -j 2 -T "$TPS_S" >"$WORK/tps-arbor" 2>&1
    l=$(tps_of "$WORK/tps-local"); r=$(tps_of "$WORK/tps-arbor")
    LS+="$l "; RS+="$r "; PAIRS+="$(ratio "$r" "$l") "
  done
  L=$(echo "$LS" | median); R=$(echo "$RS" | median)
  echo
  echo "### pgbench TPS (scale 10, 4 clients, ${TPS_S} s per run, $ROUNDS rounds alternating, both servers with arbor pg's settings: checkpoint_timeout 30s, max_wal_size 128MB)"
  echo "| data directory | median TPS | each run | vs local (medians) | each pair |"
  echo "|---|---|---|---|---|"
  echo "| local filesystem (baseline) | ${L%.*} | $(for x in $LS; do printf '%s ' "${x%.*}"; done)| 1.00x | |"
  echo "| arbor volume (ext4 on loop over arbord's in-process FUSE disk) | ${R%.*} | $(for x in $RS; do printf '%s ' "${x%.*}"; done)| $(ratio "$R" "$L") | $PAIRS|"
  "$ARBOR" pg delete tps >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/local/pgdata" -m fast -w -s stop; LOCAL_PORT=""
fi

if [ -z "$ONLY" ] || [ "$ONLY" = branch ]; then
  echo
  echo "### arbor pg branch, wall time of the command incl. the branch server's recovery: parent idle, then under pgbench (4 clients, branches from ${WARMUP_S} s on)"
  echo "| scale | data | parent idle | under load: branch 1 | branch 2 | branch 3 | parent's WAL since its checkpoint | CHECKPOINT first (auto: over 128 MiB) | volume branch (engine) | attach+mount | recovery+start |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for s in $SCALES; do
    log "(b) scale $s: create, load"
    "$ARBOR" pg create "s$s" --size $(( s / 10 + 8 ))G >/dev/null
    P=$(port_of "s$s")
    pgb "$P" -i -s "$s" -q >/dev/null 2>&1
    "$PGBIN/psql" -h 127.0.0.1 -p "$P" -U postgres -qAtc CHECKPOINT postgres >/dev/null
    size=$("$PGBIN/psql" -h 127.0.0.1 -p "$P" -U postgres -qAtc "select pg_size_pretty(pg_database_size('postgres'))" postgres)
    # Parent idle (loaded and checkpointed): "a copy of this database".
    t0=$(ms_now)
    "$ARBOR" --json pg branch "s$s-idle" --from "s$s" >/dev/null
    idle="$(( $(ms_now) - t0 )) ms"
    "$ARBOR" pg delete "s$s-idle" >/dev/null
    pgb "$P" -c 4 -j 2 -T 600 >/dev/null 2>&1 &
    BP=$!
    sleep "$WARMUP_S"  # into the steady state of pgbench's checkpoints (load, not synchronization)
    walls=(); wal=""; ckpt=""; eng=""; att=""; rec=""
    for i in 1 2 3; do
      t0=$(ms_now)
      "$ARBOR" --json pg branch "s$s-b$i" --from "s$s" >"$WORK/br.json"
      walls+=("$(( $(ms_now) - t0 )) ms")
      wal+="$(jq -r '.redo_distance_bytes/1048576 | floor' "$WORK/br.json") MiB "
      ckpt+="$(ms_of checkpoint_ns) ms "; eng+="$(ms_of engine_branch_ns) ms "; att+="$(ms_of attach_mount_ns) ms "; rec+="$(ms_of start_ns) ms "
      "$ARBOR" pg delete "s$s-b$i" >/dev/null
    done
    kill $BP 2>/dev/null; wait $BP 2>/dev/null || true
    echo "| $s | $size | $idle | ${walls[0]} | ${walls[1]} | ${walls[2]} | $wal | $ckpt | $eng | $att | $rec |"
    "$ARBOR" pg delete "s$s" >/dev/null
  done
fi

if [ -z "$ONLY" ] || [ "$ONLY" = fio ]; then
  log "(c) fio 4 KiB random, ${FIO_S}s per run, $ROUNDS rounds"
  SIZE=1G
  "$ARBOR" volume create fio --size $SIZE >/dev/null
  truncate -s $SIZE "$WORK/nbdkit.img"
  nbdkit -f -U "$WORK/nbdkit.sock" file file="$WORK/nbdkit.img" &
  NBDKIT_PID=$!
  for _ in $(seq 50); do [ -S "$WORK/nbdkit.sock" ] && break; sleep 0.1; done
  A_URI="nbd+unix:///fio?socket=$ARBOR_HOME/nbd.sock"
  K_URI="nbd+unix:///?socket=$WORK/nbdkit.sock"
  # Fill both so reads hit data, not holes.
  fill() {
    for u in "$A_URI" "$K_URI"; do
      fio --name=fill --ioengine=nbd --uri="$u" --rw=write --bs=1M --iodepth=8 --size=$SIZE >/dev/null
    done
  }
  fill
  ARBORD_PID=$("$ARBOR" --json daemon status | jq -r .pid)
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
  TICK_US=$((1000000 / $(getconf CLK_TCK)))
  ALL_CPUS=$(taskset -pc $$ | awk -F': ' '{print $2}')
  server_pid() { if [ "$1" = "$A_URI" ]; then echo "$ARBORD_PID"; else echo "$NBDKIT_PID"; fi; }  # of URI
  # run URI RW DEPTH [SECONDS] -> "IOPS SERVER_US CLIENT_US": the server's and fio's CPU time per
  # I/O. fio and the server share the 2 cores, so IOPS at depth 32 is bound by their sum; the
  # server's share is the figure that moves least with the host's load.
  run() {
    local pid t0 t1
    pid=$(server_pid "$1")
    t0=$(cpu_ticks "$pid")
    taskset -c "${FIO_CPUS:-$ALL_CPUS}" fio --name=r --ioengine=nbd --uri="$1" --rw="$2" --bs=4k --iodepth="$3" --size=$SIZE \
      --time_based --runtime="${4:-$FIO_S}" --output-format=json 2>/dev/null | sed -n '/^{/,$p' >"$WORK/fio.json"
    t1=$(cpu_ticks "$pid")
    jq -r --arg k "$( [ "$2" = randread ] && echo read || echo write)" --argjson server_us "$(( (t1 - t0) * TICK_US ))" \
      --argjson secs "${4:-$FIO_S}" '.jobs[0] as $j | $j[$k].total_ios as $n |
      "\($j[$k].iops | floor) \($server_us / $n * 100 | floor / 100) \(($j.usr_cpu + $j.sys_cpu) / 100 * $secs * 1e6 / $n * 100 | floor / 100)"' "$WORK/fio.json"
  }
  # Cold: the page cache is dropped before each run, which is kept short (2 s) because the run
  # itself warms the cache. Both servers then wait on the disk; this shows whether a server keeps
  # the queue depth the client gives it (arbord: a read that misses is read on the event loop's
  # io_uring, see io/planned_read.h) or reads one block at a time.
  run_cold() { sync; echo 3 > /proc/sys/vm/drop_caches; run "$1" "$2" "$3" 2; }
  # At depth 1 each I/O is two wakeups, fio's of the server and the server's of fio. On this VM an
  # idle vCPU halts (haltpoll, guest_halt_poll_ns=0), so a wakeup across vCPUs costs tens of us.
  # The scheduler leaves arbord's event loop on the other CPU from fio (29 task migrations in 4 s,
  # 1.85 IPIs per I/O), while nbdkit's threads often share fio's (35k migrations). The rows with
  # fio and the server pinned to one CPU measure the servers, not where the scheduler put them.
  run_one_cpu() {
    local pid
    pid=$(server_pid "$1")
    taskset -a -p -c 0 "$pid" >/dev/null
    FIO_CPUS=0 run "$1" "$2" "$3"
    taskset -a -p -c "$ALL_CPUS" "$pid" >/dev/null
  }
  busy() { awk -v iops="$1" -v us="$2" 'BEGIN{printf "%d", iops * us / 1e4}'; }  # % of one CPU
  row() {  # label rw depth runner: $ROUNDS alternating pairs, one table row of medians
    local KS="" AS="" PAIRS="" KC="" AC="" KF="" AF="" KB="" AB="" k a
    for _ in $(seq "$ROUNDS"); do
      read -r k kc kf < <("$4" "$K_URI" "$2" "$3")
      read -r a ac af < <("$4" "$A_URI" "$2" "$3")
      KS+="$k "; AS+="$a "; PAIRS+="$(ratio "$a" "$k") "; KC+="$kc "; AC+="$ac "; KF+="$kf "; AF+="$af "
      KB+="$(busy "$k" "$kf") "; AB+="$(busy "$a" "$af") "
    done
    k=$(echo "$KS" | median); a=$(echo "$AS" | median)
    echo "| $1 | $3 | ${k%.*} | ${a%.*} | $(ratio "$a" "$k") | $PAIRS| $(echo "$KC" | median) / $(echo "$AC" | median) | $(echo "$KF" | median) / $(echo "$AF" | median) | $(echo "$KB" | median) / $(echo "$AB" | median) |"
  }
  echo
  echo "### fio 4 KiB random I/O through NBD (unix socket, 1 GiB, ${FIO_S} s per run, $ROUNDS rounds alternating)"
  # fio is one thread: where its busy column nears 100 (% of one CPU), the row measures the client,
  # and a cheaper server only moves the ratio through what it saves fio (its wakeups).
  echo "| workload | qd | nbdkit file (baseline): median IOPS | arbord: median IOPS | arbord / nbdkit (medians) | each pair | server CPU us per I/O, nbdkit / arbord | fio's CPU us per I/O, nbdkit / arbord | fio busy, % of one CPU, nbdkit / arbord |"
  echo "|---|---|---|---|---|---|---|---|---|"
  # Cold rows first, right after both fills: the VM's disk is a file in the host's page cache, and
  # data written recently (arbord's new segments after the randwrite rows) reads from there at
  # near memory speed even with the guest's cache dropped.
  for qd in 1 32; do row "randread, cold cache (2 s)" randread "$qd" run_cold; done
  # Fill again: the rows that measure the servers, not the disk, start from the state they
  # always started from (just written, in the page cache). A sequential read to re-warm instead
  # left nbdkit's random writes at about half their usual rate (15.5k against 26k to 31k IOPS).
  fill
  for rw in randread randwrite; do
    for qd in 1 32; do row "$rw" "$rw" "$qd" run; done
  done
  for qd in 1 32; do row "randread, fio and server on CPU 0" randread "$qd" run_one_cpu; done
fi
