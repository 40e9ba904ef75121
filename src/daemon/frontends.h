// The protocol frontends arbord runs over its store: NBD (TCP and unix socket) and NVMe/TCP.
// Each is compiled in when its library exists (ARBOR_HAVE_NBD, ARBOR_HAVE_NVME_TCP) and can be
// disabled or moved with arbord's flags.
//
// Threading: start() and stop() are called by the daemon's main thread only; endpoints() and
// nbd_unix_socket() may be called from any thread after start() returned.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proto/block_export.h"
#include "util/status.h"

namespace arbor::daemon {

class ExportAllowList;  // daemon/export_allow.h

struct FrontendOptions {
  bool nbd = true;
  // Listen addresses: "tcp://HOST:PORT" or "unix:///PATH" (also "HOST:PORT", "unix:PATH").
  std::vector<std::string> nbd_listen;
  bool nvme = true;
  std::string nvme_listen;            // "tcp://127.0.0.1:4420"
  std::string nvme_discovery_listen;  // "tcp://127.0.0.1:8009"
  std::string nvme_advertise;         // TRADDR in the discovery log page; "" = the listen host
  const ExportAllowList* allow = nullptr;  // host NQNs per export; null = any host
};

// One served endpoint, as a URI a client can use: "nbd://127.0.0.1:10809",
// "nbd+unix:///?socket=/x/nbd.sock", "nvme+tcp://127.0.0.1:4420".
struct Endpoint {
  std::string protocol;  // "nbd", "nvme-tcp", "nvme-tcp-discovery", "http"
  std::string uri;
};

// What the frontends have served since start (status).
struct FrontendStats {
  uint64_t nbd_connections = 0;
  uint64_t nbd_reads_from_memory = 0, nbd_reads_on_ring = 0, nbd_reads_on_worker = 0;
};

class Frontends {
 public:
  Frontends();
  ~Frontends();
  Status start(const FrontendOptions& options, proto::ExportCatalog& catalog);
  void stop();
  std::vector<Endpoint> endpoints() const;
  // The NBD unix socket path, "" when NBD does not listen on one (attach needs it).
  std::string nbd_unix_socket() const;
  // Human notes for status, e.g. "nvme-tcp: not built into this arbord".
  std::vector<std::string> notes() const;
  FrontendStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Normalizes a listen address flag: "127.0.0.1:10809" -> "tcp://127.0.0.1:10809",
// "unix:PATH" -> "unix:///PATH". Refuses anything else.
Result<std::string> normalize_listen(const std::string& text);

}  // namespace arbor::daemon
