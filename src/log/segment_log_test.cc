#include "log/segment_log.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// Fills `log` until it has rolled over `segments` times; returns the ids of the sealed segments.
std::vector<SegmentId> fill_segments(SegmentLog& log, int segments) {
  std::vector<uint8_t> data(kBlockSizeBytes, 0x5A);
  uint32_t crc = crc32c(data.data(), data.size());
  for (uint64_t i = 0; log.segments().size() <= size_t(segments); i++) {
    auto r = log.add_data_block(RecordKind::kWrite, 1, i, data, crc);
    if (!r.is_ok() || i > 100000) {
      ADD_FAILURE() << "could not fill " << segments << " segments: " << r.status().to_string();
      break;
    }
  }
  EXPECT_TRUE(log.commit_open_record().is_ok());
  std::vector<SegmentId> sealed;
  for (auto& [id, s] : log.segments())
    if (id != log.open_segment()) sealed.push_back(id);
  return sealed;
}

bool on_backend(SegmentBackend& b, SegmentId id) {
  auto ids = b.list();
  EXPECT_TRUE(ids.is_ok());
  return std::find(ids->begin(), ids->end(), id) != ids->end();
}

TEST(SegmentPin, DropNeverWaitsAndRemovesOnceEveryEarlierPinIsReleased) {
  // Removal happens in remove_released(), after the pins: releasing one never does I/O.
  SimDisk disk(1);
  auto backend = disk.mount();
  SegmentLog log(*backend, 256);  // a segment holds at least one full WRITE record (129 blocks)
  std::vector<SegmentId> sealed = fill_segments(log, 4);
  ASSERT_GE(sealed.size(), 3u);

  // No pins: removed at once.
  ASSERT_TRUE(log.drop_segment(sealed[0]).is_ok());
  EXPECT_FALSE(on_backend(*backend, sealed[0]));

  // Pin a, drop s1, pin b, drop s2: s1 may be read through a only, s2 through a and b.
  SegmentPin a = log.pin_segments();
  ASSERT_TRUE(log.drop_segment(sealed[1]).is_ok());
  SegmentPin b = log.pin_segments();
  ASSERT_TRUE(log.drop_segment(sealed[2]).is_ok());
  SegmentPin c = log.pin_segments();  // taken after both drops: holds neither
  EXPECT_EQ(log.doomed_segments(), 2u);
  EXPECT_TRUE(on_backend(*backend, sealed[1]));
  EXPECT_TRUE(on_backend(*backend, sealed[2]));

  b.release();  // a still holds both
  ASSERT_TRUE(log.remove_released().is_ok());
  EXPECT_EQ(log.doomed_segments(), 2u);
  EXPECT_TRUE(on_backend(*backend, sealed[1]));
  a.release();  // the last pin that may read either: both may go, though c is held
  EXPECT_EQ(log.doomed_segments(), 2u);
  EXPECT_TRUE(on_backend(*backend, sealed[1]));
  ASSERT_TRUE(log.remove_released().is_ok());
  EXPECT_EQ(log.doomed_segments(), 0u);
  EXPECT_FALSE(on_backend(*backend, sealed[1]));
  EXPECT_FALSE(on_backend(*backend, sealed[2]));

  // A pin moved from keeps nothing; the moved-to one keeps its epoch's segments.
  SegmentPin d = std::move(c);
  ASSERT_GE(log.segments().size(), 2u);
  SegmentId s3 = log.segments().begin()->first;
  ASSERT_NE(s3, log.open_segment());
  ASSERT_TRUE(log.drop_segment(s3).is_ok());
  c.release();  // no-op
  ASSERT_TRUE(log.remove_released().is_ok());
  EXPECT_TRUE(on_backend(*backend, s3));
  d = SegmentPin();  // move-assigning releases
  ASSERT_TRUE(log.remove_released().is_ok());
  EXPECT_FALSE(on_backend(*backend, s3));
}

}  // namespace arbor
