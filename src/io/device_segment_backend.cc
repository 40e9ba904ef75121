#include "io/device_segment_backend.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/uring_io.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor {
namespace {

constexpr uint32_t kLabelMagic = 0x4C564441;  // "ADVL"
constexpr uint32_t kLabelVersion = 1;
constexpr uint64_t kLabelOffset = 8192;
constexpr uint64_t kFirstSlotOffset = 1ull << 20;
constexpr size_t kBlock = 4096;

// Record header fields the scan needs (docs/format-segment-log.md): magic at 0, segment id at 16.
constexpr uint32_t kRecordMagic = 0x474C5241;

}  // namespace

Result<std::unique_ptr<DeviceSegmentBackend>> DeviceSegmentBackend::open(const std::string& path,
                                                                         uint64_t segment_size, bool format) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "open " + path);
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status(e, "stat " + path);
  }
  uint64_t size = uint64_t(st.st_size);
  if (S_ISBLK(st.st_mode) && ::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status(e, "size of " + path);
  }
  std::vector<uint8_t> label(kBlock);
  Status s = io::pread_full(fd, kLabelOffset, label);
  if (!s.is_ok()) {
    ::close(fd);
    return s;
  }
  uint64_t seg = 0;
  if (get_u32(label.data()) == kLabelMagic) {
    if (crc32c_with_zero_field(label.data(), kBlock, 24) != get_u32(label.data() + 24) ||
        get_u32(label.data() + 4) != kLabelVersion) {
      ::close(fd);
      return corruption(path + ": device label is damaged");
    }
    seg = get_u64(label.data() + 8);
    if (seg == 0 || seg % kBlock != 0) {
      ::close(fd);
      return corruption(path + ": device label has a bad segment size");
    }
  } else {
    if (!format) {
      ::close(fd);
      return not_found(path + " holds no Arbor store");
    }
    seg = segment_size;
    if (size < kFirstSlotOffset + 2 * seg) {
      ::close(fd);
      return invalid_argument(path + " is too small for two segments of " + std::to_string(seg) + " bytes");
    }
    std::fill(label.begin(), label.end(), 0);
    put_u32(label.data(), kLabelMagic);
    put_u32(label.data() + 4, kLabelVersion);
    put_u64(label.data() + 8, seg);
    put_u64(label.data() + 16, (size - kFirstSlotOffset) / seg);
    put_u32(label.data() + 24, crc32c(label.data(), kBlock));
    // The superblock slots must not hold an older store's checkpoint.
    std::vector<uint8_t> zeros(2 * kBlock, 0);
    s = io::pwrite_full(fd, 0, zeros);
    if (s.is_ok()) s = io::pwrite_full(fd, kLabelOffset, label);
    if (s.is_ok()) s = io::fdatasync_fd(fd);
    if (!s.is_ok()) {
      ::close(fd);
      return s;
    }
  }
  uint64_t slots = (size - kFirstSlotOffset) / seg;
  std::unique_ptr<DeviceSegmentBackend> b(new DeviceSegmentBackend(fd, seg, slots));
  b->slot_used_.assign(slots, false);
  RETURN_IF_ERROR(b->scan());
  return b;
}

DeviceSegmentBackend::~DeviceSegmentBackend() { ::close(fd_); }

Status DeviceSegmentBackend::scan() {
  std::vector<uint8_t> block(kBlock);
  for (uint64_t slot = 0; slot < slots_; slot++) {
    RETURN_IF_ERROR(io::pread_full(fd_, kFirstSlotOffset + slot * segment_size_, block));
    if (get_u32(block.data()) != kRecordMagic) continue;
    // Only the id is taken here; the log checks the header (checksum, sequence) when it reads it.
    SegmentId id = get_u64(block.data() + 16);
    if (id == 0 || slot_of_.count(id)) continue;
    slot_of_[id] = slot;
    slot_used_[slot] = true;
  }
  return Status::ok();
}

Result<uint64_t> DeviceSegmentBackend::slot_offset(SegmentId id, uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return not_found("segment " + std::to_string(id) + " does not exist");
  if (offset > segment_size_ || length > segment_size_ - offset) return invalid_argument("I/O past the end of a segment");
  return kFirstSlotOffset + it->second * segment_size_ + offset;
}

Status DeviceSegmentBackend::create(SegmentId id, uint64_t size_bytes) {
  if (size_bytes != segment_size_) return invalid_argument("segment size differs from the device label's");
  std::lock_guard lock(mu_);
  if (slot_of_.count(id)) return already_exists("segment exists");
  for (uint64_t slot = 0; slot < slots_; slot++) {
    if (slot_used_[slot]) continue;
    slot_used_[slot] = true;
    slot_of_[id] = slot;
    return Status::ok();
  }
  return no_space("the device has no free segment slot");
}

Status DeviceSegmentBackend::write(SegmentId id, uint64_t offset, std::span<const uint8_t> data) {
  ASSIGN_OR_RETURN(uint64_t at, slot_offset(id, offset, data.size()));
  return io::pwrite_full(fd_, at, data);
}

Status DeviceSegmentBackend::read(SegmentId id, uint64_t offset, std::span<uint8_t> out) {
  ASSIGN_OR_RETURN(uint64_t at, slot_offset(id, offset, out.size()));
  return io::pread_full(fd_, at, out);
}

Result<FileRead> DeviceSegmentBackend::locate(SegmentId id, uint64_t offset, std::span<uint8_t> into) {
  ASSIGN_OR_RETURN(uint64_t at, slot_offset(id, offset, into.size()));
  return FileRead{fd_, at, into};
}

Status DeviceSegmentBackend::sync(SegmentId id) {
  {
    std::lock_guard lock(mu_);
    if (!slot_of_.count(id)) return not_found("segment " + std::to_string(id) + " does not exist");
  }
  return io::fdatasync_fd(fd_);
}

Status DeviceSegmentBackend::seal(SegmentId) { return Status::ok(); }

Status DeviceSegmentBackend::remove(SegmentId id) {
  uint64_t slot;
  {
    std::lock_guard lock(mu_);
    auto it = slot_of_.find(id);
    if (it == slot_of_.end()) return Status::ok();
    slot = it->second;
  }
  // Erase the first header before the slot can be reused: a freed segment must not come back.
  std::vector<uint8_t> zeros(kBlock, 0);
  RETURN_IF_ERROR(io::pwrite_full(fd_, kFirstSlotOffset + slot * segment_size_, zeros));
  RETURN_IF_ERROR(io::fdatasync_fd(fd_));
  std::lock_guard lock(mu_);
  slot_of_.erase(id);
  slot_used_[slot] = false;
  return Status::ok();
}

Result<std::vector<SegmentId>> DeviceSegmentBackend::list() {
  std::lock_guard lock(mu_);
  std::vector<SegmentId> ids;
  for (auto& [id, slot] : slot_of_) ids.push_back(id);
  return ids;
}

Status DeviceSegmentBackend::write_superblock(int slot, std::span<const uint8_t> block) {
  RETURN_IF_ERROR(io::pwrite_full(fd_, uint64_t(slot) * kBlock, block));
  return io::fdatasync_fd(fd_);
}

Status DeviceSegmentBackend::read_superblock(int slot, std::span<uint8_t> block) {
  RETURN_IF_ERROR(io::pread_full(fd_, uint64_t(slot) * kBlock, block));
  if (std::all_of(block.begin(), block.end(), [](uint8_t b) { return b == 0; })) return not_found("superblock slot empty");
  return Status::ok();
}

uint64_t DeviceSegmentBackend::free_bytes() {
  std::lock_guard lock(mu_);
  uint64_t free_slots = 0;
  for (bool used : slot_used_)
    if (!used) free_slots++;
  return free_slots * segment_size_;
}

}  // namespace arbor
