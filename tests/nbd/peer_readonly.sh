# A read-only export (a snapshot) can be read but every write fails, and the server goes on.
source "$(dirname "$0")/lib.sh"
start_server vol@snap:8M --read-only vol@snap
head -c 1M /dev/urandom > "$WORK/x.img"
if nbdcopy "$WORK/x.img" "$(uri_unix vol@snap)" 2>"$WORK/err.txt"; then die "write to read-only export succeeded"; fi
if qemu-io -f raw -c "write 0 4k" "$(uri_tcp vol@snap)" >"$WORK/qio.txt" 2>&1 && ! grep -qi "denied\|read-only\|not permitted\|failed" "$WORK/qio.txt"; then
  die "qemu-io write to read-only export: $(cat "$WORK/qio.txt")"
fi
nbdcopy "$(uri_tcp vol@snap)" "$WORK/out.img" || die "read of read-only export"
cmp "$WORK/out.img" <(head -c 8M /dev/zero) || die "read-only export not zeros"
server_alive
echo PASS
