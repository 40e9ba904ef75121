// Test support: an ExportCatalog whose one export ("file", 1 MiB) lives in a memory file and
// plans its reads (io/planned_read.h), so frontends' planned-read paths can be driven by unit
// tests without a store. Counts plans and finishes; `cold` and `finish_status` inject a page-cache
// miss and a failed check.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include "proto/block_export.h"
#include "util/check.h"
#include "util/nonblocking_scope.h"

namespace arbor::proto {

// Each planned read is two file runs (the halves), as a store's read of blocks in two segments
// would be. While `cold`, a read inside a NonBlockingScope would block, as a page-cache miss does.
class PlannedFileCatalog : public ExportCatalog {
 public:
  static constexpr uint64_t kSize = 1 << 20;
  PlannedFileCatalog() : fd_(::memfd_create("planned-file-catalog", 0)) { ARBOR_CHECK(::ftruncate(fd_, kSize) == 0); }
  ~PlannedFileCatalog() override { ::close(fd_); }

  Result<std::shared_ptr<BlockExport>> open(std::string_view name) override {
    if (name != "file") return not_found("no such export");
    return std::shared_ptr<BlockExport>(std::make_shared<Export>(*this));
  }
  std::vector<ExportInfo> list() override { return {{"file", kSize, false}}; }

  bool cold = true;
  Status finish_status;  // what finish() answers (a checksum failure, say)
  int plans = 0, finishes = 0, live_plans = 0;

 private:
  class Plan : public PlannedRead {
   public:
    Plan(PlannedFileCatalog& c, int fd, uint64_t offset, std::span<uint8_t> out) : c_(c) {
      c_.plans++;
      c_.live_plans++;
      size_t half = out.size() / 2;
      file_reads_.push_back({fd, offset + half, out.subspan(half)});
      if (half > 0) file_reads_.push_back({fd, offset, out.first(half)});
    }
    ~Plan() override { c_.live_plans--; }
    Status finish() override {
      c_.finishes++;
      return c_.finish_status;
    }
    PlannedFileCatalog& c_;
  };
  class Export : public BlockExport {
   public:
    explicit Export(PlannedFileCatalog& c) : c_(c) {}
    const std::string& name() const override { return name_; }
    uint64_t size_bytes() const override { return kSize; }
    bool read_only() const override { return false; }
    std::array<uint8_t, 16> uuid() const override { return {}; }
    Status read(uint64_t offset, std::span<uint8_t> out) override {
      if (c_.cold && NonBlockingScope::active()) return would_block("not in the page cache");
      return ::pread(c_.fd_, out.data(), out.size(), off_t(offset)) == ssize_t(out.size()) ? Status::ok() : io_error("pread");
    }
    Result<std::unique_ptr<PlannedRead>> plan_read(uint64_t offset, std::span<uint8_t> out) override {
      return std::unique_ptr<PlannedRead>(std::make_unique<Plan>(c_, c_.fd_, offset, out));
    }
    Status write(uint64_t offset, std::span<const uint8_t> data, bool) override {
      return ::pwrite(c_.fd_, data.data(), data.size(), off_t(offset)) == ssize_t(data.size()) ? Status::ok() : io_error("pwrite");
    }
    Status flush() override { return Status::ok(); }
    Status trim(uint64_t, uint64_t) override { return not_supported("trim"); }
    Status write_zeroes(uint64_t, uint64_t, bool) override { return not_supported("zeroes"); }

   private:
    PlannedFileCatalog& c_;
    std::string name_ = "file";
  };
  int fd_;
};

}  // namespace arbor::proto
