// Target-wide NVMe state shared by every connection: the NQN scheme, the host allow-list seam,
// and the registry of live controllers (one admin queue plus its I/O queues, each I/O queue on its
// own TCP connection, possibly on another thread).
//
// NQN scheme (docs/protocol-nvme-tcp.md): export "vol" is subsystem `PREFIX vol`, snapshot
// "vol@snap" is `PREFIX vol@snap` (read-only). NQNs are UTF-8 up to 223 bytes with no other
// character rule, so '@' is kept literally; volume names ([a-z0-9_-]) never need escaping.
//
// Threading: HostAllowList and ControllerRegistry are called from any connection thread and lock
// internally. A Controller's atomics are read by its I/O queues; the rest of it is touched only by
// the admin queue's session.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "proto/block_export.h"
#include "util/status.h"

namespace arbor::nvme_tcp {

// Which hosts may connect to which export. The daemon implements it over its own records
// (`arbor export allow NAME HOSTNQN`); an export with no entries admits every host.
class HostAllowList {
 public:
  virtual ~HostAllowList() = default;
  virtual bool host_allowed(std::string_view export_name, std::string_view host_nqn) const = 0;
};

// An in-memory allow-list: the daemon's default and what tests use.
class StaticHostAllowList : public HostAllowList {
 public:
  void allow(const std::string& export_name, const std::string& host_nqn);
  void revoke(const std::string& export_name, const std::string& host_nqn);
  void set(const std::string& export_name, std::vector<std::string> host_nqns);
  std::vector<std::string> hosts(const std::string& export_name) const;
  bool host_allowed(std::string_view export_name, std::string_view host_nqn) const override;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::set<std::string>, std::less<>> hosts_;
};

// Subsystem NQN <-> export name.
std::string export_nqn(std::string_view nqn_prefix, std::string_view export_name);
// The export name a subsystem NQN names, or nullopt when it has another prefix or is empty.
std::optional<std::string> export_from_nqn(std::string_view nqn_prefix, std::string_view nqn);

// Where the discovery log page sends hosts.
struct IoPortInfo {
  std::string traddr = "127.0.0.1";
  std::string trsvcid = "4420";
};

// One NVMe controller: created by an admin-queue Connect, joined by I/O-queue Connects.
struct Controller {
  uint16_t cntlid = 0;
  bool discovery = false;
  std::string subsys_nqn;
  std::string host_nqn;
  std::array<uint8_t, 16> host_id{};
  std::shared_ptr<proto::BlockExport> exp;  // null for the discovery controller

  std::atomic<bool> dead{false};           // admin queue gone or keep-alive expired
  std::atomic<bool> enabled{false};        // CC.EN && CSTS.RDY
  std::atomic<bool> write_cache{true};     // feature 06h WCE; off = every write is FUA
  std::atomic<uint16_t> io_queues{kDefaultIoQueues};  // granted by Set Features 07h
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0}, read_cmds{0}, write_cmds{0};

  // Admin-session-only state.
  uint32_t cc = 0, csts = 0;
  uint32_t kato_ms = 0;
  uint32_t async_event_config = 0;

  // I/O queue ids in use (any thread, under mu).
  std::mutex mu;
  std::set<uint16_t> io_qids;

  static constexpr uint16_t kDefaultIoQueues = 64;
};

class ControllerRegistry {
 public:
  // Allocates a controller id and registers the controller. Returns nullptr when all ids are used.
  std::shared_ptr<Controller> create(std::unique_ptr<Controller> proto);
  // The live controller with this id, subsystem and host, for an I/O-queue Connect.
  std::shared_ptr<Controller> find(uint16_t cntlid, std::string_view subsys_nqn, std::string_view host_nqn);
  void remove(uint16_t cntlid);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<uint16_t, std::weak_ptr<Controller>> ctrls_;
  uint16_t next_ = 1;
};

// Everything a session needs from the target. Outlives every session.
struct TargetContext {
  proto::ExportCatalog* catalog = nullptr;
  const HostAllowList* allow = nullptr;
  std::string nqn_prefix = "nqn.2026-01.dev.arbor:";
  IoPortInfo io_port;
  ControllerRegistry controllers;
};

}  // namespace arbor::nvme_tcp
