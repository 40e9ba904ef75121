# qemu-img (QEMU's NBD client: structured replies, NBD_OPT_GO) writes and compares an image.
source "$(dirname "$0")/lib.sh"
start_server vol:32M
head -c $((32 << 20)) /dev/urandom > "$WORK/a.img"
qemu-img convert -n -f raw -O raw "$WORK/a.img" "$(uri_unix vol)" || die "qemu-img convert"
qemu-img compare -f raw -F raw "$WORK/a.img" "$(uri_tcp vol)" || die "qemu-img compare differs"
# And it must notice a difference.
printf 'x' | dd of="$WORK/a.img" bs=1 seek=12345 conv=notrunc status=none
if qemu-img compare -q -f raw -F raw "$WORK/a.img" "$(uri_unix vol)"; then die "compare missed a difference"; fi
qemu-img info "$(uri_tcp vol)" | grep -q "virtual size: 32 MiB" || die "qemu-img info size"
server_alive
echo PASS
