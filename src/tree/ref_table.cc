#include "tree/ref_table.h"

#include "log/segment_log.h"
#include "util/check.h"
#include "util/encoding.h"

namespace arbor {

std::vector<uint32_t>& RefTable::counts_of(SegmentId s) {
  auto& v = counts_[s];
  if (v.empty()) v.assign(blocks_per_segment_, 0);
  return v;
}

uint32_t RefTable::get(PhysicalBlock b) const {
  auto it = counts_.find(segment_of(b));
  if (it == counts_.end()) return 0;
  uint32_t i = index_of(b);
  ARBOR_CHECK(i < blocks_per_segment_);
  return it->second[i];
}

void RefTable::increment(PhysicalBlock b) {
  ARBOR_CHECK(!b.is_null());
  SegmentId s = segment_of(b);
  uint32_t& c = counts_of(s)[index_of(b)];
  ARBOR_CHECK(c > 0);  // only live blocks gain references; new blocks come in through set_one
  ARBOR_CHECK(c < UINT32_MAX);
  c++;
  dirty_.insert(s);
}

uint32_t RefTable::decrement(PhysicalBlock b) {
  ARBOR_CHECK(!b.is_null());
  SegmentId s = segment_of(b);
  uint32_t& c = counts_of(s)[index_of(b)];
  ARBOR_CHECK(c > 0);
  c--;
  if (c == 0) {
    live_[s]--;
    live_total_--;
  }
  dirty_.insert(s);
  return c;
}

void RefTable::set_one(PhysicalBlock b) {
  SegmentId s = segment_of(b);
  uint32_t& c = counts_of(s)[index_of(b)];
  ARBOR_CHECK(c == 0);
  c = 1;
  live_[s]++;
  live_total_++;
  dirty_.insert(s);
}

void RefTable::transfer(PhysicalBlock from, PhysicalBlock to) {
  uint32_t& f = counts_of(segment_of(from))[index_of(from)];
  uint32_t& t = counts_of(segment_of(to))[index_of(to)];
  ARBOR_CHECK(f > 0 && t == 0);
  t = f;
  f = 0;
  live_[segment_of(from)]--;
  live_[segment_of(to)]++;
  dirty_.insert(segment_of(from));
  dirty_.insert(segment_of(to));
}

uint32_t RefTable::live_blocks(SegmentId s) const {
  auto it = live_.find(s);
  return it == live_.end() ? 0 : it->second;
}

std::vector<uint8_t> RefTable::encode_segment(SegmentId s) const {
  size_t bytes = size_t(blocks_per_segment_) * 4;
  bytes = (bytes + kBlockSizeBytes - 1) / kBlockSizeBytes * kBlockSizeBytes;
  std::vector<uint8_t> out(bytes, 0);
  auto it = counts_.find(s);
  if (it != counts_.end()) {
    for (uint32_t i = 0; i < blocks_per_segment_; i++) put_u32(out.data() + 4 * i, it->second[i]);
  }
  return out;
}

void RefTable::load_segment(SegmentId s, std::span<const uint8_t> bytes) {
  ARBOR_CHECK(bytes.size() >= size_t(blocks_per_segment_) * 4);
  forget_segment(s);
  auto& v = counts_of(s);
  uint32_t live = 0;
  for (uint32_t i = 0; i < blocks_per_segment_; i++) {
    v[i] = get_u32(bytes.data() + 4 * i);
    if (v[i] > 0) live++;
  }
  live_[s] = live;
  live_total_ += live;
}

void RefTable::forget_segment(SegmentId s) {
  auto it = live_.find(s);
  if (it != live_.end()) {
    live_total_ -= it->second;
    live_.erase(it);
  }
  counts_.erase(s);
  dirty_.erase(s);
}

std::vector<SegmentId> RefTable::segments() const {
  std::vector<SegmentId> out;
  for (auto& [s, v] : counts_) out.push_back(s);
  return out;
}

}  // namespace arbor
