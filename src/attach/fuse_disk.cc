#define FUSE_USE_VERSION 312
#include "attach/fuse_disk.h"

#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace arbor::attach {
namespace {

constexpr fuse_ino_t kRootInode = 1;
constexpr fuse_ino_t kDiskInode = 2;
constexpr const char* kDiskName = "disk";

proto::BlockExport& export_of(fuse_req_t req) { return static_cast<FuseDisk*>(fuse_req_userdata(req))->exported(); }

void fill_attr(proto::BlockExport& e, fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = ::getuid();
  st->st_gid = ::getgid();
  if (ino == kRootInode) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | (e.read_only() ? 0400 : 0600);
    st->st_nlink = 1;
    st->st_size = off_t(e.size_bytes());
    st->st_blksize = 4096;
    st->st_blocks = st->st_size / 512;
  }
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != kRootInode || std::strcmp(name, kDiskName) != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param e{};
  e.ino = kDiskInode;
  e.attr_timeout = 1.0;
  e.entry_timeout = 1.0;
  fill_attr(export_of(req), kDiskInode, &e.attr);
  fuse_reply_entry(req, &e);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  if (ino != kRootInode && ino != kDiskInode) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st;
  fill_attr(export_of(req), ino, &st);
  fuse_reply_attr(req, &st, 1.0);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (ino != kRootInode) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  const char* names[] = {".", "..", kDiskName};
  fuse_ino_t inos[] = {kRootInode, kRootInode, kDiskInode};
  for (off_t i = off; i < 3; i++) {
    struct stat st{};
    st.st_ino = inos[i];
    st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
    size_t n = fuse_add_direntry(req, buf.data() + used, size - used, names[i], &st, i + 1);
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != kDiskInode) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY && export_of(req).read_only()) {
    fuse_reply_err(req, EROFS);
    return;
  }
  fi->direct_io = 1;  // the store and the loop device cache; a third copy would only cost memory
  fi->keep_cache = 0;
  fuse_reply_open(req, fi);
}

int to_errno(const Status& s) { return s.to_errno(); }

// One buffer per FUSE thread, kept: a fresh vector per read was zero-filled, and one of 1 MiB (a
// read-ahead request) was a new mmap with a page fault per 4 KiB, all before the store's copy.
std::span<uint8_t> read_buffer(size_t bytes) {
  thread_local std::unique_ptr<uint8_t[]> buffer;
  thread_local size_t capacity = 0;
  if (bytes > capacity) {
    buffer.reset(new uint8_t[bytes]);
    capacity = bytes;
  }
  return {buffer.get(), bytes};
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  proto::BlockExport& e = export_of(req);
  uint64_t end = std::min<uint64_t>(e.size_bytes(), uint64_t(off) + size);
  if (uint64_t(off) >= end) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  std::span<uint8_t> buf = read_buffer(end - uint64_t(off));
  Status s = e.read(uint64_t(off), buf);
  if (!s.is_ok()) {
    fuse_reply_err(req, to_errno(s));
    return;
  }
  fuse_reply_buf(req, reinterpret_cast<const char*>(buf.data()), buf.size());
}

void op_write(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  proto::BlockExport& e = export_of(req);
  bool fua = (fi->flags & (O_SYNC | O_DSYNC)) != 0;
  Status s = e.write(uint64_t(off), std::span(reinterpret_cast<const uint8_t*>(data), size), fua);
  if (!s.is_ok()) {
    fuse_reply_err(req, s.code() == Code::kOutOfRange ? ENOSPC : to_errno(s));
    return;
  }
  fuse_reply_write(req, size);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  Status s = export_of(req).flush();
  fuse_reply_err(req, s.is_ok() ? 0 : to_errno(s));
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info*) {
  proto::BlockExport& e = export_of(req);
  Status s;
  if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) s = e.trim(uint64_t(off), uint64_t(len));
  else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) s = e.write_zeroes(uint64_t(off), uint64_t(len), false);
  else if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE) s = Status::ok();  // thin: nothing to reserve ahead
  else s = not_supported("fallocate mode");
  fuse_reply_err(req, s.is_ok() ? 0 : to_errno(s));
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st{};
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_blocks = export_of(req).size_bytes() / 4096;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

void op_init(void*, fuse_conn_info* conn) {
  conn->max_write = 1u << 20;
  conn->max_readahead = 0;
  if (conn->capable & FUSE_CAP_SPLICE_READ) conn->want &= ~FUSE_CAP_SPLICE_READ;
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.getattr = op_getattr;
  o.readdir = op_readdir;
  o.open = op_open;
  o.read = op_read;
  o.write = op_write;
  o.flush = op_flush;
  o.fsync = op_fsync;
  o.fallocate = op_fallocate;
  o.statfs = op_statfs;
  return o;
}();

}  // namespace

Result<std::unique_ptr<FuseDisk>> FuseDisk::start(std::shared_ptr<proto::BlockExport> exported,
                                                  const std::string& mount_dir, int threads) {
  if (::mkdir(mount_dir.c_str(), 0700) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + mount_dir);
  std::unique_ptr<FuseDisk> d(new FuseDisk());
  d->export_ = std::move(exported);
  d->mount_dir_ = mount_dir;
  d->file_ = mount_dir + "/" + kDiskName;
  std::string fsname = "-ofsname=arbor:" + d->export_->name();
  const char* argv[] = {"arbord", fsname.c_str(), "-osubtype=arbor"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  d->session_ = fuse_session_new(&args, &kOps, sizeof kOps, d.get());
  fuse_opt_free_args(&args);
  if (d->session_ == nullptr) return io_error("fuse: cannot create a session (is /dev/fuse there?)");
  if (fuse_session_mount(d->session_, mount_dir.c_str()) != 0) {
    fuse_session_destroy(d->session_);
    d->session_ = nullptr;
    return io_error("fuse: cannot mount " + mount_dir);
  }
  FuseDisk* raw = d.get();
  d->loop_ = std::thread([raw, threads] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    fuse_loop_cfg_set_max_threads(cfg, unsigned(threads));
    fuse_loop_cfg_set_idle_threads(cfg, unsigned(threads));
    fuse_session_loop_mt(raw->session_, cfg);
    fuse_loop_cfg_destroy(cfg);
    {
      std::lock_guard lock(raw->ended_mu_);
      raw->loop_ended_ = true;
    }
    raw->ended_cv_.notify_all();
  });
  return d;
}

void FuseDisk::stop() {
  if (stopped_ || session_ == nullptr) return;
  stopped_ = true;
  fuse_session_exit(session_);
  // Unmounting wakes the workers (/dev/fuse reads fail once unmounted); libfuse's own unmount
  // after the loop ended on an outside unmount is harmless.
  fuse_session_unmount(session_);
  if (loop_.joinable()) loop_.join();
  fuse_session_destroy(session_);
  session_ = nullptr;
}

void FuseDisk::wait_unmounted() {
  std::unique_lock lock(ended_mu_);
  ended_cv_.wait(lock, [this] { return loop_ended_; });
}

FuseDisk::~FuseDisk() { stop(); }

}  // namespace arbor::attach
