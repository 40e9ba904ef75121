// Store: the engine. A set of thin volumes, branches and snapshots over one segment backend.
//
//   Store ── volume table (name -> id, size, root of its block map, parent, flags)
//     │
//     ├── BlockMap (tree/): per volume, a copy-on-write radix tree; nodes shared between branches
//     │   with reference counts, so a branch copies one root pointer.
//     ├── RefTable (tree/): reference count of every physical block (data and node).
//     └── SegmentLog (log/): every write, data or metadata, appends a checksummed record.
//
// Threading: every public method is thread-safe. Reads run concurrently with each other; writes,
// trims and control operations are serialized by one lock (a write's page-cache copy is a few µs).
// flush() waits for the device outside that lock, so it does not stall other volumes' writes.
// read() holds the lock (shared) only for the map lookup; it reads segment files after releasing
// it, under a pin that keeps those segments from being dropped, so a read that waits for the disk
// holds up no write. Inside a NonBlockingScope (util/nonblocking_scope.h), read() returns
// kWouldBlock instead of waiting for the lock or the disk.
//
// Durability: writes are journalled (a WRITE record holds the data and its logical address) and
// durable after flush(). Control operations (create, branch, snapshot, delete, resize) are
// journalled as VOLUME_OP records and synced before they return. Open replays the journal after
// the last checkpoint. See docs/format-segment-log.md and docs/format-checkpoint.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/planned_read.h"
#include "io/segment_backend.h"
#include "util/status.h"
#include "util/units.h"

namespace arbor {

struct StoreOptions {
  uint64_t segment_size_bytes = 32ull << 20;
  // Checkpoint on its own once this much journal has been written since the last one, bounding
  // replay time and the dirty metadata held in memory.
  uint64_t checkpoint_interval_bytes = 512ull << 20;
  // Clean block-map nodes kept in memory (about 8 KiB each): 131072 = 1 GiB, the metadata of
  // 128 GiB of fully mapped data. Colder nodes are read back from the log when needed.
  size_t max_cached_nodes = 131072;
  // Largest volume accepted by create/resize.
  uint64_t max_volume_size_bytes = 1ull << 50;  // 1 PiB
};

using VolumeId = uint64_t;

struct VolumeInfo {
  VolumeId id = 0;
  std::string name;         // "vol" or "vol@snap"
  uint64_t size_bytes = 0;
  bool snapshot = false;    // read-only point of a branch
  std::string parent;       // the volume or snapshot it was branched from, "" if none or deleted
  uint64_t created_unix_ms = 0;
  std::array<uint8_t, 16> uuid{};
  uint32_t open_count = 0;  // exports/handles holding it (delete refuses while > 0)
};

struct VolumeUsage {
  uint64_t logical_size_bytes = 0;
  uint64_t mapped_bytes = 0;  // blocks that read as data (not holes)
  uint64_t owned_bytes = 0;   // held by this volume alone: deleting it frees this much
  uint64_t shared_bytes = 0;  // held together with at least one other volume or snapshot
};

struct StoreUsage {
  uint64_t segment_size_bytes = 0;
  uint64_t segments_total = 0;       // 0 = unbounded (file backend grows as needed)
  uint64_t segments_in_use = 0;
  uint64_t physical_used_bytes = 0;  // segments in use x segment size
  uint64_t live_bytes = 0;           // blocks referenced by some volume (data + block map)
  uint64_t free_bytes = 0;           // what the backend reports as still available
  uint64_t dirty_map_nodes = 0;      // block-map nodes changed since the last checkpoint (memory)
  uint64_t reserved_bytes = 0;       // of free_bytes, kept for checkpoints and recovery
  bool full = false;                 // new data, volumes, branches and growth are refused
};

struct CleanStats {
  uint64_t segments_cleaned = 0;
  uint64_t blocks_moved = 0;
  uint64_t bytes_freed = 0;
};

class Store {
 public:
  // Opens the store on `backend`, formatting it when it holds no store and `create` is true.
  // Replays the journal after the last checkpoint.
  static Result<std::unique_ptr<Store>> open(std::unique_ptr<SegmentBackend> backend,
                                             const StoreOptions& options, bool create);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Control plane. Names: volumes [a-z0-9][a-z0-9_-]{0,62}; snapshots VOLUME@SNAP with the same
  // rule for SNAP.
  Result<VolumeInfo> create_volume(std::string_view name, uint64_t size_bytes);
  // New writable volume sharing every block of `source` (a volume or VOLUME@SNAP). O(1) in data size.
  Result<VolumeInfo> branch(std::string_view new_name, std::string_view source);
  // Read-only point of `volume`, named "volume@snap".
  Result<VolumeInfo> snapshot(std::string_view volume_at_snap);
  Status remove(std::string_view name);
  Status resize(std::string_view name, uint64_t new_size_bytes);  // grow only
  std::vector<VolumeInfo> list();
  Result<VolumeInfo> info(std::string_view name);
  Result<VolumeUsage> usage(std::string_view name);
  StoreUsage store_usage();

  // Data plane, by id (looked up once by a frontend through open_volume()).
  Result<VolumeId> open_volume(std::string_view name);  // counts as "in use" until close_volume
  void close_volume(VolumeId id);
  Status read(VolumeId id, uint64_t offset_bytes, std::span<uint8_t> out);
  // read() in two halves (io/planned_read.h): the caller reads the returned file runs into `out`
  // with its own I/O engine, then calls finish(). Block-aligned reads only (NotSupported
  // otherwise, and for backends whose segments are not local files: use read()). Inside a
  // NonBlockingScope, returns WouldBlock where read() would.
  Result<std::unique_ptr<PlannedRead>> plan_read(VolumeId id, uint64_t offset_bytes, std::span<uint8_t> out);
  Status write(VolumeId id, uint64_t offset_bytes, std::span<const uint8_t> data);
  Status trim(VolumeId id, uint64_t offset_bytes, uint64_t length_bytes);
  // Reads as zeros afterwards. With may_unmap the blocks are simply deallocated.
  Status write_zeroes(VolumeId id, uint64_t offset_bytes, uint64_t length_bytes, bool may_unmap);
  // Every write completed before this call is durable when it returns (all volumes).
  Status flush();

  // Writes dirty metadata and a checkpoint; shortens replay. Durable on return.
  Status checkpoint();
  // Moves live blocks out of segments whose live fraction is below `max_live_fraction` and frees
  // them. Returns what it did.
  Result<CleanStats> clean(double max_live_fraction = 0.5);
  // Background upkeep, for the daemon to call every few seconds: checkpoints when the journal
  // has grown past its interval, and when more than `dead_fraction` of the segments' space is
  // dead, cleans the emptiest segments (at most `max_segments` per call, bounding how long it
  // holds writes back). Returns what the cleaner did.
  Result<CleanStats> maintain(double dead_fraction = 0.25, size_t max_segments = 8);

  // Reports a structural check (refcounts match the trees, checksums valid). Slow: tests and fsck.
  Status verify();

  struct Impl;  // store_impl.h; named here so the engine's own files can reach it

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The canonical name rules, for the API and CLI to check before calling.
Status validate_volume_name(std::string_view name);
Status validate_snapshot_name(std::string_view volume_at_snap);

}  // namespace arbor
