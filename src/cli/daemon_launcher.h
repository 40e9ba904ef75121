// Finding or starting the local arbord.
//
// The store directory is --store, else $ARBOR_HOME, else ./arbor-data (made absolute). Its
// control socket is STORE/arbord.sock. When nothing answers there, arbor starts arbord (the
// binary next to its own, else on PATH) in a new session, with its output appended to
// STORE/arbord.log, and polls the socket until the API answers (or arbord exits, whose last log
// line then becomes the error).
#pragma once

#include <string>
#include <vector>

#include "cli/api_client.h"
#include "util/status.h"

namespace arbor::cli {

std::string resolve_store_dir(const std::string& flag);

// True when the control API at `store_dir` answers; fills `status` with GET /v1/daemon/status.
bool daemon_running(const std::string& store_dir, Json* status = nullptr);

// Starts arbord on `store_dir` with `extra_args` and waits until it serves. Returns its status.
Result<Json> start_daemon(const std::string& store_dir, const std::vector<std::string>& extra_args);

// Connects to the running daemon, starting one when `autostart` and none runs.
Result<ApiClient> connect(const std::string& store_dir, bool autostart);

// POST /v1/daemon/stop, then waits until the process has exited (its store is flushed and
// checkpointed by then).
Status stop_daemon(const std::string& store_dir, bool force = false);

}  // namespace arbor::cli
