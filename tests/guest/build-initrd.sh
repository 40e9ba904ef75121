#!/bin/bash
# build-initrd.sh KERNEL_DIR OUT.cpio.gz INIT_SCRIPT BINARY...
# An initramfs with busybox, the BINARYs (nvme, nbd-client) and the libraries they link, the kernel
# modules the guest tests need (insmod'ed in the order listed: there is no modules.dep), and
# INIT_SCRIPT as /init.
set -euo pipefail
KD=$1; OUT=$2; INIT=$3; shift 3
V=$(basename "$(ls -d "$KD"/lib/modules/*)")
W=$(mktemp -d -t arbor-ird.XXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,sbin,proc,sys,dev,tmp,etc/nvme,lib/x86_64-linux-gnu,lib64,mods,mnt,host}
cp /bin/busybox "$W/bin/busybox"
for b in "$@"; do
  cp "$b" "$W/bin/"
  for l in $(ldd "$b" | grep -o '/lib[^ ]*'); do mkdir -p "$W$(dirname "$l")"; cp -L "$l" "$W$l"; done
done
K=$KD/lib/modules/$V/kernel
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net \
         crct10dif_common crct10dif_generic crc-t10dif crc64 crc64_rocksoft_generic crc64-rocksoft t10-pi \
         crc32c_generic crc32c-intel libcrc32c nvme-common nvme-core nvme-fabrics nvme-tcp configfs nvmet nvmet-tcp \
         nbd netfs fscache 9pnet 9pnet_virtio 9p crc16 mbcache jbd2 ext4; do
  f=$(find "$K" -name "$m.ko" | head -1)
  if [ -n "$f" ]; then cp "$f" "$W/mods/"; echo "$m" >> "$W/mods/order"; fi
done
cp "$INIT" "$W/init"; chmod +x "$W/init"
(cd "$W" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) > "$OUT"
