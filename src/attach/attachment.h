// Attach: makes a local block device of a volume.
//
//   /dev/nbdN   --(the kernel's NBD client, kernel_nbd.h)--> arbord's NBD unix socket
//                                                        [where the kernel has nbd: auto]
//   /dev/loopN  --(losetup --direct-io=on)-->  MOUNT/disk  (one-file FUSE mount)
//       --> served in arbord by FuseDisk (fuse_disk.h) straight from the engine     [default]
//       --> or by nbdfuse, over NBD on the daemon's unix socket                       [reference]
//
// The in-process server drops the NBD hop and the extra process: measured here (fio 4 KiB,
// qd 32) about 3x the IOPS of the nbdfuse path (docs/cli.md). arbord records every attachment so
// that an attached volume cannot be deleted, and detaches them all on a graceful stop.
//
// Threading: attach() and detach() block (they run external programs) and keep no shared state;
// the caller serializes attach/detach of the same volume.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "proto/block_export.h"
#include "util/status.h"

namespace arbor::attach {

class FuseDisk;

enum class AttachVia {
  kAuto,       // the kernel's NBD client where it has one and arbord serves a unix socket, else kFuse
  kKernelNbd,  // the kernel's NBD client, or fail
  kFuse,       // loop over the in-process FuseDisk (`exported`)
  kNbdfuse,    // loop over nbdfuse (the reference)
};

struct AttachRequest {
  std::string volume;      // export name
  std::string nbd_socket;  // unix socket of the NBD server
  std::string mount_dir;   // an empty or absent directory for the FUSE mount (created)
  std::string log_path;    // nbdfuse's stderr goes here
  bool read_only = false;
  AttachVia via = AttachVia::kAuto;
  // The export the in-process FuseDisk serves (kAuto without kernel nbd, kFuse).
  std::shared_ptr<proto::BlockExport> exported;
};

struct Attachment {
  std::string volume;
  std::string device;     // "/dev/loop3", or "/dev/nbd0" when kernel_nbd
  std::string mount_dir;  // FUSE mountpoint
  std::string file;       // mount_dir + "/disk", the loop device's backing file
  pid_t fuse_pid = -1;    // nbdfuse, a child of the caller
  std::shared_ptr<FuseDisk> fuse_disk;  // or the in-process server
  bool read_only = false;
  bool kernel_nbd = false;  // device is the kernel's NBD client; no FUSE mount, no loop device
};

// A block device whose queue says "write through" completes flushes without passing them on: the
// file system above then believes its commits durable while they sit in arbord's open record. The
// kernel keeps a "write through" set through sysfs on a loop or NBD device across detach and reuse,
// so a device someone (a tool, an admin, a test) switched once would silently lose every flush of
// the next volume attached on it. Sets it back to "write back"; fails when that does not take.
// A read-only device is left as it is.
Status ensure_write_back(const std::string& device);

// Connects the kernel's NBD client to the export, or mounts the export (in process, or with
// nbdfuse), waits until it serves, and sets up a loop device over it; per request.via. The
// kernel path lists its device in a file `kernel-nbd` in mount_dir. NBD devices listed there
// before (a dead arbord's) are disconnected first, or, while still mounted, kept on the list for
// the next attach, detach or cleanup_stale. Undoes everything it did on failure.
Result<Attachment> attach(const AttachRequest& request);

// Removes the loop device, unmounts the FUSE file and stops its server. Refuses (kBusy) while the
// loop device is mounted or held open exclusively.
Status detach(const Attachment& attachment);

// True when `path` exists.
bool file_exists(const std::string& path);

// True when a filesystem on `device` is mounted (per /proc/mounts).
bool device_mounted(const std::string& device);

// For a volume with no attachment whose mount dir is `mount_dir`: disconnects the kernel NBD
// devices a dead arbord left for it, unless still mounted (those stay listed). Returns one line
// per such device found connected.
std::vector<std::string> release_stale_nbd(const std::string& mount_dir, const std::string& volume);

// After a crash of the process that made them: disconnects the kernel NBD devices listed in
// `attach_dir`/*/kernel-nbd, removes loop devices over `attach_dir`/*/disk and unmounts the FUSE
// mounts there, so a restarted daemon starts with no attachments. Devices still mounted are left
// alone and reported (NBD devices stay listed). Returns one line per thing it did or could not do.
std::vector<std::string> cleanup_stale(const std::string& attach_dir);

}  // namespace arbor::attach
