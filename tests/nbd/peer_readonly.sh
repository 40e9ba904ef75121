# A read-only export (a snapshot) can be read but every write fails, and the server goes on.
source "$(dirname "$0")/lib.sh"
start_server vol@snap:8M --read-only vol@snap
head -c 1M /dev/urandom > "$WORK/x.img"
if nbdcopy "$WORK/x.img" "$(uri_unix vol@snap)" 2>"$WORK/err.txt"; then die "write to read-only export succeeded"; fi
# QEMU refuses to open it for writing (we advertise NBD_FLAG_READ_ONLY)...
if qemu-io -f raw -c "write 0 4k" "$(uri_tcp vol@snap)" >"$WORK/qio.txt" 2>&1; then
  die "qemu-io write to read-only export: $(cat "$WORK/qio.txt")"
fi
# ...and the server itself refuses a write from a client that ignores the flag: EPERM.
python3 - "$SOCK" <<'PY' || die "server accepted a write to a read-only export"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
def rx(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b)); assert c; b += c
    return b
rx(18); s.sendall(struct.pack(">I", 3))
name = b"vol@snap"
s.sendall(struct.pack(">QII", 0x49484156454F5054, 7, 4 + len(name) + 2) + struct.pack(">I", len(name)) + name + b"\0\0")
while True:
    _, _, typ, ln = struct.unpack(">QIII", rx(20)); rx(ln)
    if typ != 3: break
assert typ == 1, typ
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 5, 0, 4) + b"abcd")
magic, err, cookie = struct.unpack(">IIQ", rx(16))
assert (magic, err, cookie) == (0x67446698, 1, 5), (hex(magic), err, cookie)
PY
nbdcopy "$(uri_tcp vol@snap)" "$WORK/out.img" || die "read of read-only export"
cmp "$WORK/out.img" <(head -c 8M /dev/zero) || die "read-only export not zeros"
server_alive
echo PASS
