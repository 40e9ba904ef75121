// An in-memory ExportCatalog: a stand-in store for protocol tests and fuzzers that must not depend
// on disk state. Not a product path: arbord serves the real store (store/store_exports.h).
#pragma once

#include <atomic>
#include <map>
#include <mutex>

#include "proto/block_export.h"

namespace arbor::proto {

class MemoryCatalog : public ExportCatalog {
 public:
  // Adds an export of `size_bytes` zeros. Returns false if the name exists.
  bool add(const std::string& name, uint64_t size_bytes, bool read_only = false);
  Result<std::shared_ptr<BlockExport>> open(std::string_view name) override;
  std::vector<ExportInfo> list() override;
  // Number of flush() calls served so far across all exports (tests check flush reached the store).
  uint64_t flush_count() const;
  // Makes [offset, offset+length) of `name` act like data not in the page cache: a read that
  // touches it inside a NonBlockingScope fails with Code::kWouldBlock; a read outside the scope
  // succeeds and warms the range. Returns false if there is no such export.
  bool make_cold(const std::string& name, uint64_t offset, uint64_t length);

 struct Volume;  // public so the export type in the .cc can name it

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Volume>, std::less<>> volumes_;
  std::atomic<uint64_t> flushes_{0};
};

}  // namespace arbor::proto
