#include "attach/kernel_nbd.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "attach/attachment.h"
#include "attach/process.h"

namespace arbor::attach {
namespace {

std::string nbd_client_path() {
  for (const char* p : {"/usr/sbin/nbd-client", "/sbin/nbd-client", "/usr/local/sbin/nbd-client"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// Devices nbd.ko made at load time (nbds_max, 16 by default).
int device_count() {
  int n = 0;
  while (file_exists("/sys/block/nbd" + std::to_string(n))) n++;
  return n;
}

// Polls the device's size every 10 ms, at most `tries` times, until `done` holds for it.
bool wait_for_size(const std::string& device, int tries, bool (*done)(long long sectors)) {
  for (int t = 0; t < tries; t++) {
    if (done(kernel_nbd_sectors(device))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done(kernel_nbd_sectors(device));
}

}  // namespace

long long kernel_nbd_sectors(const std::string& device) {
  std::ifstream f("/sys/block/" + device.substr(device.rfind('/') + 1) + "/size");
  long long sectors = -1;
  if (!(f >> sectors)) return -1;
  return sectors;
}

bool kernel_nbd_available() {
  if (nbd_client_path().empty()) return false;
  if (file_exists("/sys/module/nbd")) return true;
  // A kernel without the module stays without it: modprobe once per process, not per attach
  // (loaded by hand later, /sys/module/nbd above finds it).
  static std::atomic<bool> modprobe_failed{false};
  if (modprobe_failed.load()) return false;
  auto r = run_process({"modprobe", "-q", "nbd"});
  if (r && r->exit_code == 0 && file_exists("/sys/module/nbd")) return true;
  modprobe_failed.store(true);
  return false;
}

Result<std::string> connect_kernel_nbd(const std::string& socket, const std::string& volume, int connections) {
  std::string client = nbd_client_path();
  if (client.empty()) return not_supported("nbd-client is not installed (apt install nbd-client)");
  std::string why = "no /dev/nbd* device (is the nbd module loaded?)";
  for (int i = 0, n = device_count(); i < n; i++) {
    std::string device = "/dev/nbd" + std::to_string(i);
    if (kernel_nbd_sectors(device) != 0) continue;  // in use
    auto r = run_process({client, "-unix", socket, device, "-N", volume, "-b", "4096", "-C",
                          std::to_string(connections)});
    if (!r) return r.status();
    if (r->exit_code != 0) {
      why = device + ": " + last_line(r->err.empty() ? r->out : r->err);
      // Taken by someone else meanwhile: try the next one. Anything else (the export is missing,
      // the server refused) would fail the same way on every device.
      if (kernel_nbd_sectors(device) != 0 || why.find("busy") != std::string::npos) continue;
      return io_error("nbd-client failed for " + volume + ": " + why);
    }
    // Netlink configures the device before nbd-client exits; the size shows at once, but wait a
    // little for the block layer rather than hand out a device that still reads as empty.
    if (!wait_for_size(device, 100, [](long long sectors) { return sectors > 0; })) {
      (void)run_process({client, "-d", device});
      return io_error("nbd-client connected " + device + " for " + volume + " but it has no size");
    }
    return device;
  }
  return busy("no free NBD device for " + volume + " (" + why + ")");
}

Status disconnect_kernel_nbd(const std::string& device) {
  if (device_mounted(device)) return busy(device + " is mounted; unmount it before detaching");
  std::string client = nbd_client_path();
  if (client.empty()) return not_supported("nbd-client is not installed (apt install nbd-client)");
  auto r = run_process({client, "-d", device});
  if (!r) return r.status();
  if (r->exit_code != 0) return busy("nbd-client -d " + device + ": " + last_line(r->err));
  if (!wait_for_size(device, 200, [](long long sectors) { return sectors <= 0; })) return busy(device + " still has a size after nbd-client -d");
  return Status::ok();
}

}  // namespace arbor::attach
