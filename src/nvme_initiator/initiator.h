// A small userspace NVMe/TCP initiator (host): one admin queue and one I/O queue, each its own TCP
// connection, blocking sockets, one thread per Controller.
//
// What it speaks (NVMe-oF TCP transport binding 1.0, NVMe base 1.4): ICReq/ICResp with optional
// header and data digests (CRC32C); Fabrics Connect for the admin queue and an I/O queue, Property
// Set CC.EN / Property Get CSTS.RDY, Identify Controller (IOCCSZ for in-capsule data) and
// Namespace (size, LBA format, write-protected); Read (C2H data, with or without the SUCCESS
// flag), Write (in-capsule data up to the target's IOCCSZ, else R2T + H2C data in PDUs of at most
// the target's MAXH2CDATA), Flush; Disconnect by closing. Keep-alive is off (KATO 0) unless asked,
// so an idle Controller is not dropped; with kato_ms > 0 the caller sends keep_alive().
//
// Used by: `arbor-nvme-initiator` (tests against arbord and the kernel's nvmet-tcp, and the load
// generator of bench/nvme_vs_nbd.sh). Wire constants come from proto/nvme_tcp/nvme_wire.h, the
// same header the target uses, so both sides share one table of offsets.
//
// Threading: a Controller is used by one thread at a time. Async use: submit_*() up to
// queue_depth() commands, then wait() for completions; buffers must stay valid until their
// completion is returned.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace arbor::nvme_initiator {

struct ConnectOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 4420;
  std::string subsys_nqn;
  std::string host_nqn = "nqn.2014-08.org.nvmexpress:uuid:a7b0a7b0-0000-4000-8000-000000000001";
  bool header_digest = false;
  bool data_digest = false;
  uint16_t queue_depth = 32;  // I/O queue entries in flight (SQSIZE + 1 is one more)
  uint32_t kato_ms = 0;       // 0 = no keep-alive timeout
};

struct NamespaceInfo {
  uint32_t nsid = 1;
  uint64_t lba_count = 0;
  uint32_t lba_bytes = 0;
  bool read_only = false;
  uint64_t size_bytes() const { return lba_count * lba_bytes; }
};

struct Completion {
  uint64_t tag = 0;      // what the caller passed to submit_*
  uint16_t status = 0;   // (SCT << 8) | SC; 0 = success
  bool ok() const { return status == 0; }
};

class Queue;

class Controller {
 public:
  static Result<std::unique_ptr<Controller>> connect(const ConnectOptions& options);
  ~Controller();

  const NamespaceInfo& ns() const { return ns_; }
  uint16_t cntlid() const { return cntlid_; }
  uint16_t queue_depth() const { return options_.queue_depth; }
  uint32_t in_capsule_bytes() const { return in_capsule_bytes_; }

  // Synchronous I/O on the I/O queue (one command at a time).
  Status read(uint64_t lba, uint32_t lba_count, void* buf);
  Status write(uint64_t lba, uint32_t lba_count, const void* buf, bool fua = false);
  Status flush();
  Status keep_alive();

  // Asynchronous I/O: at most queue_depth() outstanding.
  Status submit_read(uint64_t lba, uint32_t lba_count, void* buf, uint64_t tag);
  Status submit_write(uint64_t lba, uint32_t lba_count, const void* buf, uint64_t tag, bool fua = false);
  Status submit_flush(uint64_t tag);
  // Blocks until at least one outstanding command completes; appends what completed.
  Status wait(std::vector<Completion>& out);
  size_t outstanding() const;

 private:
  Controller() = default;
  ConnectOptions options_;
  std::unique_ptr<Queue> admin_, io_;
  uint16_t cntlid_ = 0;
  uint32_t in_capsule_bytes_ = 0;
  NamespaceInfo ns_;
};

// "(SCT << 8) | SC" as text, e.g. "status 0x184 (Connect Invalid Host)".
std::string status_text(uint16_t status);

}  // namespace arbor::nvme_initiator
