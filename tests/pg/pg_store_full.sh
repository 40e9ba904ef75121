#!/usr/bin/env bash
# Postgres on a store that fills up. The store sits on a small loop-mounted ext4; a transaction that
# writes more than the store can hold makes Postgres PANIC (the store refuses the writes, ext4 goes
# read-only). Then: `arbor pg list` says "failed" and why (the store is full, the PANIC line),
# `arbor pg start` refuses with one line saying to free space first and changes nothing; once space
# is freed it checks the file system (e2fsck -p), mounts it and recovers the server, and every
# commit acknowledged before the fill is there, pg_amcheck is clean and new writes work.
source "$(dirname "$0")/lib.sh" "$@"
command -v e2fsck >/dev/null || fail "needs e2fsck (e2fsprogs)"
"$ARBOR" daemon stop >/dev/null
FS=$WORK/fs
mkdir -p "$FS"
truncate -s 640M "$WORK/fs.img"
mkfs.ext4 -q -F -b 4096 "$WORK/fs.img"
mount -o loop "$WORK/fs.img" "$FS" || { echo "skipped: cannot loop-mount a file system here"; exit 77; }
CLEANUP_HOOK='umount "$FS" 2>/dev/null || umount -l "$FS"'
chmod 755 "$FS"
# Space the test gives back later, as an operator would by deleting something else on that disk.
dd if=/dev/zero of="$FS/ballast" bs=1M count=224 status=none
export ARBOR_HOME=$FS/store
export ARBORD_OPTS="--nbd-listen unix://$ARBOR_HOME/nbd.sock --no-nvme"
"$ARBOR" daemon start $ARBORD_OPTS >/dev/null

step "a server, and commits acknowledged before the store fills"
"$ARBOR" pg create full --size 2G >/dev/null
sql full "create table kept (id int primary key, note text)"
for i in $(seq 1 50); do sql full "insert into kept values ($i, 'commit $i')"; done
[ "$(state_of full)" = running ] || fail "state is $(state_of full) before the fill"

step "a transaction larger than the store: Postgres PANICs, the state says failed and why"
if sql full "create table filler as select g, repeat(md5(g::text), 16) as pad from generate_series(1, 2000000) g" \
  >"$WORK/fill.out" 2>&1; then
  fail "2,000,000 rows of 512 bytes fit in a store on a 640 MiB file system"
fi
"$ARBOR" --json usage | jq -e '.store.full == true' >/dev/null || fail "arbor usage does not say the store is full"
wait_for "pg list to say failed" 60 sh -c "[ \"\$('$ARBOR' --json pg list | jq -r '.servers[0].state')\" = failed ]"
"$ARBOR" pg list | tee "$WORK/list"
REASON=$("$ARBOR" --json pg list | jq -r '.servers[0].reason')
echo "$REASON" | grep -q "the store is full" || fail "the reason does not say the store is full: $REASON"
# The server's PANIC line is quoted when it reached the log, which lives on the failed file system.
grep -q "^full: " "$WORK/list" || fail "pg list's table is not followed by the reason"

step "pg start while the store is full: one line, free space first, nothing changed"
expect_error_matching "the store is full: its recovery needs to write. Free space first" "$ARBOR" pg start full
[ "$(state_of full)" = failed ] || fail "state is $(state_of full) after the refused start"

step "space freed: pg start checks the file system, recovers, and every acknowledged commit is there"
rm -f "$FS/ballast"
"$ARBOR" --json usage | jq -e '.store.full == false' >/dev/null || fail "the store is still full after 224 MiB were freed"
"$ARBOR" pg start full | tee "$WORK/start"
grep -q "e2fsck" "$WORK/start" || fail "pg start did not check the file system"
[ "$(state_of full)" = running ] || fail "state is $(state_of full) after pg start"
[ "$(sql full "select count(*) from kept")" = 50 ] || fail "acknowledged commits lost: $(sql full "select count(*) from kept") of 50"
[ "$(sql full "select count(*) from pg_class where relname = 'filler'")" = 0 ] || fail "the failed transaction's table exists"
check_amcheck full
sql full "insert into kept values (51, 'after the restart')"
[ "$(sql full "select note from kept where id = 51")" = "after the restart" ] || fail "a write after the restart is not there"
echo "ok: 50 of 50 acknowledged commits, amcheck clean, writable"

step "stop and delete leave nothing behind"
"$ARBOR" pg delete full >/dev/null
! grep -q " $FS/store/attach/" /proc/mounts || fail "a FUSE disk is left mounted"
"$ARBOR" daemon stop >/dev/null
echo PASS
