// The control API: HTTP/JSON on a unix socket (default STORE/arbord.sock), every endpoint of
// docs/api.md. A thin shell: it parses requests, calls Daemon, and writes JSON or
//   {"error": {"code": "...", "message": "one line"}}
// with the HTTP status from api_errors.h. Import/export stream raw bytes through
// PUT/GET /v1/volumes/NAME/data.
//
// Threading: listen() then serve() on one thread (serve blocks); stop() from any other thread.
// Requests are served by a pool of threads; Daemon is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "daemon/daemon.h"

namespace arbor::daemon {

class ControlApi {
 public:
  explicit ControlApi(Daemon& daemon);
  ~ControlApi();
  // Binds the unix socket at `path` (replacing a stale socket file).
  Status listen(const std::string& path);
  // Serves until stop(). Returns false if the server failed.
  bool serve();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace arbor::daemon
