// `arbor export allow|revoke|list`: the NVMe/TCP host allow-list of an export (docs/cli.md).
//
//   arbor export allow NAME HOSTNQN     only listed hosts may connect to NAME (and its snapshots
//                                       that have no list of their own)
//   arbor export revoke NAME HOSTNQN    removes an entry; an export with none admits every host
//   arbor export list [NAME]            the entries
//
// `arbor export NAME FILE` (copy a volume into a file) stays as it was; these are subcommands of
// the same word.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "util/status.h"

namespace arbor::cli {

// Adds allow/revoke/list under the `export` subcommand; a parsed one sets `run`.
void register_export_acl_commands(CLI::App& export_cmd, std::function<Status(const Context&)>& run);

}  // namespace arbor::cli
