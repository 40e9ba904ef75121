#!/usr/bin/env bash
# import/export round trip is byte-identical, for dense random data, sparse data, an unaligned tail,
# a snapshot and a branch; also reports the throughput.
source "$(dirname "$0")/lib.sh" "$@"
start_daemon
MB=${ARBOR_TEST_MB:-64}

step "random ${MB} MiB"
head -c "${MB}M" /dev/urandom >"$WORK/rand"
"$ARBOR" import rand "$WORK/rand"
"$ARBOR" export rand "$WORK/rand.out"
cmp "$WORK/rand" "$WORK/rand.out" || fail "random round trip differs"

step "the same through the HTTP data path (--via http) and the NBD one (--via nbd)"
"$ARBOR" import rand_http "$WORK/rand" --via http | grep -q "via http" || fail "import --via http"
"$ARBOR" export rand_http "$WORK/rand_http.out" --via http | grep -q "via http" || fail "export --via http"
cmp "$WORK/rand" "$WORK/rand_http.out" || fail "HTTP round trip differs"
"$ARBOR" export rand_http "$WORK/rand_nbd.out" --via nbd | grep -q "via nbd" || fail "export --via nbd"
cmp "$WORK/rand" "$WORK/rand_nbd.out" || fail "HTTP import / NBD export differs"

step "sparse file with an unaligned tail"
truncate -s 10M "$WORK/sparse"
printf 'hello' | dd of="$WORK/sparse" bs=1 seek=4097 conv=notrunc status=none
head -c 8192 /dev/urandom | dd of="$WORK/sparse" bs=4096 seek=1000 conv=notrunc status=none
head -c 1234 /dev/urandom >>"$WORK/sparse"
"$ARBOR" import sparse "$WORK/sparse"
"$ARBOR" import sparse_http "$WORK/sparse" --via http >/dev/null
"$ARBOR" export sparse_http "$WORK/sparse_http.out" --via http >/dev/null
cmp -n "$(stat -c %s "$WORK/sparse")" "$WORK/sparse" "$WORK/sparse_http.out" || fail "sparse HTTP round trip differs"
[ "$(json usage sparse_http | jq .usage.mapped_bytes)" -le $((4 * 4096)) ] || fail "HTTP import stored zero blocks"
size=$(json info sparse | jq .size_bytes)
[ $((size % 4096)) -eq 0 ] && [ "$size" -ge "$(stat -c %s "$WORK/sparse")" ] || fail "import-created size $size"
"$ARBOR" export sparse "$WORK/sparse.out"
cmp -n "$(stat -c %s "$WORK/sparse")" "$WORK/sparse" "$WORK/sparse.out" || fail "sparse round trip differs"
mapped=$(json usage sparse | jq .usage.mapped_bytes)
[ "$mapped" -le $((4 * 4096)) ] || fail "zero blocks were stored: mapped $mapped bytes"

step "snapshot and branch export equal the source"
"$ARBOR" snapshot create rand@s >/dev/null
"$ARBOR" branch create rb --from rand@s >/dev/null
"$ARBOR" export rand@s "$WORK/snap.out"
"$ARBOR" export rb "$WORK/rb.out"
cmp "$WORK/rand" "$WORK/snap.out" || fail "snapshot export differs"
cmp "$WORK/rand" "$WORK/rb.out" || fail "branch export differs"

step "import into an existing larger volume at an offset"
"$ARBOR" volume create big --size 256M >/dev/null
"$ARBOR" import big "$WORK/rand" --offset 128M >/dev/null
"$ARBOR" export big "$WORK/big.out"
cmp -i 0:$((128 << 20)) -n $((MB << 20)) "$WORK/rand" "$WORK/big.out" || fail "offset import differs"
cmp -n $((128 << 20)) "$WORK/big.out" /dev/zero || fail "bytes before the offset are not zero"

step "pipes: import from stdin (-), export to stdout (-)"
head -c 3M "$WORK/rand" | "$ARBOR" import piped - --size 4M | grep -q "from stdin" || fail "import from stdin"
"$ARBOR" export piped - | cat >"$WORK/piped.out"
cmp -n $((3 << 20)) "$WORK/rand" "$WORK/piped.out" || fail "stdin/stdout round trip differs"
[ "$(stat -c %s "$WORK/piped.out")" -eq $((4 << 20)) ] || fail "stdout export length"
expect_error_matching "give --size" sh -c "head -c 1M '$WORK/rand' | '$ARBOR' import newpiped -"

step "export to stdout-like non-regular output"
"$ARBOR" export sparse /dev/null >/dev/null || fail "export to /dev/null"
echo PASS
