// A namespace reached through our initiator, as a BlockExport: what arbor-nvme-fuse hands to the
// same FuseDisk that serves local volumes, so the one-file FUSE server exists once.
//
// Byte ranges become commands of at most 512 KiB; an unaligned write reads the blocks it touches
// first. Trim and write-zeroes are not sent (the initiator has no DSM or Write Zeroes): trim is
// refused, write-zeroes writes zero blocks.
//
// Threading: the Controller is single-threaded, so every call holds one mutex.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "nvme_initiator/initiator.h"
#include "proto/block_export.h"

namespace arbor::nvme_initiator {

class NamespaceExport : public proto::BlockExport {
 public:
  NamespaceExport(std::unique_ptr<Controller> controller, std::string name);

  const std::string& name() const override { return name_; }
  uint64_t size_bytes() const override { return ctrl_->ns().size_bytes(); }
  bool read_only() const override { return ctrl_->ns().read_only; }
  std::array<uint8_t, 16> uuid() const override { return {}; }

  Status read(uint64_t offset_bytes, std::span<uint8_t> out) override;
  Status write(uint64_t offset_bytes, std::span<const uint8_t> data, bool fua) override;
  Status flush() override;
  Status trim(uint64_t offset_bytes, uint64_t length_bytes) override;
  Status write_zeroes(uint64_t offset_bytes, uint64_t length_bytes, bool may_unmap) override;

 private:
  Status read_blocks(uint64_t first, uint64_t count, uint8_t* buf);   // under mu_
  Status write_blocks(uint64_t first, uint64_t count, const uint8_t* buf, bool fua);
  Status write_locked(uint64_t offset_bytes, std::span<const uint8_t> data, bool fua);

  std::unique_ptr<Controller> ctrl_;
  std::string name_;
  std::mutex mu_;
};

}  // namespace arbor::nvme_initiator
