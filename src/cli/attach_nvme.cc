#include "cli/attach_nvme.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

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

}  // namespace

Status attach_nvme_tcp(const Context& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  RETURN_IF_ERROR(api.get("/v1/volumes/" + path_escape(name)).status());
  ASSIGN_OR_RETURN(auto ep, nvme_endpoint(api));
  RETURN_IF_ERROR(kernel_nvme_tcp());
  const std::string nqn = kNqnPrefix + name;
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
