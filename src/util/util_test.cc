#include <gtest/gtest.h>

#include <cstring>

#include "util/crc32c.h"
#include "util/encoding.h"
#include "util/human_size.h"

namespace arbor {

TEST(Crc32c, StandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c_extend(crc32c("1234", 4), "56789", 5), 0xE3069283u);
}

TEST(Crc32c, WithZeroFieldEqualsCrcOfTheZeroedCopy) {
  uint8_t block[64];
  for (int i = 0; i < 64; i++) block[i] = uint8_t(i * 37 + 1);
  uint8_t zeroed[64];
  std::memcpy(zeroed, block, 64);
  std::memset(zeroed + 20, 0, 4);
  EXPECT_EQ(crc32c_with_zero_field(block, 64, 20), crc32c(zeroed, 64));
}

TEST(Encoding, LittleAndBigEndianRoundTrip) {
  uint8_t b[8];
  put_u64(b, 0x0102030405060708ull);
  EXPECT_EQ(b[0], 0x08);
  EXPECT_EQ(get_u64(b), 0x0102030405060708ull);
  put_u64_be(b, 0x0102030405060708ull);
  EXPECT_EQ(b[0], 0x01);
  EXPECT_EQ(get_u64_be(b), 0x0102030405060708ull);
  put_u32_be(b, 0xAABBCCDD);
  EXPECT_EQ(get_u32_be(b), 0xAABBCCDDu);
}

TEST(HumanSize, ParsesUnits) {
  EXPECT_EQ(*parse_size_bytes("10G"), 10ull << 30);
  EXPECT_EQ(*parse_size_bytes("10GiB"), 10ull << 30);
  EXPECT_EQ(*parse_size_bytes("512m"), 512ull << 20);
  EXPECT_EQ(*parse_size_bytes("4096"), 4096ull);
  EXPECT_EQ(*parse_size_bytes("1.5K"), 1536ull);
}

TEST(HumanSize, RefusesBadInput) {
  for (const char* bad : {"", "G", "-1G", "10X", "1.0001K", "99999999999999999999", "16777216T"}) {
    auto r = parse_size_bytes(bad);
    EXPECT_FALSE(r.is_ok()) << bad;
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    }
  }
}

TEST(HumanSize, Formats) {
  EXPECT_EQ(format_size_bytes(0), "0 B");
  EXPECT_EQ(format_size_bytes(10ull << 30), "10 GiB");
  EXPECT_EQ(format_size_bytes(1536), "1.5 KiB");
}

}  // namespace arbor
