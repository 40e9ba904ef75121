// Daemon: one store, its frontends, its attachments, and the control operations the API serves.
//
// The control API (control_api.cc) is a thin HTTP/JSON shell over the methods here; every method
// validates its input before it reaches the engine, so a bad request gets a clear, one-line error
// (DESIGN.md invariant 6). Results are JSON objects documented in docs/api.md.
//
// Lifecycle: start() opens the store (taking its lock), starts the frontends; the caller then serves
// the API, waits in wait_for_stop() until SIGTERM or POST /v1/daemon/stop, and calls shutdown():
// detach, stop frontends, flush, checkpoint.
//
// Threading: every public method is thread-safe (the Store is; attachments have their own lock).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json_fwd.hpp>

#include "attach/attachment.h"
#include "daemon/frontends.h"
#include "daemon/export_allow.h"
#include "store/store.h"
#include "store/store_exports.h"
#include "util/status.h"

namespace arbor::daemon {

using Json = nlohmann::json;

struct DaemonOptions {
  std::string store_dir;
  std::string control_socket;  // default: store_dir + "/arbord.sock"
  FrontendOptions frontends;
  StoreOptions store;
  std::string device;               // a block device (or file) holding the store; "" = store_dir/segments
  attach::AttachVia attach_via = attach::AttachVia::kAuto;
  int maintenance_interval_ms = 10000;  // Store::maintain (checkpoint, segment cleaning); 0 = off
};

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> start(const DaemonOptions& options);
  ~Daemon();

  // Control operations. Each returns a JSON object (docs/api.md) or an error Status.
  Result<Json> status();
  Result<Json> list_volumes(bool with_usage);
  Result<Json> get_volume(const std::string& name);
  Result<Json> create_volume(const std::string& name, uint64_t size_bytes);
  Result<Json> branch(const std::string& new_name, const std::string& source);
  Result<Json> snapshot(const std::string& volume_at_snap);
  Result<Json> remove(const std::string& name);
  Result<Json> resize(const std::string& name, uint64_t size_bytes);
  Result<Json> usage(const std::string& name);  // "" = whole store
  Result<Json> clean(double max_live_fraction);
  Result<Json> flush();
  Result<Json> checkpoint();
  Result<Json> attach(const std::string& name);
  Result<Json> detach(const std::string& name);
  Result<Json> attachments();

  // Checks `name` names an existing volume or snapshot (a clear message otherwise).
  Result<VolumeInfo> lookup(const std::string& name);
  Status validate_size(uint64_t size_bytes) const;

  Store& store() { return *store_; }
  // NVMe host allow-list, STORE/nvme-allow.json (export_allow.h; routes in export_routes.cc).
  ExportAllowList& allow_list() { return *allow_; }
  const DaemonOptions& options() const { return options_; }
  std::string control_socket() const { return options_.control_socket; }

  // Refuses (kBusy) while an attached device is mounted: stopping would pull the disk from under
  // a filesystem. SIGTERM does not ask.
  Status check_can_stop();
  void request_stop(const std::string& reason);
  void wait_for_stop();
  // Detaches, stops the frontends, flushes and checkpoints. Idempotent.
  Status shutdown();

 private:
  explicit Daemon(const DaemonOptions& options);
  Json volume_json(const VolumeInfo& info, bool with_usage);

  DaemonOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StoreExports> exports_;
  std::unique_ptr<ExportAllowList> allow_;
  Frontends frontends_;
  std::chrono::steady_clock::time_point started_;

  std::mutex attach_mu_;  // guards attachments_ and attach_busy_; never held while running programs
  struct Attached {
    attach::Attachment attachment;
    VolumeId held = 0;  // open_volume handle: keeps the volume from being deleted
  };
  std::map<std::string, Attached> attachments_;
  std::set<std::string> attach_busy_;  // names with an attach, detach or delete in progress

  void maintenance_loop();
  std::thread maintenance_;
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool maintenance_stop_ = false;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_requested_ = false;
  std::string stop_reason_;
  bool shut_down_ = false;
};

}  // namespace arbor::daemon
