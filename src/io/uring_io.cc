#include "io/uring_io.h"

#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "util/nonblocking_scope.h"

namespace arbor::io {
namespace {

// The calling thread's ring, created on first use and torn down at thread exit.
class ThreadRing {
 public:
  ThreadRing() { init_status_ = io_uring_queue_init(8, &ring_, 0); }
  ~ThreadRing() {
    if (init_status_ == 0) io_uring_queue_exit(&ring_);
  }
  bool ok() const { return init_status_ == 0; }
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
  int init_status_ = -1;
};

ThreadRing& thread_ring() {
  thread_local ThreadRing ring;
  return ring;
}

// Submits one prepared SQE and waits for its completion. Returns res (bytes or -errno).
template <typename Prep>
int run_one(Prep prep) {
  ThreadRing& r = thread_ring();
  if (!r.ok()) return -ENOSYS;
  io_uring_sqe* sqe = io_uring_get_sqe(r.get());
  if (sqe == nullptr) return -EBUSY;
  prep(sqe);
  int rc = io_uring_submit_and_wait(r.get(), 1);
  if (rc < 0) return rc;
  io_uring_cqe* cqe = nullptr;
  rc = io_uring_wait_cqe(r.get(), &cqe);
  if (rc < 0) return rc;
  int res = cqe->res;
  io_uring_cqe_seen(r.get(), cqe);
  return res;
}

}  // namespace

Status pread_full(int fd, uint64_t offset, std::span<uint8_t> out) {
  // RWF_NOWAIT: bytes not in the page cache fail with EAGAIN (the kernel starts reading them).
  const int flags = NonBlockingScope::active() ? RWF_NOWAIT : 0;
  size_t done = 0;
  while (done < out.size()) {
    int res = run_one([&](io_uring_sqe* sqe) {
      io_uring_prep_read(sqe, fd, out.data() + done, unsigned(out.size() - done), offset + done);
      sqe->rw_flags = flags;
    });
    if (res == -ENOSYS) {  // no io_uring (old kernel, seccomp): plain syscalls
      iovec iov{out.data() + done, out.size() - done};
      ssize_t n = ::preadv2(fd, &iov, 1, off_t(offset + done), flags);
      res = n < 0 ? -errno : int(n);
    }
    if (res == -EAGAIN && flags != 0) return would_block("read: not in the page cache");
    // Some file systems (tmpfs, for one) refuse RWF_NOWAIT outright: the caller then reads
    // without the flag where waiting is allowed, as for a page-cache miss.
    if (res == -EOPNOTSUPP && flags != 0) return would_block("read: RWF_NOWAIT not supported here");
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res < 0) return errno_status(-res, "read");
    if (res == 0) {  // past the end of the file: never-written bytes read as zeros
      std::fill(out.begin() + done, out.end(), 0);
      return Status::ok();
    }
    done += size_t(res);
  }
  return Status::ok();
}

// A plain syscall too: io_uring punts a buffered ext4 write to an io-wq worker (it cannot do it
// without blocking), two context switches per record on the flush path; on this VM 40% of the
// daemon's CPU samples under pgbench were in finish_task_switch. fio write+fdatasync through an
// attached volume, same run: flush 266 -> 245 us mean, 2900 -> 3120 IOPS.
Status pwrite_full(int fd, uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, "write");
    if (n == 0) return io_error("write: device accepted no bytes");
    done += size_t(n);
  }
  return Status::ok();
}

// A plain syscall, not the ring: io_uring always hands an fsync to an io-wq worker thread, which
// adds two context switches to every flush, and a flush is what each Postgres commit waits on
// (fio write+fdatasync through an attached volume: flush 445 -> 390 us mean on 2 cores).
Status fdatasync_fd(int fd) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return errno_status(errno, "fdatasync");
  }
  return Status::ok();
}

}  // namespace arbor::io
