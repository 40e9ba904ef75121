// The arbor commands, one function each. main.cc parses the command line (CLI11) and calls these.
//
// Each prints its result on stdout (a line or a table for people, the API's JSON object with
// --json) and returns a Status; main prints a failure as one line "arbor: error: ..." on stderr
// and exits non-zero.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace arbor::cli {

struct Context {
  std::string store_dir;  // resolved: --store, $ARBOR_HOME, ./arbor-data
  bool json = false;
  // import/export data path: "auto" (NBD unix socket when arbord serves one, else HTTP), "nbd",
  // "http".
  std::string via = "auto";
};

Status volume_create(const Context& ctx, const std::string& name, const std::string& size);
Status branch_create(const Context& ctx, const std::string& name, const std::string& from);
Status snapshot_create(const Context& ctx, const std::string& volume_at_snap);
Status list(const Context& ctx);
Status info(const Context& ctx, const std::string& name);
Status remove(const Context& ctx, const std::string& name);
// No names: every volume and the store. One name: that volume. Several: a table of those.
Status usage(const Context& ctx, const std::vector<std::string>& names);
Status resize(const Context& ctx, const std::string& name, const std::string& size);
Status clean(const Context& ctx, double max_live_fraction);
// Writes FILE into NAME at byte `offset` (creating NAME, sized for the file or --size, if absent).
Status import_file(const Context& ctx, const std::string& name, const std::string& file,
                   const std::string& size, const std::string& offset);
Status export_file(const Context& ctx, const std::string& name, const std::string& file);
Status attach(const Context& ctx, const std::string& name);
Status detach(const Context& ctx, const std::string& name);
Status daemon_start(const Context& ctx, const std::vector<std::string>& arbord_args);
Status daemon_stop(const Context& ctx, bool force);
Status daemon_status(const Context& ctx);

}  // namespace arbor::cli
