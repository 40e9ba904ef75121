// Units of the data path. Block, byte and segment addresses never share a bare integer type.
#pragma once

#include <cstddef>
#include <cstdint>

namespace arbor {

inline constexpr uint32_t kBlockSizeBytes = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint32_t kSectorSizeBytes = 512;

// A logical block number inside a volume (4 KiB units).
struct LogicalBlock {
  uint64_t value = 0;
  friend bool operator==(LogicalBlock, LogicalBlock) = default;
  friend auto operator<=>(LogicalBlock, LogicalBlock) = default;
};

// A physical block address in the store: segment id and block index inside the segment, packed as
// (segment_id << segment_shift) | index. Zero means "no block" (segment 0 is never used), so an
// unwritten logical block is a zero entry and reads as zeros.
struct PhysicalBlock {
  uint64_t value = 0;
  bool is_null() const { return value == 0; }
  friend bool operator==(PhysicalBlock, PhysicalBlock) = default;
  friend auto operator<=>(PhysicalBlock, PhysicalBlock) = default;
};

inline constexpr uint64_t kib(uint64_t n) { return n << 10; }
inline constexpr uint64_t mib(uint64_t n) { return n << 20; }
inline constexpr uint64_t gib(uint64_t n) { return n << 30; }

}  // namespace arbor
