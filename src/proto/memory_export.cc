#include "proto/memory_export.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "util/nonblocking_scope.h"

namespace arbor::proto {

struct MemoryCatalog::Volume {
  std::string name;
  bool read_only = false;
  std::array<uint8_t, 16> uuid{};
  std::mutex mu;
  std::vector<uint8_t> bytes;
  std::vector<std::pair<uint64_t, uint64_t>> cold;  // [begin, end): see make_cold()
  std::atomic<uint64_t>* flushes = nullptr;
};

namespace {
class MemoryExport : public BlockExport {
 public:
  explicit MemoryExport(std::shared_ptr<MemoryCatalog::Volume> v) : v_(std::move(v)) {}
  const std::string& name() const override { return v_->name; }
  uint64_t size_bytes() const override { return v_->bytes.size(); }
  bool read_only() const override { return v_->read_only; }
  std::array<uint8_t, 16> uuid() const override { return v_->uuid; }
  Status read(uint64_t off, std::span<uint8_t> out) override {
    RETURN_IF_ERROR(check(off, out.size()));
    std::lock_guard lock(v_->mu);
    auto touches = [&](const std::pair<uint64_t, uint64_t>& r) { return r.first < off + out.size() && off < r.second; };
    if (NonBlockingScope::active()) {
      if (std::any_of(v_->cold.begin(), v_->cold.end(), touches)) return would_block("cold range");
    } else {
      std::erase_if(v_->cold, touches);
    }
    std::memcpy(out.data(), v_->bytes.data() + off, out.size());
    return Status::ok();
  }
  Status write(uint64_t off, std::span<const uint8_t> data, bool) override {
    if (v_->read_only) return read_only_error();
    RETURN_IF_ERROR(check(off, data.size()));
    std::lock_guard lock(v_->mu);
    std::memcpy(v_->bytes.data() + off, data.data(), data.size());
    return Status::ok();
  }
  Status flush() override {
    v_->flushes->fetch_add(1);
    return Status::ok();
  }
  Status trim(uint64_t off, uint64_t len) override { return write_zeroes(off, len, true); }
  Status write_zeroes(uint64_t off, uint64_t len, bool) override {
    if (v_->read_only) return read_only_error();
    RETURN_IF_ERROR(check(off, len));
    std::lock_guard lock(v_->mu);
    std::memset(v_->bytes.data() + off, 0, len);
    return Status::ok();
  }

 private:
  Status check(uint64_t off, uint64_t len) const {
    if (off > v_->bytes.size() || len > v_->bytes.size() - off) return out_of_range("past the end of " + v_->name);
    return Status::ok();
  }
  Status read_only_error() const { return ::arbor::read_only(v_->name + " is read-only"); }
  std::shared_ptr<MemoryCatalog::Volume> v_;
};
}  // namespace

bool MemoryCatalog::add(const std::string& name, uint64_t size_bytes, bool ro) {
  std::lock_guard lock(mu_);
  if (volumes_.count(name)) return false;
  auto v = std::make_shared<Volume>();
  v->name = name;
  v->read_only = ro;
  v->bytes.assign(size_bytes, 0);
  v->flushes = &flushes_;
  for (size_t i = 0; i < name.size() && i < 16; i++) v->uuid[i] = uint8_t(name[i]);
  v->uuid[15] ^= uint8_t(volumes_.size() + 1);
  volumes_.emplace(name, std::move(v));
  return true;
}

Result<std::shared_ptr<BlockExport>> MemoryCatalog::open(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return not_found("no export named '" + std::string(name) + "'");
  return std::shared_ptr<BlockExport>(std::make_shared<MemoryExport>(it->second));
}

std::vector<ExportInfo> MemoryCatalog::list() {
  std::lock_guard lock(mu_);
  std::vector<ExportInfo> out;
  for (auto& [n, v] : volumes_) out.push_back({n, v->bytes.size(), v->read_only});
  return out;
}

uint64_t MemoryCatalog::flush_count() const { return flushes_.load(); }

bool MemoryCatalog::make_cold(const std::string& name, uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return false;
  std::lock_guard volume_lock(it->second->mu);
  it->second->cold.emplace_back(offset, offset + length);
  return true;
}

}  // namespace arbor::proto
