// A block-map node: one 4 KiB block of a copy-on-write radix tree with fanout 256.
// Spec: docs/format-block-map.md.
//
// Level 0 is a leaf: 256 entries {u64 physical block, u32 crc32c of that data block}, covering
// 256 consecutive logical blocks (1 MiB). Level h > 0 is internal: 256 child node addresses, each
// child covering 256^h logical blocks. A zero address is a hole: it reads as zeros, costs nothing.
//
// Layout (little-endian):
//   0  u32 magic 'ANOD'   4 u8 level   5..7 reserved   8 u64 own address (misdirected-write check)
//   16 u64 first logical block covered   24 u32 crc32c of the 4 KiB with this field zero
//   28..63 reserved, zero   64.. entries (leaf: 256 x 12 bytes; internal: 256 x 8 bytes)
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "util/status.h"
#include "util/units.h"

namespace arbor {

inline constexpr uint32_t kNodeMagic = 0x444F4E41;  // "ANOD"
inline constexpr uint32_t kFanoutBits = 8;
inline constexpr uint32_t kFanout = 1u << kFanoutBits;
inline constexpr size_t kNodeHeaderBytes = 64;
inline constexpr size_t kLeafEntryBytes = 12;
inline constexpr size_t kChildEntryBytes = 8;
inline constexpr uint8_t kMaxLevel = 7;  // 256^8 blocks: more than any volume
static_assert(kNodeHeaderBytes + kFanout * kLeafEntryBytes <= kBlockSizeBytes);

struct LeafEntry {
  PhysicalBlock block;  // null: hole
  uint32_t crc = 0;     // crc32c of the 4 KiB data block
};

// In memory a node is either clean (written at `address`, shared read-only through the node
// cache) or dirty (address null until a write-out gives it one). A dirty node is shared by the
// trees of a branch made since it was last written (BlockMap::clone), and copied before either
// changes it. A dirty internal node may have dirty children (dirty_children[i]); a clean node
// never does.
struct Node {
  uint8_t level = 0;
  uint64_t first_block = 0;
  PhysicalBlock address;
  std::array<LeafEntry, kFanout> entries{};              // level 0
  std::array<PhysicalBlock, kFanout> children{};         // level > 0: clean children
  std::array<std::shared_ptr<Node>, kFanout> dirty_children;  // level > 0: dirty children

  bool is_leaf() const { return level == 0; }
  // Logical blocks covered by one child entry of this node.
  uint64_t span_per_entry() const { return uint64_t(1) << (kFanoutBits * level); }
  // A clean copy of the persistent fields (no dirty children: the source must have none).
  std::unique_ptr<Node> clone_clean() const;
};

void encode_node(const Node& node, std::span<uint8_t> block);
// Checks magic, checksum, level and that it is the node expected at `address`.
Result<std::unique_ptr<Node>> decode_node(std::span<const uint8_t> block, PhysicalBlock address);

}  // namespace arbor
