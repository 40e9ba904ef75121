// Store::Impl: the state behind the Store facade, shared by store.cc (control and data path),
// recovery.cc (open and journal replay), checkpoint.cc (write-out and segment freeing) and
// cleaner.cc. Not a public header.
//
// Locks, always taken in this order:
//   sync_mu   serializes flushes and checkpoints, so a flush never returns while an earlier
//             flush's fsync is still running, and segments are never deleted under a running sync.
//   mu        shared: reads. exclusive: writes, trims, control operations, checkpoints.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "log/segment_log.h"
#include "store/store.h"
#include "store/superblock.h"
#include "tree/block_map.h"
#include "tree/ref_table.h"
#include "util/rw_lock.h"

namespace arbor {

struct Volume {
  VolumeId id = 0;
  VolumeId parent_id = 0;
  std::string name;
  uint64_t size_bytes = 0;
  bool snapshot = false;
  uint64_t created_unix_ms = 0;
  std::array<uint8_t, 16> uuid{};
  TreeRoot root;
  uint32_t open_count = 0;
};

struct Store::Impl {
  Impl(std::unique_ptr<SegmentBackend> b, const StoreOptions& o, uint32_t blocks_per_segment)
      : options(o), backend(std::move(b)), log(*backend, blocks_per_segment), refs(blocks_per_segment),
        map(log, refs, o.max_cached_nodes) {
    log.set_data_reserve([this] { return checkpoint_reserve_bytes(); });
  }
  // What a checkpoint may write from now on, plus the new segment a recovery opens: the dirty
  // block-map nodes (with their records' headers), and two segments for the REFS and CHECKPOINT
  // records, the segment-tail a record cannot use, and the open segment after a restart.
  uint64_t checkpoint_reserve_bytes() const {
    uint64_t segment_bytes = uint64_t(log.blocks_per_segment()) * kBlockSizeBytes;
    return 2 * segment_bytes + uint64_t(map.dirty_nodes()) * kBlockSizeBytes * 5 / 4;
  }

  StoreOptions options;
  std::unique_ptr<SegmentBackend> backend;
  SegmentLog log;
  RefTable refs;
  BlockMap map;

  std::mutex sync_mu;
  RwLock mu;

  std::map<VolumeId, std::unique_ptr<Volume>> volumes;
  std::unordered_map<std::string, VolumeId> by_name;
  VolumeId next_volume_id = 1;

  Superblock superblock;                       // the last one written
  struct RefsLocation {
    PhysicalBlock record;  // REFS record header
    uint32_t entry = 0;
  };
  std::map<SegmentId, RefsLocation> refs_at;  // where each segment's counts were last written
  // Writes the counts of `segments` as REFS records (up to kRecordMaxEntries segments each).
  Status write_refs(const std::vector<SegmentId>& segments);
  uint64_t journal_bytes_at_checkpoint = 0;
  std::atomic<bool> checkpoint_wanted{false};
  // Set when a write-out failed half way: in-memory metadata may no longer match the device, so
  // the store refuses further changes (reads still work) until it is reopened.
  Status failed;

  // volume_ops.cc: every change to the volume table is one VOLUME_OP record, applied by the same
  // code live and in replay. REQUIRES: mu (exclusive).
  enum class VolumeOpKind : uint64_t { kCreate = 1, kBranch = 2, kDelete = 3, kResize = 4 };
  struct VolumeOp {
    VolumeOpKind kind = VolumeOpKind::kCreate;
    VolumeId id = 0;
    uint64_t argument = 0;  // branch: source id; resize: new size in bytes
    Volume fields;          // create/branch: name, size, snapshot flag, created, uuid, parent
  };
  Status apply_volume_op(const VolumeOp& op);
  // Makes every write completed so far durable: the body of Store::flush. Takes mu only briefly,
  // so reads and writes go on during the fdatasync. REQUIRES: sync_mu held, mu not held.
  Status sync_written();
  // Journals `op`, applies it and makes the journal durable (one fdatasync): control operations
  // are durable when they return, without a checkpoint. REQUIRES: sync_mu and mu (exclusive).
  Status commit_volume_op(const VolumeOp& op);
  static void encode_volume_op(const VolumeOp& op, RecordHeader& h, std::vector<uint8_t>& payload);
  static Result<VolumeOp> decode_volume_op(const RecordHeader& h, std::span<const uint8_t> payload);

  // recovery.cc
  Status format(const std::array<uint8_t, 16>& store_uuid);
  Status recover(const Superblock& sb);

  // checkpoint.cc. REQUIRES: sync_mu and mu (exclusive) held.
  Status checkpoint_locked();

  // cleaner.cc. REQUIRES: sync_mu and mu (exclusive) held.
  Result<CleanStats> clean_locked(double max_live_fraction, size_t max_segments = SIZE_MAX);

  // store.cc helpers. REQUIRES: mu held (shared is enough for find and read_locked).
  Volume* find(std::string_view name);
  Volume* find(VolumeId id);
  // For a reader: takes `lock` (on mu; only tries inside a NonBlockingScope) and finds volume
  // `id` with [offset, +length) inside it.
  Result<Volume*> lock_for_read(std::shared_lock<RwLock>& lock, VolumeId id, uint64_t offset, uint64_t length);
  // With `release`, the lock it holds is unlocked before any wait for the device (the map lookup
  // and the log's write buffer need it; segment files do not): `v` must not be used after.
  Status read_locked(Volume& v, uint64_t offset, std::span<uint8_t> out, std::shared_lock<RwLock>* release = nullptr);
  // The two halves of read_locked for whole blocks [first, first + entries.size()) into `blocks`.
  // map_blocks_locked looks them up into `entries`, fills holes with zeros and copies blocks still
  // in the log's write buffer; with `leave_written` it leaves blocks already written to segments
  // to the caller, as runs of consecutive blocks in `runs` (room for one per block), and returns
  // how many. verify_blocks checks every mapped block's CRC once all are in.
  struct BlockRun {
    PhysicalBlock first;
    uint64_t index, count;
  };
  Result<size_t> map_blocks_locked(Volume& v, uint64_t first, std::span<LeafEntry> entries, uint8_t* blocks,
                                   bool leave_written, std::span<BlockRun> runs);
  Status verify_blocks(VolumeId id, uint64_t first, std::span<const LeafEntry> entries, const uint8_t* blocks,
                       std::shared_lock<RwLock>* released);
  // For an error message after read_locked let go of the lock: takes it back (only try-locks
  // inside a NonBlockingScope) and names volume `id`, or says its id if it is gone.
  std::string name_of_relocking(VolumeId id, std::shared_lock<RwLock>* released);
  Status write_block_locked(Volume& v, uint64_t block, std::span<const uint8_t> data);
  Status writable(const Volume& v) const;
  Status journal_trim_locked(Volume& v, uint64_t first, uint64_t count);
  VolumeInfo info_of(const Volume& v);
  bool wants_checkpoint() const;
};

uint64_t now_unix_ms();
std::array<uint8_t, 16> random_uuid();

}  // namespace arbor
