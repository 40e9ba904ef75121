// The store seen as an ExportCatalog: what the NBD and NVMe/TCP frontends serve. Each open export
// holds its volume open (Store::open_volume), so the volume cannot be deleted while served.
#pragma once

#include "proto/block_export.h"
#include "store/store.h"

namespace arbor {

class StoreExports : public proto::ExportCatalog {
 public:
  explicit StoreExports(Store& store) : store_(store) {}
  Result<std::shared_ptr<proto::BlockExport>> open(std::string_view name) override;
  std::vector<proto::ExportInfo> list() override;

 private:
  Store& store_;
};

}  // namespace arbor
