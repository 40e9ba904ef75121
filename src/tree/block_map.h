// BlockMap: the copy-on-write radix trees of every volume (one TreeRoot each), sharing nodes
// between branches with reference counts. After O. Rodeh, "B-trees, Shadowing, and Clones", and
// dm-thin's persistent-data, on a log-structured device.
//
//   volume A root ──► [n1] ──► [leaf x] ──► data blocks
//                      │  ╲
//   volume B root ─────┘   [leaf y]          branch B of A: B's root points at n1, count(n1) = 2
//
// Write path: walking down, every node on the path is made dirty ("shadowed"): a clean node with
// count 1 is copied and its old block freed (the copy takes over its children); a shared one
// (count > 1) is copied, its count drops by one and every child gains one reference. So a branch
// copies one root pointer, reads cost the tree height whatever the branch depth, and deleting a
// parent only drops references.
//
// A branch of a tree with dirty (not yet written) nodes shares them too: both roots point at the
// same in-memory nodes, and a write through either copies a shared dirty node on its path first,
// as it does a clean node with count > 1. So a branch is O(1) under any write load, on the live
// path and in journal replay alike.
//
// Invariants: dirty nodes have no count (a dirty node holds one reference to each child and data
// block however many parents share it); clean nodes are immutable; a node's children are written
// before it (post-order), so a clean node never points at a dirty one; a dirty node shared by
// several trees is written once, and each parent then counts as one reference to it.
//
// Threading: lookups may run concurrently with each other (the Store's shared lock); every other
// method needs the Store's exclusive lock. The node cache has its own mutex.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "log/segment_log.h"
#include "tree/node_format.h"
#include "tree/ref_table.h"

namespace arbor {

struct TreeRoot {
  PhysicalBlock clean;          // the root node when no write happened since the last write-out
  std::shared_ptr<Node> dirty;  // the root node when dirty (then `clean` is null)
  uint8_t level = 0;            // root level: the tree covers 256^(level+1) blocks
  bool empty() const { return clean.is_null() && dirty == nullptr; }
};

// The root level a tree needs to cover `blocks` logical blocks.
uint8_t level_for_blocks(uint64_t blocks);

struct TreeUsage {
  uint64_t mapped_blocks = 0;
  uint64_t owned_blocks = 0;   // data and nodes only this tree references
  uint64_t shared_blocks = 0;  // data blocks reachable from another tree too
};

class BlockMap {
 public:
  // `max_cached_nodes` bounds the clean nodes kept in memory (about 8 KiB each); dirty nodes are
  // bounded by the Store's checkpoint policy instead.
  BlockMap(SegmentLog& log, RefTable& refs, size_t max_cached_nodes = 131072)
      : log_(log), refs_(refs), max_cached_nodes_(max_cached_nodes) {}

  // Entries for logical blocks [first, first + out.size()); holes come back null.
  Status lookup(const TreeRoot& root, uint64_t first, std::span<LeafEntry> out);

  // Maps `block` to `entry`. The entry's block must already hold one reference for this mapping
  // (RefTable::set_one for a fresh write). Releases what the block mapped to before.
  Status set(TreeRoot& root, uint64_t block, LeafEntry entry);
  // Unmaps [first, first + count): holes afterwards, references released.
  Status unmap(TreeRoot& root, uint64_t first, uint64_t count);
  // dst becomes a second tree with src's content: a second reference to src's root, clean or
  // dirty. O(1), no I/O: the same on the live path and in journal replay.
  void clone(const TreeRoot& src, TreeRoot& dst);
  // Releases every reference the tree holds; root becomes empty.
  Status drop(TreeRoot& root);
  // Raises the root level (grow); the old tree becomes the first child.
  Status raise_level(TreeRoot& root, uint8_t new_level);

  // Writes the tree's dirty nodes (post-order, NODES records); root becomes clean. A dirty node
  // another tree's write-out already wrote (shared since a branch) is not written again: this
  // tree's parent of it becomes one more reference to it.
  Status write_dirty(TreeRoot& root);
  size_t dirty_nodes() const { return dirty_nodes_; }

  Result<TreeUsage> usage(const TreeRoot& root);

  // Cleaner support: rewrites every clean node that points into `victims` or lies in them, moving
  // the data blocks through `move_data` (returns the new address). Shared nodes are rewritten
  // once (memo), so sharing is kept. The root must be clean.
  using MoveData = std::function<Result<PhysicalBlock>(PhysicalBlock old, uint64_t logical_block, uint32_t crc)>;
  struct RelocationMemo {
    std::unordered_map<uint64_t, PhysicalBlock> moved_nodes;
    std::unordered_map<uint64_t, PhysicalBlock> moved_data;
  };
  // `leaves_of_interest` (sorted logical leaf indexes, block >> 8) bounds the walk to subtrees
  // that can hold victim blocks.
  Status relocate(TreeRoot& root, const std::unordered_set<SegmentId>& victims,
                  const std::vector<uint64_t>& leaves_of_interest, const MoveData& move_data,
                  RelocationMemo& memo);

  // Test and fsck support: counts every reference reachable from `roots` into `counts`.
  // Dirty nodes shared by several trees hold their references once: `visited_dirty` tracks them.
  Status count_references(const TreeRoot& root, std::unordered_map<uint64_t, uint32_t>& counts,
                          std::unordered_set<uint64_t>& visited_nodes,
                          std::unordered_set<const Node*>& visited_dirty);

  Result<std::shared_ptr<const Node>> load(PhysicalBlock address);
  void evict(PhysicalBlock address);
  size_t cached_nodes() const;

 private:
  Result<std::shared_ptr<Node>> shadow(PhysicalBlock address);
  // Makes `slot` a dirty node this tree alone owns, copying it when shared (a branch since).
  void own(std::shared_ptr<Node>& slot);
  // A copy of a node refers to its children (or data blocks) too: one more reference each.
  void reference_children(const Node& copy);
  // A dirty child shared since a branch that another tree's write-out already wrote: this parent
  // becomes one more reference to its address, which it returns; `slot` is emptied.
  PhysicalBlock take_written(std::shared_ptr<Node>& slot);
  Status release_node(PhysicalBlock address);
  // Drops one owner of a dirty node; the last releases what the node references.
  Status drop_dirty(std::shared_ptr<Node>& slot);
  Status release_dirty(Node& node);
  Status lookup_in(const Node& node, uint64_t first, std::span<LeafEntry> out);
  Status unmap_in(Node& node, uint64_t first, uint64_t end, bool* now_empty);
  Status usage_in(PhysicalBlock address, const Node* node, bool exclusive, TreeUsage& u);
  Result<PhysicalBlock> relocate_node(PhysicalBlock address, const std::unordered_set<SegmentId>& victims,
                                      const std::vector<uint64_t>& leaves, const MoveData& move_data,
                                      RelocationMemo& memo);
  Result<PhysicalBlock> write_single(Node& node);
  // The dirty nodes under `n` no write-out gave an address yet, children first.
  void unwritten_post_order(Node* n, std::vector<Node*>& out);
  std::shared_ptr<Node> new_node(uint8_t level, uint64_t first_block);
  // Inserts a clean node, evicting others past the bound. REQUIRES: cache_mu_ held.
  void cache_insert_locked(uint64_t address, std::shared_ptr<const Node> node);

  SegmentLog& log_;
  RefTable& refs_;
  size_t dirty_nodes_ = 0;
  const size_t max_cached_nodes_;
  uint64_t eviction_cursor_ = 0;
  mutable std::mutex cache_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<const Node>> cache_;
};

}  // namespace arbor
