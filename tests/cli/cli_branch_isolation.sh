#!/usr/bin/env bash
# A branch is a consistent point and writes are isolated: writing to a branch changes only the
# branch (only where written), writing to the parent afterwards does not show in the branch.
source "$(dirname "$0")/lib.sh" "$@"
start_daemon
head -c 16M /dev/urandom >"$WORK/base"
head -c 1M /dev/urandom >"$WORK/patch"
head -c 1M /dev/urandom >"$WORK/patch2"

"$ARBOR" import db "$WORK/base" >/dev/null
"$ARBOR" branch create dev --from db
step "write 1 MiB at 4 MiB into the branch"
"$ARBOR" import dev "$WORK/patch" --offset 4M >/dev/null
"$ARBOR" export db "$WORK/db.out" >/dev/null
"$ARBOR" export dev "$WORK/dev.out" >/dev/null
cmp "$WORK/base" "$WORK/db.out" || fail "the parent changed after a write to its branch"
cp "$WORK/base" "$WORK/expect"
dd if="$WORK/patch" of="$WORK/expect" bs=1M seek=4 conv=notrunc status=none
cmp "$WORK/expect" "$WORK/dev.out" || fail "the branch does not hold base + patch"
diffs=$({ cmp -l "$WORK/db.out" "$WORK/dev.out" || true; } | awk '$1 <= 4194304 || $1 > 5242880' | wc -l)
[ "$diffs" -eq 0 ] || fail "the two differ outside the written range"

step "write into the parent; the branch does not see it"
"$ARBOR" import db "$WORK/patch2" --offset 8M >/dev/null
"$ARBOR" export dev "$WORK/dev2.out" >/dev/null
cmp "$WORK/expect" "$WORK/dev2.out" || fail "a write to the parent showed in the branch"

step "owned and shared bytes"
"$ARBOR" usage
json usage dev | jq -e '.usage.owned_bytes >= 1048576 and .usage.shared_bytes > 0' >/dev/null ||
  fail "dev should own its 1 MiB and share the rest"

step "the parent can be deleted while the branch lives"
"$ARBOR" delete db >/dev/null
"$ARBOR" export dev "$WORK/dev3.out" >/dev/null
cmp "$WORK/expect" "$WORK/dev3.out" || fail "the branch changed when its parent was deleted"
echo PASS
