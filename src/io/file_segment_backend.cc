#include "io/file_segment_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "io/uring_io.h"
#include "util/human_size.h"

namespace arbor {

namespace {
uint64_t file_system_free_bytes(const std::string& dir) {
  struct statvfs v{};
  if (::statvfs(dir.c_str(), &v) != 0) return 0;
  return uint64_t(v.f_bavail) * v.f_frsize;
}
}  // namespace

Result<std::unique_ptr<FileSegmentBackend>> FileSegmentBackend::open(const std::string& dir) {
  std::string seg_dir = dir + "/segments";
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + dir);
  if (::mkdir(seg_dir.c_str(), 0755) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + seg_dir);
  std::unique_ptr<FileSegmentBackend> b(new FileSegmentBackend(dir));
  std::string sb = dir + "/superblock";
  b->superblock_fd_ = ::open(sb.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (b->superblock_fd_ < 0) return errno_status(errno, "open " + sb);
  ASSIGN_OR_RETURN(b->pool_, SegmentFilePool::open(seg_dir + "/spare", SegmentFilePoolOptions{},
                                                   [dir] { return file_system_free_bytes(dir); }));
  return b;
}

FileSegmentBackend::~FileSegmentBackend() {
  for (auto& [id, fd] : fds_) ::close(fd);
  if (superblock_fd_ >= 0) ::close(superblock_fd_);
}

std::string FileSegmentBackend::segment_path(SegmentId id) const {
  char name[32];
  std::snprintf(name, sizeof name, "%016" PRIx64 ".seg", id);
  return dir_ + "/segments/" + name;
}

Status FileSegmentBackend::sync_directory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "open " + path);
  Status s = io::fdatasync_fd(fd);
  ::close(fd);
  return s;
}

Result<int> FileSegmentBackend::fd_of(SegmentId id) {
  std::lock_guard lock(mu_);
  auto it = fds_.find(id);
  if (it != fds_.end()) return it->second;
  std::string path = segment_path(id);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found("segment " + std::to_string(id) + " does not exist");
    return errno_status(errno, "open " + path);
  }
  fds_.emplace(id, fd);
  return fd;
}

Status FileSegmentBackend::create(SegmentId id, uint64_t size_bytes) {
  std::string path = segment_path(id);
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) return already_exists("segment file " + path + " exists");
  ASSIGN_OR_RETURN(bool recycled, pool_->take(path, size_bytes));
  int fd = recycled ? ::open(path.c_str(), O_RDWR | O_CLOEXEC)
                    : ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, (recycled ? "open " : "create ") + path);
  // No spare ready: reserve the space now so that ENOSPC shows up when a segment opens, not in the
  // middle of a record; fall back silently where the file system cannot preallocate.
  if (!recycled && ::posix_fallocate(fd, 0, off_t(size_bytes)) == ENOSPC) {
    ::close(fd);
    ::unlink(path.c_str());
    return no_space("no space for a new segment of " + format_size_bytes(size_bytes) + " in " + dir_ +
                    "/segments: free space on that file system");
  }
  {
    std::lock_guard lock(mu_);
    fds_[id] = fd;
  }
  // The new file's name must be durable before a flush can rely on records inside it.
  return sync_directory(dir_ + "/segments");
}

Status FileSegmentBackend::write(SegmentId id, uint64_t offset, std::span<const uint8_t> data) {
  ASSIGN_OR_RETURN(int fd, fd_of(id));
  return io::pwrite_full(fd, offset, data);
}

Status FileSegmentBackend::read(SegmentId id, uint64_t offset, std::span<uint8_t> out) {
  ASSIGN_OR_RETURN(int fd, fd_of(id));
  return io::pread_full(fd, offset, out);
}

Result<FileRead> FileSegmentBackend::locate(SegmentId id, uint64_t offset, std::span<uint8_t> into) {
  ASSIGN_OR_RETURN(int fd, fd_of(id));
  return FileRead{fd, offset, into};
}

Status FileSegmentBackend::sync(SegmentId id) {
  ASSIGN_OR_RETURN(int fd, fd_of(id));
  return io::fdatasync_fd(fd);
}

Status FileSegmentBackend::seal(SegmentId id) { return Status::ok(); }

Status FileSegmentBackend::remove(SegmentId id) {
  {
    std::lock_guard lock(mu_);
    auto it = fds_.find(id);
    if (it != fds_.end()) {
      ::close(it->second);
      fds_.erase(it);
    }
  }
  std::string path = segment_path(id);
  if (pool_->give(path)) return Status::ok();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "unlink " + path);
  return Status::ok();
}

Result<std::vector<SegmentId>> FileSegmentBackend::list() {
  std::string seg_dir = dir_ + "/segments";
  DIR* d = ::opendir(seg_dir.c_str());
  if (d == nullptr) return errno_status(errno, "opendir " + seg_dir);
  std::vector<SegmentId> ids;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() != 20 || name.substr(16) != ".seg") continue;
    char* end = nullptr;
    uint64_t id = std::strtoull(name.c_str(), &end, 16);
    if (end == name.c_str() + 16) ids.push_back(id);
  }
  ::closedir(d);
  return ids;
}

Status FileSegmentBackend::write_superblock(int slot, std::span<const uint8_t> block) {
  RETURN_IF_ERROR(io::pwrite_full(superblock_fd_, uint64_t(slot) * kSuperblockSizeBytes, block));
  return io::fdatasync_fd(superblock_fd_);
}

Status FileSegmentBackend::read_superblock(int slot, std::span<uint8_t> block) {
  struct stat st{};
  if (::fstat(superblock_fd_, &st) != 0) return errno_status(errno, "stat superblock");
  if (uint64_t(st.st_size) < uint64_t(slot + 1) * kSuperblockSizeBytes) return not_found("superblock slot empty");
  return io::pread_full(superblock_fd_, uint64_t(slot) * kSuperblockSizeBytes, block);
}

// Spare files are space the store can write into, so they count as free.
uint64_t FileSegmentBackend::free_bytes() { return file_system_free_bytes(dir_) + pool_->spare_bytes(); }

}  // namespace arbor
