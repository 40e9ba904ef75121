// The segment log's record: one 4 KiB header block followed by `payload_blocks` 4 KiB blocks,
// written contiguously inside one segment. Spec: docs/format-segment-log.md.
//
// Header block layout (little-endian):
//   0  u32 magic 'ARLG'        4  u16 version (1)        6  u16 kind (RecordKind)
//   8  u64 sequence            16 u64 segment id         24 u32 block index of this header
//   28 u32 payload_blocks      32 u32 entry_count        36 u32 payload_crc (NODES: 0)
//   40 u64 subject (reserved, zero)
//   48 u32 header_crc (crc32c of the 4 KiB with this field zero)    52 u32 reserved, zero
//   56 u64 synced_sequence (every record up to this one was durable when this was written)
//   64 entries: WRITE/RELOC: 24 bytes {u64 volume, u64 logical block, u32 crc32c, u32 flags}
//               TRIM: 24 bytes {u64 volume, u64 first logical block, u64 block count}
//               REFS: 24 bytes {u64 segment id, u64 payload byte offset, u64 byte length}
//               VOLUME_OP: one entry {u64 op, u64 volume id, u64 argument}
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "util/status.h"
#include "util/units.h"

namespace arbor {

inline constexpr uint32_t kRecordMagic = 0x474C5241;  // "ARLG"
inline constexpr uint16_t kRecordVersion = 1;
inline constexpr size_t kRecordHeaderBytes = 64;
inline constexpr size_t kRecordEntryBytes = 24;
inline constexpr uint32_t kRecordMaxEntries = (kBlockSizeBytes - kRecordHeaderBytes) / kRecordEntryBytes;  // 168
// Data blocks per WRITE record: bounds the write buffer and the loss window of one torn record.
inline constexpr uint32_t kWriteRecordMaxBlocks = 128;
static_assert(kWriteRecordMaxBlocks <= kRecordMaxEntries);

enum class RecordKind : uint16_t {
  kWrite = 1,       // data blocks of volumes, journalled: replayed after the last checkpoint
  kTrim = 2,        // deallocated ranges: replayed
  kNodes = 3,       // block-map nodes (each self-checksummed); reached only through a checkpoint
  kRefs = 4,        // reference counts of up to 168 segments (run-length encoded, see RefTable)
  kCheckpoint = 5,  // the volume table and segment table (docs/format-checkpoint.md)
  kReloc = 6,       // data blocks moved by the cleaner: same entries as WRITE, never replayed
  kVolumeOp = 7,    // create, branch, snapshot, delete or resize of a volume: replayed
};

struct RecordEntry {
  uint64_t volume = 0;
  uint64_t a = 0;  // WRITE/RELOC: logical block. TRIM: first logical block.
  uint64_t b = 0;  // WRITE/RELOC: crc32c (low 32 bits) | flags << 32. TRIM: block count.
};

struct RecordHeader {
  RecordKind kind = RecordKind::kWrite;
  uint64_t sequence = 0;
  uint64_t segment = 0;
  uint32_t block_index = 0;
  uint32_t payload_blocks = 0;
  uint32_t payload_crc = 0;
  uint64_t subject = 0;
  // The log's durability watermark when this record was written: a record at or below it that
  // is missing or damaged on replay is corruption, not a torn tail (docs/format-segment-log.md).
  uint64_t synced_sequence = 0;
  std::vector<RecordEntry> entries;
};

// Encodes into exactly one 4 KiB block (entries must fit: kRecordMaxEntries).
void encode_record_header(const RecordHeader& h, std::span<uint8_t> block);
// Decodes and checks magic, version, kind, crc and entry bounds. Corruption when any fails (for a
// log scan this is "end of the log"; for a referenced record it is real corruption).
Result<RecordHeader> decode_record_header(std::span<const uint8_t> block);

}  // namespace arbor
