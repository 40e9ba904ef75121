// A minimal in-memory ExportCatalog for this folder's tests, fuzzer and test target.
// (proto/memory_export.cc does not build at the skeleton commit; switch to MemoryCatalog once it
// does.) Not a product path. Thread-safe: one mutex per volume.
#pragma once

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>

#include "proto/block_export.h"

namespace arbor::nvme_tcp {

class TestCatalog : public proto::ExportCatalog {
 public:
  bool add(const std::string& name, uint64_t size_bytes, bool ro = false) {
    std::lock_guard lock(mu_);
    if (vols_.count(name)) return false;
    auto v = std::make_shared<Vol>();
    v->name = name;
    v->ro = ro;
    v->bytes.assign(size_bytes, 0);
    v->flushes = &flushes_;
    for (size_t i = 0; i < name.size(); i++) v->uuid[i % 16] ^= uint8_t(name[i] + i);
    v->uuid[15] ^= uint8_t(vols_.size() + 1);
    vols_[name] = v;
    return true;
  }
  Result<std::shared_ptr<proto::BlockExport>> open(std::string_view name) override {
    std::lock_guard lock(mu_);
    auto it = vols_.find(std::string(name));
    if (it == vols_.end()) return not_found("no export " + std::string(name));
    return std::shared_ptr<proto::BlockExport>(std::make_shared<Exp>(it->second));
  }
  std::vector<proto::ExportInfo> list() override {
    std::lock_guard lock(mu_);
    std::vector<proto::ExportInfo> out;
    for (auto& [n, v] : vols_) out.push_back({n, v->bytes.size(), v->ro});
    return out;
  }
  uint64_t flush_count() const { return flushes_.load(); }

 private:
  struct Vol {
    std::string name;
    bool ro = false;
    std::array<uint8_t, 16> uuid{};
    std::mutex mu;
    std::vector<uint8_t> bytes;
    std::atomic<uint64_t>* flushes = nullptr;
  };
  class Exp : public proto::BlockExport {
   public:
    explicit Exp(std::shared_ptr<Vol> v) : v_(std::move(v)) {}
    const std::string& name() const override { return v_->name; }
    uint64_t size_bytes() const override { return v_->bytes.size(); }
    bool read_only() const override { return v_->ro; }
    std::array<uint8_t, 16> uuid() const override { return v_->uuid; }
    Status read(uint64_t off, std::span<uint8_t> out) override {
      RETURN_IF_ERROR(check(off, out.size()));
      std::lock_guard lock(v_->mu);
      std::memcpy(out.data(), v_->bytes.data() + off, out.size());
      return Status::ok();
    }
    Status write(uint64_t off, std::span<const uint8_t> data, bool) override {
      if (v_->ro) return arbor::read_only(v_->name);
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
      if (v_->ro) return arbor::read_only(v_->name);
      RETURN_IF_ERROR(check(off, len));
      std::lock_guard lock(v_->mu);
      std::memset(v_->bytes.data() + off, 0, len);
      return Status::ok();
    }

   private:
    Status check(uint64_t off, uint64_t len) const {
      if (off > v_->bytes.size() || len > v_->bytes.size() - off) return out_of_range("past the end");
      return Status::ok();
    }
    std::shared_ptr<Vol> v_;
  };
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Vol>> vols_;
  std::atomic<uint64_t> flushes_{0};
};

}  // namespace arbor::nvme_tcp
