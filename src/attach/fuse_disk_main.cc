// arbor-fuse-disk STORE_DIR VOLUME MOUNT_DIR: serves one volume of a store (not open by arbord) as
// MOUNT_DIR/disk until SIGTERM/SIGINT, flushing on the way out. For tests and benchmarks of the
// in-process FUSE path without the daemon; prints "READY MOUNT_DIR/disk" once mounted.
#include <signal.h>

#include <cstdio>

#include "attach/fuse_disk.h"
#include "store/store_directory.h"
#include "store/store_exports.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s STORE_DIR VOLUME MOUNT_DIR\n", argv[0]);
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // every thread inherits it; main waits below
  auto store = arbor::open_store_directory(argv[1], arbor::StoreOptions{});
  if (!store.is_ok()) {
    std::fprintf(stderr, "arbor-fuse-disk: %s\n", store.status().to_string().c_str());
    return 1;
  }
  arbor::StoreExports exports(**store);
  auto exported = exports.open(argv[2]);
  if (!exported.is_ok()) {
    std::fprintf(stderr, "arbor-fuse-disk: %s\n", exported.status().to_string().c_str());
    return 1;
  }
  auto disk = arbor::attach::FuseDisk::start(*exported, argv[3]);
  if (!disk.is_ok()) {
    std::fprintf(stderr, "arbor-fuse-disk: %s\n", disk.status().to_string().c_str());
    return 1;
  }
  std::printf("READY %s\n", (*disk)->file().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*disk)->stop();
  arbor::Status s = (*store)->flush();
  if (s.is_ok()) s = (*store)->checkpoint();
  return s.is_ok() ? 0 : 1;
}
