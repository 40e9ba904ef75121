#include "log/segment_log.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <utility>

#include "util/check.h"
#include "util/crc32c.h"
#include "util/human_size.h"

namespace arbor {

void SegmentLog::restore(std::vector<LogSegment> segments, uint64_t next_sequence, SegmentId next_segment_id) {
  segments_.clear();
  for (LogSegment& s : segments) {
    s.sealed = true;
    segments_[s.id] = s;
  }
  open_ = nullptr;
  resume_candidate_ = 0;
  uint64_t last = 0;
  for (const auto& [id, seg] : segments_) {
    if (seg.last_sequence > last) {
      last = seg.last_sequence;
      resume_candidate_ = seg.written_blocks < blocks_per_segment_ ? id : 0;
    }
  }
  next_sequence_ = next_sequence;
  next_segment_id_ = next_segment_id;
  write_record_open_ = false;
  synced_sequence_ = 0;
}

uint64_t SegmentLog::segments_allowed(SegmentUse use) {
  if (!data_reserve_ || use == SegmentUse::kMetadata) return UINT64_MAX;
  uint64_t segment_bytes = uint64_t(blocks_per_segment_) * kBlockSizeBytes;
  // Data leaves the whole reserve; the cleaner may also take one of its segments.
  uint64_t keep = data_reserve_();
  uint64_t free = backend_.free_bytes() + (use == SegmentUse::kCleaner ? segment_bytes : 0);
  return free > keep ? (free - keep) / segment_bytes : 0;
}

Status SegmentLog::room_for(SegmentUse use) {
  if (segments_allowed(use) > 0) return Status::ok();
  uint64_t reserve = data_reserve_();
  uint64_t free = backend_.free_bytes();
  return no_space("the store is full (" + format_size_bytes(free) + " free, " + format_size_bytes(reserve) +
                  " of it kept for checkpoints and recovery): delete volumes or snapshots, or add space to the "
                  "file system under the store");
}

Status SegmentLog::roll_over(SegmentUse use) {
  uint64_t segment_bytes = uint64_t(blocks_per_segment_) * kBlockSizeBytes;
  RETURN_IF_ERROR(room_for(use));
  if (open_ != nullptr) {
    RETURN_IF_ERROR(backend_.seal(open_->id));
    open_->sealed = true;
    open_ = nullptr;
  }
  SegmentId id = next_segment_id_;
  Status created = backend_.create(id, segment_bytes);
  if (created.code() == Code::kNoSpace && resume_candidate_ != 0) return resume_tail();
  RETURN_IF_ERROR(created);
  next_segment_id_++;
  LogSegment& s = segments_[id];
  s.id = id;
  open_ = &s;
  resume_candidate_ = 0;
  return Status::ok();
}

// No space for a new segment right after a restart (a full store: each restart would otherwise
// take a segment, and the reserve would not last): go on in the tail of the segment the log ended
// in. Records a crash cut off the log may lie there, and one of them could sit exactly where a
// later replay expects the next record, so the tail is zeroed and made durable first.
Status SegmentLog::resume_tail() {
  LogSegment& s = segments_.at(resume_candidate_);
  constexpr uint32_t kChunkBlocks = 256;
  std::vector<uint8_t> zeros(size_t(kChunkBlocks) * kBlockSizeBytes);
  for (uint32_t b = s.written_blocks; b < blocks_per_segment_; b += kChunkBlocks) {
    uint32_t n = std::min(kChunkBlocks, blocks_per_segment_ - b);
    RETURN_IF_ERROR(backend_.write(s.id, uint64_t(b) * kBlockSizeBytes,
                                   std::span<const uint8_t>(zeros.data(), size_t(n) * kBlockSizeBytes)));
  }
  RETURN_IF_ERROR(backend_.sync(s.id));
  s.sealed = false;
  open_ = &s;
  resume_candidate_ = 0;
  return Status::ok();
}

Status SegmentLog::ensure_room(uint32_t total_blocks, SegmentUse use) {
  if (total_blocks > blocks_per_segment_) return invalid_argument("record larger than a segment");
  if (open_ == nullptr || open_->written_blocks + total_blocks > blocks_per_segment_) return roll_over(use);
  return Status::ok();
}

Result<PhysicalBlock> SegmentLog::add_data_block(RecordKind kind, uint64_t volume, uint64_t logical_block,
                                                 std::span<const uint8_t> data, uint32_t crc) {
  ARBOR_CHECK(data.size() == kBlockSizeBytes);
  ARBOR_CHECK(kind == RecordKind::kWrite || kind == RecordKind::kReloc);
  if (write_record_open_ &&
      (write_header_.entries.size() == kWriteRecordMaxBlocks || write_header_.kind != kind)) {
    RETURN_IF_ERROR(commit_open_record());
  }
  if (!write_record_open_) {
    RETURN_IF_ERROR(ensure_room(1 + kWriteRecordMaxBlocks,
                                kind == RecordKind::kWrite ? SegmentUse::kData : SegmentUse::kCleaner));
    write_record_open_ = true;
    write_record_at_ = physical_block(open_->id, open_->written_blocks);
    write_header_ = RecordHeader{};
    write_header_.kind = kind;
    write_buffer_.resize(size_t(kBlockSizeBytes) * (1 + kWriteRecordMaxBlocks));
  }
  size_t i = write_header_.entries.size();
  std::memcpy(write_buffer_.data() + (1 + i) * kBlockSizeBytes, data.data(), kBlockSizeBytes);
  write_header_.entries.push_back({volume, logical_block, uint64_t(crc)});
  return PhysicalBlock{write_record_at_.value + 1 + i};
}

Status SegmentLog::commit_open_record() {
  if (!write_record_open_) return Status::ok();
  ARBOR_CHECK(open_ != nullptr && physical_block(open_->id, open_->written_blocks) == write_record_at_);
  uint32_t n = uint32_t(write_header_.entries.size());
  write_header_.payload_blocks = n;
  write_header_.sequence = next_sequence_;
  write_header_.segment = open_->id;
  write_header_.block_index = open_->written_blocks;
  write_header_.synced_sequence = synced_sequence_.load();
  encode_record_header(write_header_, std::span(write_buffer_.data(), kBlockSizeBytes));
  Status s = backend_.write(open_->id, uint64_t(open_->written_blocks) * kBlockSizeBytes,
                            std::span<const uint8_t>(write_buffer_.data(), size_t(1 + n) * kBlockSizeBytes));
  // The record stays open on failure: its blocks are still served from memory, and the next
  // commit retries at the same place.
  RETURN_IF_ERROR(s);
  write_record_open_ = false;
  next_sequence_++;
  if (open_->first_sequence == 0) open_->first_sequence = write_header_.sequence;
  open_->last_sequence = write_header_.sequence;
  open_->written_blocks += 1 + n;
  unsynced_.insert(open_->id);
  bytes_appended_ += uint64_t(1 + n) * kBlockSizeBytes;
  return Status::ok();
}

Result<PhysicalBlock> SegmentLog::next_payload_address(uint32_t payload_blocks) {
  RETURN_IF_ERROR(commit_open_record());
  RETURN_IF_ERROR(ensure_room(1 + payload_blocks, SegmentUse::kMetadata));
  return physical_block(open_->id, open_->written_blocks + 1);
}

Result<PhysicalBlock> SegmentLog::append(RecordHeader& h, std::span<const uint8_t> payload) {
  ARBOR_CHECK(payload.size() % kBlockSizeBytes == 0);
  uint32_t n = uint32_t(payload.size() / kBlockSizeBytes);
  ASSIGN_OR_RETURN(PhysicalBlock payload_at, next_payload_address(n));
  (void)payload_at;
  h.payload_blocks = n;
  h.sequence = next_sequence_;
  h.segment = open_->id;
  h.block_index = open_->written_blocks;
  h.synced_sequence = synced_sequence_.load();
  std::vector<uint8_t> buf(size_t(1 + n) * kBlockSizeBytes);
  encode_record_header(h, std::span(buf.data(), kBlockSizeBytes));
  if (n > 0) std::memcpy(buf.data() + kBlockSizeBytes, payload.data(), payload.size());
  RETURN_IF_ERROR(backend_.write(open_->id, uint64_t(open_->written_blocks) * kBlockSizeBytes, buf));
  PhysicalBlock at = physical_block(open_->id, open_->written_blocks);
  next_sequence_++;
  if (open_->first_sequence == 0) open_->first_sequence = h.sequence;
  open_->last_sequence = h.sequence;
  open_->written_blocks += 1 + n;
  unsynced_.insert(open_->id);
  bytes_appended_ += buf.size();
  return at;
}

Status SegmentLog::read_blocks(PhysicalBlock first, std::span<uint8_t> out) const {
  ARBOR_CHECK(out.size() % kBlockSizeBytes == 0);
  uint64_t n = out.size() / kBlockSizeBytes;
  if (write_record_open_ && first.value > write_record_at_.value &&
      first.value + n <= write_record_at_.value + 1 + write_header_.entries.size()) {
    std::memcpy(out.data(), write_buffer_.data() + (first.value - write_record_at_.value) * kBlockSizeBytes, out.size());
    return Status::ok();
  }
  if (write_record_open_) {
    // A run that straddles the open record's boundary: read block by block.
    uint64_t open_first = write_record_at_.value + 1, open_end = open_first + write_header_.entries.size();
    if (first.value < open_end && first.value + n > open_first && n > 1) {
      for (uint64_t i = 0; i < n; i++) {
        RETURN_IF_ERROR(read_blocks(PhysicalBlock{first.value + i}, out.subspan(i * kBlockSizeBytes, kBlockSizeBytes)));
      }
      return Status::ok();
    }
  }
  return backend_.read(segment_of(first), uint64_t(index_of(first)) * kBlockSizeBytes, out);
}

bool SegmentLog::in_open_record(PhysicalBlock first, uint64_t count) const {
  if (!write_record_open_) return false;
  uint64_t open_first = write_record_at_.value + 1, open_end = open_first + write_header_.entries.size();
  return first.value < open_end && first.value + count > open_first;
}

Status SegmentLog::read_written_blocks(PhysicalBlock first, std::span<uint8_t> out) const {
  ARBOR_CHECK(out.size() % kBlockSizeBytes == 0);
  return backend_.read(segment_of(first), uint64_t(index_of(first)) * kBlockSizeBytes, out);
}

Result<FileRead> SegmentLog::locate_written_blocks(PhysicalBlock first, std::span<uint8_t> out) const {
  ARBOR_CHECK(out.size() % kBlockSizeBytes == 0);
  return backend_.locate(segment_of(first), uint64_t(index_of(first)) * kBlockSizeBytes, out);
}

Result<RecordHeader> SegmentLog::read_header(SegmentId segment, uint32_t index) const {
  uint8_t block[kBlockSizeBytes];
  RETURN_IF_ERROR(backend_.read(segment, uint64_t(index) * kBlockSizeBytes, std::span(block, kBlockSizeBytes)));
  ASSIGN_OR_RETURN(RecordHeader h, decode_record_header(std::span<const uint8_t>(block, kBlockSizeBytes)));
  if (h.segment != segment || h.block_index != index) return corruption("record header: misplaced");
  if (uint64_t(index) + 1 + h.payload_blocks > blocks_per_segment_) return corruption("record header: payload past segment end");
  return h;
}

std::vector<SegmentId> SegmentLog::take_unsynced() {
  std::vector<SegmentId> ids(unsynced_.begin(), unsynced_.end());
  unsynced_.clear();
  return ids;
}

Status SegmentLog::sync(const std::vector<SegmentId>& ids) {
  for (SegmentId id : ids) {
    Status s = backend_.sync(id);
    if (s.code() == Code::kNotFound) continue;  // dropped since: nothing left to make durable
    RETURN_IF_ERROR(s);
  }
  return Status::ok();
}

Status SegmentLog::drop_segment(SegmentId id) {
  ARBOR_CHECK(open_ == nullptr || open_->id != id);
  if (resume_candidate_ == id) resume_candidate_ = 0;
  segments_.erase(id);
  unsynced_.erase(id);
  {
    std::lock_guard lock(pin_mu_);
    if (pins_held_ > 0) {
      // Pins taken from now on cannot reach this segment: the map no longer points into it.
      epochs_.back().doomed.push_back(id);
      epochs_.emplace_back();
      return Status::ok();
    }
  }
  return backend_.remove(id);
}

Status SegmentLog::remove_released() {
  std::vector<SegmentId> ids;
  {
    std::lock_guard lock(pin_mu_);
    ids.swap(released_);
  }
  Status first_error;
  for (size_t i = 0; i < ids.size(); i++) {
    Status s = backend_.remove(ids[i]);
    if (!s.is_ok()) {
      // Kept for the next call: a segment is never forgotten while it is on the backend.
      std::lock_guard lock(pin_mu_);
      released_.push_back(ids[i]);
      if (first_error.is_ok()) first_error = s;
    }
  }
  return first_error;
}

size_t SegmentLog::doomed_segments() const {
  std::lock_guard lock(pin_mu_);
  size_t n = released_.size();
  for (const PinEpoch& e : epochs_) n += e.doomed.size();
  return n;
}

SegmentPin SegmentLog::pin_segments() {
  std::lock_guard lock(pin_mu_);
  epochs_.back().pins++;
  pins_held_++;
  return SegmentPin(this, first_epoch_ + epochs_.size() - 1);
}

void SegmentLog::unpin(uint64_t epoch) {
  std::lock_guard lock(pin_mu_);
  ARBOR_CHECK(epoch >= first_epoch_ && epoch - first_epoch_ < epochs_.size());
  PinEpoch& e = epochs_[epoch - first_epoch_];
  ARBOR_CHECK(e.pins > 0);
  e.pins--;
  pins_held_--;
  while (epochs_.size() > 1 && epochs_.front().pins == 0) {
    released_.insert(released_.end(), epochs_.front().doomed.begin(), epochs_.front().doomed.end());
    epochs_.pop_front();
    first_epoch_++;
  }
}

SegmentLog::~SegmentLog() {
  ARBOR_CHECK(pins_held_ == 0);
  for (SegmentId id : released_) (void)backend_.remove(id);
  for (const PinEpoch& e : epochs_) {
    for (SegmentId id : e.doomed) (void)backend_.remove(id);
  }
}

SegmentPin& SegmentPin::operator=(SegmentPin&& o) noexcept {
  if (this != &o) {
    release();
    log_ = std::exchange(o.log_, nullptr);
    epoch_ = o.epoch_;
  }
  return *this;
}

void SegmentPin::release() {
  if (log_ != nullptr) std::exchange(log_, nullptr)->unpin(epoch_);
}

}  // namespace arbor
