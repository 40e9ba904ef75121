// The record of one Postgres server made by `arbor pg`: STORE/pg/NAME.json.
//
// The store directory holds the records so that they live (and go) with the store; they are
// small JSON files written atomically (temp file + rename). What runs and what is mounted is never
// recorded: it is read from the system (postmaster.pid, /proc/mounts, the daemon's attachments),
// so a record cannot go stale after a crash or reboot.
//
// Threading: callers serialize with lock_store() (an flock on STORE/pg/.lock).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace arbor::pg {

struct Record {
  std::string name;    // the server's name = its volume's name
  std::string parent;  // the server it was branched from ("" for none)
  int port = 0;
  uint64_t created_unix_ms = 0;
};

Result<Record> load_record(const std::string& store_dir, const std::string& name);
bool record_exists(const std::string& store_dir, const std::string& name);
Status save_record(const std::string& store_dir, const Record& record);
Status remove_record(const std::string& store_dir, const std::string& name);
// Every record, by name.
Result<std::vector<Record>> list_records(const std::string& store_dir);

// An exclusive lock over the store's pg records, held until the returned fd is closed.
class StoreLock {
 public:
  StoreLock() = default;
  explicit StoreLock(int fd) : fd_(fd) {}
  StoreLock(StoreLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StoreLock& operator=(StoreLock&&) = delete;
  ~StoreLock();

 private:
  int fd_ = -1;
};
Result<StoreLock> lock_store(const std::string& store_dir);
// True while another process holds the lock: an `arbor pg` command is changing some server.
bool store_locked_by_other(const std::string& store_dir);

// Server names are volume names: [a-z0-9][a-z0-9_-]{0,62}.
Status check_name(const std::string& name);

}  // namespace arbor::pg
