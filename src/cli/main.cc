// arbor: the Arbor command line. A thin client of arbord's control API (docs/cli.md).
//
// With no configuration it uses the store under ./arbor-data (or $ARBOR_HOME, or --store) and
// starts arbord there when none runs. Exit 0 on success; on failure one line on stderr,
// "arbor: error: ...", and exit 1 (2 for a command-line mistake).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>

#include "cli/commands.h"
#include "cli/daemon_launcher.h"
#include "cli/export_commands.h"
#include "cli/attach_nvme.h"
#include "cli/pg_commands.h"

int main(int argc, char** argv) {
  using namespace arbor::cli;
  signal(SIGPIPE, SIG_IGN);  // a daemon gone mid-transfer is an error line, not a silent death
  CLI::App app{"arbor: copy-on-write branchable block volumes"};
  app.require_subcommand(1);
  app.fallthrough(true);
  std::string store_flag;
  bool json = false;
  app.add_option("--store", store_flag, "Store directory (default $ARBOR_HOME, else ./arbor-data)");
  app.add_flag("--json", json, "Print the API's JSON instead of text");

  std::string via = "auto";
  std::function<arbor::Status(const Context&)> run;
  std::string name, name2, size, file, offset;
  double fraction = 0.5;

  auto* volume = app.add_subcommand("volume", "Create, inspect, resize and delete volumes");
  volume->require_subcommand(1);
  auto* vcreate = volume->add_subcommand("create", "Create a thin volume");
  vcreate->add_option("NAME", name, "Volume name [a-z0-9][a-z0-9_-]{0,62}")->required();
  vcreate->add_option("--size", size, "Logical size, e.g. 10G")->required();
  vcreate->callback([&] { run = [&](const Context& c) { return volume_create(c, name, size); }; });
  auto* vlist = volume->add_subcommand("list", "List volumes, branches and snapshots");
  vlist->callback([&] { run = [&](const Context& c) { return list(c); }; });
  auto* vinfo = volume->add_subcommand("info", "Show one volume or snapshot");
  vinfo->add_option("NAME", name)->required();
  vinfo->callback([&] { run = [&](const Context& c) { return info(c, name); }; });
  auto* vdelete = volume->add_subcommand("delete", "Delete a volume or snapshot");
  vdelete->add_option("NAME", name, "NAME or NAME@SNAP")->required();
  vdelete->callback([&] { run = [&](const Context& c) { return remove(c, name); }; });
  auto* vresize = volume->add_subcommand("resize", "Grow a volume");
  vresize->add_option("NAME", name)->required();
  vresize->add_option("--size", size, "New logical size, e.g. 20G")->required();
  vresize->callback([&] { run = [&](const Context& c) { return resize(c, name, size); }; });

  auto* branch = app.add_subcommand("branch", "Branch a volume or snapshot (constant time)");
  branch->require_subcommand(1);
  auto* bcreate = branch->add_subcommand("create", "Create a writable branch");
  bcreate->add_option("NEW", name, "Name of the new volume")->required();
  bcreate->add_option("--from", name2, "Source: NAME or NAME@SNAP")->required();
  bcreate->callback([&] { run = [&](const Context& c) { return branch_create(c, name, name2); }; });

  auto* snapshot = app.add_subcommand("snapshot", "Read-only points of a volume");
  snapshot->require_subcommand(1);
  auto* screate = snapshot->add_subcommand("create", "Take a snapshot");
  screate->add_option("NAME@SNAP", name)->required();
  screate->callback([&] { run = [&](const Context& c) { return snapshot_create(c, name); }; });
  auto* sdelete = snapshot->add_subcommand("delete", "Delete a snapshot");
  sdelete->add_option("NAME@SNAP", name)->required();
  sdelete->callback([&] { run = [&](const Context& c) { return remove(c, name); }; });

  app.add_subcommand("list", "List volumes, branches and snapshots")
      ->callback([&] { run = [&](const Context& c) { return list(c); }; });
  auto* info_cmd = app.add_subcommand("info", "Show one volume or snapshot");
  info_cmd->add_option("NAME", name)->required();
  info_cmd->callback([&] { run = [&](const Context& c) { return info(c, name); }; });
  auto* del = app.add_subcommand("delete", "Delete a volume or snapshot");
  del->add_option("NAME", name, "NAME or NAME@SNAP")->required();
  del->callback([&] { run = [&](const Context& c) { return remove(c, name); }; });
  auto* use = app.add_subcommand("usage", "Space: per volume logical/owned/shared, store used/free");
  std::vector<std::string> names;
  use->add_option("NAME", names, "Volumes or snapshots (default: all, and the store)");
  use->callback([&] { run = [&](const Context& c) { return usage(c, names); }; });
  auto* rsz = app.add_subcommand("resize", "Grow a volume");
  rsz->add_option("NAME", name)->required();
  rsz->add_option("--size", size, "New logical size, e.g. 20G")->required();
  rsz->callback([&] { run = [&](const Context& c) { return resize(c, name, size); }; });
  auto* imp = app.add_subcommand("import", "Copy a file or block device into a volume");
  imp->add_option("NAME", name)->required();
  imp->add_option("FILE", file)->required();
  imp->add_option("--size", size, "Size of the volume when import creates it (default: the file's)");
  imp->add_option("--offset", offset, "Byte offset in the volume to write the file at (e.g. 1M)");
  imp->add_option("--via", via, "Data path: auto (NBD unix socket if served), nbd, http")->capture_default_str();
  imp->callback([&] { run = [&](const Context& c) { return import_file(c, name, file, size, offset); }; });
  auto* exp = app.add_subcommand("export", "Copy a volume or snapshot into a file; allow/revoke/list NVMe hosts");
  exp->add_option("NAME", name);
  exp->add_option("FILE", file);
  exp->add_option("--via", via, "Data path: auto (NBD unix socket if served), nbd, http")->capture_default_str();
  register_export_acl_commands(*exp, run);  // arbor export allow|revoke|list (cli/export_commands.cc)
  exp->callback([&] {
    if (!exp->get_subcommands().empty()) return;  // allow/revoke/list set run
    if (name.empty() || file.empty()) throw CLI::ValidationError("export", "NAME and FILE are required");
    run = [&](const Context& c) { return export_file(c, name, file); };
  });
  auto* cln = app.add_subcommand("clean", "Run the segment cleaner");
  cln->add_option("--max-live-fraction", fraction, "Clean segments at most this full")
      ->capture_default_str();
  cln->callback([&] { run = [&](const Context& c) { return clean(c, fraction); }; });
  auto* att = app.add_subcommand("attach", "Make a local block device of a volume; prints its path");
  std::string transport = "nbd";
  att->add_option("NAME", name)->required();
  att->add_option("--transport", transport, "nbd (the kernel's NBD client where the kernel has nbd, else a loop device over FUSE) or nvme-tcp (the kernel's initiator)")
      ->check(CLI::IsMember({"nbd", "nvme-tcp"}))->capture_default_str();
  att->callback([&] {
    run = [&](const Context& c) { return transport == "nvme-tcp" ? attach_nvme_tcp(c, name) : attach(c, name); };
  });
  auto* det = app.add_subcommand("detach", "Remove the block device made by attach");
  det->add_option("NAME", name)->required();
  det->add_option("--transport", transport, "nbd or nvme-tcp (as attached)")
      ->check(CLI::IsMember({"nbd", "nvme-tcp"}))->capture_default_str();
  det->callback([&] {
    run = [&](const Context& c) { return transport == "nvme-tcp" ? detach_nvme_tcp(c, name) : detach(c, name); };
  });

  register_pg_commands(app, run);  // arbor pg ... (cli/pg_commands.cc)

  auto* daemon = app.add_subcommand("daemon", "Start, stop or inspect arbord");
  daemon->require_subcommand(1);
  auto* dstart = daemon->add_subcommand("start", "Start arbord on the store");
  std::vector<std::string> nbd_listen;
  std::string nvme_listen, nvme_discovery;
  bool no_nbd = false, no_nvme = false, verbose = false;
  dstart->add_option("--nbd-listen", nbd_listen, "NBD listen address (repeatable; 'none')");
  dstart->add_flag("--no-nbd", no_nbd, "Do not serve NBD");
  dstart->add_option("--nvme-listen", nvme_listen, "NVMe/TCP listen address");
  dstart->add_option("--nvme-discovery-listen", nvme_discovery, "NVMe/TCP discovery address");
  dstart->add_flag("--no-nvme", no_nvme, "Do not serve NVMe/TCP");
  dstart->add_flag("-v,--verbose", verbose, "arbord logs every API request");
  dstart->callback([&] {
    run = [&](const Context& c) {
      std::vector<std::string> args;
      for (const auto& a : nbd_listen) args.insert(args.end(), {"--nbd-listen", a});
      if (no_nbd) args.push_back("--no-nbd");
      if (!nvme_listen.empty()) args.insert(args.end(), {"--nvme-listen", nvme_listen});
      if (!nvme_discovery.empty()) args.insert(args.end(), {"--nvme-discovery-listen", nvme_discovery});
      if (no_nvme) args.push_back("--no-nvme");
      if (verbose) args.push_back("--verbose");
      return daemon_start(c, args);
    };
  });
  auto* dstop = daemon->add_subcommand("stop", "Stop arbord: detach, flush, checkpoint, exit");
  bool force = false;
  dstop->add_flag("--force", force, "Stop even while an attached device is mounted");
  dstop->callback([&] { run = [&](const Context& c) { return daemon_stop(c, force); }; });
  daemon->add_subcommand("status", "Is arbord running; its endpoints as URIs")
      ->callback([&] { run = [&](const Context& c) { return daemon_status(c); }; });

  try {
    take_psql_passthrough(argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "arbor: error: %s (see arbor --help)\n", e.what());
    return 2;
  }
  Context ctx;
  ctx.store_dir = resolve_store_dir(store_flag);
  ctx.json = json;
  ctx.via = via;
  arbor::Status st = run ? run(ctx) : arbor::invalid_argument("no command given");
  if (!st.is_ok()) {
    std::string message = st.to_string();
    for (char& ch : message)
      if (ch == '\n') ch = ' ';
    std::fprintf(stderr, "arbor: error: %s\n", message.c_str());
    return 1;
  }
  return 0;
}
