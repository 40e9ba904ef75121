#include "cli/export_commands.h"

#include <cstdio>
#include <memory>
#include <string>

#include "cli/api_client.h"
#include "cli/daemon_launcher.h"

namespace arbor::cli {
namespace {

void print_entry(const Json& e) {
  const auto& hosts = e["hosts"];
  if (hosts.empty()) {
    std::printf("%s: any host (no allow-list)\n", e["name"].get<std::string>().c_str());
    return;
  }
  for (const auto& h : hosts) std::printf("%s\t%s\n", e["name"].get<std::string>().c_str(), h.get<std::string>().c_str());
}

Status change(const Context& ctx, const char* verb, const std::string& name, const std::string& host) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  ASSIGN_OR_RETURN(auto r, api.post("/v1/exports/" + path_escape(name) + "/" + verb, Json{{"host_nqn", host}}));
  if (ctx.json) return std::printf("%s\n", r.dump(2).c_str()), Status::ok();
  std::printf("%s %s %s (%zu host%s listed)\n", verb[0] == 'a' ? "allowed" : "revoked", host.c_str(),
              verb[0] == 'a' ? ("on " + name).c_str() : ("from " + name).c_str(), r["hosts"].size(),
              r["hosts"].size() == 1 ? "" : "s");
  return Status::ok();
}

Status list(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  if (!name.empty()) {
    ASSIGN_OR_RETURN(auto r, api.get("/v1/exports/" + path_escape(name)));
    if (ctx.json) return std::printf("%s\n", r.dump(2).c_str()), Status::ok();
    print_entry(r);
    return Status::ok();
  }
  ASSIGN_OR_RETURN(auto r, api.get("/v1/exports"));
  if (ctx.json) return std::printf("%s\n", r.dump(2).c_str()), Status::ok();
  if (r["exports"].empty()) std::printf("no allow-lists: every export admits every host\n");
  for (const auto& e : r["exports"]) print_entry(e);
  return Status::ok();
}

}  // namespace

void register_export_acl_commands(CLI::App& exp, std::function<Status(const Context&)>& run) {
  // Owned by the App through the callbacks' captures.
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  auto* allow = exp.add_subcommand("allow", "Let only listed host NQNs connect to NAME over NVMe/TCP");
  allow->add_option("NAME", args->first, "Volume or VOL@SNAP")->required();
  allow->add_option("HOSTNQN", args->second, "The host's NQN (its /etc/nvme/hostnqn)")->required();
  allow->callback([&run, args] { run = [args](const Context& c) { return change(c, "allow", args->first, args->second); }; });
  auto* revoke = exp.add_subcommand("revoke", "Remove a host NQN from NAME's allow-list");
  revoke->add_option("NAME", args->first)->required();
  revoke->add_option("HOSTNQN", args->second)->required();
  revoke->callback([&run, args] { run = [args](const Context& c) { return change(c, "revoke", args->first, args->second); }; });
  auto* ls = exp.add_subcommand("list", "Show the allow-lists (every export, or NAME)");
  ls->add_option("NAME", args->first);
  ls->callback([&run, args] { run = [args](const Context& c) { return list(c, args->first); }; });
}

}  // namespace arbor::cli
