#include "pg/record.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace arbor::pg {
namespace {

std::string dir_of(const std::string& store_dir) { return store_dir + "/pg"; }
std::string file_of(const std::string& store_dir, const std::string& name) {
  return dir_of(store_dir) + "/" + name + ".json";
}

Status ensure_dir(const std::string& store_dir) {
  std::string d = dir_of(store_dir);
  if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + d);
  return Status::ok();
}

}  // namespace

Status check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63 &&
            ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  }
  if (!ok) return invalid_argument("invalid name '" + name + "': use [a-z0-9][a-z0-9_-]{0,62}");
  return Status::ok();
}

bool record_exists(const std::string& store_dir, const std::string& name) {
  struct stat st;
  return stat(file_of(store_dir, name).c_str(), &st) == 0;
}

Result<Record> load_record(const std::string& store_dir, const std::string& name) {
  RETURN_IF_ERROR(check_name(name));
  std::ifstream in(file_of(store_dir, name));
  if (!in) return not_found("no Postgres named '" + name + "' (see arbor pg list)");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corruption("unreadable record " + file_of(store_dir, name));
  Record r;
  r.name = j.value("name", name);
  r.parent = j.value("parent", "");
  r.port = j.value("port", 0);
  r.created_unix_ms = j.value("created_unix_ms", uint64_t(0));
  return r;
}

Status save_record(const std::string& store_dir, const Record& r) {
  RETURN_IF_ERROR(ensure_dir(store_dir));
  nlohmann::json j = {{"name", r.name}, {"parent", r.parent}, {"port", r.port},
                      {"created_unix_ms", r.created_unix_ms}};
  std::string path = file_of(store_dir, r.name);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out.good()) return io_error("cannot write " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return errno_status(errno, "rename " + tmp);
  return Status::ok();
}

Status remove_record(const std::string& store_dir, const std::string& name) {
  std::string path = file_of(store_dir, name);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "remove " + path);
  return Status::ok();
}

Result<std::vector<Record>> list_records(const std::string& store_dir) {
  std::vector<Record> out;
  DIR* d = opendir(dir_of(store_dir).c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string f = e->d_name;
    if (f.size() <= 5 || f.substr(f.size() - 5) != ".json") continue;
    auto r = load_record(store_dir, f.substr(0, f.size() - 5));
    if (r) out.push_back(*r);
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const Record& a, const Record& b) { return a.name < b.name; });
  return out;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) close(fd_);
}

Result<StoreLock> lock_store(const std::string& store_dir) {
  RETURN_IF_ERROR(ensure_dir(store_dir));
  std::string path = dir_of(store_dir) + "/.lock";
  int fd = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status(errno, "open " + path);
  if (flock(fd, LOCK_EX) != 0) {
    int e = errno;
    close(fd);
    return errno_status(e, "lock " + path);
  }
  return StoreLock(fd);
}

bool store_locked_by_other(const std::string& store_dir) {
  std::string path = dir_of(store_dir) + "/.lock";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // no command ever ran
  bool locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // releases the shared lock, if taken
  return locked;
}

}  // namespace arbor::pg
