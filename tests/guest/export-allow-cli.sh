#!/bin/bash
# export-allow-cli.sh ARBOR ARBORD: `arbor export allow|revoke|list` on a private store: entries
# persist across a daemon restart (STORE/nvme-allow.json), every refusal is one line and non-zero,
# and `arbor export NAME FILE` still copies a volume. Exit 0 = pass.
set -uo pipefail
ARBOR=$1; ARBORD=$2
S=$(mktemp -d /tmp/arbor-allow.XXXXXX)
export ARBORD_OPTS="--nbd-listen unix://$S/nbd.sock --nvme-listen 127.0.0.1:0 --nvme-discovery-listen 127.0.0.1:0"
A() { "$ARBOR" --store "$S" "$@"; }
trap 'A daemon stop --force > /dev/null 2>&1; rm -rf "$S"' EXIT
source "$(dirname "$0")/checks.sh"
H1=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001
H2=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000002
A volume create v --size 16M > /dev/null || { echo "FAIL volume create"; exit 1; }
A snapshot create v@s > /dev/null
check list-empty '[ "$(A export list)" = "no allow-lists: every export admits every host" ]'
check allow '[ "$(A export allow v $H1)" = "allowed $H1 on v (1 host listed)" ]'
check allow-idempotent 'A export allow v $H1 > /dev/null && [ "$(A --json export list v | jq -r ".hosts | length")" = 1 ]'
check allow-second 'A export allow v $H2 > /dev/null && [ "$(A --json export list v | jq -r ".hosts | length")" = 2 ]'
check allow-snapshot 'A export allow v@s $H2 > /dev/null && A export list v@s | grep -q "^v@s	$H2$"'
check file-format 'jq -e ".version == 1 and (.exports.v | length) == 2" "$S/nvme-allow.json" > /dev/null'
A daemon stop > /dev/null || { echo "FAIL daemon stop"; fail=1; }
check persists-restart '[ "$(A --json export list | jq -r "[.exports[].hosts[]] | length")" = 3 ]'
check revoke 'A export revoke v $H1 | grep -q "^revoked $H1 from v (1 host listed)"'
check revoke-last 'A export revoke v $H2 > /dev/null && A export list v | grep -q "any host"'
expect_error revoke-absent "is not on the allow-list" A export revoke v $H1
expect_error bad-nqn "must start with \"nqn.\"" A export allow v not-an-nqn
expect_error long-nqn "at most 223" A export allow v "nqn.$(printf 'x%.0s' $(seq 1 230))"
expect_error unknown-volume "no volume named 'nope'" A export allow nope $H1
expect_error unknown-snapshot "no snapshot named 'v@nope'" A export allow v@nope $H1
expect_error missing-arg "HOSTNQN is required|required" A export allow v
expect_error export-needs-file "NAME and FILE are required" A export v
check export-file-still-works 'A export v "$S/out.img" > /dev/null && [ "$(stat -c %s "$S/out.img")" = 16777216 ]'
echo '{"version": 7, "exports": {}}' > "$S/nvme-allow.json"
A daemon stop > /dev/null 2>&1
expect_error corrupt-file-refused "unknown allow-list version" A daemon start
exit $fail
