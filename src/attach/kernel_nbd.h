// The kernel's own NBD client, where the kernel has one: a volume as /dev/nbdN.
//
//   /dev/nbdN --(nbd.ko, one socket per connection)--> arbord's NBD unix socket
//
// One hop from the block layer to arbord, against two for the loop device over a FUSE file (the
// loop worker, then the FUSE queue). nbd-client (Debian package nbd-client) does the handshake
// on each connection and hands the sockets to the kernel over netlink, then exits; the kernel
// owns the connections from then on. Kernels without nbd (this project's development machines)
// use the FUSE path instead (attachment.h).
//
// Threading: no state; callers serialize attach/detach of the same volume. Two attaches at once
// may race for the same free device: the loser's nbd-client fails and the next device is tried.
#pragma once

#include <string>

#include "util/status.h"

namespace arbor::attach {

// True when the kernel has nbd (loaded, or loadable with modprobe) and nbd-client is installed.
bool kernel_nbd_available();

// Connects a free /dev/nbdN to export `volume` on the NBD unix socket `socket` with
// `connections` connections and 4 KiB blocks, and returns the device once it has the export's
// size. A read-only export makes a read-only device.
Result<std::string> connect_kernel_nbd(const std::string& socket, const std::string& volume, int connections);

// Disconnects `device` (nbd-client -d) and waits until it has no size left. Refuses while a
// filesystem on it is mounted.
Status disconnect_kernel_nbd(const std::string& device);

// The size in 512-byte sectors of /dev/nbdN (0 when not connected; -1 when there is no such device).
long long kernel_nbd_sectors(const std::string& device);

}  // namespace arbor::attach
