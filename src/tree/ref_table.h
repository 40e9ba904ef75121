// RefTable: the reference count of every physical block, data and block-map node alike.
//
// A data block's count is the number of leaf entries that point at it; a node's count is the
// number of parents (internal entries or volume roots) that point at it. Dirty nodes are not
// written yet, have no address and are never shared, so they have no count. A block whose count
// falls to zero is free; a segment whose blocks are all free can be deleted (once a checkpoint no
// longer needs it: the Store decides). Log headers, checkpoint and REFS records are not counted:
// the checkpoint keeps those alive.
//
// Persisted per segment as a REFS record (u32 per block) for the segments changed since the last
// checkpoint. Threading: not thread-safe; the Store's lock covers it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <vector>

#include "io/segment_backend.h"
#include "util/status.h"
#include "util/units.h"

namespace arbor {

class RefTable {
 public:
  explicit RefTable(uint32_t blocks_per_segment) : blocks_per_segment_(blocks_per_segment) {}

  uint32_t get(PhysicalBlock b) const;
  void increment(PhysicalBlock b);
  // Returns the new count. Decrementing zero is a bug (ARBOR_CHECK).
  uint32_t decrement(PhysicalBlock b);
  // For a block appended just now: count 1.
  void set_one(PhysicalBlock b);
  // Moves a count from `from` to `to` (the cleaner relocating a block): to gets from's count.
  void transfer(PhysicalBlock from, PhysicalBlock to);

  uint32_t live_blocks(SegmentId s) const;
  uint64_t live_blocks_total() const { return live_total_; }
  // Segments whose counts changed since the last mark_clean(): their REFS must be rewritten.
  const std::set<SegmentId>& dirty_segments() const { return dirty_; }
  void mark_all_clean() {
    dirty_.clear();
    cached_segment_ = kNoSegment;
  }
  void mark_dirty(SegmentId s) { dirty_.insert(s); }

  // Serialization of one segment's counts as runs: (varint run length, varint count) pairs that
  // add up to blocks_per_segment. Most counts are 0 or 1 in long runs: a few hundred bytes.
  void encode_segment(SegmentId s, std::vector<uint8_t>& out) const;
  Status load_segment(SegmentId s, std::span<const uint8_t> bytes);
  void forget_segment(SegmentId s);
  std::vector<SegmentId> segments() const;

 private:
  std::vector<uint32_t>& counts_of(SegmentId s);
  // The count of `b`, for a change: its segment is marked dirty. Consecutive changes mostly name
  // one segment (the 256 entries of a leaf being copied, a run of appends), so the segment's
  // counts, live total and dirty mark are looked up once per run instead of three map walks per
  // block.
  uint32_t& count_for_change(PhysicalBlock b);
  static constexpr SegmentId kNoSegment = ~SegmentId(0);
  uint32_t blocks_per_segment_;
  std::map<SegmentId, std::vector<uint32_t>> counts_;
  std::map<SegmentId, uint32_t> live_;
  std::set<SegmentId> dirty_;
  uint64_t live_total_ = 0;
  // std::map entries stay where they are until erased: forget_segment and mark_all_clean reset.
  SegmentId cached_segment_ = kNoSegment;
  std::vector<uint32_t>* cached_counts_ = nullptr;
  uint32_t* cached_live_ = nullptr;
};

}  // namespace arbor
