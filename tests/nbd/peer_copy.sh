# nbdcopy of a random 64 MiB file in and out is byte-identical, over unix and over TCP with
# several connections (multi-conn).
source "$(dirname "$0")/lib.sh"
start_server vol:64M
head -c $((64 << 20)) /dev/urandom > "$WORK/in.img"
nbdcopy "$WORK/in.img" "$(uri_unix vol)" || die "nbdcopy in"
nbdcopy "$(uri_tcp vol)" "$WORK/out.img" || die "nbdcopy out"
cmp "$WORK/in.img" "$WORK/out.img" || die "copy differs"
# Again with 4 connections and small requests, overwriting with new data.
head -c $((64 << 20)) /dev/urandom > "$WORK/in2.img"
nbdcopy --connections=4 --request-size=65536 --flush "$WORK/in2.img" "$(uri_tcp vol)" || die "nbdcopy multi-conn in"
nbdcopy --connections=4 "$(uri_unix vol)" "$WORK/out2.img" || die "nbdcopy multi-conn out"
cmp "$WORK/in2.img" "$WORK/out2.img" || die "multi-conn copy differs"
server_alive
echo PASS
