// Small helpers to run external programs (nbdfuse, losetup, fusermount3) without a shell.
//
// Threading: every function is safe to call from any thread; none keeps state.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "util/status.h"

namespace arbor::attach {

struct ProcessOutput {
  int exit_code = -1;  // -1 when killed by a signal or never started
  std::string out;     // stdout
  std::string err;     // stderr, last line kept for messages
};

// Runs `argv` to completion, capturing stdout and stderr. Fails only when it cannot start.
Result<ProcessOutput> run_process(const std::vector<std::string>& argv);

// Starts `argv` in a new session with stdin on /dev/null and stdout/stderr appended to
// `log_path` ("" = /dev/null). Returns its pid; the caller reaps it (wait_exit).
Result<pid_t> spawn_process(const std::vector<std::string>& argv, const std::string& log_path);

// True when `pid` (our child) has exited; reaps it.
bool child_exited(pid_t pid);

// Waits up to `timeout` for our child `pid` to exit; returns false on timeout.
bool wait_exit(pid_t pid, std::chrono::milliseconds timeout);

// Alive and not a zombie. A zombie holds no files, unless it is the main thread of a process whose
// other threads are still exiting. Parents that never reap (a daemon's, once reparented to an init
// that reaps late) leave zombies around for a while, and kill(pid, 0) succeeds on them.
bool process_alive(pid_t pid);

// The last non-empty line of `text`, for one-line error messages.
std::string last_line(const std::string& text);

}  // namespace arbor::attach
