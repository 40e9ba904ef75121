# nbdinfo --list sees every export, including the read-only snapshot, over unix and TCP.
source "$(dirname "$0")/lib.sh"
start_server vol:64M vol@snap:16M other:1G --read-only vol@snap
for uri in "$UNIX_URI" "$TCP_URI"; do
  out=$(nbdinfo --list --json "$uri")
  echo "$out" > "$WORK/list.json"
  python3 - "$WORK/list.json" <<'PY' || die "nbdinfo --list for $uri: $out"
import json, sys
d = json.load(open(sys.argv[1]))
ex = {e["export-name"]: e for e in d["exports"]}
assert set(ex) == {"vol", "vol@snap", "other"}, ex.keys()
assert ex["vol"]["export-size"] == 64 << 20
assert ex["other"]["export-size"] == 1 << 30
assert ex["vol@snap"]["export-size"] == 16 << 20
assert ex["vol@snap"]["is_read_only"] is True, ex["vol@snap"]
assert ex["vol"]["is_read_only"] is False
assert ex["vol"]["can_flush"] and ex["vol"]["can_fua"] and ex["vol"]["can_trim"] and ex["vol"]["can_zero"]
assert ex["vol"]["can_multi_conn"] is True
assert ex["vol"]["block_size_preferred"] == 4096, ex["vol"]
PY
done
# A single export by name, and an unknown name fails cleanly.
nbdinfo --size "$(uri_unix vol)" | grep -qx $((64 << 20)) || die "nbdinfo --size"
if nbdinfo "$(uri_unix nosuch)" >/dev/null 2>&1; then die "unknown export accepted"; fi
server_alive
echo PASS
