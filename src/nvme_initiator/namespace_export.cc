#include "nvme_initiator/namespace_export.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace arbor::nvme_initiator {
namespace {
constexpr uint32_t kMaxBlocksPerCommand = 128;
}  // namespace

NamespaceExport::NamespaceExport(std::unique_ptr<Controller> controller, std::string name)
    : ctrl_(std::move(controller)), name_(std::move(name)) {}

Status NamespaceExport::read_blocks(uint64_t first, uint64_t count, uint8_t* buf) {
  const uint32_t lb = ctrl_->ns().lba_bytes;
  while (count > 0) {
    uint32_t n = uint32_t(std::min<uint64_t>(count, kMaxBlocksPerCommand));
    RETURN_IF_ERROR(ctrl_->read(first, n, buf));
    first += n;
    count -= n;
    buf += uint64_t(n) * lb;
  }
  return Status::ok();
}

Status NamespaceExport::write_blocks(uint64_t first, uint64_t count, const uint8_t* buf, bool fua) {
  const uint32_t lb = ctrl_->ns().lba_bytes;
  while (count > 0) {
    uint32_t n = uint32_t(std::min<uint64_t>(count, kMaxBlocksPerCommand));
    RETURN_IF_ERROR(ctrl_->write(first, n, buf, fua));
    first += n;
    count -= n;
    buf += uint64_t(n) * lb;
  }
  return Status::ok();
}

Status NamespaceExport::read(uint64_t off, std::span<uint8_t> out) {
  std::lock_guard lock(mu_);
  const uint64_t lb = ctrl_->ns().lba_bytes;
  if (off > size_bytes() || out.size() > size_bytes() - off) return out_of_range("read past the end of the namespace");
  const uint64_t first = off / lb, last = (off + out.size() + lb - 1) / lb;
  if (off % lb == 0 && out.size() % lb == 0) return read_blocks(first, last - first, out.data());
  std::vector<uint8_t> tmp((last - first) * lb);
  RETURN_IF_ERROR(read_blocks(first, last - first, tmp.data()));
  std::memcpy(out.data(), tmp.data() + (off - first * lb), out.size());
  return Status::ok();
}

Status NamespaceExport::write_locked(uint64_t off, std::span<const uint8_t> data, bool fua) {
  if (read_only()) return arbor::read_only("the namespace is read-only");
  const uint64_t lb = ctrl_->ns().lba_bytes;
  if (off > size_bytes() || data.size() > size_bytes() - off) return out_of_range("write past the end of the namespace");
  const uint64_t first = off / lb, last = (off + data.size() + lb - 1) / lb;
  if (off % lb == 0 && data.size() % lb == 0) return write_blocks(first, last - first, data.data(), fua);
  std::vector<uint8_t> tmp((last - first) * lb);  // read-modify-write of the blocks touched
  RETURN_IF_ERROR(read_blocks(first, last - first, tmp.data()));
  std::memcpy(tmp.data() + (off - first * lb), data.data(), data.size());
  return write_blocks(first, last - first, tmp.data(), fua);
}

Status NamespaceExport::write(uint64_t off, std::span<const uint8_t> data, bool fua) {
  std::lock_guard lock(mu_);
  return write_locked(off, data, fua);
}

Status NamespaceExport::flush() {
  std::lock_guard lock(mu_);
  return ctrl_->flush();
}

Status NamespaceExport::trim(uint64_t, uint64_t) { return not_supported("trim through the userspace initiator"); }

Status NamespaceExport::write_zeroes(uint64_t off, uint64_t len, bool) {
  std::lock_guard lock(mu_);
  const std::vector<uint8_t> zeros(size_t(kMaxBlocksPerCommand) * 4096, 0);
  while (len > 0) {
    size_t n = size_t(std::min<uint64_t>(len, zeros.size()));
    RETURN_IF_ERROR(write_locked(off, std::span(zeros.data(), n), false));
    off += n;
    len -= n;
  }
  return Status::ok();
}

}  // namespace arbor::nvme_initiator
