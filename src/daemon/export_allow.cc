#include "daemon/export_allow.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace arbor::daemon {
namespace {

constexpr int kFormatVersion = 1;
constexpr size_t kMaxNqnBytes = 223;  // NVMe base spec: NQNs are at most 223 bytes

Status write_all_and_sync(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot write " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      return io_error("cannot write " + path + ": " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return io_error("cannot fsync " + path + ": " + std::strerror(e));
  }
  ::close(fd);
  return Status::ok();
}

}  // namespace

Status validate_host_nqn(const std::string& host_nqn) {
  if (host_nqn.rfind("nqn.", 0) != 0) {
    return invalid_argument("host NQN '" + host_nqn + "' must start with \"nqn.\" (e.g. the host's /etc/nvme/hostnqn)");
  }
  if (host_nqn.size() > kMaxNqnBytes) {
    return invalid_argument("host NQN is " + std::to_string(host_nqn.size()) + " bytes; NVMe allows at most 223");
  }
  for (unsigned char c : host_nqn) {
    if (c <= 0x20 || c >= 0x7f) return invalid_argument("host NQN '" + host_nqn + "' has a space or a non-printable character");
  }
  return Status::ok();
}

Result<std::unique_ptr<ExportAllowList>> ExportAllowList::open(std::string path) {
  std::unique_ptr<ExportAllowList> list(new ExportAllowList(path));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return list;
  std::ifstream in(path);
  if (!in) return io_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("exports") || !j["exports"].is_object()) {
    return corruption(path + " is not a host allow-list (expected {\"version\": 1, \"exports\": {...}})");
  }
  if (j.value("version", 0) != kFormatVersion) {
    return corruption(path + ": unknown allow-list version " + j.value("version", nlohmann::json(0)).dump());
  }
  for (auto& [name, hosts] : j["exports"].items()) {
    if (!hosts.is_array()) return corruption(path + ": entry '" + name + "' is not a list");
    for (auto& h : hosts) {
      if (!h.is_string() || !validate_host_nqn(h.get<std::string>()).is_ok()) {
        return corruption(path + ": entry '" + name + "' holds an invalid host NQN " + h.dump());
      }
      list->hosts_[name].insert(h.get<std::string>());
    }
  }
  return list;
}

Status ExportAllowList::save_locked() const {
  nlohmann::json exports = nlohmann::json::object();
  for (const auto& [name, hosts] : hosts_) {
    if (!hosts.empty()) exports[name] = std::vector<std::string>(hosts.begin(), hosts.end());
  }
  nlohmann::json j{{"version", kFormatVersion}, {"exports", exports}};
  const std::string tmp = path_ + ".tmp";
  RETURN_IF_ERROR(write_all_and_sync(tmp, j.dump(2) + "\n"));
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return io_error("cannot rename " + tmp + ": " + std::strerror(errno));
  }
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

Status ExportAllowList::allow(const std::string& export_name, const std::string& host_nqn) {
  RETURN_IF_ERROR(validate_host_nqn(host_nqn));
  std::lock_guard lock(mu_);
  auto& set = hosts_[export_name];
  if (!set.insert(host_nqn).second) return Status::ok();
  Status st = save_locked();
  if (!st.is_ok()) {
    set.erase(host_nqn);
    if (set.empty()) hosts_.erase(export_name);
  }
  return st;
}

Status ExportAllowList::revoke(const std::string& export_name, const std::string& host_nqn) {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(export_name);
  if (it == hosts_.end() || it->second.erase(host_nqn) == 0) {
    return not_found("'" + host_nqn + "' is not on the allow-list of '" + export_name + "'");
  }
  bool emptied = it->second.empty();
  if (emptied) hosts_.erase(it);
  Status st = save_locked();
  if (!st.is_ok()) hosts_[export_name].insert(host_nqn);
  return st;
}

std::map<std::string, std::vector<std::string>> ExportAllowList::all() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [name, hosts] : hosts_) out[name] = std::vector<std::string>(hosts.begin(), hosts.end());
  return out;
}

std::vector<std::string> ExportAllowList::hosts(const std::string& export_name) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(export_name);
  if (it == hosts_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

bool ExportAllowList::host_allowed(std::string_view export_name, std::string_view host_nqn) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(export_name);
  if (it == hosts_.end()) {
    // A snapshot without its own entries follows its volume.
    size_t at = export_name.find('@');
    if (at == std::string_view::npos) return true;
    it = hosts_.find(export_name.substr(0, at));
    if (it == hosts_.end()) return true;
  }
  return it->second.count(std::string(host_nqn)) > 0;
}

}  // namespace arbor::daemon
