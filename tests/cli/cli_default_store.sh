#!/usr/bin/env bash
# No configuration: arbor uses ./arbor-data in the current directory, starting arbord there, and a
# second arbor finds the same daemon instead of starting another.
source "$(dirname "$0")/lib.sh" "$@"
unset ARBOR_HOME
mkdir -p "$WORK/project"
cd "$WORK/project"
CLEANUP_HOOK="cd '$WORK/project' && '$ARBOR' daemon stop >/dev/null 2>&1"
export ARBORD_OPTS="--nbd-listen unix://$WORK/project/arbor-data/nbd.sock --no-nvme"
"$ARBOR" volume create first --size 1G >/dev/null
[ -S arbor-data/arbord.sock ] || fail "no daemon under ./arbor-data"
pid1=$("$ARBOR" daemon status --json | jq -r .pid)
DAEMON_PID=$pid1
"$ARBOR" list | grep -q "^first " || fail "list"
pid2=$("$ARBOR" daemon status --json | jq -r .pid)
[ "$pid1" = "$pid2" ] || fail "a second daemon was started"
[ "$(json daemon status | jq -r .store_dir)" = "$WORK/project/arbor-data" ] || fail "store dir"
step "--store overrides, and \$ARBOR_HOME too"
ARBORD_OPTS="--no-nbd --no-nvme" "$ARBOR" --store "$WORK/other" list | grep -q "no volumes" || fail "--store"
ARBOR_HOME="$WORK/other" "$ARBOR" daemon stop >/dev/null
step "a second daemon on the same store is refused (store lock)"
out=$(build_arbord=$(dirname "$(readlink -f "$ARBOR")")/../daemon/arbord; [ -x "$build_arbord" ] || build_arbord=$(dirname "$(readlink -f "$ARBOR")")/arbord; "$build_arbord" --store "$WORK/project/arbor-data" --no-nbd --no-nvme --control-socket "$WORK/second.sock" 2>&1 || true)
echo "$out" | grep -q "arbord: error:" || fail "second arbord on a locked store: $out"
"$ARBOR" daemon stop >/dev/null
echo PASS
