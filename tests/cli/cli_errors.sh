#!/usr/bin/env bash
# Bad input is refused, not obeyed: every case exits non-zero with one clear line on stderr, and the
# daemon keeps serving afterwards.
source "$(dirname "$0")/lib.sh" "$@"
start_daemon
"$ARBOR" volume create db --size 64M >/dev/null
"$ARBOR" snapshot create db@s1 >/dev/null
head -c 1M /dev/urandom >"$WORK/one"

step "unknown names"
expect_error_matching "no volume named 'nope'" "$ARBOR" delete nope
expect_error_matching "nope" "$ARBOR" info nope
expect_error_matching "nope" "$ARBOR" usage nope
expect_error_matching "nope" "$ARBOR" branch create b --from nope
expect_error_matching "db@nosnap" "$ARBOR" branch create b --from db@nosnap
expect_error_matching "nope" "$ARBOR" snapshot create nope@s
expect_error_matching "nope" "$ARBOR" resize nope --size 1G
expect_error_matching "nope" "$ARBOR" export nope "$WORK/x"

step "duplicate names"
expect_error_matching "already exists" "$ARBOR" volume create db --size 1G
expect_error_matching "already exists" "$ARBOR" branch create db --from db@s1
expect_error_matching "already exists" "$ARBOR" snapshot create db@s1

step "invalid names"
expect_error_matching "invalid" "$ARBOR" volume create Bad --size 1G
expect_error_matching "invalid" "$ARBOR" volume create --size 1G -- -x
expect_error_matching "invalid" "$ARBOR" volume create "a/b" --size 1G
expect_error_matching "invalid" "$ARBOR" volume create "$(printf 'a%.0s' $(seq 64))" --size 1G
expect_error_matching "invalid|snapshot" "$ARBOR" snapshot create db
expect_error_matching "invalid" "$ARBOR" snapshot create "db@Bad"
expect_error_matching "invalid" "$ARBOR" branch create "x@y" --from db

step "sizes: zero, past the maximum, malformed, shrinking"
expect_error_matching "greater than zero" "$ARBOR" volume create z --size 0
expect_error_matching "maximum" "$ARBOR" volume create z --size 2P
expect_error_matching "size" "$ARBOR" volume create z --size 12Q
expect_error_matching "size" "$ARBOR" volume create z --size -5G
expect_error_matching "grow" "$ARBOR" resize db --size 1M
expect_error_matching "greater than zero" "$ARBOR" resize db --size 0

step "writing to a snapshot"
expect_error_matching "read-only" "$ARBOR" import db@s1 "$WORK/one"
expect_error_matching "snapshot" "$ARBOR" resize db@s1 --size 1G

step "data that does not fit"
head -c 65M /dev/zero >"$WORK/big"
expect_error_matching "does not fit" "$ARBOR" import db "$WORK/big"
expect_error_matching "does not fit" "$ARBOR" import db "$WORK/one" --offset 64M
expect_error_matching "cannot open" "$ARBOR" import db "$WORK/missing-file"

step "deleting a volume in use (open by an NBD client)"
if command -v nbdfuse >/dev/null && [ -e /dev/fuse ]; then
  mkdir -p "$WORK/mnt"
  nbdfuse -P "$WORK/fuse.pid" "$WORK/mnt/disk" "nbd+unix:///db?socket=$ARBOR_HOME/nbd.sock" &
  fuse=$!
  CLEANUP_HOOK="fusermount3 -u '$WORK/mnt' 2>/dev/null; wait $fuse 2>/dev/null"
  for _ in $(seq 500); do [ -e "$WORK/fuse.pid" ] && break; sleep 0.01; done
  [ "$(json info db | jq -r .open_count)" -gt 0 ] || fail "the NBD client did not open db"
  expect_error_matching "in use" "$ARBOR" delete db
  fusermount3 -u "$WORK/mnt"
  wait $fuse || true
  CLEANUP_HOOK=""
else
  echo "nbdfuse or /dev/fuse missing: skipped the in-use case"
fi

step "deleting a volume that has snapshots"
expect_error_matching "snapshots" "$ARBOR" delete db

step "command-line mistakes are one line too"
expect_error "$ARBOR" volume create
expect_error "$ARBOR" frobnicate
expect_error "$ARBOR" volume create x --size

step "malformed API requests (curl): 400 with a JSON error, nothing changes"
sock=$ARBOR_HOME/arbord.sock
api_refuses() {
  local want=$1 method=$2 path=$3 body=$4 code
  code=$(curl -s -o "$WORK/body" -w '%{http_code}' --unix-socket "$sock" -X "$method" "http://arbor$path" -d "$body")
  [ "$code" = "$want" ] || fail "$method $path $body: HTTP $code, wanted $want"
  jq -e '.error.code and (.error.message | length > 0)' "$WORK/body" >/dev/null || fail "$method $path $body: no JSON error"
  echo "ok (HTTP $code): $method $path $body -> $(jq -c .error "$WORK/body")"
}
api_refuses 400 POST /v1/volumes 'not json'
api_refuses 400 POST /v1/volumes '[1,2]'
api_refuses 400 POST /v1/volumes '{"name": 5, "size": "1G"}'
api_refuses 400 POST /v1/volumes '{"name": "x"}'
api_refuses 400 POST /v1/volumes '{"name": "x", "size": -1}'
api_refuses 400 POST /v1/volumes '{"name": "x", "size": "abc"}'
api_refuses 400 POST /v1/volumes '{"name": "x", "size": 1.5}'
api_refuses 400 POST /v1/volumes '{"name": "x", "size": 99999999999999999999999}'
api_refuses 400 POST /v1/branches '{"name": "x"}'
api_refuses 404 POST /v1/branches '{"name": "x", "from": "nope"}'
api_refuses 400 POST /v1/clean '{"max_live_fraction": 2}'
api_refuses 400 POST /v1/clean '{"max_live_fraction": "half"}'
api_refuses 409 PUT /v1/volumes/db@s1/data 'abcd'
api_refuses 400 PUT '/v1/volumes/db/data?offset=67108863' 'abcd'
api_refuses 400 PUT '/v1/volumes/db/data?offset=-1' 'abcd'
api_refuses 400 GET '/v1/volumes/db/data?offset=1&length=67108864' ''
api_refuses 404 GET /v1/volumes/Bad%2Fname ''
api_refuses 404 POST /v1/volumes/db/detach '{}'
api_refuses 404 GET /v1/nothing-here ''

step "the daemon still serves"
"$ARBOR" list >/dev/null
[ "$(json list | jq '.volumes | length')" -eq 2 ] || fail "state changed by refused requests"
echo PASS
