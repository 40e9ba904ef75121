#include "io/segment_file_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace arbor {

namespace {

constexpr size_t kZeroChunkBytes = size_t(1) << 20;

// "<n>.seg" -> n, or -1.
int64_t spare_number(const std::string& name) {
  if (name.size() < 5 || name.substr(name.size() - 4) != ".seg") return -1;
  char* end = nullptr;
  long long n = std::strtoll(name.c_str(), &end, 10);
  return end == name.c_str() + name.size() - 4 && n >= 0 ? int64_t(n) : -1;
}

}  // namespace

SegmentFilePool::SegmentFilePool(std::string dir, SegmentFilePoolOptions options, std::function<uint64_t()> free_bytes)
    : dir_(std::move(dir)), options_(options), free_bytes_(std::move(free_bytes)) {}

Result<std::unique_ptr<SegmentFilePool>> SegmentFilePool::open(std::string dir, SegmentFilePoolOptions options,
                                                               std::function<uint64_t()> free_bytes) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + dir);
  std::unique_ptr<SegmentFilePool> pool(new SegmentFilePool(dir, options, std::move(free_bytes)));
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errno_status(errno, "opendir " + dir);
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    int64_t n = spare_number(name);
    struct stat st{};
    if (n < 0 || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      ::unlink(path.c_str());  // a preparation cut short by a crash, or a stray file
      continue;
    }
    pool->spares_.push_back(Spare{path, uint64_t(st.st_size)});
    pool->counter_ = std::max(pool->counter_, uint64_t(n) + 1);
  }
  ::closedir(d);
  pool->preparer_ = std::thread([p = pool.get()] { p->run_preparer(); });
  return pool;
}

SegmentFilePool::~SegmentFilePool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (preparer_.joinable()) preparer_.join();
}

std::string SegmentFilePool::next_name(const char* prefix) {
  return dir_ + "/" + prefix + std::to_string(counter_++) + ".seg";
}

Result<bool> SegmentFilePool::take(const std::string& dest, uint64_t size_bytes) {
  std::unique_lock lock(mu_);
  wanted_size_ = size_bytes;
  // Spares of another size (the store was reopened with another segment size) are of no use.
  for (auto it = spares_.begin(); it != spares_.end();) {
    if (it->size_bytes == size_bytes) {
      ++it;
      continue;
    }
    ::unlink(it->path.c_str());
    it = spares_.erase(it);
  }
  bool taken = false;
  if (!spares_.empty()) {
    Spare s = spares_.front();
    spares_.pop_front();
    if (::rename(s.path.c_str(), dest.c_str()) != 0) return errno_status(errno, "rename " + s.path + " to " + dest);
    taken = true;
  }
  gave_up_ = false;  // space may have come back since a failed preparation
  lock.unlock();
  cv_.notify_all();
  return taken;
}

bool SegmentFilePool::give(const std::string& path) {
  std::lock_guard lock(mu_);
  if (stopping_ || spares_.size() >= options_.max_spares || wanted_size_ == 0) return false;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || uint64_t(st.st_size) != wanted_size_) return false;
  std::string spare = next_name("");
  if (::rename(path.c_str(), spare.c_str()) != 0) return false;
  spares_.push_back(Spare{spare, wanted_size_});
  return true;
}

size_t SegmentFilePool::spare_count() {
  std::lock_guard lock(mu_);
  return spares_.size();
}

uint64_t SegmentFilePool::spare_bytes() {
  std::lock_guard lock(mu_);
  uint64_t total = 0;
  for (const Spare& s : spares_) total += s.size_bytes;
  return total;
}

void SegmentFilePool::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || (!preparing_ && !needs_preparing()); });
}

bool SegmentFilePool::needs_preparing() const {
  return !stopping_ && !gave_up_ && wanted_size_ > 0 && spares_.size() < options_.prepared_target;
}

void SegmentFilePool::run_preparer() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || needs_preparing(); });
    if (stopping_) return;
    uint64_t size = wanted_size_;
    preparing_ = true;
    lock.unlock();
    bool room = free_bytes_() >= size * (options_.reserve_segments + 1);
    Status s = room ? prepare_one(size) : no_space("spare segment: file system nearly full");
    lock.lock();
    preparing_ = false;
    if (!s.is_ok()) gave_up_ = true;
    cv_.notify_all();
  }
}

Status SegmentFilePool::prepare_one(uint64_t size_bytes) {
  std::string tmp;
  {
    std::lock_guard lock(mu_);
    tmp = next_name("tmp-");
  }
  // O_DIRECT keeps 32 MiB of zeros out of the page cache; fall back where it is not supported.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644);
  if (fd < 0 && errno == EINVAL) fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "create " + tmp);
  void* zeros = std::aligned_alloc(4096, kZeroChunkBytes);
  std::memset(zeros, 0, kZeroChunkBytes);
  Status status = Status::ok();
  for (uint64_t off = 0; off < size_bytes && status.is_ok();) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) status = busy("spare segment: pool closing");
    }
    if (!status.is_ok()) break;
    size_t n = size_t(std::min<uint64_t>(kZeroChunkBytes, size_bytes - off));
    ssize_t w = ::pwrite(fd, zeros, n, off_t(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      status = errno_status(w < 0 ? errno : EIO, "write " + tmp);
      break;
    }
    off += uint64_t(w);
  }
  std::free(zeros);
  if (status.is_ok() && ::fdatasync(fd) != 0) status = errno_status(errno, "fdatasync " + tmp);
  ::close(fd);
  if (!status.is_ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  std::lock_guard lock(mu_);
  std::string spare = next_name("");
  if (::rename(tmp.c_str(), spare.c_str()) != 0) {
    Status s = errno_status(errno, "rename " + tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  spares_.push_back(Spare{spare, size_bytes});
  return Status::ok();
}

}  // namespace arbor
