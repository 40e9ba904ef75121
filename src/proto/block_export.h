// What a protocol frontend (NBD, NVMe/TCP, the FUSE attach) needs of a volume, and nothing more.
//
// Threading: every method may be called from any thread, concurrently. Offsets and lengths are in
// bytes; the store works in 4 KiB blocks and does read-modify-write for unaligned edges, but
// frontends should advertise 4096 as the preferred (and where the protocol allows, minimum) size.
//
// Durability contract (DESIGN.md invariant 1): when flush() returns OK, every write that completed
// before flush() was called, on any connection to any export of the same store, survives a crash.
// A write with fua=true is durable when it returns.
#pragma once

#include <cstdint>
#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/planned_read.h"
#include "util/status.h"

namespace arbor::proto {

class BlockExport {
 public:
  virtual ~BlockExport() = default;

  virtual const std::string& name() const = 0;
  virtual uint64_t size_bytes() const = 0;
  virtual bool read_only() const = 0;
  // A stable 128-bit identity of the volume (NVMe NGUID/UUID, NBD has none): never reused.
  virtual std::array<uint8_t, 16> uuid() const = 0;

  virtual Status read(uint64_t offset_bytes, std::span<uint8_t> out) = 0;
  // Optional: read() in two halves, for a frontend that does the file I/O on its own io_uring
  // (io/planned_read.h). NotSupported means "use read()"; WouldBlock as read() in a NonBlockingScope.
  virtual Result<std::unique_ptr<PlannedRead>> plan_read(uint64_t offset_bytes, std::span<uint8_t> out) {
    (void)offset_bytes, (void)out;
    return not_supported("no planned reads");
  }
  virtual Status write(uint64_t offset_bytes, std::span<const uint8_t> data, bool fua) = 0;
  virtual Status flush() = 0;
  // Deallocate: the range reads as zeros afterwards and its space comes back.
  virtual Status trim(uint64_t offset_bytes, uint64_t length_bytes) = 0;
  // The range reads as zeros afterwards. may_unmap=false (NBD_CMD_FLAG_NO_HOLE) keeps it allocated.
  virtual Status write_zeroes(uint64_t offset_bytes, uint64_t length_bytes, bool may_unmap) = 0;
};

struct ExportInfo {
  std::string name;  // "vol" or "vol@snap"
  uint64_t size_bytes = 0;
  bool read_only = false;
};

// Name -> export. An open export keeps its volume from being deleted until the last reference goes.
class ExportCatalog {
 public:
  virtual ~ExportCatalog() = default;
  virtual Result<std::shared_ptr<BlockExport>> open(std::string_view name) = 0;
  virtual std::vector<ExportInfo> list() = 0;
};

}  // namespace arbor::proto
