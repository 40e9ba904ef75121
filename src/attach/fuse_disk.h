// FuseDisk: one volume served as a one-file FUSE mount from inside arbord, for a loop device.
//
//   /dev/loopN --(losetup --direct-io=on)--> MOUNT/disk --(FUSE, in arbord)--> BlockExport --> store
//
// The reference path (nbdfuse, a separate process) puts an NBD hop and two more context switches
// between every loop I/O and the store; here the FUSE request is served by the engine directly.
// The file is opened direct_io (no page cache of its own: the loop device and the store already
// have theirs); fsync is a store flush (DESIGN invariant 1), fallocate(PUNCH_HOLE) a trim and
// fallocate(ZERO_RANGE) write-zeroes, so discard from the filesystem above gives space back.
//
// Threading: libfuse's multi-threaded loop on its own threads (`threads` at most); BlockExport
// is thread-safe. stop() (or the destructor) unmounts and joins; the loop device must be gone.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proto/block_export.h"
#include "util/status.h"

struct fuse_session;

namespace arbor::attach {

class FuseDisk {
 public:
  // Mounts `mount_dir` (created if absent) with one file, `mount_dir`/disk, the size of the export.
  static Result<std::unique_ptr<FuseDisk>> start(std::shared_ptr<proto::BlockExport> exported,
                                                 const std::string& mount_dir, int threads = 4);
  ~FuseDisk();
  FuseDisk(const FuseDisk&) = delete;
  FuseDisk& operator=(const FuseDisk&) = delete;

  void stop();
  // Blocks until the FUSE loop ends: stop(), or the mount was unmounted from outside.
  void wait_unmounted();
  const std::string& file() const { return file_; }
  proto::BlockExport& exported() { return *export_; }

 private:
  FuseDisk() = default;
  std::shared_ptr<proto::BlockExport> export_;
  std::string mount_dir_, file_;
  fuse_session* session_ = nullptr;
  std::thread loop_;
  bool stopped_ = false;
  std::mutex ended_mu_;
  std::condition_variable ended_cv_;
  bool loop_ended_ = false;  // under ended_mu_: the FUSE loop returned (stop(), or an outside unmount)
};

}  // namespace arbor::attach
