#include "store/store_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "io/device_segment_backend.h"
#include "io/file_segment_backend.h"

namespace arbor {

static Status lock_store_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + dir);
  std::string lock_path = dir + "/LOCK";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return errno_status(errno, "open " + lock_path);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return busy("store " + dir + " is already open by another process (is arbord running?)");
  }
  // The lock is held for the life of the process (the descriptor is close-on-exec and never
  // closed): one daemon per store.
  return Status::ok();
}

Result<std::unique_ptr<Store>> open_store_directory(const std::string& dir, const StoreOptions& options) {
  RETURN_IF_ERROR(lock_store_directory(dir));
  ASSIGN_OR_RETURN(std::unique_ptr<FileSegmentBackend> backend, FileSegmentBackend::open(dir));
  return Store::open(std::move(backend), options, true);
}

}  // namespace arbor

namespace arbor {

Result<std::unique_ptr<Store>> open_store_device(const std::string& dir, const std::string& device,
                                                 const StoreOptions& options) {
  RETURN_IF_ERROR(lock_store_directory(dir));
  ASSIGN_OR_RETURN(std::unique_ptr<DeviceSegmentBackend> backend,
                   DeviceSegmentBackend::open(device, options.segment_size_bytes, true));
  StoreOptions o = options;
  o.segment_size_bytes = backend->segment_size_bytes();
  return Store::open(std::move(backend), o, true);
}

}  // namespace arbor
