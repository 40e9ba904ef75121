// Checkpoint: writes every dirty block-map node, the reference counts that changed, and the
// volume and segment tables, then points the superblock at them. Also where segments that nobody
// needs any more are deleted. Two-phase, superblock last (dm-transaction-manager's contract):
//
//   1. NODES records  (dirty trees, children before parents)
//   2. REFS records   (segments whose counts changed, or whose counts lived in a dying segment)
//   3. CHECKPOINT     (volume table + segment table + where each REFS is)
//   4. sync every segment written since the last sync
//   5. superblock slot (checkpoint_number % 2), durable
//   6. delete the dead segments left out of the tables in step 3
//
// A crash before 5 leaves the previous checkpoint in force, with everything it references intact
// (segments are deleted only in 6), and the journal after it replays.
#include <algorithm>

#include "store/checkpoint_format.h"
#include "store/store_impl.h"
#include "util/check.h"
#include "util/crc32c.h"

namespace arbor {

Status Store::Impl::write_refs(const std::vector<SegmentId>& segments) {
  for (size_t done = 0; done < segments.size();) {
    size_t n = std::min<size_t>(kRecordMaxEntries, segments.size() - done);
    RecordHeader h;
    h.kind = RecordKind::kRefs;
    std::vector<uint8_t> payload;
    for (size_t i = 0; i < n; i++) {
      size_t start = payload.size();
      refs.encode_segment(segments[done + i], payload);
      h.entries.push_back({segments[done + i], start, payload.size() - start});
    }
    payload.resize((payload.size() + kBlockSizeBytes - 1) / kBlockSizeBytes * kBlockSizeBytes, 0);
    h.payload_crc = crc32c(payload.data(), payload.size());
    ASSIGN_OR_RETURN(PhysicalBlock at, log.append(h, payload));
    for (size_t i = 0; i < n; i++) refs_at[segments[done + i]] = RefsLocation{at, uint32_t(i)};
    done += n;
  }
  return Status::ok();
}

Status Store::Impl::checkpoint_locked() {
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(log.commit_open_record());
    for (auto& [id, v] : volumes) RETURN_IF_ERROR(map.write_dirty(v->root));

    // Segments nobody needs once this checkpoint is durable: no live block, not the open one (nor
    // the one this checkpoint's records may reopen, on a full device right after a restart).
    // Their records are all older than this checkpoint, so replay will not need them either.
    std::vector<SegmentId> dead;
    for (auto& [id, seg] : log.segments()) {
      if (id != log.open_segment() && id != log.resume_candidate() && refs.live_blocks(id) == 0) dead.push_back(id);
    }
    // REFS of surviving segments stored inside a dying one must be written again elsewhere.
    for (auto& [id, at] : refs_at) {
      if (std::find(dead.begin(), dead.end(), segment_of(at.record)) != dead.end()) refs.mark_dirty(id);
    }
    for (SegmentId id : dead) refs.mark_dirty(id);  // (erased just below: no REFS needed)

    std::vector<SegmentId> to_write;
    for (SegmentId id : refs.dirty_segments()) {
      if (std::find(dead.begin(), dead.end(), id) == dead.end()) to_write.push_back(id);
    }
    RETURN_IF_ERROR(write_refs(to_write));

    Checkpoint c;
    c.next_volume_id = next_volume_id;
    for (auto& [id, v] : volumes) {
      ARBOR_CHECK(v->root.dirty == nullptr);
      c.volumes.push_back({v->id, v->parent_id, v->size_bytes, v->root.clean, v->root.level, v->snapshot,
                           v->created_unix_ms, v->uuid, v->name});
    }
    // The CHECKPOINT record may open a new segment: reserve first, so the table includes it.
    std::vector<uint8_t> probe = encode_checkpoint(c);
    uint32_t segments_upper = uint32_t(log.segments().size() + 1);
    uint32_t payload_blocks = uint32_t((probe.size() + segments_upper * kCheckpointSegmentBytes) / kBlockSizeBytes + 1);
    RETURN_IF_ERROR(log.next_payload_address(payload_blocks).status());
    c.next_segment_id = log.next_segment_id();
    for (auto& [id, seg] : log.segments()) {
      if (std::find(dead.begin(), dead.end(), id) != dead.end()) continue;
      auto r = refs_at.find(id);
      CheckpointSegment cs;
      cs.id = id;
      cs.written_blocks = seg.written_blocks;
      cs.first_sequence = seg.first_sequence;
      cs.last_sequence = seg.last_sequence;
      if (r != refs_at.end()) {
        cs.refs_at = r->second.record;
        cs.refs_entry = r->second.entry;
      }
      c.segments.push_back(cs);
    }
    std::vector<uint8_t> payload = encode_checkpoint(c);
    ARBOR_CHECK(payload.size() <= size_t(payload_blocks) * kBlockSizeBytes);
    payload.resize(size_t(payload_blocks) * kBlockSizeBytes, 0);
    RecordHeader h;
    h.kind = RecordKind::kCheckpoint;
    h.payload_crc = crc32c(payload.data(), payload.size());
    ASSIGN_OR_RETURN(PhysicalBlock at, log.append(h, payload));
    RETURN_IF_ERROR(log.sync(log.take_unsynced()));
    log.note_synced(log.next_sequence() - 1);

    Superblock sb = superblock;
    sb.checkpoint_number++;
    sb.checkpoint_at = at;
    sb.checkpoint_sequence = log.next_sequence() - 1;
    std::array<uint8_t, kBlockSizeBytes> block;
    encode_superblock(sb, block);
    RETURN_IF_ERROR(backend->write_superblock(int(sb.checkpoint_number % 2), block));
    superblock = sb;
    refs.mark_all_clean();
    journal_bytes_at_checkpoint = log.bytes_appended();

    for (SegmentId id : dead) {
      refs.forget_segment(id);
      refs_at.erase(id);
      RETURN_IF_ERROR(log.drop_segment(id));
    }
    // Segments dropped by earlier checkpoints while readers held pins on them.
    return log.remove_released();
  }();
  if (!s.is_ok() && failed.is_ok()) failed = s;
  return s;
}

}  // namespace arbor
