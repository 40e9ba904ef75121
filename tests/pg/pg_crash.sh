#!/usr/bin/env bash
# kill -9 of arbord under a Postgres that commits: every commit Postgres acknowledged is there after
# `arbor pg start`, which is the one command that brings the server back (it takes down the server
# left on the dead device, its orphaned loop device and stale socket, then attaches again).
source "$(dirname "$0")/lib.sh" "$@"

step "a server under pgbench, and a client that logs each commit Postgres acknowledged"
"$ARBOR" pg create a --size 1G
sql a "create table acked (id int primary key)"
pgbench_on "$(port_of a)" -i -s 1 -q >/dev/null 2>&1
pgbench_on "$(port_of a)" -c 2 -T 120 >"$WORK/pgbench.log" 2>&1 &
BG_PIDS+=($!)
port=$(port_of a)
(
  # psql itself, not `arbor pg psql`: the arbor CLI would start a new arbord once this one is killed.
  i=0
  while "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -c "insert into acked values ($((i + 1)))" postgres >/dev/null 2>&1; do
    i=$((i + 1))
    echo "$i" >>"$WORK/acked"
  done
) &
BG_PIDS+=($!)
# Loop devices over this test's store: the live attachment's, and any a dead arbord left behind.
loops_of_store() { losetup -a | grep -c "$WORK/" || true; }
# FUSE mounts under this test's store: one per attached volume; a dead arbord's must not linger.
fuse_mounts_of_store() { awk -v w="$WORK/" 'index($2, w) == 1 && $3 ~ /^fuse/' /proc/mounts | wc -l; }
acked_at_least() { [ -f "$WORK/acked" ] && [ "$(wc -l <"$WORK/acked")" -ge "$1" ]; }
wait_for "50 acknowledged commits" 60 acked_at_least 50

step "kill -9 arbord while both write"
kill -9 "$("$ARBOR" --json daemon status | jq -r .pid)"
wait "${BG_PIDS[1]}" || true   # the client stops at its first failed commit
last=$(tail -1 "$WORK/acked")
echo "last acknowledged commit before the kill: $last"

step "restart arbord; arbor pg list says the storage was lost; arbor pg start brings the server back"
"$ARBOR" daemon start $ARBORD_OPTS >/dev/null
[ "$(state_of a)" = "storage lost" ] || fail "pg list says '$(state_of a)' for a server whose arbord died"
"$ARBOR" pg start a
[ "$(state_of a)" = running ] || fail "a is not running after pg start"
count=$(sql a "select count(*) from acked where id <= $last")
[ "$count" = "$last" ] || fail "only $count of $last acknowledged commits survived the kill"
echo "ok: all $last acknowledged commits are there ($(sql a "select count(*) from acked") rows in all)"
check_pgbench_consistent a
check_amcheck a
[ "$(loops_of_store)" -eq 1 ] || { losetup -a >&2; fail "a loop device of the dead arbord was left attached"; }
[ "$(fuse_mounts_of_store)" -eq 1 ] || { grep "$WORK/" /proc/mounts >&2; fail "the dead arbord's FUSE mount was left under the new one"; }

step "it takes writes again; after another kill, arbor pg delete takes it down"
sql a "insert into acked values ($((last + 1000)))"
"$ARBOR" pg list
kill -9 "$("$ARBOR" --json daemon status | jq -r .pid)"
"$ARBOR" daemon start $ARBORD_OPTS >/dev/null
"$ARBOR" pg delete a
[ -z "$(pgrep -x postgres | while read -r pid; do readlink "/proc/$pid/cwd"; done | grep "/a/pgdata$" || true)" ] || fail "a's server still runs"
[ "$(loops_of_store)" -eq 0 ] || { losetup -a >&2; fail "pg delete left the dead arbord's loop device attached"; }
[ "$(fuse_mounts_of_store)" -eq 0 ] || { grep "$WORK/" /proc/mounts >&2; fail "the dead arbord's FUSE mount was left behind"; }
echo PASS
