// The NBD server arbord runs: NbdSession state machines on the net:: io_uring event loops, with a
// worker pool for calls that may block: flush, FUA writes, reads that cannot be planned without
// waiting (a page-cache miss is planned on the loop and read on its ring; see
// util/nonblocking_scope.h and io/planned_read.h), and all I/O if offload_all_io.
//
// Threading: start/stop/endpoints from the owner's thread. The catalog is called from the loop
// threads (open, list during the handshake) and the exports from loops and workers, concurrently,
// as proto/block_export.h allows. stop() closes every connection and joins all threads; after it
// returns no call into the catalog or any export is running or will start.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proto/block_export.h"
#include "proto/nbd/nbd_session.h"
#include "util/status.h"

namespace arbor::net {
class Server;
class WorkerPool;
}  // namespace arbor::net

namespace arbor::nbd {

struct NbdServerOptions {
  // "tcp://127.0.0.1:10809", "tcp://[::1]:0" (0: any free port), "unix:///path/nbd.sock".
  std::vector<std::string> listen;
  int event_loops = 2;
  // Threads for flush, FUA, and reads that would wait even to be planned (all I/O when
  // offload_all_io). A read on a worker waits on the device one per thread.
  int blocking_workers = 16;
  // Run reads and plain writes on the workers too (for exports whose reads may wait on a device).
  bool offload_all_io = false;
  // Export a client gets when it asks for the empty name (nbd://host/ without a path); "" = none.
  std::string default_export;
};

class NbdServer {
 public:
  // Binds every listen address, then serves `catalog` (which must outlive the server).
  static Result<std::unique_ptr<NbdServer>> start(proto::ExportCatalog& catalog, NbdServerOptions options);
  ~NbdServer();
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // Closes every connection and joins the loops and workers. Idempotent.
  void stop();
  // NBD URIs of the bound endpoints: "nbd://127.0.0.1:10809", "nbd+unix:///?socket=/path/nbd.sock".
  std::vector<std::string> endpoints() const;
  // Connections currently open (handshake or transmission).
  size_t connection_count() const;
  // How READs were served since start (session.h: NbdReadCounters).
  const NbdReadCounters& read_counters() const { return *read_counters_; }

 private:
  NbdServer() = default;
  std::unique_ptr<NbdReadCounters> read_counters_ = std::make_unique<NbdReadCounters>();
  std::unique_ptr<net::WorkerPool> workers_;
  std::unique_ptr<net::Server> net_;
};

}  // namespace arbor::nbd
