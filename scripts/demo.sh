#!/usr/bin/env bash
# Arbor's main job on the embedded default (a store under ./arbor-data, nothing to configure):
# stock PostgreSQL 15 on a volume, loaded with pgbench data, branched in constant time WHILE
# pgbench writes to it, the branch changed, and both databases compared: rows, branch time, space.
# Re-runnable: it deletes the servers a previous run left. Needs root (loop devices, mount); as
# another user it re-runs itself with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi
./scripts/build.sh
export PATH="$PWD/build/src/cli:$PWD/build/src/daemon:$PATH"
export ARBOR_HOME="${ARBOR_HOME:-$PWD/arbor-data}"
PGBIN=/usr/lib/postgresql/15/bin
SCALE=${ARBOR_DEMO_SCALE:-10}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
q() { arbor pg psql "$1" -X -q -A -t -c "$2"; }

say "store: $ARBOR_HOME (arbor starts arbord on it when none runs)"
arbor daemon start
for s in demo-branch demo-db; do
  if arbor pg list --json | grep -q "\"name\": \"$s\""; then arbor pg delete "$s"; fi
done
for v in demo-dev demo; do arbor delete "$v" >/dev/null 2>&1 || true; done  # the earlier demo's volumes

say "Postgres 15 on a new 8 GiB volume (thin: attach, mkfs.ext4, initdb, start)"
arbor pg create demo-db --size 8G
PORT=$(arbor pg list --json | jq -r '.servers[] | select(.name=="demo-db") | .port')

say "load pgbench data, scale $SCALE ($((SCALE * 100000)) accounts)"
"$PGBIN/pgbench" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PORT" -U postgres postgres 2>&1 | tail -1
q demo-db "CHECKPOINT" >/dev/null   # what the server does by itself every few minutes

say "pgbench writes (4 clients, 20 s); branch it while it runs"
"$PGBIN/pgbench" -c 4 -j 2 -T 20 -h 127.0.0.1 -p "$PORT" -U postgres postgres >/tmp/arbor-demo-pgbench.$$ 2>&1 &
BENCH=$!
trap 'kill $BENCH 2>/dev/null || true; rm -f /tmp/arbor-demo-pgbench.$$' EXIT
for _ in $(seq 100); do   # until pgbench has committed a few hundred transactions
  [ "$(q demo-db "select count(*) >= 300 from pgbench_history")" = t ] && break
  sleep 0.1
done
echo "pgbench transactions committed so far: $(q demo-db "select count(*) from pgbench_history")"
arbor pg branch demo-branch --from demo-db
echo "(volume branch = the engine's constant-time copy of one root; recovery+start = Postgres replaying its WAL on the branch)"
echo "space right after the branch: the branch owns only what its recovery wrote, and shares the rest"
arbor pg list

say "change the branch: a new table and 10% of the accounts"
q demo-branch "CREATE TABLE feature_flags (name text primary key, enabled bool); INSERT INTO feature_flags VALUES ('new_checkout', true)" >/dev/null
echo "UPDATE on the branch: $(q demo-branch "WITH u AS (UPDATE pgbench_accounts SET abalance = abalance + 100 WHERE aid % 10 = 0 RETURNING 1) SELECT count(*) FROM u") rows"

say "wait for pgbench on the parent to finish"
wait $BENCH || { cat /tmp/arbor-demo-pgbench.$$; exit 1; }
grep -E "transactions actually processed|tps" /tmp/arbor-demo-pgbench.$$

say "the two databases"
printf '%-12s %10s %16s %16s %14s\n' server accounts history_rows sum_abalance feature_flags
for s in demo-db demo-branch; do
  printf '%-12s %10s %16s %16s %14s\n' "$s" \
    "$(q "$s" "select count(*) from pgbench_accounts")" \
    "$(q "$s" "select count(*) from pgbench_history")" \
    "$(q "$s" "select sum(abalance) from pgbench_accounts")" \
    "$(q "$s" "select case when to_regclass('feature_flags') is null then 'absent' else 'present' end")"
done

say "space: owned by each alone vs shared"
arbor pg list
echo "(random updates touch nearly every 8 KiB page of pgbench_accounts, and each server writes its own"
echo " WAL: pgbench on the parent and the UPDATE on the branch each rewrote most of the database)"
say "done: both servers keep running; 'arbor pg psql demo-branch', 'arbor pg delete demo-branch' (docs/postgres.md)"
