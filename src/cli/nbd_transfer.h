// Import/export over arbord's NBD unix socket with libnbd: several connections (the server
// advertises multi-conn), each moving 1 MiB requests synchronously, so network, engine and file
// I/O overlap. Faster than the HTTP stream (docs/cli.md has the figures); used when arbord serves
// NBD on a unix socket, else transfer.cc falls back to HTTP.
//
// Threading: each call runs its own worker threads and joins them before it returns; `progress`
// is called from the calling thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "util/status.h"

namespace arbor::cli {

struct NbdTransferStats {
  uint64_t bytes = 0;
  uint64_t zero_bytes = 0;  // sent as WRITE_ZEROES (import) or skipped as holes (export)
};

// Writes `length` bytes of `fd` (from file offset 0) into export `name` at `offset`, then flushes.
// Whole 4 KiB blocks of zeros go as WRITE_ZEROES (holes).
Result<NbdTransferStats> nbd_import(const std::string& socket, const std::string& name, int fd,
                                   uint64_t offset, uint64_t length,
                                   const std::function<void(uint64_t)>& progress);

// Reads all `length` bytes of export `name` into `fd`; with `sparse`, zero blocks are skipped
// (the caller sizes the file).
Result<NbdTransferStats> nbd_export(const std::string& socket, const std::string& name, int fd,
                                   uint64_t length, bool sparse,
                                   const std::function<void(uint64_t)>& progress);

}  // namespace arbor::cli
