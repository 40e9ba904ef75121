// The segment cleaner: moves the live blocks out of mostly-dead segments so they can be deleted.
//
// Liveness comes from the reference counts; what a live block is comes from its segment's record
// headers (a data block's logical address is in its WRITE/RELOC entry; a node names its own
// first logical block). Those logical addresses bound the tree walk: BlockMap::relocate visits only
// subtrees covering them, rewrites each node that points into a victim once (shared nodes stay
// shared: the new copy takes over the old one's count), and the data moves into RELOC records.
// The checkpoint at the end makes it durable and deletes the emptied segments.
#include <algorithm>
#include <unordered_set>

#include "store/store_impl.h"
#include "util/check.h"
#include "util/crc32c.h"

namespace arbor {

Result<CleanStats> Store::Impl::clean_locked(double max_live_fraction, size_t max_segments) {
  CleanStats stats;
  // All trees clean, dead segments gone; the open segment is never a victim.
  RETURN_IF_ERROR(checkpoint_locked());
  SegmentId open = log.open_segment();
  std::vector<std::pair<uint32_t, SegmentId>> candidates;  // (live blocks, segment): emptiest first
  for (auto& [id, seg] : log.segments()) {
    if (id == open || id == segment_of(superblock.checkpoint_at)) continue;
    uint32_t live = refs.live_blocks(id);
    if (live > 0 && double(live) < max_live_fraction * double(log.blocks_per_segment())) candidates.emplace_back(live, id);
  }
  std::sort(candidates.begin(), candidates.end());
  // The live blocks move into new segments before the victims are freed: take only victims whose
  // blocks fit in the segments the cleaner may take (free space above the reserve, plus one of
  // the reserve's two segments), so that a full store cleans what it can and never runs out half
  // way (whole 128-block records per segment: the tail a record cannot use is not counted).
  uint64_t new_segments = log.segments_allowed(SegmentLog::SegmentUse::kCleaner);
  uint64_t per_segment = uint64_t(log.blocks_per_segment() / (1 + kWriteRecordMaxBlocks)) * kWriteRecordMaxBlocks;
  uint64_t budget_blocks = new_segments > UINT64_MAX / per_segment ? UINT64_MAX : new_segments * per_segment;
  std::unordered_set<SegmentId> victims;
  for (size_t i = 0; i < candidates.size() && i < max_segments && candidates[i].first <= budget_blocks; i++) {
    victims.insert(candidates[i].second);
    budget_blocks -= candidates[i].first;
  }
  if (victims.empty()) return stats;

  // The logical leaves the live blocks of the victims belong to.
  std::vector<uint64_t> leaves;
  std::vector<uint8_t> block(kBlockSizeBytes);
  for (SegmentId id : victims) {
    const LogSegment& seg = log.segments().at(id);
    uint32_t index = 0;
    while (index < seg.written_blocks) {
      ASSIGN_OR_RETURN(RecordHeader h, log.read_header(id, index));
      for (uint32_t i = 0; i < h.payload_blocks; i++) {
        PhysicalBlock p = physical_block(id, index + 1 + i);
        if (refs.get(p) == 0) continue;
        if (h.kind == RecordKind::kWrite || h.kind == RecordKind::kReloc) {
          leaves.push_back(h.entries.at(i).a >> kFanoutBits);
        } else if (h.kind == RecordKind::kNodes) {
          ASSIGN_OR_RETURN(std::shared_ptr<const Node> n, map.load(p));
          leaves.push_back(n->first_block >> kFanoutBits);
        }
      }
      index += 1 + h.payload_blocks;
    }
  }
  std::sort(leaves.begin(), leaves.end());
  leaves.erase(std::unique(leaves.begin(), leaves.end()), leaves.end());

  BlockMap::MoveData move = [&](PhysicalBlock old, uint64_t logical_block, uint32_t crc) -> Result<PhysicalBlock> {
    RETURN_IF_ERROR(log.read_blocks(old, block));
    if (crc32c(block.data(), block.size()) != crc) {
      return corruption("cleaner: checksum mismatch moving block " + std::to_string(old.value));
    }
    ASSIGN_OR_RETURN(PhysicalBlock to, log.add_data_block(RecordKind::kReloc, 0, logical_block, block, crc));
    refs.transfer(old, to);
    stats.blocks_moved++;
    return to;
  };
  BlockMap::RelocationMemo memo;
  uint64_t live_before = 0;
  for (SegmentId id : victims) live_before += refs.live_blocks(id);
  for (auto& [id, v] : volumes) RETURN_IF_ERROR(map.relocate(v->root, victims, leaves, move, memo));
  RETURN_IF_ERROR(log.commit_open_record());
  stats.blocks_moved += memo.moved_nodes.size() - std::count_if(memo.moved_nodes.begin(), memo.moved_nodes.end(),
                                                                [](auto& kv) { return kv.first == kv.second.value; });
  for (SegmentId id : victims) {
    // Every live block must have moved: anything left means a tree was not reached (a bug).
    ARBOR_CHECK(refs.live_blocks(id) == 0);
    stats.segments_cleaned++;
  }
  stats.bytes_freed = stats.segments_cleaned * uint64_t(log.blocks_per_segment()) * kBlockSizeBytes;
  (void)live_before;
  RETURN_IF_ERROR(checkpoint_locked());  // deletes the emptied victims
  return stats;
}

}  // namespace arbor
