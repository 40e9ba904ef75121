#!/usr/bin/env bash
# Durability through the daemon: a graceful stop then start keeps everything; kill -9 of arbord then
# a restart keeps what was flushed (import flushes before it returns; control operations are durable
# on return).
source "$(dirname "$0")/lib.sh" "$@"
start_daemon
head -c 8M /dev/urandom >"$WORK/a"
head -c 8M /dev/urandom >"$WORK/b"
"$ARBOR" import db "$WORK/a" >/dev/null
"$ARBOR" snapshot create db@one >/dev/null
"$ARBOR" branch create dev --from db@one >/dev/null
"$ARBOR" import dev "$WORK/b" >/dev/null

step "graceful stop, then start"
"$ARBOR" daemon stop | grep -q stopped || fail "stop"
! alive "$DAEMON_PID" || fail "arbord still alive after stop"
grep -q "stopped cleanly" "$ARBOR_HOME/arbord.log" || fail "no clean stop in the log"
start_daemon
[ "$(json list | jq -r '[.volumes[].name] | sort | join(",")')" = "db,db@one,dev" ] || fail "volumes lost"
"$ARBOR" export db "$WORK/a.out" >/dev/null && cmp "$WORK/a" "$WORK/a.out" || fail "db lost data"
"$ARBOR" export dev "$WORK/b.out" >/dev/null && cmp "$WORK/b" "$WORK/b.out" || fail "dev lost data"

step "SIGTERM is a graceful stop too"
kill -TERM "$DAEMON_PID"
for _ in $(seq 1000); do alive "$DAEMON_PID" || break; sleep 0.01; done
! alive "$DAEMON_PID" || fail "arbord ignored SIGTERM"
tail -1 "$ARBOR_HOME/arbord.log" | grep -q "stopped cleanly" || fail "SIGTERM stop was not clean"
start_daemon

step "kill -9 after flushed writes and control operations"
head -c 4M /dev/urandom >"$WORK/c"
"$ARBOR" import fresh "$WORK/c" >/dev/null
"$ARBOR" branch create later --from fresh >/dev/null
"$ARBOR" delete db@one >/dev/null
kill -9 "$DAEMON_PID"
for _ in $(seq 1000); do alive "$DAEMON_PID" || break; sleep 0.01; done
"$ARBOR" list >/dev/null  # starts a new arbord on the same store (the lock was released by the kernel)
DAEMON_PID=$("$ARBOR" daemon status --json | jq -r .pid)
[ "$(json list | jq -r '[.volumes[].name] | sort | join(",")')" = "db,dev,fresh,later" ] || fail "volumes after kill -9: $(json list | jq -c '[.volumes[].name]')"
"$ARBOR" export fresh "$WORK/c.out" >/dev/null && cmp "$WORK/c" "$WORK/c.out" || fail "fresh lost data after kill -9"
"$ARBOR" export later "$WORK/c2.out" >/dev/null && cmp "$WORK/c" "$WORK/c2.out" || fail "later lost data after kill -9"
"$ARBOR" export dev "$WORK/b2.out" >/dev/null && cmp "$WORK/b" "$WORK/b2.out" || fail "dev lost data after kill -9"
echo PASS
