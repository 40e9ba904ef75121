// Opening a store: format a new one, or load the last checkpoint and replay the journal after it.
//
// Replay walks records by sequence number from the checkpoint on: within a segment records are
// contiguous; when the next header is not the expected sequence, the log continues in the segment
// whose first record has it, or ends. A WRITE record is applied only if every data block matches
// its checksum (a torn record ends the log). Segments that neither the checkpoint nor the replay
// know are leftovers of a crash and are deleted after the recovery checkpoint.
#include <algorithm>
#include <cstring>

#include "store/checkpoint_format.h"
#include "store/store_impl.h"
#include "util/check.h"
#include "util/crc32c.h"

namespace arbor {

Status Store::Impl::format(const std::array<uint8_t, 16>& store_uuid) {
  ASSIGN_OR_RETURN(std::vector<SegmentId> existing, backend->list());
  if (!existing.empty()) return invalid_argument("the backend holds segments but no superblock: refusing to format over them");
  superblock = Superblock{};
  superblock.blocks_per_segment = log.blocks_per_segment();
  superblock.store_uuid = store_uuid;
  std::lock_guard sync_lock(sync_mu);
  std::unique_lock lock(mu);
  return checkpoint_locked();
}

Status Store::Impl::recover(const Superblock& sb) {
  superblock = sb;
  // 1. The checkpoint record.
  SegmentId ck_seg = segment_of(sb.checkpoint_at);
  ASSIGN_OR_RETURN(RecordHeader ck, log.read_header(ck_seg, index_of(sb.checkpoint_at)));
  if (ck.kind != RecordKind::kCheckpoint || ck.sequence != sb.checkpoint_sequence) {
    return corruption("superblock points at something that is not its checkpoint");
  }
  std::vector<uint8_t> payload(size_t(ck.payload_blocks) * kBlockSizeBytes);
  RETURN_IF_ERROR(log.read_blocks(PhysicalBlock{sb.checkpoint_at.value + 1}, payload));
  if (crc32c(payload.data(), payload.size()) != ck.payload_crc) return corruption("checkpoint: checksum mismatch");
  ASSIGN_OR_RETURN(Checkpoint c, decode_checkpoint(payload));

  // 2. Volumes and segments as of the checkpoint, and their reference counts.
  next_volume_id = c.next_volume_id;
  for (const CheckpointVolume& cv : c.volumes) {
    auto v = std::make_unique<Volume>();
    v->id = cv.id;
    v->parent_id = cv.parent_id;
    v->name = cv.name;
    v->size_bytes = cv.size_bytes;
    v->snapshot = cv.snapshot;
    v->created_unix_ms = cv.created_unix_ms;
    v->uuid = cv.uuid;
    v->root.clean = cv.root;
    v->root.level = cv.level;
    by_name[v->name] = v->id;
    volumes[v->id] = std::move(v);
  }
  std::map<SegmentId, LogSegment> segs;
  std::map<uint64_t, std::pair<RecordHeader, std::vector<uint8_t>>> refs_records;  // by address
  for (const CheckpointSegment& cs : c.segments) {
    segs[cs.id] = LogSegment{cs.id, cs.written_blocks, cs.first_sequence, cs.last_sequence, true};
    if (cs.refs_at.is_null()) continue;
    auto cached = refs_records.find(cs.refs_at.value);
    if (cached == refs_records.end()) {
      ASSIGN_OR_RETURN(RecordHeader rh, log.read_header(segment_of(cs.refs_at), index_of(cs.refs_at)));
      if (rh.kind != RecordKind::kRefs) return corruption("checkpoint: REFS record expected");
      std::vector<uint8_t> bytes(size_t(rh.payload_blocks) * kBlockSizeBytes);
      RETURN_IF_ERROR(log.read_blocks(PhysicalBlock{cs.refs_at.value + 1}, bytes));
      if (crc32c(bytes.data(), bytes.size()) != rh.payload_crc) return corruption("REFS record: checksum mismatch");
      cached = refs_records.emplace(cs.refs_at.value, std::make_pair(std::move(rh), std::move(bytes))).first;
    }
    const auto& [rh, bytes] = cached->second;
    if (cs.refs_entry >= rh.entries.size() || rh.entries[cs.refs_entry].volume != cs.id) {
      return corruption("checkpoint: REFS entry mismatch for segment " + std::to_string(cs.id));
    }
    const RecordEntry& e = rh.entries[cs.refs_entry];
    if (e.a > bytes.size() || e.b > bytes.size() - e.a) return corruption("REFS entry past its payload");
    RETURN_IF_ERROR(refs.load_segment(cs.id, std::span(bytes).subspan(e.a, e.b)));
    refs_at[cs.id] = RefsLocation{cs.refs_at, cs.refs_entry};
  }
  refs.mark_all_clean();

  // 3. Where the log may continue: the first record of every segment the checkpoint does not know.
  ASSIGN_OR_RETURN(std::vector<SegmentId> on_disk, backend->list());
  std::map<uint64_t, SegmentId> first_record_of;  // sequence -> segment
  SegmentId max_id = c.next_segment_id;
  uint64_t max_sequence_seen = ck.sequence;
  for (SegmentId id : on_disk) {
    max_id = std::max(max_id, id + 1);
    if (segs.count(id)) continue;
    Result<RecordHeader> h = log.read_header(id, 0);
    if (h.is_ok()) {
      first_record_of[h->sequence] = id;
      max_sequence_seen = std::max(max_sequence_seen, h->sequence);
    }
  }
  log.restore({}, ck.sequence + 1, max_id);

  // 4. Replay.
  uint64_t expected = ck.sequence + 1;
  SegmentId seg = ck_seg;
  uint32_t index = index_of(sb.checkpoint_at) + 1 + ck.payload_blocks;
  std::vector<uint8_t> data;
  while (true) {
    Result<RecordHeader> h = index < log.blocks_per_segment() ? log.read_header(seg, index) : Result<RecordHeader>(corruption("end of segment"));
    if (!h.is_ok() || h->sequence != expected) {
      auto next = first_record_of.find(expected);
      if (next == first_record_of.end()) break;
      if (!segs.count(next->second)) segs[next->second] = LogSegment{next->second, 0, 0, 0, true};
      seg = next->second;
      index = 0;
      continue;
    }
    if (h->kind == RecordKind::kWrite) {
      data.resize(size_t(h->payload_blocks) * kBlockSizeBytes);
      if (h->entries.size() != h->payload_blocks) break;
      if (!log.read_blocks(physical_block(seg, index + 1), data).is_ok()) break;
      bool torn = false;
      for (uint32_t i = 0; i < h->payload_blocks && !torn; i++) {
        torn = crc32c(data.data() + size_t(i) * kBlockSizeBytes, kBlockSizeBytes) != uint32_t(h->entries[i].b);
      }
      if (torn) break;  // the last record of a crash: the log ends here
      for (uint32_t i = 0; i < h->payload_blocks; i++) {
        const RecordEntry& e = h->entries[i];
        Volume* v = find(VolumeId(e.volume));
        if (v == nullptr || v->snapshot || e.a >= v->size_bytes / kBlockSizeBytes) continue;
        PhysicalBlock at = physical_block(seg, index + 1 + i);
        refs.set_one(at);
        RETURN_IF_ERROR(map.set(v->root, e.a, LeafEntry{at, uint32_t(e.b)}));
      }
    } else if (h->kind == RecordKind::kTrim) {
      for (const RecordEntry& e : h->entries) {
        Volume* v = find(VolumeId(e.volume));
        if (v == nullptr || v->snapshot) continue;
        uint64_t blocks = v->size_bytes / kBlockSizeBytes;
        if (e.a >= blocks) continue;
        RETURN_IF_ERROR(map.unmap(v->root, e.a, std::min(e.b, blocks - e.a)));
      }
    } else if (h->kind == RecordKind::kVolumeOp) {
      data.resize(size_t(h->payload_blocks) * kBlockSizeBytes);
      if (!log.read_blocks(physical_block(seg, index + 1), data).is_ok()) break;
      Result<VolumeOp> op = decode_volume_op(*h, data);
      if (!op.is_ok()) break;  // torn: the operation never returned, the log ends here
      RETURN_IF_ERROR(apply_volume_op(*op));
    }
    // NODES, REFS, CHECKPOINT and RELOC after the checkpoint belong to a write-out that did not
    // complete: nothing reachable points at them.
    LogSegment& ls = segs[seg];
    ls.id = seg;
    ls.written_blocks = index + 1 + h->payload_blocks;
    if (ls.first_sequence == 0) ls.first_sequence = h->sequence;
    ls.last_sequence = h->sequence;
    index += 1 + h->payload_blocks;
    expected++;
  }

  // 4b. A torn tail is fine; a hole below a later record's durability watermark is not: that
  // record was written after a sync that covered the missing one, so the log is damaged.
  for (auto& [first_seq, id] : first_record_of) {
    if (first_seq <= expected) continue;
    Result<RecordHeader> h = log.read_header(id, 0);
    if (h.is_ok() && h->synced_sequence >= expected) {
      return corruption("journal damaged: record " + std::to_string(expected) + " is missing or corrupt, but record " +
                        std::to_string(h->sequence) + " was written after it was made durable");
    }
  }
  for (uint32_t i = index; i < log.blocks_per_segment(); i++) {
    Result<RecordHeader> h = log.read_header(seg, i);
    if (h.is_ok() && h->sequence > expected && h->synced_sequence >= expected) {
      return corruption("journal damaged: record " + std::to_string(expected) + " is missing or corrupt, but record " +
                        std::to_string(h->sequence) + " was written after it was made durable");
    }
  }

  // 5. Resume after everything seen, and make the replayed state a checkpoint of its own.
  std::vector<LogSegment> restored;
  for (auto& [id, s] : segs) restored.push_back(s);
  log.restore(std::move(restored), std::max(expected, max_sequence_seen + 1), max_id);
  {
    std::lock_guard sync_lock(sync_mu);
    std::unique_lock lock(mu);
    RETURN_IF_ERROR(checkpoint_locked());
  }
  for (SegmentId id : on_disk) {
    if (!log.segments().count(id)) RETURN_IF_ERROR(backend->remove(id));
  }
  return Status::ok();
}

}  // namespace arbor
