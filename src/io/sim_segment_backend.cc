#include "io/sim_segment_backend.h"

#include <algorithm>
#include <cstring>

namespace arbor {

class SimSegmentBackend : public SegmentBackend {
 public:
  SimSegmentBackend(SimDisk* disk, uint64_t generation) : disk_(disk), generation_(generation) {}

  Status create(SegmentId id, uint64_t size_bytes) override {
    std::lock_guard lock(disk_->mu_);
    RETURN_IF_ERROR(alive());
    RETURN_IF_ERROR(disk_->tick());
    if (disk_->segments_.count(id)) return io_error("segment exists");
    uint64_t used = 0;
    for (auto& [sid, s] : disk_->segments_) used += s.size_bytes;
    if (used + size_bytes > disk_->capacity_bytes_) return no_space("sim disk full");
    SimDisk::Segment s;
    s.size_bytes = size_bytes;
    s.durable.assign(size_bytes, 0);
    s.cached.assign(size_bytes, 0);
    s.created_durably = true;
    disk_->segments_.emplace(id, std::move(s));
    return Status::ok();
  }
  Status write(SegmentId id, uint64_t off, std::span<const uint8_t> data) override {
    std::lock_guard lock(disk_->mu_);
    ASSIGN_OR_RETURN(SimDisk::Segment * seg, segment_for_io(id));
    auto& s = *seg;
    if (off % 4096 != 0 || off > s.size_bytes || data.size() > s.size_bytes - off) return io_error("bad write range");
    std::memcpy(s.cached.data() + off, data.data(), data.size());
    s.pending.push_back({off, std::vector<uint8_t>(data.begin(), data.end())});
    return Status::ok();
  }
  Status read(SegmentId id, uint64_t off, std::span<uint8_t> out) override {
    if (disk_->before_read_) disk_->before_read_(id);
    std::lock_guard lock(disk_->mu_);
    ASSIGN_OR_RETURN(SimDisk::Segment * seg, segment_for_io(id));
    auto& s = *seg;
    if (off > s.size_bytes || out.size() > s.size_bytes - off) return io_error("bad read range");
    std::memcpy(out.data(), s.cached.data() + off, out.size());
    return Status::ok();
  }
  Status sync(SegmentId id) override {
    std::lock_guard lock(disk_->mu_);
    ASSIGN_OR_RETURN(SimDisk::Segment * seg, segment_for_io(id));
    auto& s = *seg;
    for (auto& w : s.pending) std::memcpy(s.durable.data() + w.offset, w.data.data(), w.data.size());
    s.pending.clear();
    return Status::ok();
  }
  Status seal(SegmentId) override {
    std::lock_guard lock(disk_->mu_);
    return alive();
  }
  Status remove(SegmentId id) override {
    std::lock_guard lock(disk_->mu_);
    RETURN_IF_ERROR(alive());
    disk_->segments_.erase(id);  // an unlink: durable at once in this model
    return Status::ok();
  }
  Result<std::vector<SegmentId>> list() override {
    std::lock_guard lock(disk_->mu_);
    RETURN_IF_ERROR(alive());
    std::vector<SegmentId> ids;
    for (auto& [id, s] : disk_->segments_) ids.push_back(id);
    return ids;
  }
  Status write_superblock(int slot, std::span<const uint8_t> block) override {
    std::lock_guard lock(disk_->mu_);
    RETURN_IF_ERROR(alive());
    RETURN_IF_ERROR(disk_->tick());
    disk_->superblock_[slot].assign(block.begin(), block.end());
    return Status::ok();
  }
  Status read_superblock(int slot, std::span<uint8_t> block) override {
    std::lock_guard lock(disk_->mu_);
    RETURN_IF_ERROR(alive());
    RETURN_IF_ERROR(disk_->tick());
    auto& sb = disk_->superblock_[slot];
    if (sb.empty()) return not_found("superblock slot empty");
    std::memcpy(block.data(), sb.data(), std::min(block.size(), sb.size()));
    return Status::ok();
  }
  uint64_t free_bytes() override {
    std::lock_guard lock(disk_->mu_);
    uint64_t used = 0;
    for (auto& [sid, s] : disk_->segments_) used += s.size_bytes;
    return disk_->capacity_bytes_ == UINT64_MAX ? (1ull << 40) : disk_->capacity_bytes_ - std::min(used, disk_->capacity_bytes_);
  }

 private:
  // The common prologue of an I/O: the mount is alive, the operation counts against injected
  // EIO, and the segment exists. REQUIRES: disk_->mu_ held.
  Result<SimDisk::Segment*> segment_for_io(SegmentId id) {
    RETURN_IF_ERROR(alive());
    RETURN_IF_ERROR(disk_->tick());
    auto it = disk_->segments_.find(id);
    if (it == disk_->segments_.end()) return not_found("no segment");
    return &it->second;
  }
  Status alive() const {
    if (generation_ != disk_->generation_) return io_error("sim: device lost in a crash");
    return Status::ok();
  }
  SimDisk* disk_;
  uint64_t generation_;
};

std::unique_ptr<SegmentBackend> SimDisk::mount() {
  std::lock_guard lock(mu_);
  return std::make_unique<SimSegmentBackend>(this, generation_);
}

Status SimDisk::tick() {
  if (fail_after_ < 0) return Status::ok();
  if (fail_after_ == 0) return io_error("sim: injected EIO");
  fail_after_--;
  return Status::ok();
}

void SimDisk::crash() {
  std::lock_guard lock(mu_);
  generation_++;
  fail_after_ = -1;
  for (auto& [id, s] : segments_) {
    for (auto& w : s.pending) {
      if (rng_() % 2 == 0) continue;  // lost
      size_t keep = w.data.size();
      if (rng_() % 4 == 0) keep = size_t(rng_() % (w.data.size() / 512 + 1)) * 512;  // torn
      std::memcpy(s.durable.data() + w.offset, w.data.data(), keep);
    }
    s.pending.clear();
    s.cached = s.durable;
  }
}

void SimDisk::flip_random_bit_in_used_block() {
  std::lock_guard lock(mu_);
  // Pick among 4 KiB blocks that are not all zero, so the flip lands in something the store wrote.
  std::vector<std::pair<SegmentId, uint64_t>> used;
  for (auto& [id, s] : segments_) {
    for (uint64_t off = 0; off < s.size_bytes; off += 4096) {
      const uint8_t* p = s.cached.data() + off;
      if (std::any_of(p, p + 4096, [](uint8_t b) { return b != 0; })) used.emplace_back(id, off);
    }
  }
  if (used.empty()) return;
  auto [id, off] = used[rng_() % used.size()];
  uint64_t bit = rng_() % (4096 * 8);
  auto& s = segments_[id];
  s.cached[off + bit / 8] ^= uint8_t(1u << (bit % 8));
  s.durable[off + bit / 8] ^= uint8_t(1u << (bit % 8));
}

void SimDisk::flip_bit(SegmentId segment, uint64_t byte_offset, int bit) {
  std::lock_guard lock(mu_);
  auto& s = segments_.at(segment);
  s.cached.at(byte_offset) ^= uint8_t(1u << bit);
  s.durable.at(byte_offset) ^= uint8_t(1u << bit);
}

void SimDisk::fail_io_after(int64_t operations) {
  std::lock_guard lock(mu_);
  fail_after_ = operations;
}

uint64_t SimDisk::bytes_in_use() const {
  std::lock_guard lock(mu_);
  uint64_t used = 0;
  for (auto& [id, s] : segments_) used += s.size_bytes;
  return used;
}

}  // namespace arbor
