// The embedded default backend: one file per segment in `dir/segments/`, named by the segment id
// in hex, and `dir/superblock` holding the two superblock slots. Reads go through io_uring;
// writes and fdatasync are plain syscalls (uring_io.h says why).
// New segments come from a pool of spare, fully written files (segment_file_pool.h says why), and
// removed segments go back to it.
//
// Threading: thread-safe. File descriptors are opened once and kept in a table under a mutex; reads
// and writes run outside that mutex.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "io/segment_backend.h"
#include "io/segment_file_pool.h"

namespace arbor {

class FileSegmentBackend : public SegmentBackend {
 public:
  // Creates `dir/segments` if missing.
  static Result<std::unique_ptr<FileSegmentBackend>> open(const std::string& dir);
  ~FileSegmentBackend() override;

  Status create(SegmentId id, uint64_t size_bytes) override;
  Status write(SegmentId id, uint64_t offset_bytes, std::span<const uint8_t> data) override;
  Status read(SegmentId id, uint64_t offset_bytes, std::span<uint8_t> out) override;
  Status sync(SegmentId id) override;
  Status seal(SegmentId id) override;
  Status remove(SegmentId id) override;
  Result<std::vector<SegmentId>> list() override;
  Status write_superblock(int slot, std::span<const uint8_t> block) override;
  Status read_superblock(int slot, std::span<uint8_t> block) override;
  uint64_t free_bytes() override;
  Result<FileRead> locate(SegmentId id, uint64_t offset_bytes, std::span<uint8_t> into) override;

  SegmentFilePool& spare_pool() { return *pool_; }

 private:
  explicit FileSegmentBackend(std::string dir) : dir_(std::move(dir)) {}
  std::string segment_path(SegmentId id) const;
  Result<int> fd_of(SegmentId id);
  Status sync_directory(const std::string& path);

  std::string dir_;
  int superblock_fd_ = -1;
  std::mutex mu_;
  std::map<SegmentId, int> fds_;
  std::unique_ptr<SegmentFilePool> pool_;
};

}  // namespace arbor
