// NBD multi-conn against the real store: a flush on one connection must make durable the writes
// completed on another (that is what advertising NBD_FLAG_CAN_MULTI_CONN promises).
//
//   arbor-nbd-multiconn-write URI SEED   writes 64 random 4 KiB blocks on connection A (no flush,
//                                         no FUA), then flushes on connection B only, and exits.
//   arbor-nbd-multiconn-check URI SEED   reads them back (after the test kill -9s and restarts
//                                         arbord) and exits 1 on the first difference.
#include <libnbd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int kBlocks = 64;
constexpr size_t kBlock = 4096;

nbd_handle* connect(const char* uri) {
  nbd_handle* h = nbd_create();
  if (h == nullptr || nbd_connect_uri(h, uri) == -1) {
    std::fprintf(stderr, "connect %s: %s\n", uri, nbd_get_error());
    std::exit(2);
  }
  return h;
}

void block_for(uint64_t seed, int i, std::vector<uint8_t>& buf, uint64_t* offset, uint64_t size) {
  std::mt19937_64 r(seed * 1000003 + uint64_t(i));
  *offset = (r() % (size / kBlock)) / kBlocks * kBlocks * kBlock + uint64_t(i) * kBlock;  // distinct blocks
  for (size_t j = 0; j < kBlock; j += 8) {
    uint64_t v = r() | 1;
    std::memcpy(&buf[j], &v, 8);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
    std::fprintf(stderr, "usage: %s write|check URI SEED\n", argv[0]);
    return 2;
  }
  bool write = std::string(argv[1]) == "write";
  uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  nbd_handle* a = connect(argv[2]);
  int64_t size = nbd_get_size(a);
  if (size < int64_t(kBlocks * kBlock * 4)) {
    std::fprintf(stderr, "export too small\n");
    return 2;
  }
  if (write && nbd_can_multi_conn(a) != 1) {
    std::fprintf(stderr, "server does not advertise multi-conn\n");
    return 1;
  }
  std::vector<uint8_t> buf(kBlock), got(kBlock);
  for (int i = 0; i < kBlocks; i++) {
    uint64_t off;
    block_for(seed, i, buf, &off, uint64_t(size));
    if (write) {
      if (nbd_pwrite(a, buf.data(), kBlock, off, 0) == -1) {
        std::fprintf(stderr, "pwrite: %s\n", nbd_get_error());
        return 1;
      }
    } else {
      if (nbd_pread(a, got.data(), kBlock, off, 0) == -1) {
        std::fprintf(stderr, "pread: %s\n", nbd_get_error());
        return 1;
      }
      if (got != buf) {
        std::fprintf(stderr, "block %d at offset %llu lost after the crash\n", i, (unsigned long long)off);
        return 1;
      }
    }
  }
  if (write) {
    nbd_handle* b = connect(argv[2]);
    if (nbd_flush(b, 0) == -1) {
      std::fprintf(stderr, "flush on the second connection: %s\n", nbd_get_error());
      return 1;
    }
    nbd_close(b);
    std::printf("wrote %d blocks on one connection, flushed on another\n", kBlocks);
  } else {
    std::printf("all %d blocks intact\n", kBlocks);
  }
  nbd_close(a);
  return 0;
}
