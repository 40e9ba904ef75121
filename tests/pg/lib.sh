# Shared helpers for the Postgres tests (sourced): a private store under a temp dir, arbord with NBD
# on a unix socket only, and a cleanup that always takes down every server, mount and loop device
# the test made, even when it fails. Needs root, FUSE and loop devices (else exit 77 = skipped).
# Usage: source "$(dirname "$0")/lib.sh" "$@"   (first argument: the arbor binary)
set -euo pipefail
ARBOR=$(readlink -f "${1:?usage: $0 /path/to/arbor}")
PGBIN=${ARBOR_PG_BINDIR:-/usr/lib/postgresql/15/bin}
if [ "$(id -u)" -ne 0 ]; then echo "skipped: needs root"; exit 77; fi
if [ ! -e /dev/fuse ] || ! command -v nbdfuse >/dev/null || ! command -v losetup >/dev/null; then
  echo "skipped: needs /dev/fuse, nbdfuse and losetup"; exit 77
fi
if [ ! -x "$PGBIN/postgres" ]; then echo "skipped: no PostgreSQL 15 in $PGBIN"; exit 77; fi
WORK=$(mktemp -d /tmp/arbor-pg-test.XXXXXX)
export ARBOR_HOME=$WORK/store
export ARBORD_OPTS="--nbd-listen unix://$ARBOR_HOME/nbd.sock --no-nvme"
BG_PIDS=()

cleanup() {
  local rc=$?
  set +e
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  local base
  base=$(run_base)  # before the deletes: it is found through the servers' records
  if [ -d "$ARBOR_HOME/pg" ]; then
    for f in "$ARBOR_HOME"/pg/*.json; do
      [ -e "$f" ] || continue
      n=$(basename "$f" .json)
      [ $rc -ne 0 ] && { echo "--- postgres.log of $n (last 10 lines)" >&2; tail -10 "$(mount_dir "$n")/postgres.log" 2>/dev/null >&2; }
      "$ARBOR" pg delete "$n" >/dev/null 2>&1 || echo "cleanup: pg delete $n failed" >&2
    done
  fi
  # Whatever a failed delete left: servers, mounts.
  if [ -n "$base" ] && [ -d "$base" ]; then
    for pid in $(pgrep -x postgres); do
      case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$base"/*) kill -9 "$pid" 2>/dev/null ;; esac
    done
    grep " $base/" /proc/mounts | awk '{print $2}' | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
    rm -rf "$base"
  fi
  "$ARBOR" daemon stop --force >/dev/null 2>&1 || "$ARBOR" daemon stop >/dev/null 2>&1
  if [ $rc -ne 0 ] && [ -f "$ARBOR_HOME/arbord.log" ]; then
    echo "--- arbord.log (last 10 lines)" >&2; tail -10 "$ARBOR_HOME/arbord.log" >&2
  fi
  [ -n "${CLEANUP_HOOK:-}" ] && eval "$CLEANUP_HOOK"  # a test's own mounts, after arbord is gone
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

port_of() { "$ARBOR" --json pg list | jq -r --arg n "$1" '.servers[] | select(.name==$n) | .port'; }
state_of() { "$ARBOR" --json pg list | jq -r --arg n "$1" '.servers[] | select(.name==$n) | .state'; }
mount_dir() { "$ARBOR" --json pg list 2>/dev/null | jq -r --arg n "$1" '.servers[] | select(.name==$n) | .data_dir' | sed 's|/pgdata$||'; }
run_base() { local d; d=$(ls "$ARBOR_HOME"/pg/*.json 2>/dev/null | head -1) || true; [ -n "$d" ] && dirname "$(mount_dir "$(basename "$d" .json)")" || true; }

# sql NAME SQL: one value (tuples only, unaligned).
sql() { "$ARBOR" pg psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"; }

pgbench_on() { local port=$1; shift; "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@" postgres; }

# The pgbench invariant: every transaction adds the same delta to one account, teller and branch
# and logs it in history. A torn or inconsistent copy breaks the equality.
check_pgbench_consistent() {
  local n=$1 a b t h
  a=$(sql "$n" "select sum(abalance) from pgbench_accounts")
  b=$(sql "$n" "select sum(bbalance) from pgbench_branches")
  t=$(sql "$n" "select sum(tbalance) from pgbench_tellers")
  h=$(sql "$n" "select coalesce(sum(delta),0) from pgbench_history")
  [ "$a" = "$b" ] && [ "$b" = "$t" ] && [ "$t" = "$h" ] || fail "$n: pgbench sums differ: accounts $a branches $b tellers $t history $h"
  echo "ok: $n pgbench sums agree ($a over $(sql "$n" "select count(*) from pgbench_history") transactions)"
}

# amcheck of every table and index (heap and btree), installing the extension if needed.
check_amcheck() {
  "$PGBIN/pg_amcheck" --install-missing --heapallindexed -h 127.0.0.1 -p "$(port_of "$1")" -U postgres postgres \
    || fail "pg_amcheck on $1"
  echo "ok: pg_amcheck $1"
}

# wait_for DESCRIPTION SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}

# expect_error CMD...: non-zero exit, one line on stderr "arbor: error: ...".
expect_error() {
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ $rc -ne 0 ] || fail "expected an error from: $*"
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err" >&2; fail "expected one line on stderr from: $*"; }
  grep -q '^arbor: error: ' "$WORK/err" || { cat "$WORK/err" >&2; fail "stderr is not 'arbor: error: ...' for: $*"; }
  echo "ok (refused): $* -> $(cat "$WORK/err")"
}
expect_error_matching() {
  local re=$1
  shift
  expect_error "$@"
  grep -Eq "$re" "$WORK/err" || fail "error for '$*' does not match /$re/"
}

"$ARBOR" daemon start $ARBORD_OPTS >/dev/null
