#include "store/store_exports.h"

namespace arbor {
namespace {

// One open export: holds its volume open (delete refuses) until the last reference goes.
class StoreExport : public proto::BlockExport {
 public:
  StoreExport(Store& store, VolumeId id, VolumeInfo info) : store_(store), id_(id), info_(std::move(info)) {}
  ~StoreExport() override { store_.close_volume(id_); }

  const std::string& name() const override { return info_.name; }
  uint64_t size_bytes() const override {
    // Volumes grow while served: ask the store, so a resize shows without reconnecting.
    Result<VolumeInfo> i = store_.info(info_.name);
    return i.is_ok() ? i->size_bytes : info_.size_bytes;
  }
  bool read_only() const override { return info_.snapshot; }
  std::array<uint8_t, 16> uuid() const override { return info_.uuid; }
  Status read(uint64_t offset, std::span<uint8_t> out) override { return store_.read(id_, offset, out); }
  Result<std::unique_ptr<PlannedRead>> plan_read(uint64_t offset, std::span<uint8_t> out) override {
    return store_.plan_read(id_, offset, out);
  }
  Status write(uint64_t offset, std::span<const uint8_t> data, bool fua) override {
    RETURN_IF_ERROR(store_.write(id_, offset, data));
    return fua ? store_.flush() : Status::ok();
  }
  Status flush() override { return store_.flush(); }
  Status trim(uint64_t offset, uint64_t length) override { return store_.trim(id_, offset, length); }
  Status write_zeroes(uint64_t offset, uint64_t length, bool may_unmap) override {
    return store_.write_zeroes(id_, offset, length, may_unmap);
  }

 private:
  Store& store_;
  VolumeId id_;
  VolumeInfo info_;
};

}  // namespace

Result<std::shared_ptr<proto::BlockExport>> StoreExports::open(std::string_view name) {
  ASSIGN_OR_RETURN(VolumeId id, store_.open_volume(name));
  Result<VolumeInfo> info = store_.info(name);
  if (!info.is_ok()) {
    store_.close_volume(id);
    return info.status();
  }
  return std::shared_ptr<proto::BlockExport>(std::make_shared<StoreExport>(store_, id, *info));
}

std::vector<proto::ExportInfo> StoreExports::list() {
  std::vector<proto::ExportInfo> out;
  for (const VolumeInfo& v : store_.list()) out.push_back({v.name, v.size_bytes, v.snapshot});
  return out;
}

}  // namespace arbor
