#!/usr/bin/env bash
# A branch made while pgbench writes starts, recovers by WAL replay, passes pg_amcheck and keeps
# pgbench's invariant (accounts = tellers = branches = history sums); the parent keeps running.
source "$(dirname "$0")/lib.sh" "$@"

step "create, load pgbench scale 2"
"$ARBOR" pg create db --size 2G
P=$(port_of db)
pgbench_on "$P" -i -s 2 -q >/dev/null 2>&1 || fail "pgbench -i"

step "pgbench writes; branch under it"
pgbench_on "$P" -c 4 -T 25 >"$WORK/pgbench.out" 2>&1 &
BG_PIDS+=($!)
busy_writing() { [ "$(sql db "select count(*) > 200 from pgbench_history")" = t ]; }
wait_for "pgbench transactions" 20 busy_writing
"$ARBOR" --json pg branch br --from db --no-checkpoint >"$WORK/br.json"
[ "$(jq .checkpoint_ns "$WORK/br.json")" = 0 ] || fail "--no-checkpoint checkpointed the parent"
[ "$(state_of br)" = running ] || fail "branch not running"
[ "$(state_of db)" = running ] || fail "parent not running"
grep -aq "redo starts\|redo done\|automatic recovery" "$(mount_dir br)/postgres.log" || fail "the branch did not recover by WAL replay"

step "the branch is consistent"
check_amcheck br
check_pgbench_consistent br
n_br=$(sql br "select count(*) from pgbench_history")

step "a second branch under load, with --checkpoint; a third deciding by the parent's WAL"
"$ARBOR" --json pg branch br2 --from db --checkpoint >"$WORK/br2.json"
[ "$(jq '.checkpoint_ns > 0' "$WORK/br2.json")" = true ] || fail "--checkpoint did not checkpoint the parent"
check_pgbench_consistent br2
"$ARBOR" --json pg branch br3 --from db >"$WORK/br3.json"
# Auto: whether it checkpointed depends on the WAL pgbench wrote since; what it measured must say.
jq -e '.redo_distance_bytes >= 0 and ((.redo_distance_bytes > 134217728) == (.checkpoint_ns > 0))' "$WORK/br3.json" >/dev/null ||
  fail "auto checkpoint decision does not match the measured WAL: $(cat "$WORK/br3.json")"
check_pgbench_consistent br3

step "the parent went on writing; the branch did not"
wait "${BG_PIDS[0]}" || { cat "$WORK/pgbench.out"; fail "pgbench on the parent failed"; }
BG_PIDS=()
n_db=$(sql db "select count(*) from pgbench_history")
[ "$n_db" -gt "$n_br" ] || fail "parent has $n_db history rows, branch $n_br"
[ "$(sql br "select count(*) from pgbench_history")" = "$n_br" ] || fail "branch changed by the parent's writes"
check_pgbench_consistent db
check_amcheck db
grep tps "$WORK/pgbench.out"
echo PASS
