// The checkpoint: the payload of a CHECKPOINT record, holding the volume table and the segment
// table (with where each segment's reference counts were last written). Everything a store needs
// besides the block-map nodes (reached from volume roots) and the journal after it.
// Spec: docs/format-checkpoint.md.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/status.h"
#include "util/units.h"

namespace arbor {

inline constexpr uint32_t kCheckpointMagic = 0x504B4341;  // "ACKP"
inline constexpr uint32_t kCheckpointVersion = 1;
inline constexpr size_t kCheckpointHeaderBytes = 64;
inline constexpr size_t kCheckpointVolumeBytes = 208;
inline constexpr size_t kCheckpointSegmentBytes = 40;
inline constexpr size_t kMaxStoredNameBytes = 136;

struct CheckpointVolume {
  uint64_t id = 0;
  uint64_t parent_id = 0;  // 0: none
  uint64_t size_bytes = 0;
  PhysicalBlock root;
  uint8_t level = 0;
  bool snapshot = false;
  uint64_t created_unix_ms = 0;
  std::array<uint8_t, 16> uuid{};
  std::string name;
};

struct CheckpointSegment {
  uint64_t id = 0;
  uint32_t written_blocks = 0;
  uint64_t first_sequence = 0;
  uint64_t last_sequence = 0;
  PhysicalBlock refs_at;    // REFS record header; null: every count is zero
  uint32_t refs_entry = 0;  // which entry of that record
};

struct Checkpoint {
  uint64_t next_volume_id = 1;
  uint64_t next_segment_id = 1;
  std::vector<CheckpointVolume> volumes;
  std::vector<CheckpointSegment> segments;
};

// Encodes into whole 4 KiB blocks.
std::vector<uint8_t> encode_checkpoint(const Checkpoint& c);
Result<Checkpoint> decode_checkpoint(std::span<const uint8_t> bytes);

}  // namespace arbor
