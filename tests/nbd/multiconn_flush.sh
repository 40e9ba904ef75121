#!/usr/bin/env bash
# Multi-conn flush, end to end: writes on NBD connection A, a flush on connection B, kill -9 of
# arbord, restart: every block written on A must be there (a flush covers all connections).
# Usage: multiconn_flush.sh ARBOR_BINARY MULTICONN_BINARY
MULTICONN=$(readlink -f "${2:?usage: $0 arbor multiconn}")
source "$(dirname "$0")/../cli/lib.sh" "$1"
start_daemon
"$ARBOR" volume create mc --size 256M >/dev/null
URI="nbd+unix:///mc?socket=$ARBOR_HOME/nbd.sock"
for round in 1 2 3; do
  step "round $round: write on A, flush on B, kill -9"
  "$MULTICONN" write "$URI" "$round"
  kill -9 "$DAEMON_PID"
  while alive "$DAEMON_PID"; do sleep 0.05; done  # waiting for the process to be gone, not for I/O
  start_daemon
  "$MULTICONN" check "$URI" "$round" || fail "round $round: flushed writes lost"
done
echo "PASS"
