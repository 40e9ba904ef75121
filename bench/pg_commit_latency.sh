#!/usr/bin/env bash
# pg_commit_latency.sh PORT [SECONDS]: where a Postgres commit's time goes, on arbor or local.
#
# Runs pgbench (4 clients, already initialized in database postgres) against the server on
# 127.0.0.1:PORT and traces, with bpftrace (apt install bpftrace), for SECONDS (default 6):
#   - postgres's fdatasync (the commit's wait), mean and histogram;
#   - every block device's requests, issue to completion, by device and type (W write, S sync,
#     F flush, M metadata; 7:N is a loop device, the attached volume);
#   - when arbord serves the data directory (ARBOR_HOME names its store): its service time per
#     FUSE opcode (16 WRITE, 20 FSYNC, 15 READ), from its read of /dev/fuse to its reply, and its
#     own fdatasync of segment files.
# Run it once against a local server and once against an arbor one (docs/postgres.md has a pair).
set -euo pipefail
PORT=${1:?usage: pg_commit_latency.sh PORT [SECONDS]}
SECS=${2:-6}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
command -v bpftrace >/dev/null || { echo "needs bpftrace (apt install bpftrace)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin

ARBORD_PID=0 FUSE_FDS=""
if [ -n "${ARBOR_HOME:-}" ] && [ -S "$ARBOR_HOME/arbord.sock" ]; then
  ARBORD_PID=$("$ROOT/build/src/cli/arbor" --json daemon status | jq -r .pid)
  FUSE_FDS=$(find "/proc/$ARBORD_PID/fd" -lname /dev/fuse -printf '%f\n' | sort -n | paste -sd' ')
fi
# bpftrace 0.17 has no set membership: one comparison per /dev/fuse descriptor of arbord.
FUSE_PRED="0"
for fd in $FUSE_FDS; do FUSE_PRED+=" || args->fd == $fd"; done

TMP=$(mktemp -d /tmp/pg_commit_latency.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
SCRIPT=$TMP/trace.bt
cat >"$SCRIPT" <<EOF
tracepoint:syscalls:sys_enter_fdatasync /comm == "postgres"/ { @pg_start[tid] = nsecs; }
tracepoint:syscalls:sys_exit_fdatasync /@pg_start[tid]/ {
  @postgres_fdatasync_us = stats((nsecs - @pg_start[tid]) / 1000);
  @postgres_fdatasync_hist_us = hist((nsecs - @pg_start[tid]) / 1000);
  delete(@pg_start[tid]);
}
tracepoint:block:block_rq_issue { @rq_start[args->dev, args->sector, args->rwbs] = nsecs; }
tracepoint:block:block_rq_complete /@rq_start[args->dev, args->sector, args->rwbs]/ {
  @device_request_us[args->dev >> 20, args->dev & 0xfffff, args->rwbs] =
      stats((nsecs - @rq_start[args->dev, args->sector, args->rwbs]) / 1000);
  delete(@rq_start[args->dev, args->sector, args->rwbs]);
}
tracepoint:syscalls:sys_enter_read /pid == $ARBORD_PID && ($FUSE_PRED)/ { @fuse_buf[tid] = (uint64)args->buf; }
tracepoint:syscalls:sys_exit_read /@fuse_buf[tid] != 0/ {
  if (args->ret > 0) { @fuse_got[tid] = nsecs; @fuse_opcode[tid] = *(uint32 *)uptr(@fuse_buf[tid] + 4); }
  delete(@fuse_buf[tid]);
}
tracepoint:syscalls:sys_enter_writev /@fuse_got[tid]/ {
  @arbord_fuse_service_us[@fuse_opcode[tid]] = stats((nsecs - @fuse_got[tid]) / 1000);
  delete(@fuse_got[tid]);
}
tracepoint:syscalls:sys_enter_fdatasync /pid == $ARBORD_PID/ { @arbord_start[tid] = nsecs; }
tracepoint:syscalls:sys_exit_fdatasync /@arbord_start[tid]/ {
  @arbord_fdatasync_us = stats((nsecs - @arbord_start[tid]) / 1000);
  delete(@arbord_start[tid]);
}
interval:s:$SECS { exit(); }
END { clear(@pg_start); clear(@rq_start); clear(@fuse_buf); clear(@fuse_got); clear(@fuse_opcode); clear(@arbord_start); }
EOF

"$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 4 -j 2 -T $((SECS + 3)) postgres >"$TMP/pgbench.out" 2>&1 &
BENCH=$!
sleep 2  # past pgbench's connection setup
bpftrace "$SCRIPT" 2> >(grep -v RLIMIT_MEMLOCK >&2) | grep -v '^Attaching\|^$'
wait "$BENCH" || true
grep -E '^(tps|latency average)' "$TMP/pgbench.out"
