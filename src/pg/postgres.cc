#include "pg/postgres.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <sstream>

#include "attach/process.h"

namespace arbor::pg {
namespace {

using attach::last_line;
using attach::run_process;

constexpr int kFirstPort = 5433;
constexpr int kPortsTried = 1000;
constexpr const char* kDefaultBindir = "/usr/lib/postgresql/15/bin";
constexpr const char* kRunRoot = "/run/arbor";

bool executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// argv run as the postgres user from "/" (a 0700 working directory must not matter).
std::vector<std::string> as_postgres(std::vector<std::string> argv) {
  std::vector<std::string> full = {"runuser", "-u", "postgres", "--", "env", "-C", "/"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

// The line of a failed program's output that says why: one naming ENOSPC, else the last error
// line ("initdb: error: ...", "FATAL: ..."), else the last line.
std::string telling_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, error_line;
  while (std::getline(in, line)) {
    if (line.find("No space left") != std::string::npos) return line;
    if (line.find("error") != std::string::npos || line.find("FATAL") != std::string::npos) error_line = line;
  }
  return error_line.empty() ? last_line(text) : error_line;
}

// Runs argv; a non-zero exit becomes an error "WHAT failed: <last stderr line>".
Status run_checked(const std::vector<std::string>& argv, const std::string& what) {
  auto r = run_process(argv);
  if (!r) return r.status();
  if (r->exit_code == 0) return Status::ok();
  std::string why = telling_line(r->err);
  if (why.empty()) why = telling_line(r->out);
  if (why.empty()) why = "exit status " + std::to_string(r->exit_code);
  if (why.find("No space left") != std::string::npos) return no_space(what + " failed: " + why);
  return io_error(what + " failed: " + why);
}

Status make_dir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + path);
  if (chmod(path.c_str(), mode) != 0) return errno_status(errno, "chmod " + path);
  return Status::ok();
}

Status chown_postgres(const std::string& path) {
  struct passwd* pw = getpwnam("postgres");
  if (pw == nullptr) return not_found("there is no 'postgres' user (install postgresql-15)");
  if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) return errno_status(errno, "chown " + path);
  return Status::ok();
}

// The last line of the server log at one of `levels` ("PANIC:", ...), "" when there is none.
std::string last_log_line(const std::string& log_file, std::initializer_list<const char*> levels) {
  std::ifstream in(log_file);
  std::string line, found;
  while (std::getline(in, line)) {
    for (const char* level : levels) {
      if (line.find(level) != std::string::npos) {
        found = line;
        break;
      }
    }
  }
  return found;
}

// The last FATAL/PANIC/ERROR line of the server log: why a start failed.
std::string last_log_error(const std::string& log_file) {
  return last_log_line(log_file, {"FATAL:", "PANIC:", "ERROR:"});
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

Status require_root() {
  if (geteuid() != 0) {
    return not_supported("arbor pg needs root (it makes loop devices, mounts ext4, runs Postgres as postgres)");
  }
  return Status::ok();
}

Result<std::string> find_bindir() {
  const char* env = std::getenv("ARBOR_PG_BINDIR");
  std::string dir = env != nullptr && *env != '\0' ? env : kDefaultBindir;
  for (const char* prog : {"postgres", "initdb", "pg_ctl", "psql"}) {
    if (!executable(dir + "/" + prog)) {
      return not_found("PostgreSQL 15 not found: no " + dir + "/" + prog +
                       " (install postgresql-15, or set ARBOR_PG_BINDIR)");
    }
  }
  if (getpwnam("postgres") == nullptr) return not_found("there is no 'postgres' user (install postgresql-15)");
  return dir;
}

Paths paths_for(const std::string& store_dir, const std::string& name) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%012llx", static_cast<unsigned long long>(fnv1a(store_dir) & 0xffffffffffffull));
  Paths p;
  p.base = std::string(kRunRoot) + "/" + hash;
  p.mount_dir = p.base + "/" + name;
  p.data_dir = p.mount_dir + "/pgdata";
  p.log_file = p.mount_dir + "/postgres.log";
  p.socket_dir = p.base + "/sock";
  return p;
}

namespace {

// A socket file a server listens on. One left by a server that died (a PANIC, or its storage
// gone with a crashed arbord) refuses connections: Postgres replaces it when it starts.
bool unix_socket_live(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  sockaddr_un sa{};
  if (!S_ISSOCK(st.st_mode) || path.size() >= sizeof sa.sun_path) return true;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 || errno != ECONNREFUSED;
  close(fd);
  return live;
}

}  // namespace

bool port_free(int port, const std::string& socket_dir) {
  if (unix_socket_live(socket_dir + "/.s.PGSQL." + std::to_string(port))) return false;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as Postgres binds
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

Result<int> pick_port(const std::vector<int>& taken, const std::string& socket_dir) {
  for (int port = kFirstPort; port < kFirstPort + kPortsTried; ++port) {
    bool recorded = false;
    for (int t : taken) recorded = recorded || t == port;
    if (!recorded && port_free(port, socket_dir)) return port;
  }
  return busy("no free port in " + std::to_string(kFirstPort) + ".." +
              std::to_string(kFirstPort + kPortsTried - 1));
}

Status make_filesystem(const std::string& device) {
  // The volume is thin and reads zeros: writing zeros (inode tables, journal) or discarding
  // would only cost time and, for zeros, space.
  return run_checked({"mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard,assume_storage_prezeroed=1",
                      device},
                     "mkfs.ext4 on " + device);
}

namespace {

// The /proc/mounts line of what is mounted on `mount_dir`; empty fields when nothing is.
struct MountEntry {
  std::string device, options;
};
MountEntry mount_entry(const std::string& mount_dir) {
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type, options, rest;
  while (mounts >> dev >> dir >> type >> options && std::getline(mounts, rest)) {
    if (dir == mount_dir) return {dev, options};
  }
  return {};
}

}  // namespace

std::string mounted_device(const std::string& mount_dir) { return mount_entry(mount_dir).device; }

bool is_mounted(const std::string& mount_dir) { return !mounted_device(mount_dir).empty(); }

bool filesystem_failed(const std::string& mount_dir) {
  // Options are comma-separated: "ro" first when remounted read-only, "emergency_ro" anywhere.
  std::string padded = "," + mount_entry(mount_dir).options + ",";
  return padded.find(",ro,") != std::string::npos || padded.find(",emergency_ro,") != std::string::npos;
}

Status repair_filesystem(const std::string& device) {
  auto r = run_process({"e2fsck", "-p", device});
  if (!r) return r.status();
  // 0: clean, 1: errors corrected; 2 and above: a reboot is asked for, or errors are left.
  if (r->exit_code == 0 || r->exit_code == 1) return Status::ok();
  std::string why = last_line(r->err.empty() ? r->out : r->err);
  return io_error("e2fsck -p " + device + " left errors it will not fix on its own (" + why +
                  "): run e2fsck " + device + " by hand");
}

namespace {

// A loop device whose backing file can no longer be reached: the one-file FUSE disk of an arbord
// that died (kill -9, OOM) while the volume was attached. Nothing else will ever detach it. Its
// recorded path then names nothing, or another file (the next arbord unmounts the dead FUSE mount).
void detach_orphaned_loop(const std::string& device) {
  if (device.rfind("/dev/loop", 0) != 0) return;
  std::ifstream f("/sys/block/" + device.substr(5) + "/loop/backing_file");
  std::string backing;
  if (!std::getline(f, backing)) return;
  int fd = open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  loop_info64 info{};
  int rc = ioctl(fd, LOOP_GET_STATUS64, &info);
  int err = errno;
  close(fd);
  // ENOTCONN: the backing file's FUSE connection is gone (the loop driver stats it for the status).
  if (rc != 0 && err != ENOTCONN) return;
  struct stat st;
  if (rc == 0 && stat(backing.c_str(), &st) == 0 && st.st_dev == info.lo_device && st.st_ino == info.lo_inode) return;
  (void)run_checked({"losetup", "-d", device}, "losetup -d " + device);
}

}  // namespace

Status mount_device(const std::string& device, const std::string& mount_dir) {
  if (is_mounted(mount_dir)) return Status::ok();
  std::string base = mount_dir.substr(0, mount_dir.rfind('/'));
  RETURN_IF_ERROR(make_dir(kRunRoot, 0755));
  RETURN_IF_ERROR(make_dir(base, 0755));
  RETURN_IF_ERROR(make_dir(mount_dir, 0755));
  RETURN_IF_ERROR(run_checked({"mount", "-t", "ext4", "-o", "noatime", device, mount_dir},
                              "mount " + device + " on " + mount_dir));
  // The filesystem's root must stay traversable by postgres (mkfs makes it root 0755 already).
  if (chmod(mount_dir.c_str(), 0755) != 0) return errno_status(errno, "chmod " + mount_dir);
  return Status::ok();
}

Status checkpoint_journal(const std::string& mount_dir) {
  // From linux/ext4.h, which Debian 12's headers predate.
  constexpr unsigned long kExt4IocCheckpoint = _IOW('f', 43, uint32_t);
  int fd = open(mount_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "open " + mount_dir);
  uint32_t flags = 0;
  int rc = ioctl(fd, kExt4IocCheckpoint, &flags);
  int err = errno;
  close(fd);
  if (rc != 0 && err != ENOTTY && err != ENODEV) {  // old kernel; no journal
    return errno_status(err, "checkpoint the ext4 journal of " + mount_dir);
  }
  return Status::ok();
}

Status unmount(const std::string& mount_dir) {
  const std::string device = mounted_device(mount_dir);
  // A process that just exited may still hold a file for a moment: retry "busy" for ~5 s.
  Status st;
  for (int i = 0; i < 50 && is_mounted(mount_dir); ++i) {
    st = run_checked({"umount", mount_dir}, "umount " + mount_dir);
    if (st.is_ok()) break;
    usleep(100 * 1000);
  }
  if (is_mounted(mount_dir)) return st;
  detach_orphaned_loop(device);
  return Status::ok();
}

void remove_run_dirs(const Paths& p) {
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(p.socket_dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().rfind(".s.PGSQL.", 0) == 0) std::filesystem::remove(it->path(), ec);
  }
  rmdir(p.socket_dir.c_str());
  rmdir(p.base.c_str());
}

std::string last_failure(const Paths& p) {
  // "2026-12-03 18:56:05.438 UTC [13034] PANIC:  could not fsync ...": from the level on.
  std::string line = last_log_line(p.log_file, {"PANIC:", "FATAL:"});
  size_t at = line.find("PANIC:");
  if (at == std::string::npos) at = line.find("FATAL:");
  return at == std::string::npos ? "" : line.substr(at);
}

Status init_cluster(const std::string& bindir, const Paths& p) {
  RETURN_IF_ERROR(make_dir(p.socket_dir, 0755));
  RETURN_IF_ERROR(chown_postgres(p.socket_dir));
  RETURN_IF_ERROR(make_dir(p.data_dir, 0700));
  RETURN_IF_ERROR(chown_postgres(p.data_dir));
  int fd = open(p.log_file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
  if (fd < 0) return errno_status(errno, "create " + p.log_file);
  close(fd);
  RETURN_IF_ERROR(chown_postgres(p.log_file));
  RETURN_IF_ERROR(run_checked(as_postgres({bindir + "/initdb", "-D", p.data_dir, "-U", "postgres",
                                           "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                                           "--no-instructions"}),
                              "initdb"));
  std::ofstream conf(p.data_dir + "/postgresql.conf", std::ios::app);
  conf << "\n# arbor pg: the port and the socket directory are set at start (pg_ctl -o)\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "# A branch starts as after a crash; Postgres then syncs the data directory before redo:\n"
       << "# one syncfs() instead of an fsync of every file keeps that to milliseconds.\n"
       << "recovery_init_sync_method = syncfs\n"
       << "# A branch replays the WAL written since the parent's last completed checkpoint: frequent\n"
       << "# checkpoints keep that, and so the branch's start, short and flat whatever the data size\n"
       << "# (defaults: 5min and 1GB; measured under pgbench at scale 100: 3.6 s to replay 615 MB;\n"
       << "# with 256MB: 120 to 250 MB, 0.5 to 1.5 s; with 128MB: 70 to 110 MB, 0.3 to 0.5 s, and\n"
       << "# no measurable change in the parent's TPS).\n"
       << "checkpoint_timeout = 30s\n"
       << "max_wal_size = 128MB\n"
       << "# Under a heavy write load that means a checkpoint every few seconds, by design: no log\n"
       << "# warning for each one.\n"
       << "checkpoint_warning = 0\n"
       << "# Replay (of a branch, or after a crash) ran 1.6x faster without prefetch on a volume: most\n"
       << "# blocks come with a full-page image, and each fadvise is a FUSE round trip of its own.\n"
       << "recovery_prefetch = off\n";
  conf.close();
  if (!conf.good()) return io_error("cannot write " + p.data_dir + "/postgresql.conf");
  // Make what we wrote durable: a branch is a crash-consistent image, so a settings file still in
  // the page cache would reach it as zeros.
  int dir_fd = open(p.mount_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return errno_status(errno, "open " + p.mount_dir);
  int rc = syncfs(dir_fd);
  int err = errno;
  close(dir_fd);
  if (rc != 0) return errno_status(err, "syncfs " + p.mount_dir);
  return Status::ok();
}

pid_t running_pid(const Paths& p) {
  std::ifstream pidfile(p.data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(pidfile >> pid) || pid <= 0) return 0;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return 0;
  // The postmaster's working directory is its data directory.
  char cwd[4096];
  std::string link = "/proc/" + std::to_string(pid) + "/cwd";
  ssize_t n = readlink(link.c_str(), cwd, sizeof cwd - 1);
  if (n <= 0) return 0;
  cwd[n] = '\0';
  return p.data_dir == cwd ? static_cast<pid_t>(pid) : 0;
}

Status reset_log(const Paths& p) {
  if (truncate(p.log_file.c_str(), 0) != 0 && errno != ENOENT) return errno_status(errno, "truncate " + p.log_file);
  return Status::ok();
}

Status remove_stale_pid(const Paths& p) {
  if (running_pid(p) != 0) return Status::ok();
  std::string pidfile = p.data_dir + "/postmaster.pid";
  if (unlink(pidfile.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "remove " + pidfile);
  return Status::ok();
}

namespace {

enum class ServerState { kStarting, kStandby, kReady, kGone };

// pg_control's DBState (offset 16, after the system identifier and two version words) is
// DB_IN_PRODUCTION (6) once recovery has ended: what `pg_ctl promote -w` waits for. The status
// line of postmaster.pid says "ready" already while a hot standby takes read-only connections.
bool in_production(const Paths& p) {
  std::ifstream f(p.data_dir + "/global/pg_control", std::ios::binary);
  uint8_t b[20] = {};
  if (!f.read(reinterpret_cast<char*>(b), sizeof b)) return false;
  int32_t state = int32_t(uint32_t(b[16]) | uint32_t(b[17]) << 8 | uint32_t(b[18]) << 16 | uint32_t(b[19]) << 24);
  return state == 6;
}

// The postmaster's own word, from line 8 of postmaster.pid ("ready", "standby", "starting").
ServerState server_state(const Paths& p) {
  if (running_pid(p) == 0) return ServerState::kGone;
  std::ifstream f(p.data_dir + "/postmaster.pid");
  std::string line, status;
  for (int n = 1; std::getline(f, line); ++n) {
    if (n == 8) {
      status = line;
      break;
    }
  }
  if (status.rfind("ready", 0) == 0) return ServerState::kReady;
  if (status.rfind("standby", 0) == 0) return ServerState::kStandby;
  return ServerState::kStarting;
}

// Polls every 5 ms until `done`, where pg_ctl -w polls every 100 ms: a branch's start waits twice
// (start, promote), so that was 100 ms of a sub-second command on average. Gives up when the
// postmaster is gone (after it was seen, or after 30 s without it) or after 300 s.
Status wait_until(const Paths& p, const std::function<bool(ServerState)>& done) {
  constexpr auto kTimeout = std::chrono::seconds(300);
  auto start = std::chrono::steady_clock::now();
  bool seen = false;
  while (true) {
    ServerState s = server_state(p);
    if (done(s)) return Status::ok();
    auto waited = std::chrono::steady_clock::now() - start;
    if (s != ServerState::kGone) seen = true;
    if (s == ServerState::kGone && (seen || waited > std::chrono::seconds(30))) return io_error("the server exited");
    if (waited > kTimeout) return io_error("the server was not up within " + std::to_string(kTimeout.count()) + " s");
    usleep(5 * 1000);
  }
}

}  // namespace

// Postgres refuses to start while its socket's lock file names a process that kill(pid, 0) finds,
// and finds a zombie: a postmaster that died on its own (a PANIC on a failed file system) lingers
// as one until init reaps it, which here can take seconds. Its socket is stale then: remove both.
static Status remove_stale_socket_lock(const Paths& p, int port) {
  std::string socket = p.socket_dir + "/.s.PGSQL." + std::to_string(port);
  std::ifstream lock(socket + ".lock");
  long pid = 0;
  if (!(lock >> pid) || pid <= 0 || attach::process_alive(pid_t(pid))) return Status::ok();
  for (const std::string& f : {socket + ".lock", socket}) {
    if (unlink(f.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "remove stale " + f);
  }
  return Status::ok();
}

Status start_server(const std::string& bindir, const Paths& p, int port, const std::string& settings) {
  RETURN_IF_ERROR(make_dir(p.socket_dir, 0755));
  RETURN_IF_ERROR(chown_postgres(p.socket_dir));
  RETURN_IF_ERROR(remove_stale_socket_lock(p, port));
  std::string opts = "-p " + std::to_string(port) + " -k " + p.socket_dir;
  if (!settings.empty()) opts += " " + settings;
  auto r = run_process(as_postgres({bindir + "/pg_ctl", "-D", p.data_dir, "-l", p.log_file, "-W", "-s",
                                    "-o", opts, "start"}));
  if (!r) return r.status();
  Status up = r->exit_code == 0
                  ? wait_until(p, [](ServerState s) { return s == ServerState::kReady || s == ServerState::kStandby; })
                  : io_error(last_line(r->err));
  if (up.is_ok()) return up;
  std::string why = last_log_error(p.log_file);
  if (why.empty()) why = up.message();
  if (why.find("No space left") != std::string::npos) return no_space("Postgres did not start: " + why);
  if (why.find("Address already in use") != std::string::npos) {
    return busy("Postgres did not start: port " + std::to_string(port) + " is in use");
  }
  return io_error("Postgres did not start: " + why + " (log: " + p.log_file + ")");
}

// What `pg_ctl promote` does, without its three execs (runuser, env, pg_ctl), each a few ms on a
// busy machine: a `promote` file in the data directory, then SIGUSR1 to the postmaster.
static Status request_promotion(const Paths& p) {
  pid_t pid = running_pid(p);
  if (pid == 0) return io_error("the server exited");
  // Written under another name and renamed: the postmaster acts on the file whenever any child
  // signals it, so it may consume `promote` the moment it exists (a chown after that failed).
  std::string file = p.data_dir + "/promote";
  std::string staged = p.data_dir + "/arbor-promote.tmp";
  {
    std::ofstream f(staged);
    if (!f.good()) return io_error("cannot write " + staged);
  }
  RETURN_IF_ERROR(chown_postgres(staged));
  if (rename(staged.c_str(), file.c_str()) != 0) return errno_status(errno, "rename " + staged);
  if (kill(pid, SIGUSR1) != 0) return errno_status(errno, "signal the postmaster");
  return Status::ok();
}

Status start_branch_server(const std::string& bindir, const Paths& p, int port) {
  // As a standby, the server replays the WAL it has and opens once consistent; promotion then ends
  // recovery with an end-of-recovery record and a checkpoint in the background. Started plainly,
  // crash recovery ends in an immediate checkpoint of every page the replay dirtied, and the
  // server accepts no connection until it is done (4 s of an 11.5 s branch at pgbench scale 100).
  // The branch also moves to a new timeline, as a divergent history should.
  std::string signal = p.data_dir + "/standby.signal";
  {
    std::ofstream f(signal);
    if (!f.good()) return io_error("cannot write " + signal);
  }
  RETURN_IF_ERROR(chown_postgres(signal));
  // Recovery prefetch issues a posix_fadvise per block a record names that is not in shared
  // buffers: on a branch nearly all of them, and through loop and FUSE each is a read-ahead
  // request of its own. Off, replay ran 1.6x faster under pgbench (scale 100 and 500: 180 to 290
  // MB/s instead of 110 to 160): most blocks come with a full-page image and need no read at all.
  // Set for this run only; the setting matters only while a server replays WAL.
  RETURN_IF_ERROR(start_server(bindir, p, port, "-c recovery_prefetch=off"));
  Status up = request_promotion(p);
  if (up.is_ok()) up = wait_until(p, [&p](ServerState s) { return s == ServerState::kReady && in_production(p); });
  if (up.is_ok()) return up;
  std::string why = last_log_error(p.log_file);
  if (why.empty()) why = up.message();
  return io_error("Postgres did not leave recovery: " + why + " (log: " + p.log_file + ")");
}

// Polls until `pid` has exited (pg_ctl -w returns once postmaster.pid is gone, a moment before the
// process closes its files: unmounting earlier fails with "target is busy").
void wait_gone(pid_t pid, int max_ms = 10000) {
  for (int i = 0; i < max_ms / 10 && attach::process_alive(pid); ++i) usleep(10 * 1000);
}

Status stop_server(const std::string& bindir, const Paths& p, bool immediate) {
  pid_t pid = running_pid(p);
  if (pid == 0) return Status::ok();
  if (immediate) {
    // Signals, not pg_ctl: pg_ctl waits for postmaster.pid to go, which a server cannot remove
    // from a file system whose device is gone. SIGQUIT is Postgres's immediate shutdown.
    kill(pid, SIGQUIT);
    wait_gone(pid, 10000);
    if (attach::process_alive(pid)) {
      kill(pid, SIGKILL);
      // A process in the middle of a read or write of the dead device dies only once the block
      // layer gives up on that request: the kernel's NBD client does so at its 30 s timeout.
      wait_gone(pid, 40000);
    }
    if (attach::process_alive(pid)) return busy("Postgres (pid " + std::to_string(pid) + ") does not exit");
    return Status::ok();
  }
  struct Wait {
    pid_t pid;
    ~Wait() { wait_gone(pid); }
  } wait{pid};
  Status st = run_checked(as_postgres({bindir + "/pg_ctl", "-D", p.data_dir, "-w", "-t", "60", "-s", "-m", "fast", "stop"}),
                          "pg_ctl stop");
  if (st.is_ok() || running_pid(p) == 0) return Status::ok();
  return run_checked(as_postgres({bindir + "/pg_ctl", "-D", p.data_dir, "-w", "-t", "60", "-s", "-m",
                                  "immediate", "stop"}),
                     "pg_ctl stop -m immediate");
}

Result<std::string> run_sql(const std::string& bindir, int port, const std::string& sql) {
  auto r = run_process({bindir + "/psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p",
                        std::to_string(port), "-U", "postgres", "-d", "postgres", "-v",
                        "ON_ERROR_STOP=1", "-c", sql});
  if (!r) return r.status();
  if (r->exit_code != 0) return io_error("psql: " + last_line(r->err));
  return r->out;
}

Result<uint64_t> redo_distance(const std::string& bindir, int port) {
  ASSIGN_OR_RETURN(std::string out,
                   run_sql(bindir, port,
                           "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), redo_lsn)::bigint "
                           "FROM pg_control_checkpoint()"));
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(out.c_str(), &end, 10);
  if (errno != 0 || end == out.c_str() || n < 0) return io_error("unexpected redo distance '" + last_line(out) + "'");
  return uint64_t(n);
}

}  // namespace arbor::pg
