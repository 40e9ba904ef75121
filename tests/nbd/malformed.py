#!/usr/bin/env python3
"""Raw-socket NBD abuse: bad magic, oversize lengths, offsets past the end, unknown options and
commands, writes to a read-only export, abrupt disconnects. Afterwards a well-behaved client must
still be served. Usage: malformed.py SOCKET_PATH (exports: vol 8M, vol@snap 8M read-only)."""
import socket, struct, sys

SOCK = sys.argv[1]
NBDMAGIC, IHAVEOPT, REPLYMAGIC = 0x4E42444D41474943, 0x49484156454F5054, 0x3E889045565A9
REQ, SIMPLE = 0x25609513, 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_GO, OPT_SR = 1, 2, 3, 7, 8
REP_ACK, REP_INFO, ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = 1, 3, 2**31 + 1, 2**31 + 3, 2**31 + 6, 2**31 + 9
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WZ = 0, 1, 2, 3, 4, 6
EPERM, EINVAL, ENOSPC = 1, 22, 28
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(SOCK)
    return s


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def closed_by_server(s):
    try:
        s.settimeout(5)
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def greet(s, flags=3):
    magic, opt, hflags = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting"
    s.sendall(struct.pack(">I", flags))


def send_opt(s, opt, data=b"", magic=IHAVEOPT, length=None):
    s.sendall(struct.pack(">QII", magic, opt, len(data) if length is None else length) + data)


def read_opt_reply(s):
    magic, opt, typ, length = struct.unpack(">QIII", recv_exact(s, 20))
    assert magic == REPLYMAGIC, hex(magic)
    return opt, typ, recv_exact(s, length)


def go(s, name):
    send_opt(s, OPT_GO, struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", 0))
    while True:
        _, typ, data = read_opt_reply(s)
        if typ != REP_INFO:
            return typ


def request(s, typ, cookie, offset, length, flags=0, payload=b"", magic=REQ):
    s.sendall(struct.pack(">IHHQQI", magic, flags, typ, cookie, offset, length) + payload)


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == SIMPLE, hex(magic)
    return err, cookie


def session(name="vol"):
    s = connect()
    greet(s)
    typ = go(s, name)
    assert typ == REP_ACK, typ
    return s


def healthy():
    """A normal client: write, flush, read back."""
    s = session()
    data = bytes(range(256)) * 16
    request(s, CMD_WRITE, 1, 8192, len(data), payload=data)
    request(s, CMD_FLUSH, 2, 0, 0)
    request(s, CMD_READ, 3, 8192, len(data))
    got = {}
    for _ in range(3):
        err, cookie = simple_reply(s)
        got[cookie] = err
        if cookie == 3:
            got["data"] = recv_exact(s, len(data))
    request(s, CMD_DISC, 4, 0, 0)
    ok = got.get(1) == 0 and got.get(2) == 0 and got.get(3) == 0 and got.get("data") == data
    ok = ok and closed_by_server(s)
    s.close()
    return ok


check(healthy(), "healthy client before abuse")

# --- handshake phase ---
s = connect(); greet(s); send_opt(s, OPT_LIST, magic=0xDEADBEEF)
check(closed_by_server(s), "bad option magic closes the connection"); s.close()

s = connect(); recv_exact(s, 18); s.sendall(struct.pack(">I", 1 | 0x80))
check(closed_by_server(s), "unknown client flags close the connection"); s.close()

s = connect(); greet(s); send_opt(s, OPT_GO, length=0x7FFFFFFF)
_, typ, _ = read_opt_reply(s)
check(typ == ERR_TOO_BIG and closed_by_server(s), "2 GiB option length refused (TOO_BIG) without reading it"); s.close()

s = connect(); greet(s); send_opt(s, 4242, b"junk")
opt, typ, _ = read_opt_reply(s)
check(opt == 4242 and typ == ERR_UNSUP, "unknown option -> NBD_REP_ERR_UNSUP")
send_opt(s, OPT_LIST)
names = []
while True:
    _, typ, data = read_opt_reply(s)
    if typ != 2:
        break
    names.append(data[4:4 + struct.unpack(">I", data[:4])[0]].decode())
check(typ == REP_ACK and sorted(names) == ["vol", "vol@snap"], "session continues after unknown option (LIST works)")
send_opt(s, OPT_LIST, b"x")
check(read_opt_reply(s)[1] == ERR_INVALID, "LIST with data -> NBD_REP_ERR_INVALID")
check(go(s, "nosuch") == ERR_UNKNOWN, "GO unknown export -> NBD_REP_ERR_UNKNOWN")
send_opt(s, OPT_GO, struct.pack(">I", 999) + b"vol" + struct.pack(">H", 0))
check(read_opt_reply(s)[1] == ERR_INVALID, "GO with name length past the option -> NBD_REP_ERR_INVALID")
send_opt(s, OPT_ABORT)
check(read_opt_reply(s)[1] == REP_ACK and closed_by_server(s), "ABORT is acked, then closed"); s.close()

s = connect(); greet(s); send_opt(s, OPT_EXPORT_NAME, b"nosuch")
check(closed_by_server(s), "EXPORT_NAME of unknown export closes"); s.close()

# --- transmission phase ---
s = session()
request(s, CMD_READ, 10, 8 << 20, 512)
check(simple_reply(s) == (EINVAL, 10), "read past the end -> EINVAL")
request(s, CMD_READ, 11, 2**64 - 512, 1024)
check(simple_reply(s) == (EINVAL, 11), "read with wrapping offset+length -> EINVAL")
request(s, CMD_WRITE, 12, (8 << 20) - 100, 200, payload=b"\1" * 200)
check(simple_reply(s) == (ENOSPC, 12), "write past the end -> ENOSPC")
request(s, CMD_WZ, 13, 8 << 20, 4096)
check(simple_reply(s) == (ENOSPC, 13), "write-zeroes past the end -> ENOSPC")
request(s, CMD_READ, 14, 0, 0xFFFFFFFF)
check(simple_reply(s) == (EINVAL, 14), "4 GiB read length -> EINVAL (nothing allocated)")
request(s, 77, 15, 0, 0)
check(simple_reply(s) == (EINVAL, 15), "unknown command -> EINVAL")
request(s, CMD_READ, 16, 0, 16, flags=0x100)
check(simple_reply(s) == (EINVAL, 16), "unknown command flag -> EINVAL")
request(s, CMD_READ, 17, 0, 16)
err, cookie = simple_reply(s); recv_exact(s, 16)
check((err, cookie) == (0, 17), "same connection still serves after errors")
# Oversize write: the server skips the announced payload, then refuses.
big = (32 << 20) + 1
request(s, CMD_WRITE, 18, 0, big)
chunk = b"\0" * (1 << 20)
left = big
while left:
    n = min(left, len(chunk)); s.sendall(chunk[:n]); left -= n
check(simple_reply(s) == (EINVAL, 18), "write over the 32 MiB maximum -> EINVAL after its payload")
request(s, CMD_READ, 19, 0, 16, magic=0x12345678)
check(closed_by_server(s), "bad request magic closes the connection"); s.close()

s = session("vol@snap")
request(s, CMD_WRITE, 20, 0, 4, payload=b"abcd")
check(simple_reply(s) == (EPERM, 20), "write to read-only export -> EPERM")
request(s, CMD_TRIM, 21, 0, 4096)
check(simple_reply(s) == (EPERM, 21), "trim on read-only export -> EPERM")
s.close()

# --- abrupt disconnects, everywhere ---
for stage in range(6):
    for _ in range(5):
        s = connect()
        if stage >= 1: recv_exact(s, 18)
        if stage >= 2: s.sendall(struct.pack(">I", 3))
        if stage == 3: s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"vo")  # half an option
        if stage == 4:
            go(s, "vol"); request(s, CMD_WRITE, 1, 0, 1 << 20, payload=b"x" * 1000)  # half a payload
        if stage == 5:
            go(s, "vol")
            for i in range(64): request(s, CMD_READ, i, 0, 1 << 20)  # replies never read
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        s.close()
check(True, "30 abrupt disconnects at every stage")

# Many connections at once, then everyone leaves.
conns = [session() for _ in range(40)]
for i, c in enumerate(conns):
    request(c, CMD_FLUSH, i, 0, 0)
check(all(simple_reply(c)[0] == 0 for c in conns), "40 concurrent connections each flush")
for c in conns:
    c.close()

check(healthy(), "healthy client after abuse")
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
