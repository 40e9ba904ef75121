#include "cli/attach_nvme.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <sys/stat.h>

#include "attach/attachment.h"
#include "attach/process.h"
#include "cli/api_client.h"
#include "cli/daemon_launcher.h"

namespace arbor::cli {
namespace {

constexpr const char* kNqnPrefix = "nqn.2026-01.dev.arbor:";  // NvmeTcpOptions::nqn_prefix

std::string read_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

// The block device of the first live namespace of subsystem `nqn`, "" when none.
std::string device_for(const std::string& nqn) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
    const std::string dev = e.path().filename().string();
    if (dev.rfind("nvme", 0) != 0 || dev.find('c') != std::string::npos) continue;  // hidden nvmeXcYnZ paths
    if (read_line(e.path() / "device" / "subsysnqn") == nqn) return "/dev/" + dev;
  }
  return "";
}

Status kernel_nvme_tcp() {
  if (std::filesystem::exists("/sys/module/nvme_tcp")) return Status::ok();
  auto m = attach::run_process({"modprobe", "nvme-tcp"});
  if (m && m->exit_code == 0 && std::filesystem::exists("/sys/module/nvme_tcp")) return Status::ok();
  std::string why = !m ? m.status().message() : m->err;
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  return not_supported("this kernel has no nvme-tcp (modprobe nvme-tcp: " + (why.empty() ? "failed" : why) +
                       "); attach over NBD with `arbor attach NAME`, or use arbor-nvme-initiator");
}

Result<std::pair<std::string, std::string>> nvme_endpoint(ApiClient& api) {
  ASSIGN_OR_RETURN(auto s, api.get("/v1/daemon/status"));
  for (const auto& e : s["endpoints"]) {
    if (e.value("protocol", "") != "nvme-tcp") continue;
    std::string uri = e.value("uri", "");  // nvme+tcp://HOST:PORT
    const std::string scheme = "nvme+tcp://";
    if (uri.rfind(scheme, 0) != 0) continue;
    uri = uri.substr(scheme.size());
    size_t colon = uri.rfind(':');
    if (colon == std::string::npos) continue;
    std::string host = uri.substr(0, colon), port = uri.substr(colon + 1);
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    return std::make_pair(host, port);
  }
  return not_supported("arbord serves no NVMe/TCP endpoint (started with --no-nvme?)");
}

std::string last_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

// arbor-nvme-fuse next to this binary, in the build tree beside it, else on PATH.
std::string fuse_helper_path() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto c : {self.parent_path() / "arbor-nvme-fuse",
                   self.parent_path().parent_path() / "nvme_initiator" / "arbor-nvme-fuse"}) {
      if (std::filesystem::exists(c, ec)) return c.string();
    }
  }
  return "arbor-nvme-fuse";
}

std::string system_host_nqn() { return read_line("/etc/nvme/hostnqn"); }

// No kernel nvme-tcp: our initiator behind a one-file FUSE mount (arbor-nvme-fuse) and a loop
// device. State in STORE/attach-nvme/NAME/{pid,device}, the mount at .../mnt.
Status attach_via_fuse(const Context& ctx, const std::string& name, const std::string& nqn,
                       const std::pair<std::string, std::string>& ep, const Status& why_not_kernel) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(ctx.store_dir) / "attach-nvme" / name;
  if (fs::exists(dir / "device")) {
    return already_exists(name + " is already attached over NVMe/TCP as " + read_line(dir / "device"));
  }
  std::error_code ec;
  fs::create_directories(dir / "mnt", ec);
  if (ec) return io_error("cannot create " + (dir / "mnt").string() + ": " + ec.message());
  std::vector<std::string> argv = {fuse_helper_path(), "--addr", ep.first, "--port", ep.second, "--nqn", nqn};
  if (std::string h = system_host_nqn(); !h.empty()) argv.insert(argv.end(), {"--hostnqn", h});
  argv.push_back((dir / "mnt").string());
  const std::string log = (dir / "fuse.log").string();
  auto pid = attach::spawn_process(argv, log);
  if (!pid) return not_supported(why_not_kernel.message() + "; and " + pid.status().message());
  const fs::path disk = dir / "mnt" / "disk";
  bool up = false;
  for (int i = 0; i < 100 && !up; i++) {  // bounded: 10 s
    if (attach::child_exited(*pid)) {
      fs::remove_all(dir, ec);
      std::string last = read_line(log);
      return io_error("arbor-nvme-fuse exited: " + (last.empty() ? std::string("see ") + log : last));
    }
    up = fs::exists(disk, ec);
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto cleanup = [&] {
    (void)attach::run_process({"fusermount3", "-u", (dir / "mnt").string()});
    kill(*pid, SIGTERM);
    fs::remove_all(dir, ec);
  };
  if (!up) {
    cleanup();
    return io_error("arbor-nvme-fuse did not mount within 10 s (see " + log + ")");
  }
  struct stat st{};
  bool ro = ::stat(disk.c_str(), &st) == 0 && !(st.st_mode & S_IWUSR);
  std::vector<std::string> los = {"losetup", "--direct-io=on", "-f", "--show"};
  if (ro) los.push_back("-r");
  los.push_back(disk.string());
  auto r = attach::run_process(los);
  if (!r || r->exit_code != 0) {
    std::string e = r ? last_line(r->err) : r.status().message();
    cleanup();
    return io_error("losetup failed: " + e);
  }
  const std::string dev = last_line(r->out);
  if (Status wc = attach::ensure_write_back(dev); !wc.is_ok()) {
    (void)attach::run_process({"losetup", "-d", dev});
    cleanup();
    return wc;
  }
  std::ofstream(dir / "device") << dev << "\n";
  std::ofstream(dir / "pid") << *pid << "\n";
  if (ctx.json) {
    std::printf("%s\n", Json{{"name", name}, {"device", dev}, {"transport", "nvme-tcp"}, {"nqn", nqn},
                             {"via", "arbor-nvme-fuse"}, {"read_only", ro}}.dump(2).c_str());
  } else {
    std::printf("%s\n", dev.c_str());
  }
  return Status::ok();
}

Status detach_via_fuse(const Context& ctx, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(ctx.store_dir) / "attach-nvme" / name;
  const std::string dev = read_line(dir / "device");
  if (dev.empty()) return not_found(name + " is not attached over NVMe/TCP");
  auto r = attach::run_process({"losetup", "-d", dev});
  if (!r || r->exit_code != 0) return busy("cannot remove " + dev + ": " + (r ? last_line(r->err) : r.status().message()));
  auto u = attach::run_process({"fusermount3", "-u", (dir / "mnt").string()});
  if (!u || u->exit_code != 0) return busy("cannot unmount " + (dir / "mnt").string() + ": " + (u ? last_line(u->err) : u.status().message()));
  const pid_t pid = pid_t(std::atoi(read_line(dir / "pid").c_str()));
  for (int i = 0; pid > 0 && i < 50 && kill(pid, 0) == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ctx.json) {
    std::printf("%s\n", Json{{"name", name}, {"device", dev}, {"detached", true}}.dump(2).c_str());
  } else {
    std::printf("detached %s (%s)\n", name.c_str(), dev.c_str());
  }
  return Status::ok();
}

}  // namespace

Status attach_nvme_tcp(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  RETURN_IF_ERROR(api.get("/v1/volumes/" + path_escape(name)).status());
  ASSIGN_OR_RETURN(auto ep, nvme_endpoint(api));
  const std::string nqn = kNqnPrefix + name;
  if (Status k = kernel_nvme_tcp(); !k.is_ok()) return attach_via_fuse(ctx, name, nqn, ep, k);
  std::string dev = device_for(nqn);
  if (!dev.empty()) return already_exists(name + " is already connected over NVMe/TCP as " + dev);
  auto r = attach::run_process({"nvme", "connect", "-t", "tcp", "-a", ep.first, "-s", ep.second, "-n", nqn});
  if (!r) return not_supported("cannot run nvme (install nvme-cli): " + r.status().message());
  if (r->exit_code != 0) return io_error("nvme connect " + nqn + " failed: " + last_line(r->err + r->out));
  for (int i = 0; i < 100 && dev.empty(); i++) {  // the namespace appears shortly after connect
    dev = device_for(nqn);
    if (dev.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (dev.empty()) return io_error("nvme connect " + nqn + " succeeded but no block device appeared within 10 s");
  if (ctx.json) {
    std::printf("%s\n", Json{{"name", name}, {"device", dev}, {"transport", "nvme-tcp"}, {"nqn", nqn}}.dump(2).c_str());
  } else {
    std::printf("%s\n", dev.c_str());
  }
  return Status::ok();
}

Status detach_nvme_tcp(const Context& ctx, const std::string& name) {
  if (std::filesystem::exists(std::filesystem::path(ctx.store_dir) / "attach-nvme" / name / "device")) {
    return detach_via_fuse(ctx, name);
  }
  const std::string nqn = kNqnPrefix + name;
  const std::string dev = device_for(nqn);
  auto r = attach::run_process({"nvme", "disconnect", "-n", nqn});
  if (!r) return not_supported("cannot run nvme (install nvme-cli): " + r.status().message());
  if (r->exit_code != 0 || r->out.find("disconnected 0 controller") != std::string::npos) {
    return not_found(name + " is not connected over NVMe/TCP");
  }
  if (ctx.json) {
    std::printf("%s\n", Json{{"name", name}, {"device", dev}, {"detached", true}}.dump(2).c_str());
  } else {
    std::printf("detached %s (%s)\n", name.c_str(), dev.c_str());
  }
  return Status::ok();
}

}  // namespace arbor::cli
