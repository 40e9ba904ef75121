// Spare segment files, kept ready so the log never appends into a freshly allocated file.
//
// Why: the file backend used to posix_fallocate each new segment. On ext4 (and xfs) that leaves
// unwritten extents, and the first write into one must convert the extent, so each flush's
// fdatasync also commits a file-system journal transaction: two device flushes instead of one.
// Measured here: 8 KiB write + fdatasync took 265 to 354 us into a fallocated file and 138 to 218
// us into one written before. Postgres does the same for its WAL (wal_init_zero, wal_recycle).
//
// So the pool holds whole, fully written segment files in `dir` (STORE/segments/spare/):
//   - recycled: a segment the store removes is renamed here instead of unlinked (its stale records
//     name another segment id, so recovery rejects them as misplaced: docs/format-segment-log.md);
//   - prepared: a background thread zero-fills a new file (O_DIRECT, so no page cache is spent),
//     syncs it and renames it in, whenever the pool is below its target and the file system has
//     room for it and several more segments.
// A crash leaves at most a partial `tmp-*` file, deleted at the next open.
//
// Threading: every method is thread-safe; the preparer thread runs until the pool is destroyed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "util/status.h"

namespace arbor {

struct SegmentFilePoolOptions {
  size_t max_spares = 8;       // recycled files beyond this are unlinked
  size_t prepared_target = 1;  // the preparer keeps at least this many spares
  // The preparer leaves this many segments' worth of free space on the file system untouched.
  uint64_t reserve_segments = 8;
};

class SegmentFilePool {
 public:
  // `free_bytes` reports the file system's free space (the preparer checks it before each file).
  static Result<std::unique_ptr<SegmentFilePool>> open(std::string dir, SegmentFilePoolOptions options,
                                                       std::function<uint64_t()> free_bytes);
  ~SegmentFilePool();
  SegmentFilePool(const SegmentFilePool&) = delete;
  SegmentFilePool& operator=(const SegmentFilePool&) = delete;

  // Moves a spare of exactly `size_bytes` to `dest` (rename; the caller syncs dest's directory).
  // Returns false when there is none. Also tells the preparer which size to make.
  Result<bool> take(const std::string& dest, uint64_t size_bytes);
  // Adopts the segment file at `path` as a spare if the pool has room and it is whole; returns
  // false (the caller unlinks it) otherwise.
  bool give(const std::string& path);

  size_t spare_count();
  uint64_t spare_bytes();
  // Blocks until the preparer has nothing left to do (tests).
  void wait_idle();

 private:
  SegmentFilePool(std::string dir, SegmentFilePoolOptions options, std::function<uint64_t()> free_bytes);
  struct Spare {
    std::string path;
    uint64_t size_bytes;
  };
  std::string next_name(const char* prefix);
  bool needs_preparing() const;  // under mu_
  void run_preparer();
  Status prepare_one(uint64_t size_bytes);

  const std::string dir_;
  const SegmentFilePoolOptions options_;
  const std::function<uint64_t()> free_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Spare> spares_;
  uint64_t wanted_size_ = 0;  // 0 until the first take(): the segment size is the store's choice
  uint64_t counter_ = 0;
  bool preparing_ = false;
  bool stopping_ = false;
  bool gave_up_ = false;  // a preparation failed (ENOSPC, EIO): retried only after a take()
  std::thread preparer_;
};

}  // namespace arbor
