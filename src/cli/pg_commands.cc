// `arbor pg` (pg_commands.h). Each mutating command holds the store's pg lock; every failure is
// one line. A create or branch that fails midway undoes what it did (server, mount, attachment,
// volume, record), so a retry starts clean.
#include "cli/pg_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/api_client.h"
#include "cli/daemon_launcher.h"
#include "cli/format.h"
#include "pg/postgres.h"
#include "pg/record.h"
#include "util/human_size.h"

namespace arbor::cli {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t ns_since(Clock::time_point t0) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}
uint64_t now_unix_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

std::string connection_string(int port) {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/postgres";
}

std::string volume_path(const std::string& name) { return "/v1/volumes/" + path_escape(name); }

// The loop device the daemon has for `name`, "" when not attached.
Result<std::string> attached_device(ApiClient& api, const std::string& name) {
  ASSIGN_OR_RETURN(auto v, api.get(volume_path(name)));
  return v["attached"].is_string() ? v["attached"].get<std::string>() : std::string();
}

Result<std::string> ensure_attached(ApiClient& api, const std::string& name) {
  ASSIGN_OR_RETURN(std::string dev, attached_device(api, name));
  if (!dev.empty()) return dev;
  ASSIGN_OR_RETURN(auto r, api.post(volume_path(name) + "/attach", Json::object()));
  return r.value("device", "");
}

Status detach_if_attached(ApiClient& api, const std::string& name) {
  auto dev = attached_device(api, name);
  if (!dev) return dev.status().code() == Code::kNotFound ? Status::ok() : dev.status();
  if (dev->empty()) return Status::ok();
  auto r = api.post(volume_path(name) + "/detach", Json::object());
  return r ? Status::ok() : r.status();
}

// Stops the server, unmounts, detaches: the volume is then a plain volume again.
// Mounted on a device this arbord did not make (`attached_device` is what it made, "" for none):
// the arbord that served it stopped or died (kill -9, OOM), so the file system has lost its
// storage and a server on it is failing.
bool storage_lost(const std::string& attached_device, const pg::Paths& p) {
  return attached_device.empty() && pg::is_mounted(p.mount_dir);
}
Result<bool> storage_gone(ApiClient& api, const pg::Paths& p, const std::string& name) {
  auto device = attached_device(api, name);
  if (!device && device.status().code() != Code::kNotFound) return device.status();
  return storage_lost(device ? *device : "", p);
}

Status take_down(const std::string& bindir, ApiClient& api, const pg::Paths& p, const std::string& name) {
  ASSIGN_OR_RETURN(bool gone, storage_gone(api, p, name));
  // A read-only file system takes no shutdown checkpoint either.
  RETURN_IF_ERROR(pg::stop_server(bindir, p, /*immediate=*/gone || pg::filesystem_failed(p.mount_dir)));
  RETURN_IF_ERROR(pg::unmount(p.mount_dir));
  RETURN_IF_ERROR(detach_if_attached(api, name));
  rmdir(p.mount_dir.c_str());
  return Status::ok();
}

// Undoes a half-made server on failure: the first error is the one reported.
struct Rollback {
  std::string bindir, store_dir, name;
  ApiClient* api = nullptr;
  pg::Paths paths;
  bool volume_made = false;
  bool armed = true;
  ~Rollback() {
    if (!armed || api == nullptr) return;
    (void)take_down(bindir, *api, paths, name);
    if (volume_made) (void)api->del(volume_path(name));
    (void)pg::remove_record(store_dir, name);
  }
};

std::vector<int> recorded_ports(const std::string& store_dir, const std::string& except) {
  std::vector<int> ports;
  auto all = pg::list_records(store_dir);
  if (all) {
    for (const auto& r : *all) {
      if (r.name != except) ports.push_back(r.port);
    }
  }
  return ports;
}

Result<int> choose_port(const std::string& store_dir, const std::string& name, int requested,
                        const pg::Paths& p) {
  if (requested != 0) {
    if (requested < 1 || requested > 65535) return invalid_argument("--port " + std::to_string(requested));
    if (!pg::port_free(requested, p.socket_dir)) {
      return busy("port " + std::to_string(requested) + " is in use");
    }
    return requested;
  }
  return pg::pick_port(recorded_ports(store_dir, name), p.socket_dir);
}

struct Prepared {
  std::string bindir;
  ApiClient api;
  pg::StoreLock lock;
};

Result<Prepared> prepare(const Context& ctx) {
  RETURN_IF_ERROR(pg::require_root());
  ASSIGN_OR_RETURN(std::string bindir, pg::find_bindir());
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));  // makes the store when new
  ASSIGN_OR_RETURN(auto lock, pg::lock_store(ctx.store_dir));
  return Prepared{bindir, std::move(api), std::move(lock)};
}

void print_json(const Json& j) { std::printf("%s\n", j.dump(2).c_str()); }

Status pg_create(const Context& ctx, const std::string& name, const std::string& size, int port_flag) {
  RETURN_IF_ERROR(pg::check_name(name));
  ASSIGN_OR_RETURN(uint64_t size_bytes, parse_size_bytes(size));
  ASSIGN_OR_RETURN(auto env, prepare(ctx));
  if (pg::record_exists(ctx.store_dir, name)) return already_exists("a Postgres named '" + name + "' exists");
  pg::Paths p = pg::paths_for(ctx.store_dir, name);
  ASSIGN_OR_RETURN(int port, choose_port(ctx.store_dir, name, port_flag, p));
  ASSIGN_OR_RETURN(auto store_usage, env.api.get("/v1/usage"));
  uint64_t free_bytes = store_usage["store"].value("free_bytes", uint64_t(0));
  constexpr uint64_t kMinFree = 256ull << 20;
  if (free_bytes < kMinFree) {
    return no_space("the store has only " + format_size_bytes(free_bytes) + " free; Postgres needs at least " +
                    format_size_bytes(kMinFree));
  }
  auto t0 = Clock::now();
  ASSIGN_OR_RETURN(auto v, env.api.post("/v1/volumes", Json{{"name", name}, {"size_bytes", size_bytes}}));
  Rollback undo{env.bindir, ctx.store_dir, name, &env.api, p, true};
  ASSIGN_OR_RETURN(std::string device, ensure_attached(env.api, name));
  RETURN_IF_ERROR(pg::make_filesystem(device));
  RETURN_IF_ERROR(pg::mount_device(device, p.mount_dir));
  RETURN_IF_ERROR(pg::init_cluster(env.bindir, p));
  pg::Record rec{name, "", port, now_unix_ms()};
  RETURN_IF_ERROR(pg::save_record(ctx.store_dir, rec));
  RETURN_IF_ERROR(pg::start_server(env.bindir, p, port));
  undo.armed = false;
  uint64_t took_ns = ns_since(t0);
  if (ctx.json) {
    print_json({{"name", name}, {"port", port}, {"connection", connection_string(port)},
                {"device", device}, {"data_dir", p.data_dir}, {"size_bytes", size_bytes},
                {"duration_ns", took_ns}});
    return Status::ok();
  }
  std::printf("created Postgres %s (%s volume on %s, data in %s) in %s\n", name.c_str(),
              format_size_bytes(size_bytes).c_str(), device.c_str(), p.data_dir.c_str(),
              format_duration_ns(took_ns).c_str());
  std::printf("running: %s\n", connection_string(port).c_str());
  return Status::ok();
}

// When to CHECKPOINT the parent before branching. The branch is a crash-consistent image either
// way; the checkpoint only moves the point its recovery starts from.
enum class CheckpointFirst { kAuto, kAlways, kNever };

// Under auto, a parent with more WAL than this since its last checkpoint is checkpointed first.
// Measured under pgbench on 2 cores (docs/postgres.md): a branch replays 180 to 290 MB/s, a
// CHECKPOINT of a busy parent takes 0.4 to 1.0 s, so replaying is the cheaper up to about 128 MiB
// at scale 100 and 190 MiB at scale 500 (their noise is wider than that difference).
constexpr uint64_t kAutoCheckpointRedoBytes = 128ull << 20;

Status pg_branch(const Context& ctx, const std::string& name, const std::string& from,
                 CheckpointFirst checkpoint, int port_flag) {
  RETURN_IF_ERROR(pg::check_name(name));
  ASSIGN_OR_RETURN(auto env, prepare(ctx));
  ASSIGN_OR_RETURN(pg::Record parent, pg::load_record(ctx.store_dir, from));
  if (pg::record_exists(ctx.store_dir, name)) return already_exists("a Postgres named '" + name + "' exists");
  pg::Paths pp = pg::paths_for(ctx.store_dir, from);
  pg::Paths p = pg::paths_for(ctx.store_dir, name);
  ASSIGN_OR_RETURN(int port, choose_port(ctx.store_dir, name, port_flag, p));
  bool parent_running = pg::running_pid(pp) != 0;

  auto t0 = Clock::now();
  uint64_t checkpoint_ns = 0;
  int64_t redo_bytes = -1;  // unknown
  if (parent_running && checkpoint != CheckpointFirst::kNever) {
    bool checkpoint_now = checkpoint == CheckpointFirst::kAlways;
    if (checkpoint == CheckpointFirst::kAuto) {
      // A parent that cannot answer is branched as it is: the checkpoint is an optimization.
      auto distance = pg::redo_distance(env.bindir, parent.port);
      if (distance) redo_bytes = int64_t(*distance);
      checkpoint_now = distance && *distance > kAutoCheckpointRedoBytes;
    }
    if (checkpoint_now) {
      RETURN_IF_ERROR(pg::run_sql(env.bindir, parent.port, "CHECKPOINT").status());
      checkpoint_ns = ns_since(t0);
    }
  }
  auto t_branch = Clock::now();
  // ext4 on the parent keeps committed transactions in its journal until the journal fills; the
  // branch's mount would replay them all with small synchronous reads (1100 transactions, 170 to
  // 260 ms under pgbench). Writing them home first takes a few ms and leaves only what commits
  // between here and the engine's branch.
  if (pg::is_mounted(pp.mount_dir)) RETURN_IF_ERROR(pg::checkpoint_journal(pp.mount_dir));
  ASSIGN_OR_RETURN(auto b, env.api.post("/v1/branches", Json{{"name", name}, {"from", from}}));
  uint64_t branch_ns = ns_since(t_branch);
  Rollback undo{env.bindir, ctx.store_dir, name, &env.api, p, true};
  auto t_attach = Clock::now();
  ASSIGN_OR_RETURN(std::string device, ensure_attached(env.api, name));
  RETURN_IF_ERROR(pg::mount_device(device, p.mount_dir));  // replays the ext4 journal
  uint64_t attach_ns = ns_since(t_attach);
  RETURN_IF_ERROR(pg::remove_stale_pid(p));  // the parent's postmaster.pid came along
  RETURN_IF_ERROR(pg::reset_log(p));
  pg::Record rec{name, from, port, now_unix_ms()};
  RETURN_IF_ERROR(pg::save_record(ctx.store_dir, rec));
  auto t_start = Clock::now();
  RETURN_IF_ERROR(pg::start_branch_server(env.bindir, p, port));  // WAL replay, promotion
  uint64_t start_ns = ns_since(t_start);
  undo.armed = false;
  uint64_t total_ns = ns_since(t0);
  if (ctx.json) {
    print_json({{"name", name}, {"from", from}, {"port", port}, {"connection", connection_string(port)},
                {"device", device}, {"data_dir", p.data_dir}, {"parent_running", parent_running},
                {"redo_distance_bytes", redo_bytes}, {"checkpoint_ns", checkpoint_ns}, {"branch_ns", branch_ns},
                {"engine_branch_ns", b.value("duration_ns", uint64_t(0))}, {"attach_mount_ns", attach_ns},
                {"start_ns", start_ns}, {"duration_ns", total_ns}});
    return Status::ok();
  }
  std::printf("branched Postgres %s from %s in %s", name.c_str(), from.c_str(),
              format_duration_ns(total_ns).c_str());
  std::printf(" (%svolume branch %s, attach+mount %s, recovery+start %s)\n",
              checkpoint_ns != 0 ? ("checkpoint " + format_duration_ns(checkpoint_ns) + ", ").c_str() : "",
              format_duration_ns(branch_ns).c_str(), format_duration_ns(attach_ns).c_str(),
              format_duration_ns(start_ns).c_str());
  std::printf("running: %s\n", connection_string(port).c_str());
  return Status::ok();
}

// How to get out of a full store; the store says the same when it refuses new volumes.
constexpr const char* kFreeSpaceHint =
    "delete volumes or snapshots, or add space to the file system under the store";

bool store_full(ApiClient* api) {
  if (api == nullptr) return false;
  auto usage = api->get("/v1/usage");
  return usage && (*usage)["store"].value("full", false);
}

// What `pg list` says of a server, and for a failed one why (`reason`). "failed": the server is
// mounted by this arbord but its file system went read-only after a write error, or its
// postmaster is gone while no `arbor pg` command is changing it (it crashed or PANICked).
std::string server_state(const std::string& store_dir, const std::function<bool()>& store_is_full,
                         const pg::Record& rec, const pg::Paths& p, const std::string& device,
                         std::string* reason) {
  const bool running = pg::running_pid(p) != 0;
  if (storage_lost(device, p)) return "storage lost";  // until `arbor pg start` brings it back
  if (!pg::is_mounted(p.mount_dir)) return running ? "running" : "stopped";
  const bool fs_failed = pg::filesystem_failed(p.mount_dir);
  if (!fs_failed && (running || pg::store_locked_by_other(store_dir))) return running ? "running" : "changing";
  *reason = fs_failed ? "its file system went read-only after a write error" : "the server exited";
  std::string why = pg::last_failure(p);
  if (!why.empty()) *reason += " (log: " + why + ")";
  if (store_is_full()) {
    *reason += std::string("; the store is full: ") + kFreeSpaceHint + ", then: arbor pg start " + rec.name;
  } else {
    *reason += "; to restart it: arbor pg start " + rec.name;
  }
  return "failed";
}

Status pg_list(const Context& ctx) {
  RETURN_IF_ERROR(pg::require_root());
  ASSIGN_OR_RETURN(auto records, pg::list_records(ctx.store_dir));
  Json volumes = Json::object();
  std::optional<ApiClient> api;
  if (!records.empty()) {
    ASSIGN_OR_RETURN(auto connected, connect(ctx.store_dir, true));
    api.emplace(std::move(connected));
    ASSIGN_OR_RETURN(auto r, api->get("/v1/volumes?usage=1"));
    for (const auto& v : r["volumes"]) volumes[v.value("name", "")] = v;
  }
  std::optional<bool> full;  // asked once, and only when a server has failed
  auto store_is_full = [&] {
    if (!full) full = store_full(api ? &*api : nullptr);
    return *full;
  };
  Json out = Json::array();
  for (const auto& rec : records) {
    pg::Paths p = pg::paths_for(ctx.store_dir, rec.name);
    Json v = volumes.contains(rec.name) ? volumes[rec.name] : Json::object();
    Json u = v.contains("usage") ? v["usage"] : Json::object();
    std::string device = v.contains("attached") && v["attached"].is_string() ? v["attached"].get<std::string>() : "";
    std::string reason;
    std::string state = server_state(ctx.store_dir, store_is_full, rec, p, device, &reason);
    if (v.empty()) state = "volume missing";
    out.push_back({{"name", rec.name}, {"parent", rec.parent}, {"port", rec.port},
                   {"connection", connection_string(rec.port)}, {"state", state},
                   {"reason", reason.empty() ? Json() : Json(reason)},
                   {"data_dir", p.data_dir},
                   {"device", device.empty() ? Json() : Json(device)},
                   {"owned_bytes", u.value("owned_bytes", uint64_t(0))},
                   {"shared_bytes", u.value("shared_bytes", uint64_t(0))},
                   {"size_bytes", v.value("size_bytes", uint64_t(0))}});
  }
  if (ctx.json) return print_json({{"servers", out}}), Status::ok();
  if (out.empty()) {
    std::printf("no Postgres servers (create one: arbor pg create NAME)\n");
    return Status::ok();
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "PARENT", "PORT", "STATE", "OWNED", "SHARED", "CONNECTION"}};
  std::vector<std::string> reasons;
  for (const auto& s : out) {
    std::string parent = s["parent"].get<std::string>();
    rows.push_back({s["name"].get<std::string>(), parent.empty() ? "-" : parent,
                    std::to_string(s["port"].get<int>()), s["state"].get<std::string>(),
                    format_size_bytes(s["owned_bytes"].get<uint64_t>()),
                    format_size_bytes(s["shared_bytes"].get<uint64_t>()), s["connection"].get<std::string>()});
    if (s["reason"].is_string()) reasons.push_back(s["name"].get<std::string>() + ": " + s["reason"].get<std::string>());
  }
  print_table(rows);
  for (const std::string& r : reasons) std::printf("%s\n", r.c_str());
  return Status::ok();
}

Status pg_start(const Context& ctx, const std::string& name, int port_flag) {
  ASSIGN_OR_RETURN(auto env, prepare(ctx));
  ASSIGN_OR_RETURN(pg::Record rec, pg::load_record(ctx.store_dir, name));
  pg::Paths p = pg::paths_for(ctx.store_dir, name);
  ASSIGN_OR_RETURN(const bool gone, storage_gone(env.api, p, name));
  // Storage lost or refused: ext4 aborts its journal at the first write that fails.
  const bool fs_failed = pg::filesystem_failed(p.mount_dir);
  if (pg::running_pid(p) != 0 && !gone && !fs_failed) {
    if (!ctx.json) std::printf("Postgres %s already runs: %s\n", name.c_str(), connection_string(rec.port).c_str());
    if (ctx.json) print_json({{"name", name}, {"port", rec.port}, {"connection", connection_string(rec.port)}});
    return Status::ok();
  }
  // Down while mounted: it crashed (a stopped server is unmounted). Its recovery needs to write.
  const bool crashed = fs_failed || (pg::is_mounted(p.mount_dir) && pg::running_pid(p) == 0);
  if (crashed && store_full(&env.api)) {
    return no_space("Postgres " + name + " is down and the store is full: its recovery needs to write. Free " +
                    "space first (" + kFreeSpaceHint + "), then: arbor pg start " + name);
  }
  if (gone || fs_failed) {
    // Take it down and start again on the volume as the store has it: what was flushed (every
    // commit) is there, and Postgres recovers from its WAL.
    RETURN_IF_ERROR(pg::stop_server(env.bindir, p, /*immediate=*/true));
    RETURN_IF_ERROR(pg::unmount(p.mount_dir));
  }
  if (port_flag != 0 && port_flag != rec.port) {
    ASSIGN_OR_RETURN(rec.port, choose_port(ctx.store_dir, name, port_flag, p));
  } else if (!pg::port_free(rec.port, p.socket_dir)) {
    return busy("port " + std::to_string(rec.port) + " of Postgres " + name +
                " is in use (choose another: arbor pg start " + name + " --port P)");
  }
  auto t0 = Clock::now();
  ASSIGN_OR_RETURN(std::string device, ensure_attached(env.api, name));
  // ext4 marked itself as having errors when it aborted its journal: check it before mounting.
  if (fs_failed) RETURN_IF_ERROR(pg::repair_filesystem(device));
  RETURN_IF_ERROR(pg::mount_device(device, p.mount_dir));
  RETURN_IF_ERROR(pg::remove_stale_pid(p));
  RETURN_IF_ERROR(pg::save_record(ctx.store_dir, rec));
  RETURN_IF_ERROR(pg::start_server(env.bindir, p, rec.port));
  if (ctx.json) {
    print_json({{"name", name}, {"port", rec.port}, {"connection", connection_string(rec.port)},
                {"device", device}, {"filesystem_checked", fs_failed}, {"duration_ns", ns_since(t0)}});
    return Status::ok();
  }
  std::printf("started Postgres %s in %s%s: %s\n", name.c_str(), format_duration_ns(ns_since(t0)).c_str(),
              fs_failed ? " (its file system checked with e2fsck -p first)" : "", connection_string(rec.port).c_str());
  return Status::ok();
}

Status pg_stop(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto env, prepare(ctx));
  ASSIGN_OR_RETURN(pg::Record rec, pg::load_record(ctx.store_dir, name));
  pg::Paths p = pg::paths_for(ctx.store_dir, name);
  RETURN_IF_ERROR(take_down(env.bindir, env.api, p, name));
  if (ctx.json) return print_json({{"name", name}, {"stopped", true}}), Status::ok();
  std::printf("stopped Postgres %s (unmounted, detached)\n", name.c_str());
  return Status::ok();
}

Status pg_delete(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto env, prepare(ctx));
  ASSIGN_OR_RETURN(pg::Record rec, pg::load_record(ctx.store_dir, name));
  pg::Paths p = pg::paths_for(ctx.store_dir, name);
  RETURN_IF_ERROR(take_down(env.bindir, env.api, p, name));
  auto d = env.api.del(volume_path(name));
  if (!d && d.status().code() != Code::kNotFound) return d.status();
  RETURN_IF_ERROR(pg::remove_record(ctx.store_dir, name));
  auto left = pg::list_records(ctx.store_dir);
  if (left && left->empty()) pg::remove_run_dirs(p);  // every server of the store is gone
  if (ctx.json) return print_json({{"deleted", name}}), Status::ok();
  std::printf("deleted Postgres %s (server, mount, volume)\n", name.c_str());
  return Status::ok();
}

Status pg_psql(const Context& ctx, const std::string& name, const std::vector<std::string>& args) {
  RETURN_IF_ERROR(pg::require_root());
  ASSIGN_OR_RETURN(std::string bindir, pg::find_bindir());
  ASSIGN_OR_RETURN(pg::Record rec, pg::load_record(ctx.store_dir, name));
  pg::Paths p = pg::paths_for(ctx.store_dir, name);
  if (pg::running_pid(p) == 0) {
    return invalid_argument("Postgres " + name + " is not running (arbor pg start " + name + ")");
  }
  std::string psql = bindir + "/psql";
  std::vector<std::string> argv = {psql, "-h", "127.0.0.1", "-p", std::to_string(rec.port), "-U", "postgres"};
  bool has_db = false;
  for (const auto& a : args) has_db = has_db || a == "-d" || a.rfind("--dbname", 0) == 0;
  if (!has_db) argv.insert(argv.end(), {"-d", "postgres"});
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::fflush(stdout);
  execv(psql.c_str(), cargv.data());
  return errno_status(errno, "exec " + psql);
}

// What take_psql_passthrough took out of argv, for the psql command's callback.
std::vector<std::string>& psql_passthrough() {
  static std::vector<std::string> args;
  return args;
}

}  // namespace

void take_psql_passthrough(int& argc, char** argv) {
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string_view(argv[i]) != "pg" || std::string_view(argv[i + 1]) != "psql") continue;
    for (int j = i + 2; j < argc; j++) {
      if (std::string_view(argv[j]) != "--") continue;
      psql_passthrough().assign(argv + j + 1, argv + argc);
      argc = j;
      return;
    }
    return;
  }
}

void register_pg_commands(CLI::App& app, std::function<Status(const Context&)>& run) {
  struct Args {
    std::string name, from, size = "20G";
    int port = 0;
    bool checkpoint = false, no_checkpoint = false;
    std::vector<std::string> rest;
  };
  // Lives as long as the process: the callbacks below refer to it after this returns.
  static Args a;
  auto* pg = app.add_subcommand("pg", "PostgreSQL 15 on volumes and branches (docs/postgres.md)");
  pg->require_subcommand(1);

  auto* create = pg->add_subcommand("create", "Volume + ext4 + initdb, start Postgres on a free port");
  create->add_option("NAME", a.name, "Server (and volume) name")->required();
  create->add_option("--size", a.size, "Volume size (thin)")->capture_default_str();
  create->add_option("--port", a.port, "TCP port (default: the first free from 5433)");
  create->callback([&] { run = [](const Context& c) { return pg_create(c, a.name, a.size, a.port); }; });

  auto* branch = pg->add_subcommand("branch", "Branch a server's volume under it; start the branch");
  branch->add_option("NEW", a.name, "Name of the new server")->required();
  branch->add_option("--from", a.from, "The server to branch")->required();
  auto* always = branch->add_flag("--checkpoint", a.checkpoint,
                                  "CHECKPOINT the parent first (default: only when it has over 128 MiB of WAL to replay)");
  branch->add_flag("--no-checkpoint", a.no_checkpoint, "Never CHECKPOINT the parent first")->excludes(always);
  branch->add_option("--port", a.port, "TCP port (default: the first free from 5433)");
  branch->callback([&] {
    CheckpointFirst when = a.checkpoint      ? CheckpointFirst::kAlways
                           : a.no_checkpoint ? CheckpointFirst::kNever
                                             : CheckpointFirst::kAuto;
    run = [when](const Context& c) { return pg_branch(c, a.name, a.from, when, a.port); };
  });

  pg->add_subcommand("list", "Servers: parent, port, connection, state, owned/shared bytes")
      ->callback([&] { run = [](const Context& c) { return pg_list(c); }; });

  auto* start = pg->add_subcommand("start", "Attach, mount and start a stopped server");
  start->add_option("NAME", a.name)->required();
  start->add_option("--port", a.port, "Start on this port instead of the recorded one");
  start->callback([&] { run = [](const Context& c) { return pg_start(c, a.name, a.port); }; });

  auto* stop = pg->add_subcommand("stop", "Stop a server, unmount, detach");
  stop->add_option("NAME", a.name)->required();
  stop->callback([&] { run = [](const Context& c) { return pg_stop(c, a.name); }; });

  auto* del = pg->add_subcommand("delete", "Stop, unmount, detach, delete the volume");
  del->add_option("NAME", a.name)->required();
  del->callback([&] { run = [](const Context& c) { return pg_delete(c, a.name); }; });

  auto* psql = pg->add_subcommand("psql", "Run psql on a server: arbor pg psql NAME [-- psql args...]");
  psql->add_option("NAME", a.name)->required();
  psql->allow_extras();  // everything after NAME goes to psql
  psql->fallthrough(false);
  psql->positionals_at_end(false);
  psql->callback([&, psql] {
    for (const auto& extra : psql->remaining()) a.rest.push_back(extra);
    for (const auto& arg : psql_passthrough()) a.rest.push_back(arg);
    run = [](const Context& c) { return pg_psql(c, a.name, a.rest); };
  });
}

}  // namespace arbor::cli
