#include "cli/commands.h"

#include <chrono>
#include <cstdio>

#include "cli/api_client.h"
#include "cli/daemon_launcher.h"
#include "cli/format.h"
#include "util/human_size.h"

namespace arbor::cli {
namespace {

void print_json(const Json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string size_str(const Json& j, const char* key) {
  return format_size_bytes(j.value(key, uint64_t(0)));
}

Result<uint64_t> parse_size(const std::string& text) {
  auto r = parse_size_bytes(text);
  if (!r) return invalid_argument("--size " + text + ": " + r.status().message());
  return r;
}

}  // namespace

Status volume_create(const Context& ctx, const std::string& name, const std::string& size) {
  ASSIGN_OR_RETURN(uint64_t bytes, parse_size(size));
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto v, api.post("/v1/volumes", Json{{"name", name}, {"size_bytes", bytes}}));
  if (ctx.json) return print_json(v), Status::ok();
  std::printf("created volume %s (%s)\n", name.c_str(), size_str(v, "size_bytes").c_str());
  return Status::ok();
}

Status branch_create(const Context& ctx, const std::string& name, const std::string& from) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(auto v, api.post("/v1/branches", Json{{"name", name}, {"from", from}}));
  auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
  if (ctx.json) {
    v["request_ns"] = wall.count();
    return print_json(v), Status::ok();
  }
  std::printf("created branch %s from %s in %s (engine), %s (request)\n", name.c_str(), from.c_str(),
              format_duration_ns(v.value("duration_ns", uint64_t(0))).c_str(),
              format_duration_ns(uint64_t(wall.count())).c_str());
  return Status::ok();
}

Status snapshot_create(const Context& ctx, const std::string& volume_at_snap) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto v, api.post("/v1/snapshots", Json{{"name", volume_at_snap}}));
  if (ctx.json) return print_json(v), Status::ok();
  std::printf("created snapshot %s in %s\n", volume_at_snap.c_str(),
              format_duration_ns(v.value("duration_ns", uint64_t(0))).c_str());
  return Status::ok();
}

Status list(const Context& ctx) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto r, api.get("/v1/volumes?usage=1"));
  if (ctx.json) return print_json(r), Status::ok();
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "KIND", "SIZE", "OWNED", "SHARED", "PARENT", "ATTACHED"}};
  for (const auto& v : r["volumes"]) {
    Json u = v.contains("usage") ? v["usage"] : Json::object();
    std::string parent = v.value("parent", "");
    rows.push_back({v.value("name", ""), v.value("kind", ""), size_str(v, "size_bytes"),
                    size_str(u, "owned_bytes"), size_str(u, "shared_bytes"),
                    parent.empty() ? "-" : parent,
                    v["attached"].is_string() ? v["attached"].get<std::string>() : "-"});
  }
  if (rows.size() == 1) {
    std::printf("no volumes (create one: arbor volume create NAME --size 10G)\n");
    return Status::ok();
  }
  print_table(rows);
  return Status::ok();
}

Status info(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto v, api.get("/v1/volumes/" + path_escape(name)));
  if (ctx.json) return print_json(v), Status::ok();
  Json u = v.contains("usage") ? v["usage"] : Json::object();
  std::string parent = v.value("parent", "");
  print_table({{"name:", v.value("name", "")},
               {"kind:", v.value("kind", "")},
               {"size:", size_str(v, "size_bytes")},
               {"parent:", parent.empty() ? "-" : parent},
               {"uuid:", v.value("uuid", "")},
               {"mapped:", size_str(u, "mapped_bytes")},
               {"owned:", size_str(u, "owned_bytes")},
               {"shared:", size_str(u, "shared_bytes")},
               {"attached:", v["attached"].is_string() ? v["attached"].get<std::string>() : "-"}});
  return Status::ok();
}

Status remove(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto r, api.del("/v1/volumes/" + path_escape(name)));
  if (ctx.json) return print_json(r), Status::ok();
  std::printf("deleted %s\n", name.c_str());
  return Status::ok();
}

Status usage(const Context& ctx, const std::vector<std::string>& names) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  std::vector<std::vector<std::string>> rows = {{"NAME", "SIZE", "MAPPED", "OWNED", "SHARED"}};
  auto add = [&](const Json& v) {
    Json u = v.contains("usage") ? v["usage"] : Json::object();
    rows.push_back({v.value("name", ""), size_str(v, "size_bytes"), size_str(u, "mapped_bytes"),
                    size_str(u, "owned_bytes"), size_str(u, "shared_bytes")});
  };
  if (!names.empty()) {
    Json all = Json::array();
    for (const auto& name : names) {
      ASSIGN_OR_RETURN(auto v, api.get("/v1/volumes/" + path_escape(name) + "/usage"));
      all.push_back(v);
      add(v);
    }
    if (ctx.json) return print_json(names.size() == 1 ? all[0] : Json{{"volumes", all}}), Status::ok();
    print_table(rows);
    return Status::ok();
  }
  ASSIGN_OR_RETURN(auto r, api.get("/v1/usage"));
  if (ctx.json) return print_json(r), Status::ok();
  for (const auto& v : r["volumes"]) add(v);
  if (rows.size() > 1) print_table(rows);
  const Json& s = r["store"];
  std::printf("store: %s physical used (%llu segment(s) of %s), %s live, %s free (%s kept for checkpoints)%s\n",
              size_str(s, "physical_used_bytes").c_str(),
              (unsigned long long)s.value("segments_in_use", uint64_t(0)),
              size_str(s, "segment_size_bytes").c_str(), size_str(s, "live_bytes").c_str(),
              size_str(s, "free_bytes").c_str(), size_str(s, "reserved_bytes").c_str(),
              s.value("full", false) ? ": FULL, new data is refused" : "");
  return Status::ok();
}

Status resize(const Context& ctx, const std::string& name, const std::string& size) {
  ASSIGN_OR_RETURN(uint64_t bytes, parse_size(size));
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto v, api.post("/v1/volumes/" + path_escape(name) + "/resize",
                                    Json{{"size_bytes", bytes}}));
  if (ctx.json) return print_json(v), Status::ok();
  std::printf("resized %s to %s\n", name.c_str(), size_str(v, "size_bytes").c_str());
  return Status::ok();
}

Status clean(const Context& ctx, double max_live_fraction) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto r, api.post("/v1/clean", Json{{"max_live_fraction", max_live_fraction}}));
  if (ctx.json) return print_json(r), Status::ok();
  std::printf("cleaned %llu segments, moved %llu blocks, freed %s in %s\n",
              (unsigned long long)r.value("segments_cleaned", uint64_t(0)),
              (unsigned long long)r.value("blocks_moved", uint64_t(0)),
              size_str(r, "bytes_freed").c_str(),
              format_duration_ns(r.value("duration_ns", uint64_t(0))).c_str());
  return Status::ok();
}

Status attach(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto r, api.post("/v1/volumes/" + path_escape(name) + "/attach", Json::object()));
  if (ctx.json) return print_json(r), Status::ok();
  std::printf("%s\n", r.value("device", "").c_str());
  return Status::ok();
}

Status detach(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto r, api.post("/v1/volumes/" + path_escape(name) + "/detach", Json::object()));
  if (ctx.json) return print_json(r), Status::ok();
  std::printf("detached %s (%s)\n", name.c_str(), r.value("device", "").c_str());
  return Status::ok();
}

static void print_status(const Json& s) {
  std::printf("arbord running, pid %lld, store %s\n", (long long)s.value("pid", 0LL),
              s.value("store_dir", "").c_str());
  for (const auto& e : s["endpoints"]) {
    std::printf("  %-20s %s\n", e.value("protocol", "").c_str(), e.value("uri", "").c_str());
  }
  if (s.contains("nbd")) {
    const Json& n = s["nbd"];
    const Json& r = n.value("reads", Json::object());
    std::printf("  nbd: %llu connection(s); reads %llu from memory, %llu on the event loops' io_uring, %llu on workers\n",
                (unsigned long long)n.value("connections", 0ULL), (unsigned long long)r.value("from_memory", 0ULL),
                (unsigned long long)r.value("on_ring", 0ULL), (unsigned long long)r.value("on_worker", 0ULL));
  }
  for (const auto& n : s["notes"]) std::printf("  note: %s\n", n.get<std::string>().c_str());
}

Status daemon_start(const Context& ctx, const std::vector<std::string>& arbord_args) {
  Json s;
  if (daemon_running(ctx.store_dir, &s)) {
    if (ctx.json) return print_json(s), Status::ok();
    std::printf("already running: ");
    print_status(s);
    return Status::ok();
  }
  ASSIGN_OR_RETURN(s, start_daemon(ctx.store_dir, arbord_args));
  if (ctx.json) return print_json(s), Status::ok();
  print_status(s);
  return Status::ok();
}

Status daemon_stop(const Context& ctx, bool force) {
  if (!daemon_running(ctx.store_dir)) {
    if (ctx.json) return print_json(Json{{"running", false}}), Status::ok();
    std::printf("arbord is not running on %s\n", ctx.store_dir.c_str());
    return Status::ok();
  }
  RETURN_IF_ERROR(stop_daemon(ctx.store_dir, force));
  if (ctx.json) return print_json(Json{{"running", false}, {"stopped", true}}), Status::ok();
  std::printf("arbord stopped (store flushed and checkpointed)\n");
  return Status::ok();
}

Status daemon_status(const Context& ctx) {
  Json s;
  if (!daemon_running(ctx.store_dir, &s)) {
    return io_error("arbord is not running on " + ctx.store_dir);
  }
  if (ctx.json) return print_json(s), Status::ok();
  print_status(s);
  return Status::ok();
}

}  // namespace arbor::cli
