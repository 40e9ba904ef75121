// Volume operations: create, branch (and snapshot), delete and resize, each one VOLUME_OP record
// in the journal. Applying one is the same code live and in replay, so a recovered volume table
// is exactly the one that existed, in log order with the writes around it (a branch holds the
// writes journalled before it and none after). A control operation is durable when it returns:
// its record is synced, as a flush would. No checkpoint is needed, so a branch costs one
// fdatasync plus copying the source's dirty block-map nodes (no I/O), whatever the data size.
//
// Record: one entry {op, volume id, argument}; create/branch carry one payload block holding the
// new volume's entry in the checkpoint encoding (docs/format-checkpoint.md).
#include "store/checkpoint_format.h"
#include "store/store_impl.h"
#include "util/check.h"
#include "util/crc32c.h"

namespace arbor {

void Store::Impl::encode_volume_op(const VolumeOp& op, RecordHeader& h, std::vector<uint8_t>& payload) {
  h.kind = RecordKind::kVolumeOp;
  h.entries.push_back({uint64_t(op.kind), op.id, op.argument});
  payload.clear();
  if (op.kind == VolumeOpKind::kCreate || op.kind == VolumeOpKind::kBranch) {
    Checkpoint c;
    const Volume& f = op.fields;
    c.volumes.push_back({op.id, f.parent_id, f.size_bytes, PhysicalBlock{}, f.root.level, f.snapshot,
                         f.created_unix_ms, f.uuid, f.name});
    payload = encode_checkpoint(c);
  }
  h.payload_crc = crc32c(payload.data(), payload.size());
}

Result<Store::Impl::VolumeOp> Store::Impl::decode_volume_op(const RecordHeader& h, std::span<const uint8_t> payload) {
  if (h.entries.size() != 1) return corruption("VOLUME_OP: one entry expected");
  if (crc32c(payload.data(), payload.size()) != h.payload_crc) return corruption("VOLUME_OP: checksum mismatch");
  VolumeOp op;
  uint64_t kind = h.entries[0].volume;
  if (kind < 1 || kind > 4) return corruption("VOLUME_OP: unknown operation");
  op.kind = VolumeOpKind(kind);
  op.id = h.entries[0].a;
  op.argument = h.entries[0].b;
  if (op.kind == VolumeOpKind::kCreate || op.kind == VolumeOpKind::kBranch) {
    ASSIGN_OR_RETURN(Checkpoint c, decode_checkpoint(payload));
    if (c.volumes.size() != 1 || c.volumes[0].id != op.id) return corruption("VOLUME_OP: bad volume entry");
    const CheckpointVolume& cv = c.volumes[0];
    op.fields.id = cv.id;
    op.fields.parent_id = cv.parent_id;
    op.fields.name = cv.name;
    op.fields.size_bytes = cv.size_bytes;
    op.fields.snapshot = cv.snapshot;
    op.fields.created_unix_ms = cv.created_unix_ms;
    op.fields.uuid = cv.uuid;
    op.fields.root.level = cv.level;
  }
  return op;
}

Status Store::Impl::apply_volume_op(const VolumeOp& op) {
  switch (op.kind) {
    case VolumeOpKind::kCreate:
    case VolumeOpKind::kBranch: {
      if (volumes.count(op.id) || by_name.count(op.fields.name)) return corruption("VOLUME_OP: volume exists");
      auto v = std::make_unique<Volume>();
      v->id = op.id;
      v->parent_id = op.fields.parent_id;
      v->name = op.fields.name;
      v->size_bytes = op.fields.size_bytes;
      v->snapshot = op.fields.snapshot;
      v->created_unix_ms = op.fields.created_unix_ms;
      v->uuid = op.fields.uuid;
      v->root.level = op.fields.root.level;
      if (op.kind == VolumeOpKind::kBranch) {
        Volume* src = find(VolumeId(op.argument));
        if (src == nullptr) return corruption("VOLUME_OP: branch of a missing volume");
        map.clone(src->root, v->root);
        v->size_bytes = src->size_bytes;
      }
      next_volume_id = std::max(next_volume_id, op.id + 1);
      by_name[v->name] = v->id;
      volumes[v->id] = std::move(v);
      return Status::ok();
    }
    case VolumeOpKind::kDelete: {
      Volume* v = find(op.id);
      if (v == nullptr) return corruption("VOLUME_OP: delete of a missing volume");
      RETURN_IF_ERROR(map.drop(v->root));
      by_name.erase(v->name);
      volumes.erase(v->id);
      return Status::ok();
    }
    case VolumeOpKind::kResize: {
      Volume* v = find(op.id);
      if (v == nullptr) return corruption("VOLUME_OP: resize of a missing volume");
      if (op.argument < v->size_bytes) return corruption("VOLUME_OP: shrink");
      RETURN_IF_ERROR(map.raise_level(v->root, level_for_blocks(op.argument / kBlockSizeBytes)));
      v->size_bytes = op.argument;
      return Status::ok();
    }
  }
  return corruption("VOLUME_OP: unknown operation");
}

Status Store::Impl::commit_volume_op(const VolumeOp& op) {
  RecordHeader h;
  std::vector<uint8_t> payload;
  encode_volume_op(op, h, payload);
  RETURN_IF_ERROR(log.append(h, payload).status());
  Status s = apply_volume_op(op);
  if (s.is_ok()) {
    s = log.sync(log.take_unsynced());
    if (s.is_ok()) log.note_synced(log.next_sequence() - 1);
  }
  // The record is in the log: memory that disagrees with it must not take further changes.
  if (!s.is_ok() && failed.is_ok()) failed = s;
  return s;
}

}  // namespace arbor
