// Store: the facade's control operations and the data path. See store.h and store_impl.h.
#include "store/store.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>

#include "store/store_impl.h"
#include "util/check.h"
#include "util/crc32c.h"
#include "util/nonblocking_scope.h"
#include "util/zero.h"

namespace arbor {

uint64_t now_unix_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

std::array<uint8_t, 16> random_uuid() {
  std::random_device rd;
  std::array<uint8_t, 16> u{};
  for (size_t i = 0; i < 16; i += 4) {
    uint32_t r = rd();
    std::memcpy(u.data() + i, &r, 4);
  }
  u[6] = uint8_t((u[6] & 0x0F) | 0x40);  // RFC 4122 version 4
  u[8] = uint8_t((u[8] & 0x3F) | 0x80);
  return u;
}

// ---- names ----

static bool valid_component(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto lower_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_digit(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return lower_digit(c) || c == '_' || c == '-'; });
}

Status validate_volume_name(std::string_view name) {
  if (!valid_component(name)) {
    return invalid_argument("invalid volume name '" + std::string(name) +
                            "': use 1 to 63 of a-z 0-9 _ -, starting with a letter or digit");
  }
  return Status::ok();
}

Status validate_snapshot_name(std::string_view name) {
  size_t at = name.find('@');
  if (at == std::string_view::npos) return invalid_argument("invalid snapshot name '" + std::string(name) + "': expected VOLUME@SNAP");
  RETURN_IF_ERROR(validate_volume_name(name.substr(0, at)));
  if (!valid_component(name.substr(at + 1))) {
    return invalid_argument("invalid snapshot name '" + std::string(name.substr(at + 1)) +
                            "': use 1 to 63 of a-z 0-9 _ -, starting with a letter or digit");
  }
  return Status::ok();
}

static Status validate_any_name(std::string_view name) {
  return name.find('@') == std::string_view::npos ? validate_volume_name(name) : validate_snapshot_name(name);
}

// ---- Impl helpers ----

Volume* Store::Impl::find(std::string_view name) {
  auto it = by_name.find(std::string(name));
  return it == by_name.end() ? nullptr : volumes.at(it->second).get();
}

Volume* Store::Impl::find(VolumeId id) {
  auto it = volumes.find(id);
  return it == volumes.end() ? nullptr : it->second.get();
}

Status Store::Impl::writable(const Volume& v) const {
  if (v.snapshot) return read_only("'" + v.name + "' is a snapshot and cannot be written: branch it first");
  if (!failed.is_ok()) return io_error("store is failed after an earlier write-out error (" + failed.message() + "): reopen it");
  return Status::ok();
}

VolumeInfo Store::Impl::info_of(const Volume& v) {
  VolumeInfo i;
  i.id = v.id;
  i.name = v.name;
  i.size_bytes = v.size_bytes;
  i.snapshot = v.snapshot;
  if (Volume* p = find(v.parent_id)) i.parent = p->name;
  i.created_unix_ms = v.created_unix_ms;
  i.uuid = v.uuid;
  i.open_count = v.open_count;
  return i;
}

bool Store::Impl::wants_checkpoint() const {
  return log.bytes_appended() - journal_bytes_at_checkpoint > options.checkpoint_interval_bytes ||
         map.dirty_nodes() > 32768;
}

static Status check_range(const Volume& v, uint64_t offset, uint64_t length) {
  if (offset > v.size_bytes || length > v.size_bytes - offset) {
    return out_of_range("range [" + std::to_string(offset) + ", +" + std::to_string(length) + ") is past the end of '" +
                        v.name + "' (" + std::to_string(v.size_bytes) + " bytes)");
  }
  return Status::ok();
}

std::string Store::Impl::name_of_relocking(VolumeId id, std::shared_lock<RwLock>* released) {
  std::string fallback = "volume " + std::to_string(id);
  if (released != nullptr && !released->owns_lock()) {
    if (!NonBlockingScope::active()) {
      released->lock();
    } else if (!released->try_lock()) {
      return fallback;
    }
  }
  const Volume* v = find(id);
  return v != nullptr ? v->name : fallback;
}

Result<size_t> Store::Impl::map_blocks_locked(Volume& v, uint64_t first, std::span<LeafEntry> entries,
                                              uint8_t* blocks, bool leave_written, std::span<BlockRun> runs) {
  RETURN_IF_ERROR(map.lookup(v.root, first, entries));
  const uint64_t n = entries.size();
  size_t run_count = 0;
  uint64_t i = 0;
  while (i < n) {
    uint8_t* dst = blocks + i * kBlockSizeBytes;
    if (entries[i].block.is_null()) {
      std::memset(dst, 0, kBlockSizeBytes);
      i++;
      continue;
    }
    uint64_t run = 1;
    while (i + run < n && entries[i + run].block.value == entries[i].block.value + run &&
           segment_of(entries[i + run].block) == segment_of(entries[i].block)) {
      run++;
    }
    if (!leave_written || log.in_open_record(entries[i].block, run)) {
      // Blocks still in the log's write buffer change under the next write: copy them now.
      RETURN_IF_ERROR(log.read_blocks(entries[i].block, std::span(dst, run * kBlockSizeBytes)));
    } else {
      runs[run_count++] = BlockRun{entries[i].block, i, run};
    }
    i += run;
  }
  return run_count;
}

Status Store::Impl::verify_blocks(VolumeId id, uint64_t first, std::span<const LeafEntry> entries,
                                  const uint8_t* blocks, std::shared_lock<RwLock>* released) {
  for (uint64_t j = 0; j < entries.size(); j++) {
    if (entries[j].block.is_null()) continue;
    if (crc32c(blocks + j * kBlockSizeBytes, kBlockSizeBytes) != entries[j].crc) {
      return corruption("checksum mismatch in block " + std::to_string(first + j) + " of '" +
                        name_of_relocking(id, released) + "'");
    }
  }
  return Status::ok();
}

Status Store::Impl::read_locked(Volume& v, uint64_t offset, std::span<uint8_t> out,
                                std::shared_lock<RwLock>* release) {
  if (out.empty()) return Status::ok();
  uint64_t first = offset / kBlockSizeBytes;
  uint64_t last = (offset + out.size() - 1) / kBlockSizeBytes;
  uint64_t n = last - first + 1;
  // Most reads are a few blocks: keep their entries and runs on the stack.
  std::array<LeafEntry, 16> small;
  std::array<BlockRun, 16> small_runs;
  std::vector<LeafEntry> large;
  std::vector<BlockRun> large_runs;
  std::span<LeafEntry> entries = small;
  std::span<BlockRun> runs = small_runs;
  if (n <= small.size()) {
    entries = entries.first(n);
  } else {
    large.resize(n);
    large_runs.resize(n);
    entries = large;
    runs = large_runs;
  }
  // Whole blocks land in `blocks`: `out` itself when the read is block-aligned, else a scratch
  // buffer whose edges are copied out at the end.
  bool aligned = offset % kBlockSizeBytes == 0 && out.size() % kBlockSizeBytes == 0;
  std::vector<uint8_t> scratch;
  if (!aligned) scratch.resize(n * kBlockSizeBytes);
  uint8_t* blocks = aligned ? out.data() : scratch.data();
  // Segment reads are made after `release` is unlocked.
  ASSIGN_OR_RETURN(size_t run_count, map_blocks_locked(v, first, entries, blocks, release != nullptr, runs));
  const VolumeId id = v.id;  // `v` may be renamed or gone once the lock is released
  if (run_count > 0) {
    // The device reads wait for the disk on a cold cache: not under the store lock, where they
    // would hold up every writer. The pin keeps their segments from being dropped and recycled.
    SegmentPin pin = log.pin_segments();
    release->unlock();
    for (const BlockRun& r : runs.first(run_count)) {
      RETURN_IF_ERROR(log.read_written_blocks(r.first, std::span(blocks + r.index * kBlockSizeBytes, r.count * kBlockSizeBytes)));
    }
  }
  RETURN_IF_ERROR(verify_blocks(id, first, entries, blocks, release));
  if (!aligned) std::memcpy(out.data(), scratch.data() + (offset - first * kBlockSizeBytes), out.size());
  return Status::ok();
}

namespace {

// Store::plan_read's result: holds the pin over the segments its file reads name.
class StorePlannedRead final : public PlannedRead {
 public:
  StorePlannedRead(Store::Impl& impl, VolumeId id, uint64_t first, std::span<uint8_t> blocks)
      : impl_(impl), id_(id), first_(first), blocks_(blocks), entries_(blocks.size() / kBlockSizeBytes) {}

  Status finish() override {
    pin_.release();
    // An error names the volume; only try the lock for it (this may run on an event loop).
    NonBlockingScope no_wait;
    std::shared_lock<RwLock> unlocked(impl_.mu, std::defer_lock);
    return impl_.verify_blocks(id_, first_, entries_, blocks_.data(), &unlocked);
  }

  Store::Impl& impl_;
  VolumeId id_;
  uint64_t first_;
  std::span<uint8_t> blocks_;
  std::vector<LeafEntry> entries_;
  SegmentPin pin_;
  using PlannedRead::file_reads_;
};

}  // namespace

Status Store::Impl::journal_trim_locked(Volume& v, uint64_t first, uint64_t count) {
  RecordHeader h;
  h.kind = RecordKind::kTrim;
  h.entries.push_back({v.id, first, count});
  RETURN_IF_ERROR(log.append(h, {}).status());
  return map.unmap(v.root, first, count);
}

Status Store::Impl::write_block_locked(Volume& v, uint64_t block, std::span<const uint8_t> data) {
  // A block of zeros is stored as a hole: thin volumes stay thin under mkfs and zero-filling.
  if (is_all_zero(data.data(), data.size())) {
    std::array<LeafEntry, 1> e;
    RETURN_IF_ERROR(map.lookup(v.root, block, e));
    if (e[0].block.is_null()) return Status::ok();
    return journal_trim_locked(v, block, 1);
  }
  uint32_t crc = crc32c(data.data(), data.size());
  ASSIGN_OR_RETURN(PhysicalBlock at, log.add_data_block(RecordKind::kWrite, v.id, block, data, crc));
  refs.set_one(at);
  return map.set(v.root, block, LeafEntry{at, crc});
}

// ---- Store ----

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(std::unique_ptr<SegmentBackend> backend, const StoreOptions& options,
                                           bool create) {
  if (options.segment_size_bytes % kBlockSizeBytes != 0 || options.segment_size_bytes < mib(1) ||
      options.segment_size_bytes > kMaxSegmentSizeBytes) {
    return invalid_argument("segment size must be a multiple of 4 KiB between 1 MiB and 256 MiB");
  }
  std::array<uint8_t, kBlockSizeBytes> block{};
  std::optional<Superblock> best;
  for (int slot = 0; slot < 2; slot++) {
    Status s = backend->read_superblock(slot, block);
    if (s.code() == Code::kNotFound) continue;
    RETURN_IF_ERROR(s);
    Result<Superblock> sb = decode_superblock(block);
    if (!sb.is_ok()) continue;  // a torn slot: the other one is the last complete checkpoint
    if (!best || sb->checkpoint_number > best->checkpoint_number) best = *sb;
  }
  if (!best) {
    if (!create) return not_found("no Arbor store here");
    uint32_t bps = uint32_t(options.segment_size_bytes / kBlockSizeBytes);
    auto impl = std::make_unique<Impl>(std::move(backend), options, bps);
    RETURN_IF_ERROR(impl->format(random_uuid()));
    return std::unique_ptr<Store>(new Store(std::move(impl)));
  }
  auto impl = std::make_unique<Impl>(std::move(backend), options, best->blocks_per_segment);
  RETURN_IF_ERROR(impl->recover(*best));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<VolumeInfo> Store::create_volume(std::string_view name, uint64_t size_bytes) {
  RETURN_IF_ERROR(validate_volume_name(name));
  if (size_bytes == 0) return invalid_argument("size must be greater than zero");
  if (size_bytes % kBlockSizeBytes != 0) return invalid_argument("size must be a multiple of 4 KiB");
  if (size_bytes > impl_->options.max_volume_size_bytes) {
    return invalid_argument("size " + std::to_string(size_bytes) + " is past the maximum of " +
                            std::to_string(impl_->options.max_volume_size_bytes) + " bytes");
  }
  std::lock_guard sync_lock(impl_->sync_mu);
  std::unique_lock lock(impl_->mu);
  RETURN_IF_ERROR(impl_->failed);
  if (impl_->find(name)) return already_exists("volume '" + std::string(name) + "' already exists");
  RETURN_IF_ERROR(impl_->log.room_to_grow());
  Impl::VolumeOp op;
  op.kind = Impl::VolumeOpKind::kCreate;
  op.id = impl_->next_volume_id;
  op.fields.name = std::string(name);
  op.fields.size_bytes = size_bytes;
  op.fields.created_unix_ms = now_unix_ms();
  op.fields.uuid = random_uuid();
  op.fields.root.level = level_for_blocks(size_bytes / kBlockSizeBytes);
  RETURN_IF_ERROR(impl_->commit_volume_op(op));
  return impl_->info_of(*impl_->find(op.id));
}

static Result<VolumeInfo> clone_volume(Store::Impl& s, std::string_view new_name, std::string_view source, bool snapshot) {
  std::lock_guard sync_lock(s.sync_mu);
  // The branch's own record is made durable under the exclusive lock, which stops every volume's
  // I/O; that fdatasync would also write out every write since the last flush. Syncing those
  // first, with I/O going on, leaves the locked one only the branch's record.
  RETURN_IF_ERROR(s.sync_written());
  std::unique_lock lock(s.mu);
  RETURN_IF_ERROR(s.failed);
  Volume* src = s.find(source);
  if (src == nullptr) return not_found("no volume or snapshot named '" + std::string(source) + "'");
  if (s.find(new_name)) return already_exists("'" + std::string(new_name) + "' already exists");
  RETURN_IF_ERROR(s.log.room_to_grow());
  Store::Impl::VolumeOp op;
  op.kind = Store::Impl::VolumeOpKind::kBranch;
  op.id = s.next_volume_id;
  op.argument = src->id;
  op.fields.parent_id = src->id;
  op.fields.name = std::string(new_name);
  op.fields.size_bytes = src->size_bytes;
  op.fields.snapshot = snapshot;
  op.fields.created_unix_ms = now_unix_ms();
  op.fields.uuid = random_uuid();
  op.fields.root.level = src->root.level;
  RETURN_IF_ERROR(s.commit_volume_op(op));
  Result<VolumeInfo> info = s.info_of(*s.find(op.id));
  lock.unlock();
  return info;
}

Result<VolumeInfo> Store::branch(std::string_view new_name, std::string_view source) {
  RETURN_IF_ERROR(validate_volume_name(new_name));
  RETURN_IF_ERROR(validate_any_name(source));
  return clone_volume(*impl_, new_name, source, false);
}

Result<VolumeInfo> Store::snapshot(std::string_view volume_at_snap) {
  RETURN_IF_ERROR(validate_snapshot_name(volume_at_snap));
  std::string_view volume = volume_at_snap.substr(0, volume_at_snap.find('@'));
  return clone_volume(*impl_, volume_at_snap, volume, true);
}

Status Store::remove(std::string_view name) {
  RETURN_IF_ERROR(validate_any_name(name));
  std::lock_guard sync_lock(impl_->sync_mu);
  std::unique_lock lock(impl_->mu);
  RETURN_IF_ERROR(impl_->failed);
  Volume* v = impl_->find(name);
  if (v == nullptr) return not_found("no volume or snapshot named '" + std::string(name) + "'");
  if (v->open_count > 0) return busy("'" + v->name + "' is in use (served or attached): detach it first");
  if (!v->snapshot) {
    std::string prefix = v->name + "@";
    for (auto& [id, other] : impl_->volumes) {
      if (other->name.rfind(prefix, 0) == 0) {
        return busy("'" + v->name + "' has snapshots (" + other->name + "): delete them first");
      }
    }
  }
  Impl::VolumeOp op;
  op.kind = Impl::VolumeOpKind::kDelete;
  op.id = v->id;
  RETURN_IF_ERROR(impl_->commit_volume_op(op));
  // Give the space back now: the checkpoint deletes the segments nothing references any more.
  return impl_->checkpoint_locked();
}

Status Store::resize(std::string_view name, uint64_t new_size_bytes) {
  RETURN_IF_ERROR(validate_volume_name(name));
  if (new_size_bytes % kBlockSizeBytes != 0) return invalid_argument("size must be a multiple of 4 KiB");
  if (new_size_bytes > impl_->options.max_volume_size_bytes) return invalid_argument("size is past the maximum");
  std::lock_guard sync_lock(impl_->sync_mu);
  std::unique_lock lock(impl_->mu);
  RETURN_IF_ERROR(impl_->failed);
  Volume* v = impl_->find(name);
  if (v == nullptr) return not_found("no volume named '" + std::string(name) + "'");
  if (new_size_bytes < v->size_bytes) return invalid_argument("volumes only grow: shrinking would drop data");
  if (new_size_bytes == v->size_bytes) return Status::ok();
  RETURN_IF_ERROR(impl_->log.room_to_grow());
  Impl::VolumeOp op;
  op.kind = Impl::VolumeOpKind::kResize;
  op.id = v->id;
  op.argument = new_size_bytes;
  return impl_->commit_volume_op(op);
}

std::vector<VolumeInfo> Store::list() {
  std::shared_lock lock(impl_->mu);
  std::vector<VolumeInfo> out;
  for (auto& [id, v] : impl_->volumes) out.push_back(impl_->info_of(*v));
  std::sort(out.begin(), out.end(), [](const VolumeInfo& a, const VolumeInfo& b) { return a.name < b.name; });
  return out;
}

Result<VolumeInfo> Store::info(std::string_view name) {
  std::shared_lock lock(impl_->mu);
  Volume* v = impl_->find(name);
  if (v == nullptr) return not_found("no volume or snapshot named '" + std::string(name) + "'");
  return impl_->info_of(*v);
}

Result<VolumeUsage> Store::usage(std::string_view name) {
  // Exclusive: the walk loads nodes and must see a stable tree (dirty nodes included).
  std::unique_lock lock(impl_->mu);
  Volume* v = impl_->find(name);
  if (v == nullptr) return not_found("no volume or snapshot named '" + std::string(name) + "'");
  ASSIGN_OR_RETURN(TreeUsage t, impl_->map.usage(v->root));
  VolumeUsage u;
  u.logical_size_bytes = v->size_bytes;
  u.mapped_bytes = t.mapped_blocks * kBlockSizeBytes;
  u.owned_bytes = t.owned_blocks * kBlockSizeBytes;
  u.shared_bytes = t.shared_blocks * kBlockSizeBytes;
  return u;
}

StoreUsage Store::store_usage() {
  std::shared_lock lock(impl_->mu);
  StoreUsage u;
  u.segment_size_bytes = uint64_t(impl_->log.blocks_per_segment()) * kBlockSizeBytes;
  u.segments_in_use = impl_->log.segments().size();
  u.physical_used_bytes = u.segments_in_use * u.segment_size_bytes;
  u.live_bytes = impl_->refs.live_blocks_total() * kBlockSizeBytes;
  u.free_bytes = impl_->backend->free_bytes();
  u.dirty_map_nodes = impl_->map.dirty_nodes();
  u.reserved_bytes = impl_->checkpoint_reserve_bytes();
  u.full = !impl_->log.room_to_grow().is_ok();
  return u;
}

Result<VolumeId> Store::open_volume(std::string_view name) {
  std::unique_lock lock(impl_->mu);
  Volume* v = impl_->find(name);
  if (v == nullptr) return not_found("no volume or snapshot named '" + std::string(name) + "'");
  v->open_count++;
  return v->id;
}

void Store::close_volume(VolumeId id) {
  std::unique_lock lock(impl_->mu);
  Volume* v = impl_->find(id);
  ARBOR_CHECK(v != nullptr && v->open_count > 0);
  v->open_count--;
}

Result<Volume*> Store::Impl::lock_for_read(std::shared_lock<RwLock>& lock, VolumeId id, uint64_t offset,
                                           uint64_t length) {
  if (NonBlockingScope::active()) {
    if (!lock.try_lock()) return would_block("store: a writer holds the lock");
  } else {
    lock.lock();
  }
  Volume* v = find(id);
  if (v == nullptr) return not_found("volume is gone");
  RETURN_IF_ERROR(check_range(*v, offset, length));
  return v;
}

Status Store::read(VolumeId id, uint64_t offset, std::span<uint8_t> out) {
  std::shared_lock lock(impl_->mu, std::defer_lock);
  ASSIGN_OR_RETURN(Volume * v, impl_->lock_for_read(lock, id, offset, out.size()));
  return impl_->read_locked(*v, offset, out, &lock);
}

Result<std::unique_ptr<PlannedRead>> Store::plan_read(VolumeId id, uint64_t offset, std::span<uint8_t> out) {
  if (offset % kBlockSizeBytes != 0 || out.size() % kBlockSizeBytes != 0) {
    return not_supported("a planned read is whole blocks");
  }
  std::shared_lock lock(impl_->mu, std::defer_lock);
  ASSIGN_OR_RETURN(Volume * v, impl_->lock_for_read(lock, id, offset, out.size()));
  auto plan = std::make_unique<StorePlannedRead>(*impl_, id, offset / kBlockSizeBytes, out);
  std::vector<Impl::BlockRun> runs(plan->entries_.size());  // a planned read allocates anyway
  ASSIGN_OR_RETURN(size_t run_count, impl_->map_blocks_locked(*v, plan->first_, plan->entries_, out.data(), true, runs));
  if (run_count == 0) return std::unique_ptr<PlannedRead>(std::move(plan));
  plan->pin_ = impl_->log.pin_segments();
  lock.unlock();
  plan->file_reads_.reserve(run_count);
  for (const Impl::BlockRun& r : std::span(runs).first(run_count)) {
    ASSIGN_OR_RETURN(FileRead f, impl_->log.locate_written_blocks(
                                     r.first, out.subspan(r.index * kBlockSizeBytes, r.count * kBlockSizeBytes)));
    plan->file_reads_.push_back(f);
  }
  return std::unique_ptr<PlannedRead>(std::move(plan));
}

Status Store::write(VolumeId id, uint64_t offset, std::span<const uint8_t> data) {
  {
    std::unique_lock lock(impl_->mu);
    Volume* v = impl_->find(id);
    if (v == nullptr) return not_found("volume is gone");
    RETURN_IF_ERROR(impl_->writable(*v));
    RETURN_IF_ERROR(check_range(*v, offset, data.size()));
    uint64_t pos = offset, end = offset + data.size();
    std::array<uint8_t, kBlockSizeBytes> merged;
    while (pos < end) {
      uint64_t block = pos / kBlockSizeBytes;
      uint64_t block_start = block * kBlockSizeBytes;
      uint64_t n = std::min<uint64_t>(end, block_start + kBlockSizeBytes) - pos;
      std::span<const uint8_t> src = data.subspan(pos - offset, n);
      if (n == kBlockSizeBytes) {
        RETURN_IF_ERROR(impl_->write_block_locked(*v, block, src));
      } else {  // a partial block: read, merge, write the whole block
        RETURN_IF_ERROR(impl_->read_locked(*v, block_start, merged));
        std::memcpy(merged.data() + (pos - block_start), src.data(), n);
        RETURN_IF_ERROR(impl_->write_block_locked(*v, block, merged));
      }
      pos += n;
    }
    if (!impl_->wants_checkpoint()) return Status::ok();
  }
  return checkpoint();
}

Status Store::trim(VolumeId id, uint64_t offset, uint64_t length) {
  std::unique_lock lock(impl_->mu);
  Volume* v = impl_->find(id);
  if (v == nullptr) return not_found("volume is gone");
  RETURN_IF_ERROR(impl_->writable(*v));
  RETURN_IF_ERROR(check_range(*v, offset, length));
  // Whole blocks are deallocated; partial edges are zeroed in place.
  uint64_t first_full = (offset + kBlockSizeBytes - 1) / kBlockSizeBytes;
  uint64_t end_full = (offset + length) / kBlockSizeBytes;
  std::array<uint8_t, kBlockSizeBytes> merged;
  auto zero_part = [&](uint64_t lo, uint64_t hi) -> Status {
    if (lo >= hi) return Status::ok();
    uint64_t block = lo / kBlockSizeBytes;
    RETURN_IF_ERROR(impl_->read_locked(*v, block * kBlockSizeBytes, merged));
    std::memset(merged.data() + (lo - block * kBlockSizeBytes), 0, hi - lo);
    return impl_->write_block_locked(*v, block, merged);
  };
  if (first_full >= end_full) {
    // Within one block, or straddling two without a whole one.
    uint64_t mid = std::min(offset + length, first_full * kBlockSizeBytes);
    RETURN_IF_ERROR(zero_part(offset, mid));
    return zero_part(mid, offset + length);
  }
  RETURN_IF_ERROR(zero_part(offset, first_full * kBlockSizeBytes));
  RETURN_IF_ERROR(impl_->journal_trim_locked(*v, first_full, end_full - first_full));
  return zero_part(end_full * kBlockSizeBytes, offset + length);
}

Status Store::write_zeroes(VolumeId id, uint64_t offset, uint64_t length, bool may_unmap) {
  // Zero blocks are stored as holes either way (write_block_locked): an unwritten block reads as
  // zeros and takes no space, which is what NO_HOLE asks to be guaranteed to stay writable; this
  // store never fails a later write of a hole for lack of preallocation other than ENOSPC.
  (void)may_unmap;
  return trim(id, offset, length);
}

Status Store::Impl::sync_written() {
  std::vector<SegmentId> ids;
  uint64_t through = 0;
  {
    std::unique_lock lock(mu);
    RETURN_IF_ERROR(failed);
    RETURN_IF_ERROR(log.commit_open_record());
    ids = log.take_unsynced();
    through = log.next_sequence() - 1;
  }
  Status s = log.sync(ids);
  if (s.is_ok()) log.note_synced(through);
  if (!s.is_ok()) {
    // After a failed fsync the kernel may have dropped the dirty pages and a retry can succeed
    // without them ("fsyncgate"): never report a later flush as durable. Reopen to recover.
    std::unique_lock lock(mu);
    if (failed.is_ok()) failed = s;
  }
  return s;
}

Status Store::flush() {
  std::lock_guard sync_lock(impl_->sync_mu);
  return impl_->sync_written();
}

Status Store::checkpoint() {
  std::lock_guard sync_lock(impl_->sync_mu);
  std::unique_lock lock(impl_->mu);
  RETURN_IF_ERROR(impl_->failed);
  return impl_->checkpoint_locked();
}

Result<CleanStats> Store::clean(double max_live_fraction) {
  std::lock_guard sync_lock(impl_->sync_mu);
  std::unique_lock lock(impl_->mu);
  RETURN_IF_ERROR(impl_->failed);
  return impl_->clean_locked(max_live_fraction);
}

Result<CleanStats> Store::maintain(double dead_fraction, size_t max_segments) {
  std::lock_guard sync_lock(impl_->sync_mu);
  std::unique_lock lock(impl_->mu);
  RETURN_IF_ERROR(impl_->failed);
  if (impl_->wants_checkpoint()) RETURN_IF_ERROR(impl_->checkpoint_locked());
  RETURN_IF_ERROR(impl_->log.remove_released());
  uint64_t segment_bytes = uint64_t(impl_->log.blocks_per_segment()) * kBlockSizeBytes;
  uint64_t physical = impl_->log.segments().size() * segment_bytes;
  uint64_t live = impl_->refs.live_blocks_total() * kBlockSizeBytes;
  uint64_t dead = physical > live ? physical - live : 0;
  if (dead < 2 * segment_bytes || double(dead) < dead_fraction * double(physical)) return CleanStats{};
  return impl_->clean_locked(0.5, max_segments);
}

Status Store::verify() {
  std::unique_lock lock(impl_->mu);
  std::unordered_map<uint64_t, uint32_t> counts;
  std::unordered_set<uint64_t> visited;
  std::unordered_set<const Node*> visited_dirty;
  for (auto& [id, v] : impl_->volumes) {
    RETURN_IF_ERROR(impl_->map.count_references(v->root, counts, visited, visited_dirty));
  }
  uint64_t live = 0;
  for (auto& [block, count] : counts) {
    uint32_t stored = impl_->refs.get(PhysicalBlock{block});
    if (stored != count) {
      return internal_error("reference count of block " + std::to_string(block) + " is " + std::to_string(stored) +
                            ", trees hold " + std::to_string(count));
    }
    live++;
  }
  if (live != impl_->refs.live_blocks_total()) {
    return internal_error("leaked blocks: " + std::to_string(impl_->refs.live_blocks_total()) +
                          " counted live, trees reach " + std::to_string(live));
  }
  for (auto& [id, v] : impl_->volumes) {
    std::vector<uint8_t> buf(mib(1));
    for (uint64_t off = 0; off < v->size_bytes; off += buf.size()) {
      size_t n = size_t(std::min<uint64_t>(buf.size(), v->size_bytes - off));
      RETURN_IF_ERROR(impl_->read_locked(*v, off, std::span(buf.data(), n)));
    }
  }
  return Status::ok();
}

}  // namespace arbor
