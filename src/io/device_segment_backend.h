// A store on one block device (or one preallocated file): segments are fixed slots on the device.
//
//   offset 0      superblock slot 0 (4 KiB)      offset 4 KiB   superblock slot 1
//   offset 8 KiB  device label (4 KiB): magic, version, segment size, slot count, crc
//   offset 1 MiB  slot 0 | slot 1 | ... each segment_size bytes
//
// Segment ids are never reused but slots are. Which slot holds which segment is not stored: each
// segment's first record header names its segment id (docs/format-segment-log.md), so open reads
// the first block of every slot. remove() zeroes that block so a freed slot never resurrects; a
// reused slot's stale records after the new ones carry the old segment id and fail the log's
// misplaced-record check. Spec: docs/format-device.md.
//
// Threading: thread-safe (a mutex guards the slot table; I/O runs outside it).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/segment_backend.h"

namespace arbor {

class DeviceSegmentBackend : public SegmentBackend {
 public:
  // Opens `path` (a block device or a regular file). A device without a label is labelled with
  // `segment_size_bytes` when `format` is true; otherwise its own label's segment size is used.
  static Result<std::unique_ptr<DeviceSegmentBackend>> open(const std::string& path, uint64_t segment_size_bytes,
                                                            bool format);
  ~DeviceSegmentBackend() override;

  uint64_t segment_size_bytes() const { return segment_size_; }
  uint64_t slot_count() const { return slots_; }

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

 private:
  DeviceSegmentBackend(int fd, uint64_t segment_size, uint64_t slots) : fd_(fd), segment_size_(segment_size), slots_(slots) {}
  Result<uint64_t> slot_offset(SegmentId id, uint64_t offset, uint64_t length);
  Status scan();

  int fd_;
  uint64_t segment_size_;
  uint64_t slots_;
  std::mutex mu_;
  std::map<SegmentId, uint64_t> slot_of_;  // segment -> slot
  std::vector<bool> slot_used_;
};

}  // namespace arbor
