// ExportAllowList: which NVMe hosts (host NQNs) may connect to which export, persisted in the
// store directory as STORE/nvme-allow.json. `arbor export allow NAME HOSTNQN` adds an entry,
// `revoke` removes one, `list` shows them (docs/cli.md, docs/api.md).
//
// Rule: an export with no entries admits every host; with entries, only those hosts. A snapshot
// ("vol@snap") with no entries of its own follows its volume's entries, so restricting a volume
// also restricts its snapshots (they hold the same data).
//
// File format (docs/protocol-nvme-tcp.md, "Host allow-list file"):
//   {"version": 1, "exports": {"vol": ["nqn.2014-08.org.nvmexpress:uuid:...", ...], ...}}
// written to a temporary file, fsync'd, renamed over the old one, directory fsync'd: a crash
// leaves the old list or the new one, never a mix. A file that does not parse is an error at
// daemon start (we do not silently open every export to every host).
//
// Threading: every method locks; host_allowed() is called from the NVMe/TCP event loops.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace arbor::daemon {

class ExportAllowList {
 public:
  // Loads `path` when it exists; an absent file is an empty list.
  static Result<std::unique_ptr<ExportAllowList>> open(std::string path);

  // Adds `host_nqn` to `export_name` and persists before returning. Adding an entry that is
  // already there is not an error (idempotent).
  Status allow(const std::string& export_name, const std::string& host_nqn);
  // Removes it; kNotFound when it was not listed.
  Status revoke(const std::string& export_name, const std::string& host_nqn);
  // Every export with entries, sorted by name.
  std::map<std::string, std::vector<std::string>> all() const;
  std::vector<std::string> hosts(const std::string& export_name) const;

  bool host_allowed(std::string_view export_name, std::string_view host_nqn) const;

  const std::string& path() const { return path_; }

 private:
  explicit ExportAllowList(std::string path) : path_(std::move(path)) {}
  Status save_locked() const;

  std::string path_;
  mutable std::mutex mu_;
  std::map<std::string, std::set<std::string>, std::less<>> hosts_;
};

// A host NQN as NVMe defines it: "nqn." prefix, at most 223 bytes, printable ASCII without spaces
// (what nvme-cli and the kernel produce). A clear one-line error otherwise.
Status validate_host_nqn(const std::string& host_nqn);

}  // namespace arbor::daemon
