# Malformed handshakes and requests from a raw socket; the server answers per spec or closes that
# one connection, keeps serving, and a real client (nbdinfo, nbdcopy) still works afterwards.
source "$(dirname "$0")/lib.sh"
start_server vol:8M vol@snap:8M --read-only vol@snap
python3 "$(dirname "$0")/malformed.py" "$SOCK" || die "malformed.py"
server_alive
nbdinfo --size "$(uri_tcp vol)" | grep -qx $((8 << 20)) || die "nbdinfo after abuse"
head -c 8M /dev/urandom > "$WORK/x.img"
nbdcopy "$WORK/x.img" "$(uri_unix vol)" && nbdcopy "$(uri_tcp vol)" "$WORK/y.img" && cmp "$WORK/x.img" "$WORK/y.img" \
  || die "copy after abuse"
# Clean shutdown on SIGTERM, with the socket file removed.
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || die "server exit status $?"
SERVER_PID=
[[ ! -e "$SOCK" ]] || die "socket file left behind"
echo PASS
