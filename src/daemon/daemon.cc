#include "daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "store/store_directory.h"
#include "util/human_size.h"

namespace arbor::daemon {
namespace {

std::string uuid_string(const std::array<uint8_t, 16>& u) {
  char buf[37];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return buf;
}

std::string percent_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(char(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Json usage_json(const VolumeUsage& u) {
  return Json{{"logical_size_bytes", u.logical_size_bytes},
              {"mapped_bytes", u.mapped_bytes},
              {"owned_bytes", u.owned_bytes},
              {"shared_bytes", u.shared_bytes}};
}

Json store_usage_json(const StoreUsage& u) {
  return Json{{"segment_size_bytes", u.segment_size_bytes},
              {"segments_total", u.segments_total},
              {"segments_in_use", u.segments_in_use},
              {"physical_used_bytes", u.physical_used_bytes},
              {"live_bytes", u.live_bytes},
              {"free_bytes", u.free_bytes},
              {"reserved_bytes", u.reserved_bytes},
              {"full", u.full}};
}

Status validate_any_name(const std::string& name) {
  if (name.find('@') != std::string::npos) return validate_snapshot_name(name);
  return validate_volume_name(name);
}

}  // namespace

Daemon::Daemon(const DaemonOptions& options)
    : options_(options), started_(std::chrono::steady_clock::now()) {}

Daemon::~Daemon() { (void)shutdown(); }

Result<std::unique_ptr<Daemon>> Daemon::start(const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon(options));
  if (d->options_.control_socket.empty()) d->options_.control_socket = options.store_dir + "/arbord.sock";
  auto store = options.device.empty() ? open_store_directory(options.store_dir, options.store)
                                      : open_store_device(options.store_dir, options.device, options.store);
  if (!store) {
    return Status(store.status().code(),
                  "cannot open store " + options.store_dir + ": " + store.status().message());
  }
  d->store_ = std::move(store).value();
  d->exports_ = std::make_unique<StoreExports>(*d->store_);
  if (options.maintenance_interval_ms > 0) d->maintenance_ = std::thread([raw = d.get()] { raw->maintenance_loop(); });
  // Attachments do not outlive the daemon that made them; clear what a crash left behind.
  for (const auto& line : attach::cleanup_stale(options.store_dir + "/attach")) spdlog::warn("{}", line);
  auto allow = ExportAllowList::open(options.store_dir + "/nvme-allow.json");
  if (!allow) return allow.status();
  d->allow_ = std::move(allow).value();
  d->options_.frontends.allow = d->allow_.get();
  RETURN_IF_ERROR(d->frontends_.start(d->options_.frontends, *d->exports_));
  for (const auto& e : d->frontends_.endpoints()) spdlog::info("serving {} on {}", e.protocol, e.uri);
  return d;
}

Status Daemon::validate_size(uint64_t size_bytes) const {
  if (size_bytes == 0) return invalid_argument("size must be greater than zero");
  if (size_bytes > options_.store.max_volume_size_bytes) {
    return invalid_argument("size " + format_size_bytes(size_bytes) + " is past the maximum of " +
                            format_size_bytes(options_.store.max_volume_size_bytes));
  }
  return Status::ok();
}

Result<VolumeInfo> Daemon::lookup(const std::string& name) {
  RETURN_IF_ERROR(validate_any_name(name));
  auto info = store_->info(name);
  if (!info && info.status().code() == Code::kNotFound) {
    bool snap = name.find('@') != std::string::npos;
    return not_found(std::string(snap ? "no snapshot named '" : "no volume named '") + name + "'");
  }
  return info;
}

Json Daemon::volume_json(const VolumeInfo& v, bool with_usage) {
  Json j{{"name", v.name},
         {"id", v.id},
         {"kind", v.snapshot ? "snapshot" : "volume"},
         {"size_bytes", v.size_bytes},
         {"read_only", v.snapshot},
         {"parent", v.parent},
         {"created_unix_ms", v.created_unix_ms},
         {"uuid", uuid_string(v.uuid)},
         {"open_count", v.open_count}};
  {
    std::lock_guard lock(attach_mu_);
    auto it = attachments_.find(v.name);
    j["attached"] = it == attachments_.end() ? Json(nullptr) : Json(it->second.attachment.device);
  }
  if (with_usage) {
    auto u = store_->usage(v.name);
    if (u) j["usage"] = usage_json(*u);
  }
  return j;
}

Result<Json> Daemon::status() {
  Json endpoints = Json::array();
  endpoints.push_back({{"protocol", "http"},
                       {"uri", "http+unix://" + percent_encode(options_.control_socket)}});
  for (const auto& e : frontends_.endpoints()) {
    endpoints.push_back({{"protocol", e.protocol}, {"uri", e.uri}});
  }
  auto uptime = std::chrono::steady_clock::now() - started_;
  std::vector<std::string> notes = frontends_.notes();
  StoreUsage su = store_->store_usage();
  if (su.full) {
    notes.push_back("the store is full: new data, volumes and branches are refused (" + format_size_bytes(su.free_bytes) +
                    " free, " + format_size_bytes(su.reserved_bytes) +
                    " of it kept for checkpoints); delete volumes or snapshots, or add space to its file system");
  }
  FrontendStats fs = frontends_.stats();
  Json nbd = {{"connections", fs.nbd_connections},
              {"reads", {{"from_memory", fs.nbd_reads_from_memory},
                         {"on_ring", fs.nbd_reads_on_ring},
                         {"on_worker", fs.nbd_reads_on_worker}}}};
  return Json{{"pid", getpid()},
              {"store_dir", options_.store_dir},
              {"control_socket", options_.control_socket},
              {"uptime_ms", std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count()},
              {"volumes", store_->list().size()},
              {"endpoints", endpoints},
              {"nbd", nbd},
              {"notes", notes}};
}

Result<Json> Daemon::list_volumes(bool with_usage) {
  Json arr = Json::array();
  for (const auto& v : store_->list()) arr.push_back(volume_json(v, with_usage));
  return Json{{"volumes", arr}};
}

Result<Json> Daemon::get_volume(const std::string& name) {
  ASSIGN_OR_RETURN(auto info, lookup(name));
  return volume_json(info, true);
}

Result<Json> Daemon::create_volume(const std::string& name, uint64_t size_bytes) {
  RETURN_IF_ERROR(validate_volume_name(name));
  RETURN_IF_ERROR(validate_size(size_bytes));
  auto created = store_->create_volume(name, size_bytes);
  if (!created) {
    if (created.status().code() == Code::kAlreadyExists) {
      return already_exists("a volume named '" + name + "' already exists");
    }
    return created.status();
  }
  spdlog::info("created volume {} ({})", name, format_size_bytes(size_bytes));
  return volume_json(*created, false);
}

Result<Json> Daemon::branch(const std::string& new_name, const std::string& source) {
  RETURN_IF_ERROR(validate_volume_name(new_name));
  ASSIGN_OR_RETURN(auto src, lookup(source));
  (void)src;
  if (store_->info(new_name).is_ok()) {
    return already_exists("a volume named '" + new_name + "' already exists");
  }
  auto t0 = std::chrono::steady_clock::now();
  auto made = store_->branch(new_name, source);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  if (!made) return made.status();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
  spdlog::info("branched {} from {} in {} us", new_name, source, ns / 1000);
  Json j = volume_json(*made, false);
  j["duration_ns"] = ns;
  return j;
}

Result<Json> Daemon::snapshot(const std::string& volume_at_snap) {
  RETURN_IF_ERROR(validate_snapshot_name(volume_at_snap));
  std::string volume = volume_at_snap.substr(0, volume_at_snap.find('@'));
  ASSIGN_OR_RETURN(auto src, lookup(volume));
  (void)src;
  if (store_->info(volume_at_snap).is_ok()) {
    return already_exists("a snapshot named '" + volume_at_snap + "' already exists");
  }
  auto t0 = std::chrono::steady_clock::now();
  auto made = store_->snapshot(volume_at_snap);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  if (!made) return made.status();
  spdlog::info("snapshot {}", volume_at_snap);
  Json j = volume_json(*made, false);
  j["duration_ns"] = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
  return j;
}

Result<Json> Daemon::remove(const std::string& name) {
  ASSIGN_OR_RETURN(auto info, lookup(name));
  {
    std::lock_guard lock(attach_mu_);
    auto it = attachments_.find(name);
    if (it != attachments_.end()) {
      return busy("'" + name + "' is attached at " + it->second.attachment.device +
                  "; detach it first");
    }
    if (!attach_busy_.insert(name).second) return busy("'" + name + "' is being attached, detached or deleted");
  }
  Status st = store_->remove(name);
  if (st.is_ok()) {
    // NBD devices a dead arbord left for it (arbor pg delete after a crash): no later attach of
    // this volume will settle them.
    for (const auto& line : attach::release_stale_nbd(options_.store_dir + "/attach/" + name, name)) {
      spdlog::warn("{}", line);
    }
  }
  {
    std::lock_guard lock(attach_mu_);
    attach_busy_.erase(name);
  }
  if (!st.is_ok()) {
    if (st.code() == Code::kBusy && info.open_count > 0) {
      return busy("'" + name + "' is in use (" + std::to_string(info.open_count) +
                  " open NBD/NVMe connections or transfers); close them first");
    }
    return st;
  }
  spdlog::info("deleted {}", name);
  return Json{{"deleted", name}};
}

Result<Json> Daemon::resize(const std::string& name, uint64_t size_bytes) {
  ASSIGN_OR_RETURN(auto info, lookup(name));
  if (info.snapshot) return read_only("'" + name + "' is a snapshot; snapshots cannot be resized");
  RETURN_IF_ERROR(validate_size(size_bytes));
  if (size_bytes < info.size_bytes) {
    return invalid_argument("volumes only grow: '" + name + "' is " +
                            format_size_bytes(info.size_bytes) + ", asked for " +
                            format_size_bytes(size_bytes));
  }
  RETURN_IF_ERROR(store_->resize(name, size_bytes));
  spdlog::info("resized {} to {}", name, format_size_bytes(size_bytes));
  ASSIGN_OR_RETURN(auto after, lookup(name));
  return volume_json(after, false);
}

Result<Json> Daemon::usage(const std::string& name) {
  if (!name.empty()) {
    ASSIGN_OR_RETURN(auto info, lookup(name));
    return volume_json(info, true);
  }
  Json vols = Json::array();
  for (const auto& v : store_->list()) vols.push_back(volume_json(v, true));
  return Json{{"store", store_usage_json(store_->store_usage())}, {"volumes", vols}};
}

Result<Json> Daemon::clean(double max_live_fraction) {
  if (!(max_live_fraction > 0.0 && max_live_fraction <= 1.0)) {
    return invalid_argument("max_live_fraction must be in (0, 1]");
  }
  auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(auto stats, store_->clean(max_live_fraction));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  spdlog::info("cleaned {} segments, moved {} blocks, freed {} bytes", stats.segments_cleaned,
               stats.blocks_moved, stats.bytes_freed);
  return Json{{"segments_cleaned", stats.segments_cleaned},
              {"blocks_moved", stats.blocks_moved},
              {"bytes_freed", stats.bytes_freed},
              {"duration_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()},
              {"store", store_usage_json(store_->store_usage())}};
}

Result<Json> Daemon::flush() {
  RETURN_IF_ERROR(store_->flush());
  return Json{{"flushed", true}};
}

Result<Json> Daemon::checkpoint() {
  RETURN_IF_ERROR(store_->checkpoint());
  return Json{{"checkpointed", true}};
}

Result<Json> Daemon::attach(const std::string& name) {
  ASSIGN_OR_RETURN(auto info, lookup(name));
  std::string socket = frontends_.nbd_unix_socket();
  if (socket.empty() && (options_.attach_via == attach::AttachVia::kNbdfuse ||
                          options_.attach_via == attach::AttachVia::kKernelNbd)) {
    return not_supported("attach through the kernel's NBD client or nbdfuse needs arbord's NBD unix socket, and this arbord serves none");
  }
  {
    // Claim the name; the slow part (nbdfuse, losetup) runs without the lock.
    std::lock_guard lock(attach_mu_);
    if (auto it = attachments_.find(name); it != attachments_.end()) {
      return already_exists("'" + name + "' is already attached at " + it->second.attachment.device);
    }
    if (!attach_busy_.insert(name).second) return busy("'" + name + "' is being attached, detached or deleted");
  }
  auto release = [&] {
    std::lock_guard lock(attach_mu_);
    attach_busy_.erase(name);
  };
  auto held = store_->open_volume(name);
  if (!held) return release(), held.status();
  std::string dir = options_.store_dir + "/attach";
  mkdir(dir.c_str(), 0700);
  attach::AttachRequest req;
  req.volume = name;
  req.nbd_socket = socket;
  req.mount_dir = dir + "/" + name;
  req.log_path = options_.store_dir + "/nbdfuse.log";
  req.read_only = info.snapshot;
  req.via = options_.attach_via;
  if (req.via == attach::AttachVia::kAuto || req.via == attach::AttachVia::kFuse) {
    auto exported = exports_->open(name);
    if (!exported) {
      store_->close_volume(*held);
      return release(), exported.status();
    }
    req.exported = std::move(exported).value();
  }
  auto a = attach::attach(req);
  if (!a) {
    store_->close_volume(*held);
    return release(), a.status();
  }
  spdlog::info("attached {} at {}", name, a->device);
  {
    std::lock_guard lock(attach_mu_);
    attach_busy_.erase(name);
    attachments_[name] = Attached{*a, *held};
  }
  return Json{{"name", name}, {"device", a->device}, {"read_only", a->read_only},
              {"via", a->kernel_nbd ? "kernel-nbd" : "loop"}};
}

Result<Json> Daemon::detach(const std::string& name) {
  RETURN_IF_ERROR(validate_any_name(name));
  Attached a;
  {
    std::lock_guard lock(attach_mu_);
    auto it = attachments_.find(name);
    if (it == attachments_.end()) {
      if (attach_busy_.count(name)) return busy("'" + name + "' is being attached, detached or deleted");
      return not_found("'" + name + "' is not attached");
    }
    a = it->second;
    attachments_.erase(it);
    attach_busy_.insert(name);
  }
  Status st = attach::detach(a.attachment);
  std::lock_guard lock(attach_mu_);
  attach_busy_.erase(name);
  if (!st.is_ok()) {
    attachments_[name] = a;  // still attached
    return st;
  }
  store_->close_volume(a.held);
  spdlog::info("detached {} from {}", name, a.attachment.device);
  return Json{{"name", name}, {"device", a.attachment.device}, {"detached", true}};
}

Result<Json> Daemon::attachments() {
  std::lock_guard lock(attach_mu_);
  Json arr = Json::array();
  for (const auto& [name, a] : attachments_) {
    arr.push_back({{"name", name}, {"device", a.attachment.device}, {"read_only", a.attachment.read_only}});
  }
  return Json{{"attachments", arr}};
}

Status Daemon::check_can_stop() {
  std::lock_guard lock(attach_mu_);
  for (const auto& [name, a] : attachments_) {
    if (attach::device_mounted(a.attachment.device)) {
      return busy("'" + name + "' is attached at " + a.attachment.device +
                  " and mounted; unmount it first (or stop with force)");
    }
  }
  return Status::ok();
}

void Daemon::request_stop(const std::string& reason) {
  std::lock_guard lock(stop_mu_);
  if (!stop_requested_) {
    stop_requested_ = true;
    stop_reason_ = reason;
    spdlog::info("stop requested: {}", reason);
  }
  stop_cv_.notify_all();
}

void Daemon::wait_for_stop() {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait(lock, [&] { return stop_requested_; });
}

void Daemon::maintenance_loop() {
  std::unique_lock lock(maintenance_mu_);
  while (!maintenance_cv_.wait_for(lock, std::chrono::milliseconds(options_.maintenance_interval_ms),
                                   [&] { return maintenance_stop_; })) {
    lock.unlock();
    auto r = store_->maintain();
    if (!r) spdlog::warn("maintenance: {}", r.status().to_string());
    else if (r->segments_cleaned > 0)
      spdlog::info("cleaner: {} segments freed, {} blocks moved", r->segments_cleaned, r->blocks_moved);
    lock.lock();
  }
}

Status Daemon::shutdown() {
  if (maintenance_.joinable()) {
    {
      std::lock_guard lock(maintenance_mu_);
      maintenance_stop_ = true;
    }
    maintenance_cv_.notify_all();
    maintenance_.join();
  }
  if (shut_down_ || !store_) return Status::ok();
  shut_down_ = true;
  {
    std::lock_guard lock(attach_mu_);
    for (auto& [name, a] : attachments_) {
      Status st = attach::detach(a.attachment);
      if (!st.is_ok()) spdlog::warn("detach {} at stop: {}", name, st.to_string());
      store_->close_volume(a.held);
    }
    attachments_.clear();
  }
  frontends_.stop();
  Status st = store_->flush();
  if (!st.is_ok()) {
    spdlog::error("flush at stop: {}", st.to_string());
    return st;
  }
  st = store_->checkpoint();
  if (!st.is_ok()) {
    spdlog::error("checkpoint at stop: {}", st.to_string());
    return st;
  }
  exports_.reset();
  store_.reset();
  spdlog::info("store flushed and checkpointed; closed");
  return Status::ok();
}

}  // namespace arbor::daemon
