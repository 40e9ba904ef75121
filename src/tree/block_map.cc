#include "tree/block_map.h"

#include <algorithm>
#include <cstring>

#include "util/check.h"

namespace arbor {

uint8_t level_for_blocks(uint64_t blocks) {
  uint8_t level = 0;
  while (level < kMaxLevel && (kFanoutBits * (level + 1)) < 64 && (uint64_t(1) << (kFanoutBits * (level + 1))) < blocks) {
    level++;
  }
  return level;
}

// ---- node cache ----

Result<std::shared_ptr<const Node>> BlockMap::load(PhysicalBlock address) {
  ARBOR_CHECK(!address.is_null());
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(address.value);
    if (it != cache_.end()) return it->second;
  }
  uint8_t block[kBlockSizeBytes];
  RETURN_IF_ERROR(log_.read_blocks(address, std::span(block, kBlockSizeBytes)));
  ASSIGN_OR_RETURN(std::unique_ptr<Node> node, decode_node(std::span<const uint8_t>(block, kBlockSizeBytes), address));
  std::shared_ptr<const Node> shared(std::move(node));
  std::lock_guard lock(cache_mu_);
  auto it = cache_.find(address.value);
  if (it != cache_.end()) return it->second;  // another reader loaded it meanwhile
  cache_insert_locked(address.value, shared);
  return shared;
}

void BlockMap::cache_insert_locked(uint64_t address, std::shared_ptr<const Node> node) {
  if (cache_.size() >= max_cached_nodes_) {
    // Evict an arbitrary sixteenth, starting at a moving bucket: cheap, and any clean node can be
    // read back from the log (readers holding one keep it alive through their shared_ptr).
    size_t to_evict = std::max<size_t>(1, max_cached_nodes_ / 16);
    size_t buckets = cache_.bucket_count();
    for (size_t scanned = 0; to_evict > 0 && scanned < buckets; scanned++) {
      size_t b = size_t(eviction_cursor_++ % buckets);
      while (to_evict > 0 && cache_.bucket_size(b) > 0) {
        cache_.erase(cache_.begin(b)->first);
        to_evict--;
      }
    }
  }
  cache_[address] = std::move(node);
}

void BlockMap::evict(PhysicalBlock address) {
  std::lock_guard lock(cache_mu_);
  cache_.erase(address.value);
}

size_t BlockMap::cached_nodes() const {
  std::lock_guard lock(cache_mu_);
  return cache_.size();
}

std::shared_ptr<Node> BlockMap::new_node(uint8_t level, uint64_t first_block) {
  auto n = std::make_shared<Node>();
  n->level = level;
  n->first_block = first_block;
  dirty_nodes_++;
  return n;
}

// ---- reference accounting ----

Result<std::shared_ptr<Node>> BlockMap::shadow(PhysicalBlock address) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Node> clean, load(address));
  std::shared_ptr<Node> copy = clean->clone_clean();
  dirty_nodes_++;
  if (refs_.get(address) == 1) {
    // Sole owner: the copy takes over the children's references, the old block is free.
    refs_.decrement(address);
    evict(address);
  } else {
    refs_.decrement(address);
    reference_children(*copy);
  }
  return copy;
}

void BlockMap::reference_children(const Node& copy) {
  if (copy.is_leaf()) {
    for (const LeafEntry& e : copy.entries)
      if (!e.block.is_null()) refs_.increment(e.block);
  } else {
    for (PhysicalBlock c : copy.children)
      if (!c.is_null()) refs_.increment(c);
  }
}

// An address means a write-out gave it one (another tree's, a branch sharing it): immutable now.
static bool owned_unwritten(const std::shared_ptr<Node>& slot) {
  return slot.use_count() == 1 && slot->address.is_null();
}

void BlockMap::own(std::shared_ptr<Node>& slot) {
  if (owned_unwritten(slot)) return;
  const Node& shared = *slot;
  std::shared_ptr<Node> copy = new_node(shared.level, shared.first_block);
  if (shared.is_leaf()) {
    copy->entries = shared.entries;
  } else {
    copy->children = shared.children;
    copy->dirty_children = shared.dirty_children;  // shared one level down until written through
  }
  reference_children(*copy);
  slot = std::move(copy);
}

PhysicalBlock BlockMap::take_written(std::shared_ptr<Node>& slot) {
  PhysicalBlock at = slot->address;
  refs_.increment(at);
  slot.reset();
  return at;
}

Status BlockMap::drop_dirty(std::shared_ptr<Node>& slot) {
  if (owned_unwritten(slot)) {
    RETURN_IF_ERROR(release_dirty(*slot));
    ARBOR_CHECK(dirty_nodes_ > 0);
    dirty_nodes_--;
  }
  slot.reset();
  return Status::ok();
}

Status BlockMap::release_node(PhysicalBlock address) {
  if (refs_.get(address) > 1) {
    refs_.decrement(address);
    return Status::ok();
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Node> node, load(address));
  refs_.decrement(address);
  evict(address);
  if (node->is_leaf()) {
    for (const LeafEntry& e : node->entries)
      if (!e.block.is_null()) refs_.decrement(e.block);
  } else {
    for (PhysicalBlock c : node->children)
      if (!c.is_null()) RETURN_IF_ERROR(release_node(c));
  }
  return Status::ok();
}

Status BlockMap::release_dirty(Node& node) {
  if (node.is_leaf()) {
    for (LeafEntry& e : node.entries) {
      if (!e.block.is_null()) refs_.decrement(e.block);
      e = LeafEntry{};
    }
    return Status::ok();
  }
  for (uint32_t i = 0; i < kFanout; i++) {
    if (node.dirty_children[i]) {
      RETURN_IF_ERROR(drop_dirty(node.dirty_children[i]));
    } else if (!node.children[i].is_null()) {
      RETURN_IF_ERROR(release_node(node.children[i]));
      node.children[i] = PhysicalBlock{};
    }
  }
  return Status::ok();
}

// ---- lookups ----

Status BlockMap::lookup_in(const Node& node, uint64_t first, std::span<LeafEntry> out) {
  if (node.is_leaf()) {
    uint64_t i = first - node.first_block;
    ARBOR_CHECK(i + out.size() <= kFanout);
    std::copy_n(node.entries.begin() + i, out.size(), out.begin());
    return Status::ok();
  }
  uint64_t span = node.span_per_entry();
  size_t done = 0;
  while (done < out.size()) {
    uint64_t block = first + done;
    uint64_t idx = (block - node.first_block) / span;
    ARBOR_CHECK(idx < kFanout);
    uint64_t child_end = node.first_block + (idx + 1) * span;
    size_t n = size_t(std::min<uint64_t>(out.size() - done, child_end - block));
    std::span<LeafEntry> part = out.subspan(done, n);
    if (node.dirty_children[idx]) {
      RETURN_IF_ERROR(lookup_in(*node.dirty_children[idx], block, part));
    } else if (!node.children[idx].is_null()) {
      ASSIGN_OR_RETURN(std::shared_ptr<const Node> child, load(node.children[idx]));
      RETURN_IF_ERROR(lookup_in(*child, block, part));
    } else {
      std::fill(part.begin(), part.end(), LeafEntry{});
    }
    done += n;
  }
  return Status::ok();
}

Status BlockMap::lookup(const TreeRoot& root, uint64_t first, std::span<LeafEntry> out) {
  if (root.dirty) return lookup_in(*root.dirty, first, out);
  if (root.clean.is_null()) {
    std::fill(out.begin(), out.end(), LeafEntry{});
    return Status::ok();
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Node> node, load(root.clean));
  return lookup_in(*node, first, out);
}

// ---- mutations ----

Status BlockMap::set(TreeRoot& root, uint64_t block, LeafEntry entry) {
  if (!root.dirty) {
    if (root.clean.is_null()) {
      root.dirty = new_node(root.level, 0);
    } else {
      ASSIGN_OR_RETURN(root.dirty, shadow(root.clean));
      root.clean = PhysicalBlock{};
    }
  } else {
    own(root.dirty);
  }
  Node* n = root.dirty.get();
  while (!n->is_leaf()) {
    uint64_t span = n->span_per_entry();
    uint64_t idx = (block - n->first_block) / span;
    ARBOR_CHECK(idx < kFanout);
    if (!n->dirty_children[idx]) {
      if (n->children[idx].is_null()) {
        n->dirty_children[idx] = new_node(uint8_t(n->level - 1), n->first_block + idx * span);
      } else {
        ASSIGN_OR_RETURN(n->dirty_children[idx], shadow(n->children[idx]));
        n->children[idx] = PhysicalBlock{};
      }
    } else {
      own(n->dirty_children[idx]);
    }
    n = n->dirty_children[idx].get();
  }
  uint64_t i = block - n->first_block;
  ARBOR_CHECK(i < kFanout);
  LeafEntry old = n->entries[i];
  n->entries[i] = entry;
  if (!old.block.is_null()) refs_.decrement(old.block);
  return Status::ok();
}

static bool node_is_empty(const Node& n) {
  if (n.is_leaf()) {
    return std::all_of(n.entries.begin(), n.entries.end(), [](const LeafEntry& e) { return e.block.is_null(); });
  }
  for (uint32_t i = 0; i < kFanout; i++)
    if (n.dirty_children[i] || !n.children[i].is_null()) return false;
  return true;
}

Status BlockMap::unmap_in(Node& node, uint64_t first, uint64_t end, bool* now_empty) {
  if (node.is_leaf()) {
    for (uint64_t b = first; b < end; b++) {
      LeafEntry& e = node.entries[b - node.first_block];
      if (!e.block.is_null()) refs_.decrement(e.block);
      e = LeafEntry{};
    }
    *now_empty = node_is_empty(node);
    return Status::ok();
  }
  uint64_t span = node.span_per_entry();
  for (uint64_t idx = (first - node.first_block) / span; idx < kFanout; idx++) {
    uint64_t child_first = node.first_block + idx * span;
    if (child_first >= end) break;
    uint64_t lo = std::max(first, child_first), hi = std::min(end, child_first + span);
    bool whole = lo == child_first && hi == child_first + span;
    if (node.dirty_children[idx]) {
      if (whole) {
        RETURN_IF_ERROR(drop_dirty(node.dirty_children[idx]));
      } else {
        own(node.dirty_children[idx]);
        bool empty = false;
        RETURN_IF_ERROR(unmap_in(*node.dirty_children[idx], lo, hi, &empty));
        if (empty) RETURN_IF_ERROR(drop_dirty(node.dirty_children[idx]));
      }
    } else if (!node.children[idx].is_null()) {
      if (whole) {
        RETURN_IF_ERROR(release_node(node.children[idx]));
        node.children[idx] = PhysicalBlock{};
      } else {
        // Shadow only if the part to unmap holds something: trimming holes must not copy nodes.
        std::vector<LeafEntry> probe(hi - lo);
        ASSIGN_OR_RETURN(std::shared_ptr<const Node> child, load(node.children[idx]));
        RETURN_IF_ERROR(lookup_in(*child, lo, probe));
        if (std::all_of(probe.begin(), probe.end(), [](const LeafEntry& e) { return e.block.is_null(); })) continue;
        ASSIGN_OR_RETURN(node.dirty_children[idx], shadow(node.children[idx]));
        node.children[idx] = PhysicalBlock{};
        bool empty = false;
        RETURN_IF_ERROR(unmap_in(*node.dirty_children[idx], lo, hi, &empty));
        if (empty) RETURN_IF_ERROR(drop_dirty(node.dirty_children[idx]));
      }
    }
  }
  *now_empty = node_is_empty(node);
  return Status::ok();
}

Status BlockMap::unmap(TreeRoot& root, uint64_t first, uint64_t count) {
  if (root.empty() || count == 0) return Status::ok();
  uint64_t end = first + count;
  uint64_t covered = (root.level + 1) * kFanoutBits >= 64 ? UINT64_MAX : uint64_t(1) << ((root.level + 1) * kFanoutBits);
  if (first == 0 && end >= covered) return drop(root);
  if (!root.dirty) {
    std::vector<LeafEntry> probe(std::min<uint64_t>(count, 1 << 20));
    bool any = false;
    for (uint64_t b = first; b < end && !any; b += probe.size()) {
      size_t n = size_t(std::min<uint64_t>(probe.size(), end - b));
      RETURN_IF_ERROR(lookup(root, b, std::span(probe.data(), n)));
      any = std::any_of(probe.begin(), probe.begin() + n, [](const LeafEntry& e) { return !e.block.is_null(); });
    }
    if (!any) return Status::ok();
    ASSIGN_OR_RETURN(root.dirty, shadow(root.clean));
    root.clean = PhysicalBlock{};
  } else {
    own(root.dirty);
  }
  bool empty = false;
  RETURN_IF_ERROR(unmap_in(*root.dirty, first, end, &empty));
  if (empty) RETURN_IF_ERROR(drop_dirty(root.dirty));
  return Status::ok();
}

void BlockMap::clone(const TreeRoot& src, TreeRoot& dst) {
  ARBOR_CHECK(dst.empty());
  dst.level = src.level;
  if (src.dirty) {
    dst.dirty = src.dirty;  // shared until either writes through it (own)
    return;
  }
  dst.clean = src.clean;
  if (!dst.clean.is_null()) refs_.increment(dst.clean);
}

Status BlockMap::drop(TreeRoot& root) {
  if (root.dirty) {
    RETURN_IF_ERROR(drop_dirty(root.dirty));
  } else if (!root.clean.is_null()) {
    RETURN_IF_ERROR(release_node(root.clean));
  }
  root.clean = PhysicalBlock{};
  return Status::ok();
}

Status BlockMap::raise_level(TreeRoot& root, uint8_t new_level) {
  ARBOR_CHECK(new_level >= root.level && new_level <= kMaxLevel);
  while (root.level < new_level) {
    if (!root.empty()) {
      std::shared_ptr<Node> top = new_node(uint8_t(root.level + 1), 0);
      if (root.dirty) top->dirty_children[0] = std::move(root.dirty);
      else top->children[0] = root.clean;  // the reference moves from the root slot to `top`
      root.clean = PhysicalBlock{};
      root.dirty = std::move(top);
    }
    root.level++;
  }
  return Status::ok();
}

// ---- write-out ----

void BlockMap::unwritten_post_order(Node* n, std::vector<Node*>& out) {
  if (!n->is_leaf()) {
    for (uint32_t i = 0; i < kFanout; i++) {
      std::shared_ptr<Node>& c = n->dirty_children[i];
      if (!c) continue;
      if (!c->address.is_null()) {
        n->children[i] = take_written(c);
        continue;
      }
      unwritten_post_order(c.get(), out);
    }
  }
  out.push_back(n);
}

Status BlockMap::write_dirty(TreeRoot& root) {
  if (!root.dirty) return Status::ok();
  if (!root.dirty->address.is_null()) {  // the whole tree is shared with one written already
    root.clean = take_written(root.dirty);
    return Status::ok();
  }
  std::vector<Node*> order;
  unwritten_post_order(root.dirty.get(), order);
  size_t done = 0;
  const uint32_t per_record = std::min<uint32_t>(256, log_.blocks_per_segment() - 1);
  std::vector<uint8_t> buf;
  while (done < order.size()) {
    uint32_t k = uint32_t(std::min<size_t>(per_record, order.size() - done));
    ASSIGN_OR_RETURN(PhysicalBlock first, log_.next_payload_address(k));
    buf.assign(size_t(k) * kBlockSizeBytes, 0);
    for (uint32_t j = 0; j < k; j++) {
      Node* n = order[done + j];
      n->address = PhysicalBlock{first.value + j};
      if (!n->is_leaf()) {
        // Children were written earlier in this post-order: hand them to the cache as clean.
        for (uint32_t i = 0; i < kFanout; i++) {
          if (!n->dirty_children[i]) continue;
          ARBOR_CHECK(!n->dirty_children[i]->address.is_null());
          n->children[i] = n->dirty_children[i]->address;
          std::shared_ptr<const Node> clean(std::move(n->dirty_children[i]));
          std::lock_guard lock(cache_mu_);
          cache_insert_locked(n->children[i].value, std::move(clean));
        }
      }
      encode_node(*n, std::span(buf.data() + size_t(j) * kBlockSizeBytes, kBlockSizeBytes));
    }
    RecordHeader h;
    h.kind = RecordKind::kNodes;
    ASSIGN_OR_RETURN(PhysicalBlock header_at, log_.append(h, buf));
    ARBOR_CHECK(header_at.value + 1 == first.value);
    for (uint32_t j = 0; j < k; j++) refs_.set_one(PhysicalBlock{first.value + j});
    done += k;
  }
  ARBOR_CHECK(dirty_nodes_ >= order.size());
  dirty_nodes_ -= order.size();
  root.clean = root.dirty->address;
  std::shared_ptr<const Node> clean(std::move(root.dirty));
  std::lock_guard lock(cache_mu_);
  cache_insert_locked(root.clean.value, std::move(clean));
  return Status::ok();
}

// ---- usage ----

Status BlockMap::usage_in(PhysicalBlock address, const Node* node, bool exclusive, TreeUsage& u) {
  std::shared_ptr<const Node> holder;
  if (node == nullptr) {
    ASSIGN_OR_RETURN(holder, load(address));
    node = holder.get();
    exclusive = exclusive && refs_.get(address) == 1;
  }
  if (node->is_leaf()) {
    for (const LeafEntry& e : node->entries) {
      if (e.block.is_null()) continue;
      u.mapped_blocks++;
      if (exclusive && refs_.get(e.block) == 1) u.owned_blocks++;
      else u.shared_blocks++;
    }
    return Status::ok();
  }
  for (uint32_t i = 0; i < kFanout; i++) {
    const std::shared_ptr<Node>& d = node->dirty_children[i];
    if (d) RETURN_IF_ERROR(usage_in(PhysicalBlock{}, d.get(), exclusive && d.use_count() == 1, u));
    else if (!node->children[i].is_null()) RETURN_IF_ERROR(usage_in(node->children[i], nullptr, exclusive, u));
  }
  return Status::ok();
}

Result<TreeUsage> BlockMap::usage(const TreeRoot& root) {
  TreeUsage u;
  if (root.dirty) RETURN_IF_ERROR(usage_in(PhysicalBlock{}, root.dirty.get(), root.dirty.use_count() == 1, u));
  else if (!root.clean.is_null()) RETURN_IF_ERROR(usage_in(root.clean, nullptr, true, u));
  return u;
}

// ---- cleaner ----

Result<PhysicalBlock> BlockMap::write_single(Node& node) {
  ASSIGN_OR_RETURN(PhysicalBlock at, log_.next_payload_address(1));
  node.address = at;
  std::vector<uint8_t> buf(kBlockSizeBytes);
  encode_node(node, buf);
  RecordHeader h;
  h.kind = RecordKind::kNodes;
  ASSIGN_OR_RETURN(PhysicalBlock header_at, log_.append(h, buf));
  ARBOR_CHECK(header_at.value + 1 == at.value);
  return at;
}

static bool covers_interest(const std::vector<uint64_t>& leaves, uint64_t first_block, uint64_t span_blocks) {
  uint64_t lo = first_block >> kFanoutBits;
  uint64_t hi = (first_block + span_blocks + kFanout - 1) >> kFanoutBits;  // exclusive
  auto it = std::lower_bound(leaves.begin(), leaves.end(), lo);
  return it != leaves.end() && *it < hi;
}

Result<PhysicalBlock> BlockMap::relocate_node(PhysicalBlock address, const std::unordered_set<SegmentId>& victims,
                                              const std::vector<uint64_t>& leaves, const MoveData& move_data,
                                              RelocationMemo& memo) {
  auto m = memo.moved_nodes.find(address.value);
  if (m != memo.moved_nodes.end()) return m->second;
  ASSIGN_OR_RETURN(std::shared_ptr<const Node> node, load(address));
  bool changed = victims.count(segment_of(address)) > 0;
  std::unique_ptr<Node> copy = node->clone_clean();
  if (copy->is_leaf()) {
    for (uint32_t i = 0; i < kFanout; i++) {
      LeafEntry& e = copy->entries[i];
      if (e.block.is_null() || !victims.count(segment_of(e.block))) continue;
      auto d = memo.moved_data.find(e.block.value);
      PhysicalBlock to;
      if (d != memo.moved_data.end()) {
        to = d->second;
      } else {
        ASSIGN_OR_RETURN(to, move_data(e.block, copy->first_block + i, e.crc));
        memo.moved_data.emplace(e.block.value, to);
      }
      e.block = to;
      changed = true;
    }
  } else {
    uint64_t span = copy->span_per_entry();
    for (uint32_t i = 0; i < kFanout; i++) {
      PhysicalBlock c = copy->children[i];
      if (c.is_null()) continue;
      if (!victims.count(segment_of(c)) && !covers_interest(leaves, copy->first_block + i * span, span)) continue;
      ASSIGN_OR_RETURN(PhysicalBlock moved, relocate_node(c, victims, leaves, move_data, memo));
      if (moved != c) {
        copy->children[i] = moved;
        changed = true;
      }
    }
  }
  if (!changed) {
    memo.moved_nodes.emplace(address.value, address);
    return address;
  }
  ASSIGN_OR_RETURN(PhysicalBlock to, write_single(*copy));
  refs_.transfer(address, to);
  evict(address);
  {
    std::shared_ptr<const Node> clean(std::move(copy));
    std::lock_guard lock(cache_mu_);
    cache_insert_locked(to.value, std::move(clean));
  }
  memo.moved_nodes.emplace(address.value, to);
  return to;
}

Status BlockMap::relocate(TreeRoot& root, const std::unordered_set<SegmentId>& victims,
                          const std::vector<uint64_t>& leaves, const MoveData& move_data, RelocationMemo& memo) {
  ARBOR_CHECK(root.dirty == nullptr);
  if (root.clean.is_null()) return Status::ok();
  ASSIGN_OR_RETURN(PhysicalBlock moved, relocate_node(root.clean, victims, leaves, move_data, memo));
  root.clean = moved;
  return Status::ok();
}

// ---- verification ----

Status BlockMap::count_references(const TreeRoot& root, std::unordered_map<uint64_t, uint32_t>& counts,
                                  std::unordered_set<uint64_t>& visited,
                                  std::unordered_set<const Node*>& visited_dirty) {
  std::function<Status(const Node&)> walk = [&](const Node& n) -> Status {
    if (n.is_leaf()) {
      for (const LeafEntry& e : n.entries)
        if (!e.block.is_null()) counts[e.block.value]++;
      return Status::ok();
    }
    for (uint32_t i = 0; i < kFanout; i++) {
      if (n.dirty_children[i]) {
        if (visited_dirty.insert(n.dirty_children[i].get()).second) RETURN_IF_ERROR(walk(*n.dirty_children[i]));
      } else if (!n.children[i].is_null()) {
        counts[n.children[i].value]++;
        if (visited.insert(n.children[i].value).second) {
          ASSIGN_OR_RETURN(std::shared_ptr<const Node> c, load(n.children[i]));
          RETURN_IF_ERROR(walk(*c));
        }
      }
    }
    return Status::ok();
  };
  if (root.dirty) return visited_dirty.insert(root.dirty.get()).second ? walk(*root.dirty) : Status::ok();
  if (root.clean.is_null()) return Status::ok();
  counts[root.clean.value]++;
  if (!visited.insert(root.clean.value).second) return Status::ok();
  ASSIGN_OR_RETURN(std::shared_ptr<const Node> n, load(root.clean));
  return walk(*n);
}

}  // namespace arbor
