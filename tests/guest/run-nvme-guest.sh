#!/bin/bash
# run-nvme-guest.sh ARBOR ARBORD INITIATOR CACHE_DIR
# Boots Debian's generic amd64 kernel (the cloud flavour lacks 9p) under QEMU (TCG) with an
# initramfs whose /init (nvme-guest-init.sh) drives the kernel's NVMe/TCP initiator against
#   - the real arbord on a temporary store (volumes, a snapshot and an allow-list made with the
#     arbor CLI): discovery, digests, fio verify, ext4, reconnect, allow-list, snapshot, Postgres
#     15 initdb + pgbench, kill -9 of arbord while the guest writes with flushes (this script
#     kills and restarts it when the guest prints GUEST-KILLME);
#   - the kernel's own nvmet-tcp target on loopback in the guest (reference figures), which also
#     checks our userspace initiator (arbor-nvme-initiator verify, with and without digests).
# then asserts the guest's serial-console markers. Kernel and initramfs are cached in CACHE_DIR.
# Exit 0 = every step passed; 1 = a step failed; 77 = the environment cannot run the test.
set -uo pipefail
ARBOR=$1; ARBORD=$2; INI=$3; CACHE=$4
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$CACHE"; CACHE=$(cd "$CACHE" && pwd)
. "$HERE/guest-lib.sh"
guest_tools "$CACHE" qemu-system-x86_64=qemu-system-x86 nvme=nvme-cli fio=fio mkfs.ext4=e2fsprogs \
  /usr/lib/postgresql/15/bin/initdb=postgresql-15 jq=jq
guest_kernel "$CACHE"
guest_initrd "$CACHE" nvme "$HERE/nvme-guest-init.sh" /usr/sbin/nvme

APID=
STORE=$(mktemp -d /tmp/arbor-guest-store.XXXXXX)
CTL=$CACHE/ctl   # the guest reads $CTL/state over 9p (tag ctl, uncached): run -> killing -> restarted
mkdir -p "$CTL"; echo run > "$CTL/state"
# The guest runs our initiator from the ctl share (/run/ctl in its chroot): the build directory may
# be under /tmp, which the guest covers with its own tmpfs.
cp "$INI" "$CTL/arbor-nvme-initiator" || { log "cannot copy $INI"; exit 1; }
cleanup() {
  if [ -n "$APID" ] && kill -0 "$APID" 2>/dev/null; then kill "$APID"; wait "$APID" 2>/dev/null; fi
  rm -rf "$STORE"
}
trap cleanup EXIT

# ---- arbord on a temporary store. The guest reaches the host's 127.0.0.1 as 10.0.2.2 (QEMU user
# networking forwards to the host's loopback), so arbord listens on 127.0.0.1.
A() { "$ARBOR" --store "$STORE" "$@"; }
start_arbord() {  # $1 io listen, $2 discovery listen
  guest_start_arbord "$CACHE/arbord.out" --nbd-listen none --nvme-listen "$1" --nvme-discovery-listen "$2" --nvme-advertise 10.0.2.2
}
: > "$CACHE/arbord.out"
start_arbord 127.0.0.1:0 127.0.0.1:0 || exit 1
AIO=$(A --json daemon status | jq -r '.endpoints[] | select(.protocol=="nvme-tcp") | .uri' | sed 's/.*://')
ADISC=$(A --json daemon status | jq -r '.endpoints[] | select(.protocol=="nvme-tcp-discovery") | .uri' | sed 's|.*:||; s|/.*||')
[ -n "$AIO" ] && [ -n "$ADISC" ] || { log "no NVMe/TCP endpoints in arbor daemon status"; exit 1; }
A volume create avol --size 512M > /dev/null && A volume create pgvol --size 1G > /dev/null \
  && A volume create asecret --size 64M > /dev/null && A snapshot create avol@s1 > /dev/null \
  || { log "arbor volume/snapshot create failed"; exit 1; }
# Only the other host may connect to asecret (the guest connects as ...0001 and as ...00ff).
A export allow asecret nqn.2014-08.org.nvmexpress:uuid:6c0a3a1e-0000-4000-8000-0000000000ff > /dev/null \
  || { log "arbor export allow failed"; exit 1; }
log "arbord pid $APID store $STORE io=$AIO discovery=$ADISC"

# ---- guest. The host side of the kill test: when the guest prints GUEST-KILLME (it is writing
# with flushes then), say "killing" in $CTL/state, kill -9 arbord, restart it on the same store
# and ports, say "restarted". The guest counts a block as flushed before the kill only if its
# fsync returned while the state still read "run".
SERIAL=$CACHE/serial.log
T0=$(date +%s)
guest_boot "$SERIAL" "aport=$AIO adisc=$ADISC ini=/run/ctl/arbor-nvme-initiator" \
  -virtfs local,path="$CTL",mount_tag=ctl,security_model=none
guest_wait "$SERIAL" "$CTL" start_arbord 127.0.0.1:$AIO 127.0.0.1:$ADISC
if ! kill -0 $APID 2>/dev/null; then log "arbord died: $(tail -5 "$STORE/arbord.log")"; exit 1; fi
grep '^GUEST-TABLE' "$SERIAL" | sed 's/^GUEST-TABLE //'

fail=0
guest_steps "$SERIAL" discover connect-all connect-digest size io-queues-2 fio-verify-qd1-digest fio-verify-qd32-2jobs-digest disconnect-digest \
            connect-plain fio-verify-qd32-plain discard mkfs mount umount e2fsck-clean no-io-errors disconnect-plain reconnect \
            data-intact-after-reconnect e2fsck-clean-after-reconnect refused-host allowed-host snapshot-read-only \
            pg-mkfs pg-initdb pg-start pg-pgbench pg-stop pg-e2fsck \
            kill-connect kill-flushed-region kill-writes-started kill-reconnected kill-writes-after-restart kill-flushed-blocks-intact \
            kill-fio-region-intact nvmet-connect perf-table \
            initiator-nvmet-verify initiator-nvmet-verify-digest initiator-arbord-verify-digest
[ $killed = 1 ] || { echo "FAIL the guest never asked for the kill"; fail=1; }
[ $fail = 0 ] && log "all guest steps passed in $((T1 - T0)) s" || log "guest test FAILED (serial log: $SERIAL)"
exit $fail
