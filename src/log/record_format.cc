#include "log/record_format.h"

#include <cstring>

#include "util/check.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor {

void encode_record_header(const RecordHeader& h, std::span<uint8_t> block) {
  ARBOR_CHECK(block.size() == kBlockSizeBytes);
  ARBOR_CHECK(h.entries.size() <= kRecordMaxEntries);
  std::memset(block.data(), 0, block.size());
  uint8_t* p = block.data();
  put_u32(p + 0, kRecordMagic);
  put_u16(p + 4, kRecordVersion);
  put_u16(p + 6, uint16_t(h.kind));
  put_u64(p + 8, h.sequence);
  put_u64(p + 16, h.segment);
  put_u32(p + 24, h.block_index);
  put_u32(p + 28, h.payload_blocks);
  put_u32(p + 32, uint32_t(h.entries.size()));
  put_u32(p + 36, h.payload_crc);
  put_u64(p + 40, h.subject);
  put_u64(p + 56, h.synced_sequence);
  uint8_t* e = p + kRecordHeaderBytes;
  for (const RecordEntry& entry : h.entries) {
    put_u64(e + 0, entry.volume);
    put_u64(e + 8, entry.a);
    put_u64(e + 16, entry.b);
    e += kRecordEntryBytes;
  }
  put_u32(p + 48, crc32c(p, kBlockSizeBytes));
}

Result<RecordHeader> decode_record_header(std::span<const uint8_t> block) {
  if (block.size() != kBlockSizeBytes) return corruption("record header: wrong size");
  const uint8_t* p = block.data();
  if (get_u32(p) != kRecordMagic) return corruption("record header: bad magic");
  if (get_u16(p + 4) != kRecordVersion) return corruption("record header: unknown version");
  uint32_t stored_crc = get_u32(p + 48);
  if (crc32c_with_zero_field(p, kBlockSizeBytes, 48) != stored_crc) return corruption("record header: checksum mismatch");
  RecordHeader h;
  uint16_t kind = get_u16(p + 6);
  if (kind < 1 || kind > 7) return corruption("record header: unknown kind");
  h.kind = RecordKind(kind);
  h.sequence = get_u64(p + 8);
  h.segment = get_u64(p + 16);
  h.block_index = get_u32(p + 24);
  h.payload_blocks = get_u32(p + 28);
  uint32_t count = get_u32(p + 32);
  if (count > kRecordMaxEntries) return corruption("record header: entry count out of range");
  h.payload_crc = get_u32(p + 36);
  h.subject = get_u64(p + 40);
  h.synced_sequence = get_u64(p + 56);
  h.entries.resize(count);
  const uint8_t* e = p + kRecordHeaderBytes;
  for (uint32_t i = 0; i < count; i++, e += kRecordEntryBytes) {
    h.entries[i] = {get_u64(e), get_u64(e + 8), get_u64(e + 16)};
  }
  return h;
}

}  // namespace arbor
