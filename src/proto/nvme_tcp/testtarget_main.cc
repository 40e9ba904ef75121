// arbor-nvme-testtarget: the NVMe/TCP target over an in-memory catalog, for trying the protocol
// against real initiators before (and apart from) the daemon.
//
//   arbor-nvme-testtarget [--listen HOST:PORT] [--discovery HOST:PORT] [--advertise ADDR]
//                         --export NAME=SIZE_MIB[:ro] ... [--allow NAME=HOSTNQN ...]
//
// Prints one line "READY io=PORT discovery=PORT" once listening, then serves until SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "proto/nvme_tcp/target.h"
#include "proto/memory_export.h"

using namespace arbor;
using namespace arbor::nvme_tcp;

static int usage() {
  std::fprintf(stderr,
               "usage: arbor-nvme-testtarget [--listen HOST:PORT] [--discovery HOST:PORT] [--advertise ADDR]\n"
               "                             --export NAME=SIZE_MIB[:ro] ... [--allow NAME=HOSTNQN ...]\n");
  return 2;
}

int main(int argc, char** argv) {
  NvmeTcpOptions opts;
  proto::MemoryCatalog catalog;
  StaticHostAllowList allow;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    if (a == "--listen") {
      opts.io_listen = v;
    } else if (a == "--discovery") {
      opts.discovery_listen = v;
    } else if (a == "--advertise") {
      opts.advertised_address = v;
    } else if (a == "--export") {
      auto eq = v.find('=');
      if (eq == std::string::npos) return usage();
      std::string name = v.substr(0, eq), size = v.substr(eq + 1);
      bool ro = size.size() > 3 && size.substr(size.size() - 3) == ":ro";
      if (ro) size.resize(size.size() - 3);
      if (!catalog.add(name, std::strtoull(size.c_str(), nullptr, 10) << 20, ro)) return usage();
    } else if (a == "--allow") {
      auto eq = v.find('=');
      if (eq == std::string::npos) return usage();
      allow.allow(v.substr(0, eq), v.substr(eq + 1));
    } else {
      return usage();
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // loop threads inherit the mask
  auto target = NvmeTcpTarget::start(catalog, allow, opts);
  if (!target.is_ok()) {
    std::fprintf(stderr, "arbor-nvme-testtarget: %s\n", target.status().to_string().c_str());
    return 1;
  }
  std::printf("READY io=%u discovery=%u\n", (*target)->io_port(), (*target)->discovery_port());
  for (auto& e : (*target)->endpoints()) std::printf("endpoint %s\n", e.c_str());
  for (auto& e : catalog.list()) std::printf("subsystem %s %llu bytes%s\n", (*target)->nqn_for(e.name).c_str(),
                                             (unsigned long long)e.size_bytes, e.read_only ? " ro" : "");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*target)->stop();
  std::printf("stopped (flushes=%llu)\n", (unsigned long long)catalog.flush_count());
  return 0;
}
