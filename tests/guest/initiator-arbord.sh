#!/bin/bash
# initiator-arbord.sh ARBOR ARBORD INITIATOR: our userspace NVMe/TCP initiator against arbord on
# 127.0.0.1 (no guest): info, verify with and without digests, a snapshot is read-only and refuses
# writes, a host not on the allow-list is refused at Connect, an unknown subsystem is refused, a
# queued bench run completes. Exit 0 = pass.
set -u  # no pipefail: the refusal checks pipe a failing command into grep
ARBOR=$1; ARBORD=$2; INI=$3
S=$(mktemp -d /tmp/arbor-ini.XXXXXX)
A() { "$ARBOR" --store "$S" "$@"; }
"$ARBORD" --store "$S" --nbd-listen none --nvme-listen 127.0.0.1:0 --nvme-discovery-listen none > "$S/out" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null; wait $P 2>/dev/null; rm -rf "$S"' EXIT
for _ in $(seq 100); do A daemon status > /dev/null 2>&1 && break; kill -0 $P || { cat "$S/out"; exit 1; }; sleep 0.1; done
PORT=$(A --json daemon status | jq -r '.endpoints[] | select(.protocol=="nvme-tcp") | .uri' | sed 's/.*://')
PFX=nqn.2026-01.dev.arbor:
H1=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000a1
H2=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000a2
A volume create v --size 64M > /dev/null && A volume create locked --size 16M > /dev/null || exit 1
A export allow locked $H2 > /dev/null || exit 1
I() { "$INI" "$1" --port "$PORT" "${@:2}"; }
source "$(dirname "$0")/checks.sh"
check info 'I info --nqn ${PFX}v | grep -q "size_bytes=67108864 lba_bytes=4096 read_only=0"'
check verify 'I verify --nqn ${PFX}v --seed 1 | grep -q "^VERIFY-OK"'
check verify-digests 'I verify --nqn ${PFX}v --seed 2 --offset-mib 8 --hdgst --ddgst | grep -q "^VERIFY-OK"'
check verify-hdgst-only 'I verify --nqn ${PFX}v --seed 3 --offset-mib 16 --hdgst | grep -q "^VERIFY-OK"'
A snapshot create v@s > /dev/null
check snapshot-read-only 'I info --nqn ${PFX}v@s | grep -q "read_only=1"'
check snapshot-refuses-write '! I verify --nqn ${PFX}v@s 2>&1 | grep -q VERIFY-OK && I verify --nqn ${PFX}v@s 2>&1 | grep -q "0x020 (Namespace Write Protected)"'
check allow-list-refuses 'I info --nqn ${PFX}locked --hostnqn $H1 2>&1 | grep -q "refused: status 0x184 (Connect Invalid Host)"'
check allow-list-admits 'I info --nqn ${PFX}locked --hostnqn $H2 | grep -q "size_bytes=16777216"'
check unknown-subsystem 'I info --nqn ${PFX}nope 2>&1 | grep -q "refused: status 0x182"'
check bench-qd8 'I bench --nqn ${PFX}v --rw randwrite --qd 8 --seconds 1 --span-mib 64 | jq -e ".ios > 0" > /dev/null'
check still-serving 'I verify --nqn ${PFX}v --seed 1 | grep -q "^VERIFY-OK"'
exit $fail
