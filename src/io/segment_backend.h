// SegmentBackend: the one seam between the engine and physical storage.
//
// Physical space is a set of fixed-size segments, each written append-only by the SegmentLog and
// never rewritten once sealed, plus two superblock slots written in place, alternately. Backends:
// a directory of files (file_segment_backend.h, the embedded default, I/O through io_uring), the
// simulated device used by tests (sim_segment_backend.h), later Ceph RADOS and S3 (sealed segments
// as whole objects).
//
// Threading: read() and locate() may be called concurrently with anything except remove() of the
// same segment (a segment a reader has pinned is removed only after the pin is released); writes
// and removals are serialized by the SegmentLog and the Store above it. Durability: write() is
// not durable until sync() of that segment returns; write_superblock() is durable on return.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/planned_read.h"
#include "util/status.h"

namespace arbor {

using SegmentId = uint64_t;
inline constexpr size_t kSuperblockSizeBytes = 4096;

class SegmentBackend {
 public:
  virtual ~SegmentBackend() = default;

  // Creates an empty segment that can hold `size_bytes`. The id is new (ids are never reused).
  virtual Status create(SegmentId id, uint64_t size_bytes) = 0;
  // Writes at `offset_bytes` (4 KiB aligned, at or past everything written before).
  virtual Status write(SegmentId id, uint64_t offset_bytes, std::span<const uint8_t> data) = 0;
  // Reads bytes never written as zeros.
  virtual Status read(SegmentId id, uint64_t offset_bytes, std::span<uint8_t> out) = 0;
  // Makes every completed write() to the segment durable.
  virtual Status sync(SegmentId id) = 0;
  // The segment will not be written again (object backends upload it whole here).
  virtual Status seal(SegmentId id) = 0;
  virtual Status remove(SegmentId id) = 0;
  virtual Result<std::vector<SegmentId>> list() = 0;

  // Superblock slots 0 and 1. read returns NotFound when the slot was never written.
  virtual Status write_superblock(int slot, std::span<const uint8_t> block) = 0;
  virtual Status read_superblock(int slot, std::span<uint8_t> block) = 0;

  // Bytes the backend can still take (free space of the file system, or of the device).
  virtual uint64_t free_bytes() = 0;

  // Where `length` bytes of a segment from `offset_bytes` lie in a file this backend holds open,
  // for a caller that reads them with its own I/O engine (planned_read.h). The descriptor stays
  // valid until remove(id). NotSupported where bytes are not in a local file (simulation, objects).
  virtual Result<FileRead> locate(SegmentId id, uint64_t offset_bytes, std::span<uint8_t> into) {
    (void)id, (void)offset_bytes, (void)into;
    return not_supported("segments of this backend are not local files");
  }
};

}  // namespace arbor
