// arbor-nvme-fuse: one NVMe/TCP namespace as a one-file FUSE mount, through our userspace
// initiator, for hosts whose kernel has no nvme-tcp. `arbor attach NAME --transport nvme-tcp`
// runs it and puts a loop device on MOUNT/disk (losetup --direct-io=on).
//
//   arbor-nvme-fuse --addr A --port P --nqn NQN [--hostnqn N] MOUNT_DIR
//
// The namespace is a BlockExport (namespace_export.h) served by the same FuseDisk that serves
// local volumes inside arbord. Stays in the foreground until unmounted (fusermount3 -u MOUNT_DIR)
// or sent SIGTERM/SIGINT, which unmounts.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "attach/fuse_disk.h"
#include "nvme_initiator/namespace_export.h"

using namespace arbor;
using namespace arbor::nvme_initiator;

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
  // Signals are taken by sigwait below, in this thread only: block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&stop_signals, s);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto exported = std::make_shared<NamespaceExport>(std::move(c).value(), o.subsys_nqn);
  // One FUSE thread: the controller serves one command at a time anyway.
  auto disk = attach::FuseDisk::start(exported, mount_dir, 1);
  if (!disk) {
    std::fprintf(stderr, "arbor-nvme-fuse: error: %s\n", disk.status().to_string().c_str());
    return 1;
  }
  std::thread watcher([d = disk->get()] {
    d->wait_unmounted();  // fusermount3 -u from outside ends the FUSE loop
    kill(getpid(), SIGUSR1);
  });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  (*disk)->stop();
  watcher.join();
  return 0;
}
