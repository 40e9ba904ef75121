#include "cli/nbd_transfer.h"

#include <libnbd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "util/units.h"
#include "util/zero.h"

namespace arbor::cli {
namespace {

constexpr uint64_t kChunkBytes = 1 << 20;
constexpr int kConnections = 4;

struct Handle {
  nbd_handle* h = nullptr;
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (h) {
      nbd_shutdown(h, 0);
      nbd_close(h);
    }
  }
};

std::string nbd_error(const std::string& what) {
  const char* e = nbd_get_error();
  return what + ": " + (e ? e : "unknown NBD error");
}

Status connect(Handle& handle, const std::string& socket, const std::string& name) {
  handle.h = nbd_create();
  if (!handle.h) return io_error(nbd_error("nbd_create"));
  if (nbd_set_export_name(handle.h, name.c_str()) != 0 ||
      nbd_connect_unix(handle.h, socket.c_str()) != 0) {
    return io_error(nbd_error("cannot open " + name + " over NBD at " + socket));
  }
  return Status::ok();
}

// Runs `work(handle, chunk_index)` over all chunks on kConnections threads, reporting progress.
Status run_parallel(const std::string& socket, const std::string& name, uint64_t length,
                    const std::function<Status(nbd_handle*, uint64_t, std::vector<char>&)>& work,
                    const std::function<void(uint64_t)>& progress, bool flush_at_end) {
  uint64_t chunks = (length + kChunkBytes - 1) / kChunkBytes;
  int n = int(std::min<uint64_t>(kConnections, std::max<uint64_t>(chunks, 1)));
  std::vector<Handle> handles(static_cast<size_t>(n));
  for (auto& h : handles) RETURN_IF_ERROR(connect(h, socket, name));
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  std::vector<std::thread> threads;
  for (int t = 0; t < n; t++) {
    threads.emplace_back([&, t] {
      std::vector<char> buf(kChunkBytes);
      while (!failed.load()) {
        uint64_t i = next.fetch_add(1);
        if (i >= chunks) break;
        Status st = work(handles[size_t(t)].h, i, buf);
        if (!st.is_ok()) {
          std::lock_guard lock(mu);
          if (first_error.is_ok()) first_error = st;
          failed = true;
          break;
        }
        done.fetch_add(std::min(kChunkBytes, length - i * kChunkBytes));
      }
    });
  }
  // Progress from this thread while the workers run.
  while (true) {
    if (progress) progress(done.load());
    if (done.load() >= length || failed.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& th : threads) th.join();
  if (!first_error.is_ok()) return first_error;
  if (flush_at_end && nbd_flush(handles[0].h, 0) != 0) return io_error(nbd_error("flush"));
  if (progress) progress(length);
  return Status::ok();
}

}  // namespace

Result<NbdTransferStats> nbd_import(const std::string& socket, const std::string& name, int fd,
                                   uint64_t offset, uint64_t length,
                                   const std::function<void(uint64_t)>& progress) {
  std::atomic<uint64_t> zero_bytes{0};
  auto work = [&](nbd_handle* h, uint64_t i, std::vector<char>& buf) -> Status {
    uint64_t pos = i * kChunkBytes;
    size_t len = size_t(std::min(kChunkBytes, length - pos));
    size_t got = 0;
    while (got < len) {
      ssize_t r = pread(fd, buf.data() + got, len - got, off_t(pos + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return io_error(std::string("reading the input failed: ") + (r < 0 ? strerror(errno) : "short file"));
      got += size_t(r);
    }
    // Runs of whole zero blocks become WRITE_ZEROES (holes), the rest WRITE.
    size_t at = 0;
    while (at < len) {
      size_t blk = std::min<size_t>(kBlockSizeBytes, len - at);
      bool zero = blk == kBlockSizeBytes && is_all_zero(buf.data() + at, blk);
      size_t run = blk;
      while (at + run < len) {
        size_t nb = std::min<size_t>(kBlockSizeBytes, len - at - run);
        bool nz = nb == kBlockSizeBytes && is_all_zero(buf.data() + at + run, nb);
        if (nz != zero) break;
        run += nb;
      }
      int rc = zero ? nbd_zero(h, run, offset + pos + at, 0)
                    : nbd_pwrite(h, buf.data() + at, run, offset + pos + at, 0);
      if (rc != 0) return io_error(nbd_error("NBD write to " + name));
      if (zero) zero_bytes += run;
      at += run;
    }
    return Status::ok();
  };
  RETURN_IF_ERROR(run_parallel(socket, name, length, work, progress, /*flush_at_end=*/true));
  return NbdTransferStats{length, zero_bytes.load()};
}

Result<NbdTransferStats> nbd_export(const std::string& socket, const std::string& name, int fd,
                                   uint64_t length, bool sparse,
                                   const std::function<void(uint64_t)>& progress) {
  std::atomic<uint64_t> zero_bytes{0};
  auto work = [&](nbd_handle* h, uint64_t i, std::vector<char>& buf) -> Status {
    uint64_t pos = i * kChunkBytes;
    size_t len = size_t(std::min(kChunkBytes, length - pos));
    if (nbd_pread(h, buf.data(), len, pos, 0) != 0) return io_error(nbd_error("NBD read from " + name));
    size_t at = 0;
    while (at < len) {
      size_t blk = std::min<size_t>(kBlockSizeBytes, len - at);
      if (sparse && blk == kBlockSizeBytes && is_all_zero(buf.data() + at, blk)) {
        zero_bytes += blk;
        at += blk;
        continue;
      }
      size_t run = blk;  // extend over following non-zero blocks
      while (at + run < len) {
        size_t nb = std::min<size_t>(kBlockSizeBytes, len - at - run);
        if (sparse && nb == kBlockSizeBytes && is_all_zero(buf.data() + at + run, nb)) break;
        run += nb;
      }
      size_t written = 0;
      while (written < run) {
        ssize_t r = pwrite(fd, buf.data() + at + written, run - written, off_t(pos + at + written));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return errno_status(errno, "writing the output failed");
        written += size_t(r);
      }
      at += run;
    }
    return Status::ok();
  };
  RETURN_IF_ERROR(run_parallel(socket, name, length, work, progress, /*flush_at_end=*/false));
  return NbdTransferStats{length, zero_bytes.load()};
}

}  // namespace arbor::cli
