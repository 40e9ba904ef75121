// NvmeTcpTarget: the NVMe/TCP target the daemon starts. Listens on the I/O port (4420) and the
// discovery port (8009), runs every connection's Session on a small fixed set of event-loop
// threads, and serves the exports of an ExportCatalog as one subsystem each.
//
// Transport: the shared io_uring server (net/server.h): a fixed set of event loops, each owning a
// ring; a connection lives on one loop, so its Session needs no lock; completion-driven, no busy
// polling, no thread per connection. A timer thread posts a keep-alive tick to every open
// connection every 250 ms. Reads and ordinary writes run inline on the loop (run to completion);
// Flush, FUA writes and the shutdown flush run on a small worker pool, so one slow fsync does not
// stall every other connection on that loop.
//
// Threading: start/stop/endpoints from the owner thread. The catalog and allow-list must outlive
// the target and be safe to call from the loop threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proto/block_export.h"
#include "proto/nvme_tcp/subsystems.h"
#include "util/status.h"

namespace arbor::nvme_tcp {

struct NvmeTcpOptions {
  std::string io_listen = "127.0.0.1:4420";         // HOST:PORT; port 0 picks a free port
  std::string discovery_listen = "127.0.0.1:8009";  // empty: no separate discovery listener
  std::string nqn_prefix = "nqn.2026-01.dev.arbor:";
  int event_loops = 2;
  // Threads for Flush, FUA writes and cold reads, so a slow one stalls no loop. Cold reads wait on
  // the device one per thread: this many is the queue depth the device sees.
  int blocking_workers = 16;
  // TRADDR the discovery log page reports; empty = the I/O listen host (127.0.0.1 for 0.0.0.0).
  std::string advertised_address;
};

class NvmeTcpTarget {
 public:
  static Result<std::unique_ptr<NvmeTcpTarget>> start(proto::ExportCatalog& catalog, const HostAllowList& allow,
                                                      NvmeTcpOptions options);
  ~NvmeTcpTarget();
  // Closes the listeners and every connection, joins the loops. Idempotent.
  void stop();
  // "nvme+tcp://HOST:PORT" for the I/O listener, then "nvme+tcp://HOST:PORT/discovery".
  std::vector<std::string> endpoints() const;
  uint16_t io_port() const;
  uint16_t discovery_port() const;
  // The subsystem NQN of an export.
  std::string nqn_for(std::string_view export_name) const;
  size_t connection_count() const;

  struct Impl;

 private:
  explicit NvmeTcpTarget(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace arbor::nvme_tcp
