// SegmentLog: appends records to the open segment, rolls over to a new segment when a record does
// not fit, and knows every segment of the log (id, how many blocks are written, sequence range).
//
//   segment 7 (sealed)             segment 9 (open)
//   [hdr|d|d|d][hdr|n|n][hdr|d] .. [hdr|d|d|d|d][ open WRITE record being filled ]  <- tail
//
// WRITE records are group-committed: add_data_block() puts a block into the open WRITE record in
// memory (its address is already fixed), and the record is written when it is full, when any
// other record is appended, or on commit_open_record() (flush). Until then read_blocks() serves the
// block from memory, so a completed write is always visible to reads.
//
// Threading: not thread-safe; the Store serializes callers (writes under its exclusive lock,
// read_blocks under its shared lock, which excludes every mutation here). The exception is
// read_written_blocks() under a SegmentPin, which a reader may hold after leaving the lock, and
// the pins themselves (thread-safe).
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <vector>

#include "io/segment_backend.h"
#include "log/record_format.h"
#include "util/units.h"

namespace arbor {

inline constexpr uint32_t kSegmentIndexBits = 16;  // PhysicalBlock = segment << 16 | block index
inline constexpr uint64_t kMaxSegmentSizeBytes = uint64_t(kBlockSizeBytes) << kSegmentIndexBits;  // 256 MiB

inline PhysicalBlock physical_block(SegmentId segment, uint32_t index) {
  return PhysicalBlock{(segment << kSegmentIndexBits) | index};
}
inline SegmentId segment_of(PhysicalBlock p) { return p.value >> kSegmentIndexBits; }
inline uint32_t index_of(PhysicalBlock p) { return uint32_t(p.value & ((1u << kSegmentIndexBits) - 1)); }

struct LogSegment {
  SegmentId id = 0;
  uint32_t written_blocks = 0;  // blocks of complete records (the next record starts here)
  uint64_t first_sequence = 0;  // sequence of its first record (0 = none yet)
  uint64_t last_sequence = 0;
  bool sealed = false;
};

class SegmentLog;

// Keeps every segment the block map pointed into when it was taken from being removed (its file
// recycled) while a reader reads it outside the Store lock: on a worker, or as reads in flight on
// an event loop's io_uring. A pin counts in the epoch current when it is taken. A segment dropped
// while pins are held is doomed, not removed, and a new epoch begins; once every pin of its epoch
// and the ones before is released, the next remove_released() removes it. So dropping never waits
// for a reader, and releasing a pin (on an event loop, say) never does I/O.
class SegmentPin {
 public:
  SegmentPin() = default;
  SegmentPin(SegmentPin&& o) noexcept : log_(o.log_), epoch_(o.epoch_) { o.log_ = nullptr; }
  SegmentPin& operator=(SegmentPin&& o) noexcept;
  SegmentPin(const SegmentPin&) = delete;
  SegmentPin& operator=(const SegmentPin&) = delete;
  ~SegmentPin() { release(); }
  // Releases early; segments whose last pin this was become removable (remove_released()).
  void release();

 private:
  friend class SegmentLog;
  SegmentPin(SegmentLog* log, uint64_t epoch) : log_(log), epoch_(epoch) {}
  SegmentLog* log_ = nullptr;
  uint64_t epoch_ = 0;
};

class SegmentLog {
 public:
  SegmentLog(SegmentBackend& backend, uint32_t blocks_per_segment)
      : backend_(backend), blocks_per_segment_(blocks_per_segment) {}
  // Removes doomed segments; every pin must have been released.
  ~SegmentLog();

  // Restores the state a checkpoint or a recovery scan found. Every restored segment is sealed:
  // after open, appends start in a fresh segment, or, only when the backend has no space for one,
  // in the tail of the segment the log ended in, zeroed first (resume_tail).
  void restore(std::vector<LogSegment> segments, uint64_t next_sequence, SegmentId next_segment_id);

  // Adds one 4 KiB data block of (volume, logical block) to the open record of `kind` (WRITE for
  // the journal, RELOC for the cleaner), committing an open record of the other kind first.
  // Returns the physical address the block has from now on.
  Result<PhysicalBlock> add_data_block(RecordKind kind, uint64_t volume, uint64_t logical_block,
                                       std::span<const uint8_t> data, uint32_t crc);
  // Writes the open WRITE record, if any. Its blocks stay readable either way.
  Status commit_open_record();
  // Appends a whole record (commits the open WRITE record first). Fills in sequence, segment and
  // block index. Returns the address of the header block; payload block i is at header + 1 + i.
  Result<PhysicalBlock> append(RecordHeader& header, std::span<const uint8_t> payload);
  // The address the payload of the next append() of `payload_blocks` will start at, rolling over
  // to a new segment now if it would not fit (nodes must know their own address when encoded).
  Result<PhysicalBlock> next_payload_address(uint32_t payload_blocks);

  // Reads contiguous blocks, from the open WRITE record's memory where they are still there.
  Status read_blocks(PhysicalBlock first, std::span<uint8_t> out) const;
  // Whether any of `count` blocks from `first` is in the open WRITE record's memory.
  bool in_open_record(PhysicalBlock first, uint64_t count) const;
  // Reads blocks already written to the backend (not in the open record). Thread-safe, and needs
  // no Store lock, while the caller holds a pin taken under the lock: a written block never
  // changes, and its segment is not removed (its file recycled) until the pin is released.
  Status read_written_blocks(PhysicalBlock first, std::span<uint8_t> out) const;
  // Where those blocks lie for a caller that reads them itself (planned_read.h); same conditions.
  Result<FileRead> locate_written_blocks(PhysicalBlock first, std::span<uint8_t> out) const;
  // Thread-safe; take it under the Store lock, with the map lookup it protects.
  SegmentPin pin_segments();
  Result<RecordHeader> read_header(SegmentId segment, uint32_t index) const;

  // Segments written since the last call; the caller syncs them (Store::flush, outside its lock).
  std::vector<SegmentId> take_unsynced();
  // After a sync that covered every record up to `sequence`: later records carry it as their
  // watermark. Thread-safe (called outside the Store's lock).
  void note_synced(uint64_t sequence) {
    uint64_t cur = synced_sequence_.load();
    while (cur < sequence && !synced_sequence_.compare_exchange_weak(cur, sequence)) {
    }
  }
  Status sync(const std::vector<SegmentId>& ids);

  const std::map<SegmentId, LogSegment>& segments() const { return segments_; }
  // Forgets a segment and deletes it from the backend (the Store decides when that is safe): now,
  // or, while pins are held, at the first remove_released() after the last pin that may read it
  // is released. Never waits.
  Status drop_segment(SegmentId id);
  // Deletes the dropped segments no pin can read any more. Same caller rules as drop_segment (the
  // Store: under sync_mu, so never under a running sync). A failed removal is retried next time.
  Status remove_released();
  // Segments dropped but not yet deleted (tests, status).
  size_t doomed_segments() const;
  SegmentId open_segment() const { return open_ ? open_->id : 0; }
  // Until a segment opens after restore(): the one appends may go on in (resume_tail), else 0.
  SegmentId resume_candidate() const { return resume_candidate_; }
  uint64_t next_sequence() const { return next_sequence_; }
  SegmentId next_segment_id() const { return next_segment_id_; }
  uint32_t blocks_per_segment() const { return blocks_per_segment_; }
  uint64_t bytes_appended() const { return bytes_appended_; }
  SegmentBackend& backend() { return backend_; }
  // The space a new segment for volume data must leave free (the cleaner's RELOC records may take
  // one segment of it): what the next checkpoint and a recovery need, so that a store filled by
  // its own writes can still checkpoint, open, and delete what frees space. Asked at each such
  // roll-over; unset, data may take all.
  void set_data_reserve(std::function<uint64_t()> bytes) { data_reserve_ = std::move(bytes); }
  // What a new segment is for decides how much of the reserve it may take: data none; the
  // cleaner one segment of the two (it gives back more than it takes once its checkpoint is
  // durable); checkpoints, control records and trims all of it.
  enum class SegmentUse { kData, kCleaner, kMetadata };
  // How many new segments `use` may take from now on, one after the other (UINT64_MAX when
  // unlimited: metadata, or no reserve set).
  uint64_t segments_allowed(SegmentUse use);
  // NoSpace when a new data segment would eat into that reserve: the store is full, and takes
  // no more data, volumes, branches or growth (deletes and trims still go, and free space).
  Status room_to_grow() { return room_for(SegmentUse::kData); }

 private:
  Status room_for(SegmentUse use);
  Status ensure_room(uint32_t total_blocks, SegmentUse use);
  Status roll_over(SegmentUse use);
  Status resume_tail();

  SegmentBackend& backend_;
  const uint32_t blocks_per_segment_;
  std::map<SegmentId, LogSegment> segments_;
  LogSegment* open_ = nullptr;
  uint64_t next_sequence_ = 1;
  SegmentId next_segment_id_ = 1;
  std::set<SegmentId> unsynced_;
  uint64_t bytes_appended_ = 0;
  std::atomic<uint64_t> synced_sequence_{0};
  std::function<uint64_t()> data_reserve_;
  // After restore(), until the first segment opens: the segment the log ended in, when it has room.
  SegmentId resume_candidate_ = 0;

  // The open WRITE record: header at write_record_at_, blocks in write_buffer_.
  bool write_record_open_ = false;
  PhysicalBlock write_record_at_;
  RecordHeader write_header_;
  std::vector<uint8_t> write_buffer_;  // kBlockSizeBytes * (1 + kWriteRecordMaxBlocks)

  friend class SegmentPin;
  void unpin(uint64_t epoch);
  // Pins and doomed segments by epoch; back() is the current epoch, the only one pins join.
  struct PinEpoch {
    uint64_t pins = 0;
    std::vector<SegmentId> doomed;  // dropped while this epoch was current
  };
  mutable std::mutex pin_mu_;
  std::deque<PinEpoch> epochs_{1};
  uint64_t first_epoch_ = 0;  // the number of epochs_.front()
  uint64_t pins_held_ = 0;
  std::vector<SegmentId> released_;  // doomed, no pin left that may read them: remove_released()
};

}  // namespace arbor
