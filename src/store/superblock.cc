#include "store/superblock.h"

#include <cstring>

#include "util/check.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor {

void encode_superblock(const Superblock& sb, std::span<uint8_t> block) {
  ARBOR_CHECK(block.size() == kBlockSizeBytes);
  std::memset(block.data(), 0, block.size());
  uint8_t* p = block.data();
  put_u32(p, kSuperblockMagic);
  put_u32(p + 4, kSuperblockVersion);
  put_u64(p + 8, sb.checkpoint_number);
  put_u64(p + 16, sb.checkpoint_at.value);
  put_u64(p + 24, sb.checkpoint_sequence);
  put_u32(p + 32, sb.blocks_per_segment);
  put_u32(p + 36, kBlockSizeBytes);
  std::memcpy(p + 40, sb.store_uuid.data(), 16);
  put_u32(p + 56, crc32c(p, kBlockSizeBytes));
}

Result<Superblock> decode_superblock(std::span<const uint8_t> block) {
  const uint8_t* p = block.data();
  if (get_u32(p) != kSuperblockMagic) return corruption("superblock: bad magic");
  if (crc32c_with_zero_field(p, kBlockSizeBytes, 56) != get_u32(p + 56)) return corruption("superblock: checksum mismatch");
  if (get_u32(p + 4) != kSuperblockVersion) return corruption("superblock: unsupported version");
  if (get_u32(p + 36) != kBlockSizeBytes) return corruption("superblock: unsupported block size");
  Superblock sb;
  sb.checkpoint_number = get_u64(p + 8);
  sb.checkpoint_at = PhysicalBlock{get_u64(p + 16)};
  sb.checkpoint_sequence = get_u64(p + 24);
  sb.blocks_per_segment = get_u32(p + 32);
  std::memcpy(sb.store_uuid.data(), p + 40, 16);
  if (sb.blocks_per_segment < 256 || sb.blocks_per_segment > (1u << 16)) return corruption("superblock: bad segment size");
  return sb;
}

}  // namespace arbor
