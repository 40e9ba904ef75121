#!/bin/bash
# run-nvme-guest.sh TESTTARGET_BINARY CACHE_DIR
# Boots Debian's generic amd64 kernel (the cloud flavour lacks 9p) under QEMU (TCG) with an initramfs whose /init (nvme-guest-init.sh)
# drives the kernel's NVMe/TCP initiator against arbor-nvme-testtarget on the host, then asserts
# the guest's serial-console markers. Kernel and initramfs are cached in CACHE_DIR.
# Exit 0 = every step passed; 1 = a step failed; 77 = the environment cannot run the test.
set -uo pipefail
TARGET=$1; CACHE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$CACHE"
log() { echo "[guest-test $(date +%T)] $*"; }

# ---- tools (the list is in README.md)
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx cpio || need+=(busybox-static)
command -v nvme >/dev/null || need+=(nvme-cli)
command -v fio >/dev/null || need+=(fio)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  if [ "$(id -u)" != 0 ]; then log "need root to apt-get install ${need[*]}"; exit 77; fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") > "$CACHE/apt.log" 2>&1 \
    || { log "apt-get install failed: $(tail -2 "$CACHE/apt.log")"; exit 77; }
fi

# ---- kernel (cached)
if ! ls "$CACHE"/kern/boot/vmlinuz-* >/dev/null 2>&1 || ! find "$CACHE/kern" -name nvme-tcp.ko | grep -q . || ! find "$CACHE/kern" -name 9p.ko | grep -q .; then
  log "downloading Debian's generic amd64 kernel (the cloud flavour has no 9p)"
  PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2}' | head -1)
  if [ -z "$PKG" ]; then apt-get update -qq >/dev/null 2>&1; PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2}' | head -1); fi
  [ -n "$PKG" ] || { log "cannot resolve linux-image-amd64"; exit 77; }
  rm -rf "$CACHE/kern" "$CACHE"/linux-image-*.deb
  (cd "$CACHE" && apt-get download "$PKG" > apt-download.log 2>&1) || { log "apt-get download $PKG failed: $(tail -2 "$CACHE/apt-download.log")"; exit 77; }
  dpkg-deb -x "$CACHE"/linux-image-*.deb "$CACHE/kern" || exit 77
fi
KERNEL=$(ls "$CACHE"/kern/boot/vmlinuz-* | head -1)

# ---- initramfs (rebuilt when the init script or the builder changes)
STAMP=$(cat "$HERE/nvme-guest-init.sh" "$HERE/build-initrd.sh" | md5sum | cut -c1-16)
INITRD=$CACHE/initrd-$STAMP.cpio.gz
if [ ! -s "$INITRD" ]; then
  log "building initramfs"
  rm -f "$CACHE"/initrd-*.cpio.gz
  "$HERE/build-initrd.sh" "$CACHE/kern" "$INITRD" "$HERE/nvme-guest-init.sh" || exit 77
fi

# ---- target on free ports
OUT=$CACHE/target.log
"$TARGET" --listen 127.0.0.1:0 --discovery 127.0.0.1:0 --advertise 10.0.2.2 \
  --export vol1=256 --export vol1@snap1=64:ro --export secret=64 \
  --allow "secret=nqn.2014-08.org.nvmexpress:uuid:6c0a3a1e-0000-4000-8000-0000000000ff" > "$OUT" 2>&1 &
TPID=$!
trap 'kill $TPID 2>/dev/null; wait $TPID 2>/dev/null' EXIT
for i in $(seq 1 50); do grep -q READY "$OUT" && break; sleep 0.1; done
read -r IO DISC < <(sed -n 's/^READY io=\([0-9]*\) discovery=\([0-9]*\).*/\1 \2/p' "$OUT")
[ -n "${IO:-}" ] || { log "target did not start: $(cat "$OUT")"; exit 1; }
log "target pid $TPID io=$IO discovery=$DISC"

# ---- guest
SERIAL=$CACHE/serial.log
T0=$(date +%s)
timeout 720 qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 quiet panic=-1 nvmeport=$IO discport=$DISC" -display none -serial stdio -monitor none -no-reboot \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on < /dev/null > "$SERIAL" 2>&1
QRC=$?
T1=$(date +%s)
grep -E '^(GUEST|\[ )' "$SERIAL" | grep -vE '^\[ *[0-9.]+\] (random|ACPI|PCI|pci)' | tail -80
log "qemu exit $QRC after $((T1 - T0)) s"
if ! kill -0 $TPID 2>/dev/null; then log "target died: $(tail -5 "$OUT")"; exit 1; fi

fail=0
for step in discover connect-all connect-digest size io-queues-2 fio-verify-qd1-digest fio-verify-qd32-2jobs-digest disconnect-digest \
            connect-plain fio-verify-qd32-plain mkfs mount umount e2fsck-clean disconnect-plain reconnect \
            data-intact-after-reconnect e2fsck-clean-after-reconnect refused-host allowed-host snapshot-read-only; do
  if grep -q "^GUEST-OK $step\b" "$SERIAL"; then echo "PASS $step"; else echo "FAIL $step"; fail=1; fi
done
grep -q '^GUEST-DONE' "$SERIAL" || { echo "FAIL guest did not finish"; fail=1; }
grep '^GUEST-FAIL' "$SERIAL" && fail=1
[ $fail = 0 ] && log "all guest steps passed in $((T1 - T0)) s" || log "guest test FAILED (serial log: $SERIAL)"
exit $fail
