// PlannedRead: a read split in two, so that whoever owns an io_uring can do the waiting part.
//
// An event loop must not wait for the disk, and handing a read to a worker thread costs two thread
// switches. Instead the store plans the read under its lock (map lookup, holes and not yet written
// blocks filled in) and returns where the rest lies: runs of bytes in files it holds open. The
// loop reads those on its own ring, as many at once as it has, then calls finish(), which checks
// every block's checksum. Until the PlannedRead is destroyed, the planner keeps every file it
// names open and its bytes unchanged (store: a SegmentPin), so destroy it promptly.
//
// Threading: one thread at a time; it may move between threads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "util/status.h"

namespace arbor {

struct FileRead {
  int fd = -1;
  uint64_t offset = 0;
  std::span<uint8_t> into;  // bytes past the end of the file read as zeros
};

class PlannedRead {
 public:
  virtual ~PlannedRead() = default;
  // Read each of these (in any order, concurrently) before finish().
  const std::vector<FileRead>& file_reads() const { return file_reads_; }
  // Every file read completed: checks what they brought.
  virtual Status finish() = 0;

 protected:
  std::vector<FileRead> file_reads_;
};

}  // namespace arbor
