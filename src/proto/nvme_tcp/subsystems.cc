#include "proto/nvme_tcp/subsystems.h"

#include "proto/nvme_tcp/nvme_wire.h"

namespace arbor::nvme_tcp {

void StaticHostAllowList::allow(const std::string& export_name, const std::string& host_nqn) {
  std::lock_guard lock(mu_);
  hosts_[export_name].insert(host_nqn);
}

void StaticHostAllowList::revoke(const std::string& export_name, const std::string& host_nqn) {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(export_name);
  if (it == hosts_.end()) return;
  it->second.erase(host_nqn);
  if (it->second.empty()) hosts_.erase(it);
}

void StaticHostAllowList::set(const std::string& export_name, std::vector<std::string> host_nqns) {
  std::lock_guard lock(mu_);
  if (host_nqns.empty()) {
    hosts_.erase(export_name);
    return;
  }
  hosts_[export_name] = std::set<std::string>(host_nqns.begin(), host_nqns.end());
}

std::vector<std::string> StaticHostAllowList::hosts(const std::string& export_name) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(export_name);
  if (it == hosts_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

bool StaticHostAllowList::host_allowed(std::string_view export_name, std::string_view host_nqn) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(export_name);
  if (it == hosts_.end() || it->second.empty()) return true;  // no list: any host
  return it->second.count(std::string(host_nqn)) > 0;
}

std::string export_nqn(std::string_view nqn_prefix, std::string_view export_name) {
  return std::string(nqn_prefix) + std::string(export_name);
}

std::optional<std::string> export_from_nqn(std::string_view nqn_prefix, std::string_view nqn) {
  if (nqn.size() <= nqn_prefix.size() || nqn.substr(0, nqn_prefix.size()) != nqn_prefix) return std::nullopt;
  return std::string(nqn.substr(nqn_prefix.size()));
}

std::shared_ptr<Controller> ControllerRegistry::create(std::unique_ptr<Controller> proto) {
  std::lock_guard lock(mu_);
  // Drop registrations whose controllers are gone, then find a free id from next_ on.
  for (auto it = ctrls_.begin(); it != ctrls_.end();) it = it->second.expired() ? ctrls_.erase(it) : std::next(it);
  for (uint32_t tries = 0; tries < kCntlidMax; tries++) {
    uint16_t id = next_;
    next_ = next_ >= kCntlidMax ? 1 : uint16_t(next_ + 1);
    if (ctrls_.count(id)) continue;
    proto->cntlid = id;
    std::shared_ptr<Controller> c(proto.release());
    ctrls_[id] = c;
    return c;
  }
  return nullptr;
}

std::shared_ptr<Controller> ControllerRegistry::find(uint16_t cntlid, std::string_view subsys_nqn,
                                                     std::string_view host_nqn) {
  std::lock_guard lock(mu_);
  auto it = ctrls_.find(cntlid);
  if (it == ctrls_.end()) return nullptr;
  auto c = it->second.lock();
  if (!c || c->dead.load() || c->subsys_nqn != subsys_nqn || c->host_nqn != host_nqn) return nullptr;
  return c;
}

void ControllerRegistry::remove(uint16_t cntlid) {
  std::lock_guard lock(mu_);
  ctrls_.erase(cntlid);
}

size_t ControllerRegistry::size() const {
  std::lock_guard lock(mu_);
  return ctrls_.size();
}

}  // namespace arbor::nvme_tcp
