// arbor-nvme-fuse: one NVMe/TCP namespace as a one-file FUSE mount, through our userspace
// initiator, for hosts whose kernel has no nvme-tcp. `arbor attach NAME --transport nvme-tcp`
// runs it and puts a loop device on MOUNT/disk (losetup --direct-io=on).
//
//   arbor-nvme-fuse --addr A --port P --nqn NQN [--hostnqn N] MOUNT_DIR
//
// Stays in the foreground until unmounted (fusermount3 -u MOUNT_DIR). The file is opened
// direct_io (no page cache of its own); reads and writes split into commands of at most 512 KiB;
// an unaligned write reads the blocks it touches first; fsync and flush are an NVMe Flush.
// Threading: libfuse's single-threaded loop (-s): the Controller is used by one thread.
#define FUSE_USE_VERSION 31
#include <fuse3/fuse.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <vector>

#include "nvme_initiator/initiator.h"

using namespace arbor;
using namespace arbor::nvme_initiator;

namespace {

Controller* g_ctrl = nullptr;  // libfuse's C callbacks reach the controller through this
bool g_read_only = false;
constexpr uint32_t kMaxBlocksPerCommand = 128;

int fs_getattr(const char* path, struct stat* st, fuse_file_info*) {
  std::memset(st, 0, sizeof *st);
  if (std::strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (std::strcmp(path, "/disk") != 0) return -ENOENT;
  st->st_mode = S_IFREG | (g_read_only ? 0444 : 0644);
  st->st_nlink = 1;
  st->st_size = off_t(g_ctrl->ns().size_bytes());
  st->st_blksize = g_ctrl->ns().lba_bytes;
  return 0;
}

int fs_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*, fuse_readdir_flags) {
  if (std::strcmp(path, "/") != 0) return -ENOENT;
  fill(buf, ".", nullptr, 0, fuse_fill_dir_flags(0));
  fill(buf, "..", nullptr, 0, fuse_fill_dir_flags(0));
  fill(buf, "disk", nullptr, 0, fuse_fill_dir_flags(0));
  return 0;
}

int fs_open(const char* path, fuse_file_info* fi) {
  if (std::strcmp(path, "/disk") != 0) return -ENOENT;
  if (g_read_only && (fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  fi->direct_io = 1;
  return 0;
}

// Blocks [first, first + count) into buf, in commands of at most 512 KiB.
int read_blocks(uint64_t first, uint64_t count, uint8_t* buf) {
  const uint32_t lb = g_ctrl->ns().lba_bytes;
  while (count > 0) {
    uint32_t n = uint32_t(std::min<uint64_t>(count, kMaxBlocksPerCommand));
    if (!g_ctrl->read(first, n, buf).is_ok()) return -EIO;
    first += n;
    count -= n;
    buf += uint64_t(n) * lb;
  }
  return 0;
}

int write_blocks(uint64_t first, uint64_t count, const uint8_t* buf) {
  const uint32_t lb = g_ctrl->ns().lba_bytes;
  while (count > 0) {
    uint32_t n = uint32_t(std::min<uint64_t>(count, kMaxBlocksPerCommand));
    if (!g_ctrl->write(first, n, buf).is_ok()) return -EIO;
    first += n;
    count -= n;
    buf += uint64_t(n) * lb;
  }
  return 0;
}

int fs_read(const char*, char* out, size_t size, off_t off, fuse_file_info*) {
  const uint64_t dev = g_ctrl->ns().size_bytes(), lb = g_ctrl->ns().lba_bytes;
  if (uint64_t(off) >= dev) return 0;
  size = size_t(std::min<uint64_t>(size, dev - off));
  const uint64_t first = off / lb, last = (off + size + lb - 1) / lb;
  if (off % lb == 0 && size % lb == 0) {
    int rc = read_blocks(first, last - first, reinterpret_cast<uint8_t*>(out));
    return rc ? rc : int(size);
  }
  std::vector<uint8_t> tmp((last - first) * lb);
  int rc = read_blocks(first, last - first, tmp.data());
  if (rc) return rc;
  std::memcpy(out, tmp.data() + (off - first * lb), size);
  return int(size);
}

int fs_write(const char*, const char* in, size_t size, off_t off, fuse_file_info*) {
  if (g_read_only) return -EROFS;
  const uint64_t dev = g_ctrl->ns().size_bytes(), lb = g_ctrl->ns().lba_bytes;
  if (uint64_t(off) + size > dev) return -ENOSPC;
  const uint64_t first = off / lb, last = (off + size + lb - 1) / lb;
  if (off % lb == 0 && size % lb == 0) {
    int rc = write_blocks(first, last - first, reinterpret_cast<const uint8_t*>(in));
    return rc ? rc : int(size);
  }
  std::vector<uint8_t> tmp((last - first) * lb);  // read-modify-write of the blocks touched
  int rc = read_blocks(first, last - first, tmp.data());
  if (rc) return rc;
  std::memcpy(tmp.data() + (off - first * lb), in, size);
  rc = write_blocks(first, last - first, tmp.data());
  return rc ? rc : int(size);
}

int fs_fsync(const char*, int, fuse_file_info*) { return g_ctrl->flush().is_ok() ? 0 : -EIO; }
int fs_flush(const char*, fuse_file_info*) { return g_read_only ? 0 : (g_ctrl->flush().is_ok() ? 0 : -EIO); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"arbor-nvme-fuse: an NVMe/TCP namespace as MOUNT_DIR/disk (our userspace initiator)"};
  ConnectOptions o;
  std::string mount_dir;
  o.queue_depth = 4;
  app.add_option("--addr", o.address)->capture_default_str();
  app.add_option("--port", o.port)->capture_default_str();
  app.add_option("--nqn", o.subsys_nqn, "Subsystem NQN")->required();
  app.add_option("--hostnqn", o.host_nqn)->capture_default_str();
  app.add_option("MOUNT_DIR", mount_dir)->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto c = Controller::connect(o);
  if (!c) {
    std::fprintf(stderr, "arbor-nvme-fuse: error: %s\n", c.status().to_string().c_str());
    return 1;
  }
  g_ctrl = c->get();
  g_read_only = g_ctrl->ns().read_only;
  fuse_operations ops{};
  ops.getattr = fs_getattr;
  ops.readdir = fs_readdir;
  ops.open = fs_open;
  ops.read = fs_read;
  ops.write = fs_write;
  ops.fsync = fs_fsync;
  ops.flush = fs_flush;
  std::vector<std::string> args = {"arbor-nvme-fuse", "-f", "-s", "-o", "fsname=arbor-nvme", mount_dir};
  std::vector<char*> fargv;
  for (auto& a : args) fargv.push_back(a.data());
  return fuse_main(int(fargv.size()), fargv.data(), &ops, nullptr);
}
