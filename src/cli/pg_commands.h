// `arbor pg`: stock PostgreSQL 15 on Arbor volumes and branches (docs/postgres.md).
//
//   arbor pg create NAME [--size 20G] [--port P]     volume, attach, mkfs.ext4, initdb, start
//   arbor pg branch NEW --from NAME [--checkpoint]   branch under the running server, start a
//                                                    second server that recovers by WAL replay
//   arbor pg list | start NAME | stop NAME | delete NAME | psql NAME [psql args...]
//
// The CLI owns the lifecycle; arbord only provides volumes, branches and attachments. Per-server
// records live in STORE/pg/ (src/pg/record.h), mount points under /run/arbor (src/pg/postgres.h).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "util/status.h"

namespace arbor::cli {

// Adds the `pg` subcommand tree to `app`; a parsed pg command sets `run`.
void register_pg_commands(CLI::App& app, std::function<Status(const Context&)>& run);

// `arbor pg psql NAME -- ARGS...`: after `--`, CLI11 hands the words to the top-level command,
// which refuses them. Call before parsing: takes `--` and what follows out of argv for `pg psql`,
// and its command passes them to psql after the other arguments.
void take_psql_passthrough(int& argc, char** argv);

}  // namespace arbor::cli
