#include "tree/node_format.h"

#include <cstring>

#include "util/check.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor {

std::unique_ptr<Node> Node::clone_clean() const {
  auto n = std::make_unique<Node>();
  n->level = level;
  n->first_block = first_block;
  if (is_leaf()) n->entries = entries;
  else {
    for (uint32_t i = 0; i < kFanout; i++) ARBOR_CHECK(dirty_children[i] == nullptr);
    n->children = children;
  }
  return n;
}

void encode_node(const Node& node, std::span<uint8_t> block) {
  ARBOR_CHECK(block.size() == kBlockSizeBytes);
  ARBOR_CHECK(!node.address.is_null());
  std::memset(block.data(), 0, block.size());
  uint8_t* p = block.data();
  put_u32(p, kNodeMagic);
  p[4] = node.level;
  put_u64(p + 8, node.address.value);
  put_u64(p + 16, node.first_block);
  uint8_t* e = p + kNodeHeaderBytes;
  if (node.is_leaf()) {
    for (const LeafEntry& le : node.entries) {
      put_u64(e, le.block.value);
      put_u32(e + 8, le.crc);
      e += kLeafEntryBytes;
    }
  } else {
    for (uint32_t i = 0; i < kFanout; i++) {
      ARBOR_CHECK(node.dirty_children[i] == nullptr);  // children are written before parents
      put_u64(e, node.children[i].value);
      e += kChildEntryBytes;
    }
  }
  put_u32(p + 24, crc32c(p, kBlockSizeBytes));
}

Result<std::unique_ptr<Node>> decode_node(std::span<const uint8_t> block, PhysicalBlock address) {
  const uint8_t* p = block.data();
  if (get_u32(p) != kNodeMagic) return corruption("block-map node: bad magic");
  if (crc32c_with_zero_field(p, kBlockSizeBytes, 24) != get_u32(p + 24)) return corruption("block-map node: checksum mismatch");
  if (get_u64(p + 8) != address.value) return corruption("block-map node: found at the wrong address");
  auto n = std::make_unique<Node>();
  n->level = p[4];
  if (n->level > kMaxLevel) return corruption("block-map node: level out of range");
  n->address = address;
  n->first_block = get_u64(p + 16);
  const uint8_t* e = p + kNodeHeaderBytes;
  if (n->is_leaf()) {
    for (auto& le : n->entries) {
      le.block = PhysicalBlock{get_u64(e)};
      le.crc = get_u32(e + 8);
      e += kLeafEntryBytes;
    }
  } else {
    for (auto& c : n->children) {
      c = PhysicalBlock{get_u64(e)};
      e += kChildEntryBytes;
    }
  }
  return n;
}

}  // namespace arbor
