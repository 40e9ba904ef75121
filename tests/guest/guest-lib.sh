# guest-lib.sh: what the kernel-initiator guest tests share (sourced by run-nvme-guest.sh and
# run-nbd-guest.sh): the host tools, Debian's generic kernel (cached), the initramfs (cached by
# content), and the QEMU boot. See README.md beside this file.
log() { echo "[guest-test $(date +%T)] $*"; }

# guest_tools CACHE CMD=PACKAGE...: apt-get installs the packages whose command is missing (a
# command is a name on PATH or an absolute path). Exits 77 when it cannot: the environment cannot
# run the test.
guest_tools() {
  local cache=$1; shift
  local need=() pair cmd
  for pair in "$@"; do
    cmd=${pair%%=*}
    if [ "${cmd#/}" != "$cmd" ]; then [ -x "$cmd" ] && continue; else command -v "$cmd" >/dev/null && continue; fi
    need+=("${pair#*=}")
  done
  # grep without -q: under pipefail, an early exit of grep -q makes busybox die of SIGPIPE.
  [ -x /bin/busybox ] && /bin/busybox --list | grep -x cpio > /dev/null || need+=(busybox-static)
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing ${need[*]}"
  if [ "$(id -u)" != 0 ]; then log "need root to apt-get install ${need[*]}"; exit 77; fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") > "$cache/apt.log" 2>&1 \
    || { log "apt-get install failed: $(tail -2 "$cache/apt.log")"; exit 77; }
}

# guest_kernel CACHE: sets KERNEL (Debian's generic amd64 kernel; the cloud flavour has no 9p),
# its modules under CACHE/kern.
guest_kernel() {
  local cache=$1 pkg
  if ! ls "$cache"/kern/boot/vmlinuz-* >/dev/null 2>&1 || ! find "$cache/kern" -name nvme-tcp.ko | grep -q . \
     || ! find "$cache/kern" -name 9p.ko | grep -q . || ! find "$cache/kern" -name nbd.ko | grep -q .; then
    log "downloading Debian's generic amd64 kernel (the cloud flavour has no 9p)"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2}' | head -1)
    if [ -z "$pkg" ]; then apt-get update -qq >/dev/null 2>&1; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2}' | head -1); fi
    [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64"; exit 77; }
    rm -rf "$cache/kern" "$cache"/linux-image-*.deb
    (cd "$cache" && apt-get download "$pkg" > apt-download.log 2>&1) || { log "apt-get download $pkg failed: $(tail -2 "$cache/apt-download.log")"; exit 77; }
    dpkg-deb -x "$cache"/linux-image-*.deb "$cache/kern" || exit 77
  fi
  KERNEL=$(ls "$cache"/kern/boot/vmlinuz-* | head -1)
}

# guest_initrd CACHE NAME INIT_SCRIPT BINARY...: sets INITRD, rebuilt when the init script, the
# builder or the binary list changes.
guest_initrd() {
  local cache=$1 name=$2 init=$3; shift 3
  local here; here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  local stamp; stamp=$( (cat "$init" "$here/build-initrd.sh"; echo "$@") | md5sum | cut -c1-16)
  INITRD=$cache/initrd-$name-$stamp.cpio.gz
  if [ ! -s "$INITRD" ]; then
    log "building the $name initramfs"
    rm -f "$cache"/initrd-"$name"-*.cpio.gz
    "$here/build-initrd.sh" "$cache/kern" "$INITRD" "$init" "$@" || exit 77
  fi
}

# guest_boot SERIAL APPEND [QEMU_ARGS...]: boots KERNEL + INITRD in the background (QPID), the
# serial console into SERIAL, the host root read-only over 9p (tag hostroot), user networking
# (the host's 127.0.0.1:PORT is 10.0.2.2:PORT in the guest). At most 15 minutes.
guest_boot() {
  local serial=$1 append=$2; shift 2
  : > "$serial"
  timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 $append" \
    -display none -serial stdio -monitor none -no-reboot \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on \
    "$@" < /dev/null > "$serial" 2>&1 &
  QPID=$!
}

# guest_start_arbord OUT ARBORD_ARGS...: starts ARBORD ($ARBORD, store $STORE) in the background
# (APID), its output appended to OUT, and waits up to 10 s until `$ARBOR daemon status` answers.
guest_start_arbord() {
  local out=$1; shift
  "$ARBORD" --store "$STORE" "$@" >> "$out" 2>&1 &
  APID=$!
  for i in $(seq 1 100); do
    "$ARBOR" --store "$STORE" daemon status > /dev/null 2>&1 && return 0
    kill -0 $APID 2>/dev/null || break
    sleep 0.1
  done
  log "arbord did not start: $(tail -3 "$out") $(tail -3 "$STORE/arbord.log" 2>/dev/null)"; return 1
}

# guest_wait SERIAL CTL RESTART...: waits for the guest to power off, then prints its markers
# and sets QRC (qemu's exit) and T1. When the guest prints GUEST-KILLME (it is writing with
# flushes): writes "killing" to CTL/state, kill -9s arbord ($APID), runs RESTART (which starts
# arbord again on the same store and ports and sets APID), writes "restarted"; sets killed=1.
guest_wait() {
  local serial=$1 ctl=$2; shift 2
  killed=0
  while kill -0 $QPID 2>/dev/null; do
    if [ $killed = 0 ] && grep -q '^GUEST-KILLME' "$serial"; then
      echo killing > "$ctl/state"
      kill -9 $APID; wait $APID 2>/dev/null
      log "arbord killed (-9) while the guest writes; restarting it"
      "$@" && log "arbord restarted, pid $APID"
      echo restarted > "$ctl/state"
      killed=1
    fi
    sleep 0.2
  done
  wait $QPID; QRC=$?
  T1=$(date +%s)
  grep -E '^(GUEST|\[ )' "$serial" | grep -vE '^\[ *[0-9.]+\] (random|ACPI|PCI|pci)' | tail -100
  log "qemu exit $QRC after $((T1 - T0)) s"
}

# guest_steps SERIAL STEP...: PASS/FAIL per step from the guest's GUEST-OK markers, any
# GUEST-FAIL, and GUEST-DONE; sets fail=1 when one is missing.
guest_steps() {
  local serial=$1 step; shift
  for step in "$@"; do
    if grep -q "^GUEST-OK $step\b" "$serial"; then echo "PASS $step"; else echo "FAIL $step"; fail=1; fi
  done
  grep -q '^GUEST-DONE' "$serial" || { echo "FAIL guest did not finish"; fail=1; }
  grep '^GUEST-FAIL' "$serial" && fail=1
  return 0
}
