#include "attach/attachment.h"

#include <signal.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <thread>

#include "attach/fuse_disk.h"
#include "attach/kernel_nbd.h"
#include "attach/process.h"

namespace arbor::attach {
namespace {

constexpr auto kReadyTimeout = std::chrono::seconds(15);
constexpr const char* kKernelNbdFile = "kernel-nbd";  // in the mount dir: its NBD devices (read_marker)

// One connection per CPU, 2 to 4: the kernel spreads requests over them, arbord serves each on
// an event loop.
int kernel_nbd_connections() {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return int(std::clamp(cpus, 2L, 4L));
}

Status unmount(const std::string& mount_dir) {
  auto r = run_process({"fusermount3", "-u", mount_dir});
  if (!r) return r.status();
  if (r->exit_code != 0) return busy("cannot unmount " + mount_dir + ": " + last_line(r->err));
  return Status::ok();
}

// A new block device starts with 128 KiB of read-ahead; every read-ahead request is a round trip
// to the store, so a sequential reader (a branch's Postgres replaying its WAL) is bound by that
// latency. The machine's own disk uses 4 MiB and more. Best effort: the device works without it.
constexpr int kReadAheadKib = 4096;
void set_read_ahead(const std::string& device, int kib) {
  std::string name = device.substr(device.rfind('/') + 1);
  std::ofstream f("/sys/block/" + name + "/queue/read_ahead_kb");
  f << kib;
}

// The kernel-nbd marker in a volume's mount dir lists, one per line, the NBD devices made for it
// that may still be connected: the live attachment's, and any a dead arbord left mounted.
std::vector<std::string> read_marker(const std::string& marker) {
  std::vector<std::string> devices;
  std::ifstream f(marker);
  for (std::string device; f >> device;) devices.push_back(device);
  return devices;
}

// Writes `devices` to the marker, or removes it when there are none. False when it cannot.
bool write_marker(const std::string& marker, const std::vector<std::string>& devices) {
  if (devices.empty()) return unlink(marker.c_str()) == 0 || errno == ENOENT;
  std::string tmp = marker + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    for (const auto& d : devices) f << d << "\n";
    if (!f.flush()) return false;
  }
  return rename(tmp.c_str(), marker.c_str()) == 0;
}

// Disconnects each device the marker lists that is still connected and no longer mounted, and
// returns those left connected (still mounted, or nbd-client failed). With `report`, one line per
// stale device of `volume` found connected.
std::vector<std::string> settle_stale_nbd(const std::string& marker, const std::string& volume,
                                          std::vector<std::string>* report) {
  std::vector<std::string> left;
  for (const auto& device : read_marker(marker)) {
    if (kernel_nbd_sectors(device) <= 0) continue;  // disconnected already, or no such device
    if (device_mounted(device)) {
      if (report) {
        report->push_back("stale attachment of " + volume + " at " + device + " is still mounted; once it is " +
                          "unmounted, the next attach of " + volume + " or start of arbord disconnects it");
      }
      left.push_back(device);
      continue;
    }
    Status st = disconnect_kernel_nbd(device);
    if (report) {
      report->push_back((st.is_ok() ? "disconnected stale NBD device " : "could not disconnect stale NBD device ") +
                        device + " of " + volume + (st.is_ok() ? "" : ": " + st.message()));
    }
    if (!st.is_ok()) left.push_back(device);
  }
  return left;
}

}  // namespace

Status ensure_write_back(const std::string& device) {
  const std::string sys = "/sys/block/" + device.substr(device.rfind('/') + 1);
  std::string ro;
  std::getline(std::ifstream(sys + "/ro"), ro);
  if (ro == "1") return Status::ok();  // no writes, so no flushes to drop (and no write cache)
  const std::string path = sys + "/queue/write_cache";
  auto mode = [&path] {
    std::ifstream f(path);
    std::string m;
    std::getline(f, m);
    return m;
  };
  if (mode() != "write through") return Status::ok();
  {
    std::ofstream f(path);
    f << "write back";
  }
  if (mode() == "write through") {
    return io_error(device + " would drop flushes (" + path + " stays 'write through'); refusing to attach on it");
  }
  return Status::ok();
}

Status start_nbdfuse(const AttachRequest& request, Attachment& a);
Result<Attachment> set_up_loop(const AttachRequest& request, Attachment& a);

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool device_mounted(const std::string& device) {
  std::ifstream mounts("/proc/mounts");
  std::string dev, rest;
  while (mounts >> dev && std::getline(mounts, rest)) {
    if (dev == device) return true;
  }
  return false;
}

Result<Attachment> attach(const AttachRequest& request) {
  if (mkdir(request.mount_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return errno_status(errno, "mkdir " + request.mount_dir);
  }
  Attachment a;
  a.volume = request.volume;
  a.mount_dir = request.mount_dir;
  a.file = request.mount_dir + "/disk";
  a.read_only = request.read_only;
  // Devices a dead arbord left connected for this volume (the caller has no attachment of it, so
  // they are stale and ours): disconnected now unless still mounted (arbor pg start unmounts
  // first). Those still mounted stay listed, so a later attach, detach or start settles them.
  std::string marker = a.mount_dir + "/" + kKernelNbdFile;
  std::vector<std::string> stale = settle_stale_nbd(marker, a.volume, nullptr);
  bool kernel = (request.via == AttachVia::kKernelNbd || request.via == AttachVia::kAuto) &&
                !request.nbd_socket.empty() && kernel_nbd_available();
  if (request.via == AttachVia::kKernelNbd && !kernel) {
    return not_supported("the kernel's NBD client needs arbord's NBD unix socket, the nbd module and nbd-client");
  }
  if (kernel) {
    ASSIGN_OR_RETURN(a.device, connect_kernel_nbd(request.nbd_socket, request.volume, kernel_nbd_connections()));
    a.kernel_nbd = true;
    if (Status wc = ensure_write_back(a.device); !wc.is_ok()) {
      (void)disconnect_kernel_nbd(a.device);
      return wc;
    }
    set_read_ahead(a.device, kReadAheadKib);
    stale.push_back(a.device);
    if (!write_marker(marker, stale)) {
      (void)disconnect_kernel_nbd(a.device);
      return io_error("cannot write " + marker);
    }
    return a;
  }
  (void)write_marker(marker, stale);
  if (request.via == AttachVia::kNbdfuse || !request.exported) {
    RETURN_IF_ERROR(start_nbdfuse(request, a));
  } else {
    auto disk = FuseDisk::start(request.exported, request.mount_dir);
    if (!disk) return disk.status();
    a.fuse_disk = std::move(disk).value();
    a.file = a.fuse_disk->file();
  }
  return set_up_loop(request, a);
}

Status start_nbdfuse(const AttachRequest& request, Attachment& a) {
  std::string pidfile = request.mount_dir + ".pid";
  unlink(pidfile.c_str());

  // nbdfuse runs in the foreground until unmounted; -P writes the pid file once it serves.
  std::vector<std::string> argv = {"nbdfuse", "-P", pidfile};
  if (request.read_only) argv.push_back("-r");
  argv.push_back(a.file);
  argv.push_back("nbd+unix:///" + request.volume + "?socket=" + request.nbd_socket);
  auto pid = spawn_process(argv, request.log_path);
  if (!pid) return pid.status();
  a.fuse_pid = *pid;

  auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  while (!file_exists(pidfile)) {
    if (child_exited(a.fuse_pid)) {
      return io_error("nbdfuse exited before serving " + request.volume + " (see " +
                      request.log_path + ")");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(a.fuse_pid, SIGTERM);
      (void)unmount(a.mount_dir);
      wait_exit(a.fuse_pid, std::chrono::seconds(5));
      return io_error("nbdfuse did not become ready for " + request.volume);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  unlink(pidfile.c_str());
  return Status::ok();
}

Result<Attachment> set_up_loop(const AttachRequest& request, Attachment& a) {
  std::vector<std::string> losetup = {"losetup", "--direct-io=on", "--find", "--show"};
  if (request.read_only) losetup.push_back("--read-only");
  losetup.push_back(a.file);
  auto undo_disk = [&a] {
    (void)unmount(a.mount_dir);
    if (a.fuse_disk) a.fuse_disk->stop();
    else wait_exit(a.fuse_pid, std::chrono::seconds(5));
    rmdir(a.mount_dir.c_str());
  };
  auto r = run_process(losetup);
  if (!r || r->exit_code != 0) {
    std::string why = r ? last_line(r->err) : r.status().message();
    undo_disk();
    return io_error("losetup failed: " + why);
  }
  a.device = last_line(r->out);
  if (Status wc = ensure_write_back(a.device); !wc.is_ok()) {
    (void)run_process({"losetup", "-d", a.device});
    undo_disk();
    return wc;
  }
  set_read_ahead(a.device, kReadAheadKib);
  return a;
}

Status detach(const Attachment& a) {
  if (a.kernel_nbd) {
    RETURN_IF_ERROR(disconnect_kernel_nbd(a.device));
    (void)release_stale_nbd(a.mount_dir, a.volume);  // drops a.device from the marker, settles the rest
    return Status::ok();
  }
  if (!a.device.empty()) {
    if (device_mounted(a.device)) {
      return busy(a.device + " is mounted; unmount it before detaching " + a.volume);
    }
    auto r = run_process({"losetup", "-d", a.device});
    if (!r) return r.status();
    if (r->exit_code != 0) return busy("losetup -d " + a.device + ": " + last_line(r->err));
  }
  // The loop driver releases its file asynchronously; retry the unmount briefly while busy.
  Status st;
  for (int attempt = 0; attempt < 200; attempt++) {
    st = unmount(a.mount_dir);
    if (st.is_ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!st.is_ok()) return st;
  if (a.fuse_disk) a.fuse_disk->stop();
  if (a.fuse_pid > 0 && !wait_exit(a.fuse_pid, std::chrono::seconds(10))) {
    kill(a.fuse_pid, SIGKILL);
    wait_exit(a.fuse_pid, std::chrono::seconds(2));
  }
  rmdir(a.mount_dir.c_str());
  return Status::ok();
}

}  // namespace arbor::attach

namespace arbor::attach {

std::vector<std::string> release_stale_nbd(const std::string& mount_dir, const std::string& volume) {
  std::vector<std::string> report;
  std::string marker = mount_dir + "/" + kKernelNbdFile;
  std::vector<std::string> left = settle_stale_nbd(marker, volume, &report);
  if (write_marker(marker, left) && left.empty()) rmdir(mount_dir.c_str());
  return report;
}

std::vector<std::string> cleanup_stale(const std::string& attach_dir) {
  std::vector<std::string> report;
  DIR* dir = opendir(attach_dir.c_str());
  if (!dir) return report;
  std::vector<std::string> names;
  while (dirent* e = readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && e->d_type == DT_DIR) names.push_back(n);
  }
  closedir(dir);
  for (const auto& name : names) {
    std::string mount_dir = attach_dir + "/" + name;
    if (file_exists(mount_dir + "/" + kKernelNbdFile)) {
      for (auto& line : release_stale_nbd(mount_dir, name)) report.push_back(std::move(line));
      continue;
    }
    std::string file = mount_dir + "/disk";
    auto loops = run_process({"losetup", "-n", "-O", "NAME", "-j", file});
    if (loops && loops->exit_code == 0) {
      size_t pos = 0;
      const std::string& out = loops->out;
      while (pos < out.size()) {
        size_t end = out.find('\n', pos);
        if (end == std::string::npos) end = out.size();
        std::string device = out.substr(pos, end - pos);
        pos = end + 1;
        while (!device.empty() && isspace(static_cast<unsigned char>(device.back()))) device.pop_back();
        if (device.empty()) continue;
        if (device_mounted(device)) {
          report.push_back("stale attachment of " + name + " at " + device +
                           " is still mounted; unmount it, then losetup -d " + device);
          continue;
        }
        auto r = run_process({"losetup", "-d", device});
        report.push_back((r && r->exit_code == 0 ? "removed stale loop device " : "could not remove stale loop device ") +
                         device + " of " + name);
      }
    }
    // The disk's FUSE server is gone: detach its mount lazily even when the loop device over it is
    // still mounted (the device holds its own reference to the file). Left in place, the next
    // attach of this volume mounted over the dead one, which then outlived every detach.
    auto r = run_process({"fusermount3", "-u", "-z", mount_dir});
    if (r && r->exit_code == 0) report.push_back("unmounted stale FUSE mount " + mount_dir);
    rmdir(mount_dir.c_str());
  }
  return report;
}

}  // namespace arbor::attach
