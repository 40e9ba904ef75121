// A simulated device for crash and fault tests: segments and superblock slots in memory, with the
// failure modes a real disk has, all driven by one seeded PRNG so a seed replays a run exactly.
//
//   SimDisk            the medium: what is durable, and what sits in the "page cache" (written,
//                      not yet synced). Outlives any one Store.
//   SimSegmentBackend  one mount of the medium. crash() invalidates every backend opened before
//                      it (their calls then fail with IOError), so a dead Store can be destroyed
//                      without touching the medium.
//
// Fault rules:
//   crash()          every write not covered by a completed sync is lost, except that each pending
//                    write independently survives with probability 1/2 (the disk wrote it back on
//                    its own), and one survivor may be torn at a random 512-byte boundary.
//   flip_bit()       flips one durable bit (and the cached copy): a read must report Corruption.
//   fail_io_after()  after N more reads/writes/syncs, every one fails with EIO until cleared.
//   capacity         create() fails with ENOSPC once the segments would exceed it.
//
// Threading: all methods take one mutex; the simulation is about correctness, not speed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "io/segment_backend.h"

namespace arbor {

class SimDisk {
 public:
  explicit SimDisk(uint64_t seed) : rng_(seed) {}

  std::unique_ptr<SegmentBackend> mount();
  // Loses unsynced writes as described above. Every mounted backend dies.
  void crash();
  void flip_random_bit_in_used_block();
  void flip_bit(SegmentId segment, uint64_t byte_offset, int bit);
  void fail_io_after(int64_t operations);  // -1 clears
  void set_capacity_bytes(uint64_t bytes) { capacity_bytes_ = bytes; }
  // Called at the start of every segment read, outside the disk's lock, so a test can hold a
  // read "on the device" while other threads go on. Set before the reads it should see.
  void set_before_read(std::function<void(SegmentId)> hook) { before_read_ = std::move(hook); }
  uint64_t bytes_in_use() const;
  uint64_t seed_draw() { return rng_(); }

 private:
  friend class SimSegmentBackend;
  struct PendingWrite {
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  struct Segment {
    uint64_t size_bytes = 0;
    std::vector<uint8_t> durable;  // what survives a crash
    std::vector<uint8_t> cached;   // what reads see
    std::vector<PendingWrite> pending;
    bool created_durably = false;  // the create itself is synced (like the file backend's dir fsync)
  };
  Status tick();  // counts one operation against fail_io_after

  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  uint64_t generation_ = 1;
  std::map<SegmentId, Segment> segments_;
  std::vector<uint8_t> superblock_[2];
  int64_t fail_after_ = -1;
  uint64_t capacity_bytes_ = UINT64_MAX;
  std::function<void(SegmentId)> before_read_;
};

}  // namespace arbor
