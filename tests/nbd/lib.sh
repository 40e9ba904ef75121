# Shared helpers for the NBD peer tests. Source it; $1 of the test script is the test server binary.
set -euo pipefail
SERVER_BIN=${1:?usage: $0 path/to/arbor-nbd-testserver}
WORK=$(mktemp -d /tmp/arbor-nbd-peer.XXXXXX)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

die() { echo "FAIL: $*" >&2; exit 1; }

# start_server ARGS...: starts the test server with a unix socket ($SOCK) and a TCP port chosen by
# the kernel ($TCP_URI), waits until both accept connections (by connecting, not by sleeping).
start_server() {
  SOCK=$WORK/nbd.sock
  "$SERVER_BIN" --ready-file "$WORK/ready" "unix://$SOCK" "tcp://127.0.0.1:0" "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  python3 - "$WORK/ready" "$SERVER_PID" <<'PY' || die "server did not come up: $(cat "$WORK/server.log")"
import os, socket, sys, time
ready, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 20
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    if os.path.exists(ready):
        ok = True
        for line in open(ready):
            uri = line.split()[1]
            try:
                if uri.startswith("nbd+unix"):
                    s = socket.socket(socket.AF_UNIX); s.connect(uri.split("socket=")[1])
                else:
                    host, port = uri[len("nbd://"):].rsplit(":", 1)
                    s = socket.create_connection((host, int(port)))
                s.close()
            except OSError:
                ok = False
        if ok:
            sys.exit(0)
    time.sleep(0.02)
sys.exit(1)
PY
  TCP_URI=$(awk '/nbd:\/\//{print $2}' "$WORK/ready")
  UNIX_URI="nbd+unix:///?socket=$SOCK"
}

# uri_unix NAME / uri_tcp NAME: the NBD URI of an export.
uri_unix() { echo "nbd+unix:///$1?socket=$SOCK"; }
uri_tcp() { echo "$TCP_URI/$1"; }

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null || die "server died: $(cat "$WORK/server.log")"; }
