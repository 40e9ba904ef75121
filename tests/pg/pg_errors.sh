#!/usr/bin/env bash
# Every refusal is one line "arbor: error: ..." and leaves nothing behind.
source "$(dirname "$0")/lib.sh" "$@"

expect_error_matching "PostgreSQL 15 not found" env ARBOR_PG_BINDIR=/nonexistent "$ARBOR" pg create x
expect_error_matching "no Postgres named 'nope'" "$ARBOR" pg branch b --from nope
expect_error_matching "no Postgres named 'nope'" "$ARBOR" pg start nope
expect_error_matching "no Postgres named 'nope'" "$ARBOR" pg psql nope -c 'select 1'
expect_error_matching "invalid name" "$ARBOR" pg create Bad.Name
expect_error_matching "invalid name" "$ARBOR" pg branch 'x/y' --from nope

step "one server; port and name clashes"
"$ARBOR" pg create a --size 1G
P=$(port_of a)
expect_error_matching "port $P is in use" "$ARBOR" pg create b --port "$P"
expect_error_matching "exists" "$ARBOR" pg create a
expect_error_matching "exists" "$ARBOR" pg branch a --from a
"$ARBOR" volume create plain --size 1G >/dev/null
expect_error_matching "exists" "$ARBOR" pg create plain

step "disk full: a volume too small for initdb is refused and undone"
expect_error_matching "[Nn]o space" "$ARBOR" pg create tiny --size 24M
"$ARBOR" --json list | jq -e '[.volumes[].name] | index("tiny") == null' >/dev/null || fail "tiny's volume left behind"
[ ! -e "$ARBOR_HOME/pg/tiny.json" ] || fail "tiny's record left behind"

step "stopped server"
"$ARBOR" pg stop a
expect_error_matching "not running" "$ARBOR" pg psql a -c 'select 1'
"$ARBOR" pg start a
sql a "select 1" >/dev/null
"$ARBOR" volume delete plain >/dev/null
echo PASS
