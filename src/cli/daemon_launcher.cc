#include "cli/daemon_launcher.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "attach/process.h"

namespace arbor::cli {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(120);
constexpr auto kPollInterval = std::chrono::milliseconds(2);

std::string socket_path(const std::string& store_dir) { return store_dir + "/arbord.sock"; }

std::string arbord_path() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    std::filesystem::path self(buf);
    // Next to arbor (installed), or in the build tree's sibling directory.
    for (auto candidate : {self.parent_path() / "arbord", self.parent_path().parent_path() / "daemon" / "arbord"}) {
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "arbord";  // PATH
}

std::string last_log_line(const std::string& store_dir) {
  std::ifstream log(store_dir + "/arbord.log");
  std::string line, last;
  while (std::getline(log, line)) {
    if (line.find("error") != std::string::npos) last = line;
  }
  // "[time] [arbord] [error] message" -> "message"
  size_t pos = last.find("] [error] ");
  if (pos != std::string::npos) return last.substr(pos + 10);
  pos = last.find("arbord: error: ");
  if (pos != std::string::npos) return last.substr(pos + 15);
  return last;
}

}  // namespace

std::string resolve_store_dir(const std::string& flag) {
  std::string dir = flag;
  if (dir.empty()) {
    const char* home = std::getenv("ARBOR_HOME");
    dir = home && *home ? home : "./arbor-data";
  }
  std::error_code ec;
  auto abs = std::filesystem::absolute(dir, ec);
  if (ec) return dir;
  return abs.lexically_normal().string();
}

bool daemon_running(const std::string& store_dir, Json* status) {
  struct stat st;
  if (stat(socket_path(store_dir).c_str(), &st) != 0) return false;
  // A blocking connect tells "nobody listens" (ECONNREFUSED: a stale socket) from "busy" (it
  // waits in the backlog), so a burst of clients never mistakes a busy daemon for a dead one.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = socket_path(store_dir);
  if (path.size() >= sizeof addr.sun_path) {
    close(fd);
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  close(fd);
  if (rc != 0) return false;
  ApiClient client(socket_path(store_dir));
  auto r = client.get("/v1/daemon/status");
  if (!r) return false;
  if (status) *status = *r;
  return true;
}

Result<Json> start_daemon(const std::string& store_dir, const std::vector<std::string>& extra_args) {
  std::error_code ec;
  std::filesystem::create_directories(store_dir, ec);
  if (ec) return io_error("cannot create store directory " + store_dir + ": " + ec.message());
  std::string binary = arbord_path();
  std::vector<std::string> args = {binary, "--store", store_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log_path = store_dir + "/arbord.log";

  pid_t pid = fork();
  if (pid < 0) return io_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    setsid();
    int devnull = open("/dev/null", O_RDONLY);
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (devnull >= 0) dup2(devnull, 0);
    if (log >= 0) {
      dup2(log, 1);
      dup2(log, 2);
    }
    if (chdir("/") != 0) _exit(126);
    execvp(argv[0], argv.data());
    dprintf(2, "arbord: error: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  // Poll the control socket until it answers; notice an early exit.
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  Json status;
  while (true) {
    if (daemon_running(store_dir, &status)) return status;
    int wstatus = 0;
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      std::string why = last_log_line(store_dir);
      return io_error("arbord exited while starting" + (why.empty() ? " (see " + log_path + ")" : ": " + why));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return io_error("arbord did not become ready within 30 s (see " + log_path + ")");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

Result<ApiClient> connect(const std::string& store_dir, bool autostart) {
  if (!daemon_running(store_dir)) {
    if (!autostart) return io_error("arbord is not running on " + store_dir);
    // $ARBORD_OPTS: extra arbord flags for a daemon arbor starts on its own (e.g. other ports).
    std::vector<std::string> args;
    if (const char* opts = std::getenv("ARBORD_OPTS")) {
      std::istringstream words(opts);
      for (std::string w; words >> w;) args.push_back(w);
    }
    auto started = start_daemon(store_dir, args);
    if (!started) return started.status();
  }
  return ApiClient(socket_path(store_dir));
}

Status stop_daemon(const std::string& store_dir, bool force) {
  Json status;
  if (!daemon_running(store_dir, &status)) return Status::ok();
  pid_t pid = status.value("pid", 0);
  ApiClient client(socket_path(store_dir));
  auto r = client.post("/v1/daemon/stop", Json{{"force", force}});
  if (!r) return r.status();
  auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  while (pid > 0 && attach::process_alive(pid)) {
    // Our own child (started by this same arbor process) must be reaped to disappear.
    int wstatus = 0;
    if (waitpid(pid, &wstatus, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return io_error("arbord (pid " + std::to_string(pid) + ") did not exit within 120 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // arbord wrote how its stop went (flush, checkpoint) just before exiting: its pid, then "ok" or
  // the error. A failed checkpoint loses nothing flushed (the next start replays the journal), but
  // "stopped cleanly" would not be true.
  std::ifstream outcome(store_dir + "/arbord.stopped");
  pid_t stopped_pid = 0;
  std::string how;
  if (outcome >> stopped_pid && stopped_pid == pid && std::getline(outcome >> std::ws, how) && how != "ok") {
    return io_error("arbord stopped, but not cleanly: " + how +
                    " (flushed writes are kept: the next start replays the journal)");
  }
  return Status::ok();
}

}  // namespace arbor::cli
