#include "log/segment_log.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/sim_segment_backend.h"
#include "util/crc32c.h"

namespace arbor {

TEST(RecordFormat, RoundTripAndRejectsDamage) {
  RecordHeader h;
  h.kind = RecordKind::kWrite;
  h.sequence = 42;
  h.segment = 7;
  h.block_index = 3;
  h.payload_blocks = 2;
  h.entries = {{1, 100, 0xABCD}, {1, 101, 0xEF01}};
  std::vector<uint8_t> block(kBlockSizeBytes);
  encode_record_header(h, block);
  auto d = decode_record_header(block);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->sequence, 42u);
  EXPECT_EQ(d->entries.size(), 2u);
  EXPECT_EQ(d->entries[1].a, 101u);
  block[100] ^= 0x10;  // any flipped bit fails the header checksum
  EXPECT_EQ(decode_record_header(block).status().code(), Code::kCorruption);
}

TEST(SegmentLog, OpenWriteRecordIsReadableAndRollsOver) {
  SimDisk disk(1);
  auto backend = disk.mount();
  SegmentLog log(*backend, 256);
  std::vector<uint8_t> data(kBlockSizeBytes);
  std::vector<PhysicalBlock> at;
  for (int i = 0; i < 600; i++) {
    std::memset(data.data(), i & 0xFF, data.size());
    auto r = log.add_data_block(RecordKind::kWrite, 1, uint64_t(i), data, crc32c(data.data(), data.size()));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    at.push_back(*r);
  }
  // Blocks of the still-open record come from memory, older ones from the device.
  std::vector<uint8_t> out(kBlockSizeBytes);
  for (int i = 0; i < 600; i += 37) {
    ASSERT_TRUE(log.read_blocks(at[i], out).is_ok());
    EXPECT_EQ(out[0], uint8_t(i & 0xFF)) << i;
  }
  ASSERT_TRUE(log.commit_open_record().is_ok());
  EXPECT_GE(log.segments().size(), 3u);  // 600 blocks + headers do not fit in two 256-block segments
  for (auto& [id, s] : log.segments()) EXPECT_LE(s.written_blocks, 256u);
  ASSERT_TRUE(log.read_blocks(at[599], out).is_ok());
  EXPECT_EQ(out[0], uint8_t(599 & 0xFF));
}

}  // namespace arbor
