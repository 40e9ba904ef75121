# fio's nbd engine with verify=crc32c at iodepth 1 and 32 (random 4k writes, then verify reads).
source "$(dirname "$0")/lib.sh"
start_server vol:256M
for depth in 1 32; do
  for uri in "$(uri_unix vol)" "$(uri_tcp vol)"; do
    fio --name=verify --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=$depth \
        --size=32M --verify=crc32c --verify_fatal=1 --do_verify=1 --norandommap --randrepeat=0 \
        --runtime=3 --time_based=0 --output="$WORK/fio-$depth.txt" >/dev/null 2>&1 \
      || die "fio verify iodepth=$depth $uri: $(cat "$WORK/fio-$depth.txt")"
    grep -q "err= 0" "$WORK/fio-$depth.txt" || die "fio reported errors: $(cat "$WORK/fio-$depth.txt")"
  done
done
# Mixed random read/write with FUA-free flushes every 16 writes, iodepth 32, a few seconds.
fio --name=mixed --ioengine=nbd --uri="$(uri_tcp vol)" --rw=randrw --bs=4k --iodepth=32 --size=64M \
    --fsync=16 --runtime=2 --time_based --output="$WORK/fio-mixed.txt" >/dev/null 2>&1 \
  || die "fio mixed: $(cat "$WORK/fio-mixed.txt")"
grep -q "err= 0" "$WORK/fio-mixed.txt" || die "fio mixed errors"
server_alive
echo PASS
