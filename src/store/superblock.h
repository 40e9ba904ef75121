// The superblock: where the last checkpoint is. Two 4 KiB slots written alternately (slot =
// checkpoint_number % 2), so a torn superblock write leaves the other slot, one checkpoint older,
// intact. Spec: docs/format-checkpoint.md.
//
//   0 u32 magic 'ASPB'   4 u32 version (1)   8 u64 checkpoint_number   16 u64 checkpoint record
//   address (PhysicalBlock of its header)    24 u64 checkpoint record sequence
//   32 u32 blocks_per_segment   36 u32 block size (4096)   40 u8[16] store uuid
//   56 u32 crc32c of the 4 KiB with this field zero   60.. reserved, zero
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "util/status.h"
#include "util/units.h"

namespace arbor {

inline constexpr uint32_t kSuperblockMagic = 0x42505341;  // "ASPB"
inline constexpr uint32_t kSuperblockVersion = 1;

struct Superblock {
  uint64_t checkpoint_number = 0;
  PhysicalBlock checkpoint_at;
  uint64_t checkpoint_sequence = 0;
  uint32_t blocks_per_segment = 0;
  std::array<uint8_t, 16> store_uuid{};
};

void encode_superblock(const Superblock& sb, std::span<uint8_t> block);
Result<Superblock> decode_superblock(std::span<const uint8_t> block);

}  // namespace arbor
