# Shared helpers for the CLI tests (sourced). Each test gets a private store under a temp dir and
# an arbord with NBD on a unix socket only and no NVMe/TCP, so tests never fight over ports.
# Usage in a test: source "$(dirname "$0")/lib.sh" "$@"   (first argument: the arbor binary)
set -euo pipefail
for tool in jq curl cmp; do
  command -v "$tool" >/dev/null || { echo "FAIL: the CLI tests need $tool (apt-get install $tool)" >&2; exit 1; }
done
ARBOR=$(readlink -f "${1:?usage: $0 /path/to/arbor}")
WORK=$(mktemp -d /tmp/arbor-cli-test.XXXXXX)
export ARBOR_HOME=$WORK/store
export ARBORD_OPTS="--nbd-listen unix://$ARBOR_HOME/nbd.sock --no-nvme"
DAEMON_PID=""

cleanup() {
  local rc=$?
  if [ -n "${CLEANUP_HOOK:-}" ]; then eval "$CLEANUP_HOOK" || true; fi
  "$ARBOR" daemon stop >/dev/null 2>&1 || true
  if [ -n "$DAEMON_PID" ] && alive "$DAEMON_PID"; then kill -9 "$DAEMON_PID" 2>/dev/null || true; fi
  if [ $rc -ne 0 ] && [ -f "${ARBOR_HOME:-/nonexistent}/arbord.log" ]; then
    echo "--- arbord.log (last 20 lines)" >&2
    tail -20 "$ARBOR_HOME/arbord.log" >&2
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

# Starts arbord (extra flags allowed) and remembers its pid for the cleanup.
start_daemon() {
  # shellcheck disable=SC2086
  "$ARBOR" daemon start $ARBORD_OPTS "$@" >/dev/null
  DAEMON_PID=$("$ARBOR" daemon status --json | jq -r .pid)
}

# expect_error CMD...: CMD must exit non-zero with exactly one line on stderr, "arbor: error: ...".
expect_error() {
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ $rc -ne 0 ] || fail "expected an error from: $*"
  local lines
  lines=$(wc -l <"$WORK/err")
  [ "$lines" -eq 1 ] || { cat "$WORK/err" >&2; fail "expected one line on stderr from: $* (got $lines)"; }
  grep -q '^arbor: error: ' "$WORK/err" || { cat "$WORK/err" >&2; fail "stderr does not start with 'arbor: error:' for: $*"; }
  echo "ok (refused): $* -> $(cat "$WORK/err")"
}

# expect_error_matching REGEX CMD...: as expect_error, and the line matches REGEX.
expect_error_matching() {
  local re=$1
  shift
  expect_error "$@"
  grep -Eq "$re" "$WORK/err" || fail "error for '$*' does not match /$re/: $(cat "$WORK/err")"
}

json() { "$ARBOR" --json "$@"; }

# alive PID: running and not a zombie (a daemon whose parent exited may wait for a reaper).
alive() {
  [ -r "/proc/$1/stat" ] || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)
  [ "$state" != Z ]
}
