#!/usr/bin/env bash
# The everyday flow: create, branch, snapshot, list, usage, resize, delete; JSON and text output.
source "$(dirname "$0")/lib.sh" "$@"

step "a command with no daemon running starts one (readiness by polling the socket)"
"$ARBOR" list | grep -q "no volumes" || fail "list on an empty store"
DAEMON_PID=$("$ARBOR" daemon status --json | jq -r .pid)
[ "$DAEMON_PID" -gt 0 ] || fail "no daemon pid"

step "create, branch, snapshot"
"$ARBOR" volume create db --size 1G | grep -q "created volume db (1 GiB)" || fail "volume create"
out=$("$ARBOR" branch create dev --from db)
echo "$out"
echo "$out" | grep -Eq "^created branch dev from db in [0-9.]+ (ms|s) \(engine\)" || fail "branch create output"
"$ARBOR" snapshot create db@s1 | grep -q "created snapshot db@s1" || fail "snapshot create"
"$ARBOR" branch create fromsnap --from db@s1 >/dev/null || fail "branch from snapshot"

step "list (text and JSON)"
"$ARBOR" list
[ "$(json list | jq '.volumes | length')" -eq 4 ] || fail "expected 4 entries"
[ "$(json list | jq -r '.volumes[] | select(.name=="dev") | .parent')" = db ] || fail "dev's parent"
[ "$(json list | jq -r '.volumes[] | select(.name=="db@s1") | .kind')" = snapshot ] || fail "db@s1 kind"
[ "$(json info dev | jq -r .size_bytes)" -eq 1073741824 ] || fail "dev size"
b=$(json branch create timed --from db | jq -r .duration_ns)
[ "$b" -gt 0 ] || fail "branch duration_ns missing"

step "usage"
"$ARBOR" usage
json usage | jq -e '.store.free_bytes >= 0 and .store.physical_used_bytes >= 0' >/dev/null || fail "store usage"
json usage db | jq -e '.usage.logical_size_bytes == 1073741824' >/dev/null || fail "usage db"
"$ARBOR" usage db | grep -q "^db " || fail "usage db text"

step "resize grows"
"$ARBOR" resize db --size 2G | grep -q "resized db to 2 GiB" || fail "resize"
[ "$(json info db | jq -r .size_bytes)" -eq 2147483648 ] || fail "size after resize"

step "delete: snapshot, branch, then the parent while a child lives"
"$ARBOR" delete timed | grep -q "deleted timed"
"$ARBOR" delete fromsnap >/dev/null
"$ARBOR" delete db@s1 >/dev/null
"$ARBOR" delete db >/dev/null
[ "$(json list | jq -r '[.volumes[].name] | join(",")')" = dev ] || fail "only dev should remain"

step "concurrent clients: 48 branches and lists at once"
for i in $(seq 48); do
  ( "$ARBOR" branch create "par$i" --from dev >/dev/null && "$ARBOR" list >/dev/null ) &
done
wait
[ "$(json list | jq '[.volumes[].name | select(startswith("par"))] | length')" -eq 48 ] || fail "parallel branches"
for i in $(seq 48); do "$ARBOR" delete "par$i" >/dev/null & done
wait
[ "$(json list | jq -r '[.volumes[].name] | join(",")')" = dev ] || fail "parallel deletes"

step "clean"
"$ARBOR" clean | grep -q "^cleaned " || fail "clean"

step "daemon status lists endpoints as URIs"
"$ARBOR" daemon status
json daemon status | jq -e '[.endpoints[].uri] | any(startswith("nbd+unix:///?socket="))' >/dev/null || fail "nbd unix endpoint"
json daemon status | jq -e '[.endpoints[].uri] | any(startswith("http+unix://"))' >/dev/null || fail "api endpoint"

step "API by curl: the same operations, JSON errors"
sock=$ARBOR_HOME/arbord.sock
curl -sf --unix-socket "$sock" -X POST http://arbor/v1/volumes -d '{"name":"viacurl","size":"64M"}' | jq -e '.size_bytes == 67108864' >/dev/null || fail "curl create"
code=$(curl -s -o "$WORK/body" -w '%{http_code}' --unix-socket "$sock" -X POST http://arbor/v1/volumes -d '{"name":"viacurl","size":"64M"}')
[ "$code" = 409 ] || fail "duplicate via curl: HTTP $code"
jq -e '.error.code == "already_exists" and (.error.message | length > 0)' "$WORK/body" >/dev/null || fail "error body"
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://arbor/v1/volumes/nope)
[ "$code" = 404 ] || fail "unknown via curl: HTTP $code"

step "daemon stop"
"$ARBOR" daemon stop | grep -q "arbord stopped" || fail "stop"
! alive "$DAEMON_PID" || fail "arbord still alive after stop"
expect_error "$ARBOR" daemon status
echo PASS
