#include "tree/ref_table.h"

#include "log/segment_log.h"
#include "util/check.h"

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

uint32_t& RefTable::count_for_change(PhysicalBlock b) {
  SegmentId s = segment_of(b);
  if (s != cached_segment_) {
    cached_counts_ = &counts_of(s);
    cached_live_ = &live_[s];
    dirty_.insert(s);
    cached_segment_ = s;
  }
  uint32_t i = index_of(b);
  ARBOR_CHECK(i < blocks_per_segment_);
  return (*cached_counts_)[i];
}

void RefTable::increment(PhysicalBlock b) {
  ARBOR_CHECK(!b.is_null());
  uint32_t& c = count_for_change(b);
  ARBOR_CHECK(c > 0);  // only live blocks gain references; new blocks come in through set_one
  ARBOR_CHECK(c < UINT32_MAX);
  c++;
}

uint32_t RefTable::decrement(PhysicalBlock b) {
  ARBOR_CHECK(!b.is_null());
  uint32_t& c = count_for_change(b);
  ARBOR_CHECK(c > 0);
  c--;
  if (c == 0) {
    (*cached_live_)--;
    live_total_--;
  }
  return c;
}

void RefTable::set_one(PhysicalBlock b) {
  uint32_t& c = count_for_change(b);
  ARBOR_CHECK(c == 0);
  c = 1;
  (*cached_live_)++;
  live_total_++;
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

static void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(uint8_t(v | 0x80));
    v >>= 7;
  }
  out.push_back(uint8_t(v));
}

static bool get_varint(std::span<const uint8_t> in, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= in.size()) return false;
    uint8_t b = in[pos++];
    v |= uint64_t(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void RefTable::encode_segment(SegmentId s, std::vector<uint8_t>& out) const {
  auto it = counts_.find(s);
  if (it == counts_.end()) {
    put_varint(out, blocks_per_segment_);
    put_varint(out, 0);
    return;
  }
  const std::vector<uint32_t>& v = it->second;
  uint32_t i = 0;
  while (i < blocks_per_segment_) {
    uint32_t j = i + 1;
    while (j < blocks_per_segment_ && v[j] == v[i]) j++;
    put_varint(out, j - i);
    put_varint(out, v[i]);
    i = j;
  }
}

Status RefTable::load_segment(SegmentId s, std::span<const uint8_t> bytes) {
  std::vector<uint32_t> v;
  v.reserve(blocks_per_segment_);
  size_t pos = 0;
  while (v.size() < blocks_per_segment_) {
    uint64_t run = 0, count = 0;
    if (!get_varint(bytes, pos, run) || !get_varint(bytes, pos, count) || run == 0 ||
        run > blocks_per_segment_ - v.size() || count > UINT32_MAX) {
      return corruption("REFS: malformed counts for segment " + std::to_string(s));
    }
    v.insert(v.end(), run, uint32_t(count));
  }
  if (pos != bytes.size()) return corruption("REFS: trailing bytes for segment " + std::to_string(s));
  forget_segment(s);
  uint32_t live = 0;
  for (uint32_t c : v)
    if (c > 0) live++;
  counts_[s] = std::move(v);
  live_[s] = live;
  live_total_ += live;
  return Status::ok();
}

void RefTable::forget_segment(SegmentId s) {
  if (s == cached_segment_) cached_segment_ = kNoSegment;
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
