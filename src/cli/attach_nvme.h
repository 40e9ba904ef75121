// `arbor attach NAME --transport nvme-tcp` / `arbor detach NAME --transport nvme-tcp`: the
// kernel's NVMe/TCP initiator on arbord's NVMe/TCP endpoint (docs/cli.md).
//
// Attach: finds arbord's nvme-tcp endpoint (GET /v1/daemon/status), checks NAME exists, needs the
// kernel's nvme-tcp (/sys/module/nvme_tcp, else `modprobe nvme-tcp`) and nvme-cli, runs
// `nvme connect -t tcp -a HOST -s PORT -n nqn.2026-01.dev.arbor:NAME`, waits (bounded) for the
// namespace's block device and prints it (/dev/nvme0n1). The host NQN is the system's
// (/etc/nvme/hostnqn), so `arbor export allow NAME HOSTNQN` applies.
// Detach: `nvme disconnect -n NQN`; kNotFound when nothing was connected.
// Without the kernel module: our userspace initiator behind a one-file FUSE mount
// (arbor-nvme-fuse, src/nvme_initiator/fuse_main.cc) and a loop device; state in
// STORE/attach-nvme/NAME/{pid,device,fuse.log}, the mount at .../mnt. arbord does not track these
// connections (the kernel or the helper owns them); it sees an open NVMe connection, so the volume
// cannot be deleted while attached.
#pragma once

#include <string>

#include "cli/commands.h"
#include "util/status.h"

namespace arbor::cli {

Status attach_nvme_tcp(const Context& ctx, const std::string& name);
Status detach_nvme_tcp(const Context& ctx, const std::string& name);

}  // namespace arbor::cli
