#include "store/checkpoint_format.h"

#include <cstring>

#include "util/check.h"
#include "util/encoding.h"

namespace arbor {

// Header: 0 u32 magic, 4 u32 version, 8 u64 next_volume_id, 16 u64 next_segment_id,
// 24 u64 volume_count, 32 u64 segment_count, 40..63 reserved.
// Volume (208 bytes): 0 id, 8 parent_id, 16 size_bytes, 24 root, 32 u8 level, 33 u8 flags
// (bit 0 snapshot), 34 u16 name length, 36 u32 reserved, 40 created_unix_ms, 48 uuid[16],
// 64 name[136], 200 u64 reserved.
// Segment (40 bytes): 0 id, 8 u32 written_blocks, 12 u32 refs_entry, 16 first_sequence,
// 24 last_sequence, 32 refs_at.
std::vector<uint8_t> encode_checkpoint(const Checkpoint& c) {
  size_t bytes = kCheckpointHeaderBytes + c.volumes.size() * kCheckpointVolumeBytes +
                 c.segments.size() * kCheckpointSegmentBytes;
  bytes = (bytes + kBlockSizeBytes - 1) / kBlockSizeBytes * kBlockSizeBytes;
  std::vector<uint8_t> out(bytes, 0);
  uint8_t* p = out.data();
  put_u32(p, kCheckpointMagic);
  put_u32(p + 4, kCheckpointVersion);
  put_u64(p + 8, c.next_volume_id);
  put_u64(p + 16, c.next_segment_id);
  put_u64(p + 24, c.volumes.size());
  put_u64(p + 32, c.segments.size());
  p += kCheckpointHeaderBytes;
  for (const CheckpointVolume& v : c.volumes) {
    ARBOR_CHECK(v.name.size() <= kMaxStoredNameBytes);
    put_u64(p, v.id);
    put_u64(p + 8, v.parent_id);
    put_u64(p + 16, v.size_bytes);
    put_u64(p + 24, v.root.value);
    p[32] = v.level;
    p[33] = v.snapshot ? 1 : 0;
    put_u16(p + 34, uint16_t(v.name.size()));
    put_u64(p + 40, v.created_unix_ms);
    std::memcpy(p + 48, v.uuid.data(), 16);
    std::memcpy(p + 64, v.name.data(), v.name.size());
    p += kCheckpointVolumeBytes;
  }
  for (const CheckpointSegment& s : c.segments) {
    put_u64(p, s.id);
    put_u32(p + 8, s.written_blocks);
    put_u32(p + 12, s.refs_entry);
    put_u64(p + 16, s.first_sequence);
    put_u64(p + 24, s.last_sequence);
    put_u64(p + 32, s.refs_at.value);
    p += kCheckpointSegmentBytes;
  }
  return out;
}

Result<Checkpoint> decode_checkpoint(std::span<const uint8_t> bytes) {
  if (bytes.size() < kCheckpointHeaderBytes) return corruption("checkpoint: truncated");
  const uint8_t* p = bytes.data();
  if (get_u32(p) != kCheckpointMagic) return corruption("checkpoint: bad magic");
  if (get_u32(p + 4) != kCheckpointVersion) return corruption("checkpoint: unsupported version");
  Checkpoint c;
  c.next_volume_id = get_u64(p + 8);
  c.next_segment_id = get_u64(p + 16);
  uint64_t nv = get_u64(p + 24), ns = get_u64(p + 32);
  if (nv > bytes.size() / kCheckpointVolumeBytes || ns > bytes.size() / kCheckpointSegmentBytes ||
      kCheckpointHeaderBytes + nv * kCheckpointVolumeBytes + ns * kCheckpointSegmentBytes > bytes.size()) {
    return corruption("checkpoint: tables past the end");
  }
  p += kCheckpointHeaderBytes;
  for (uint64_t i = 0; i < nv; i++, p += kCheckpointVolumeBytes) {
    CheckpointVolume v;
    v.id = get_u64(p);
    v.parent_id = get_u64(p + 8);
    v.size_bytes = get_u64(p + 16);
    v.root = PhysicalBlock{get_u64(p + 24)};
    v.level = p[32];
    v.snapshot = (p[33] & 1) != 0;
    uint16_t name_len = get_u16(p + 34);
    if (name_len == 0 || name_len > kMaxStoredNameBytes) return corruption("checkpoint: bad name length");
    v.created_unix_ms = get_u64(p + 40);
    std::memcpy(v.uuid.data(), p + 48, 16);
    v.name.assign(reinterpret_cast<const char*>(p + 64), name_len);
    c.volumes.push_back(std::move(v));
  }
  for (uint64_t i = 0; i < ns; i++, p += kCheckpointSegmentBytes) {
    CheckpointSegment s;
    s.id = get_u64(p);
    s.written_blocks = get_u32(p + 8);
    s.refs_entry = get_u32(p + 12);
    s.first_sequence = get_u64(p + 16);
    s.last_sequence = get_u64(p + 24);
    s.refs_at = PhysicalBlock{get_u64(p + 32)};
    c.segments.push_back(s);
  }
  return c;
}

}  // namespace arbor
