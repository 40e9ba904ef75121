#!/usr/bin/env bash
# Writes to a branch do not appear in its parent and the reverse; a branch of a branch of a branch
# works; the parent can be deleted while its branch runs; stop/start keep the data.
source "$(dirname "$0")/lib.sh" "$@"

step "parent with a table"
"$ARBOR" pg create a --size 1G
sql a "create table t (who text, n int); insert into t values ('a', 1)"

step "branch b; each side writes"
"$ARBOR" pg branch b --from a
sql b "insert into t values ('b', 2); create table only_b (x int)"
sql a "insert into t values ('a', 3)"
[ "$(sql a "select string_agg(who || n, ',' order by n) from t")" = "a1,a3" ] || fail "parent sees: $(sql a "select * from t")"
[ "$(sql b "select string_agg(who || n, ',' order by n) from t")" = "a1,b2" ] || fail "branch sees: $(sql b "select * from t")"
[ "$(sql a "select to_regclass('only_b') is null")" = t ] || fail "branch's table visible in the parent"
# psql's arguments after `--`, as `arbor pg psql --help` shows them, alone and after others
[ "$("$ARBOR" pg psql b -- -X -qAt -c "select count(*) from t")" = 2 ] || fail "arbor pg psql b -- ARGS"
[ "$("$ARBOR" pg psql b -X -qAt -- -c "select 41 + 1")" = 42 ] || fail "arbor pg psql b ARGS -- ARGS"

step "a branch of a branch of a branch"
"$ARBOR" pg branch c --from b
sql c "insert into t values ('c', 4)"
"$ARBOR" pg branch d --from c
sql d "insert into t values ('d', 5)"
[ "$(sql d "select string_agg(who || n, ',' order by n) from t")" = "a1,b2,c4,d5" ] || fail "d sees: $(sql d "select * from t")"
[ "$(sql c "select string_agg(who || n, ',' order by n) from t")" = "a1,b2,c4" ] || fail "c sees: $(sql c "select * from t")"
[ "$(sql b "select string_agg(who || n, ',' order by n) from t")" = "a1,b2" ] || fail "b changed"
check_amcheck d

step "delete the parent while its branch runs"
"$ARBOR" pg delete a
"$ARBOR" list | grep -q '^a ' && fail "volume a still listed"
sql b "insert into t values ('b', 6)"
[ "$(sql b "select count(*) from t")" = 3 ] || fail "b after deleting a"
"$ARBOR" pg delete b
[ "$(sql c "select count(*) from t")" = 3 ] || fail "c after deleting b"

step "stop and start keep the data"
"$ARBOR" pg stop d
[ "$(state_of d)" = stopped ] || fail "d not stopped"
"$ARBOR" list --json | jq -e '.volumes[] | select(.name=="d") | .attached == null' >/dev/null || fail "d still attached after stop"
"$ARBOR" pg start d
[ "$(sql d "select count(*) from t")" = 4 ] || fail "d lost rows over stop/start"
"$ARBOR" pg list
echo PASS
