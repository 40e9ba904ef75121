// arbor-nbd-testserver: the NBD server over an in-memory catalog, for peer tests (nbdinfo,
// nbdcopy, qemu-img, fio) and for working on the protocol without a store.
//
//   arbor-nbd-testserver [--loops N] [--workers N] [--offload-all] [--default NAME]
//                        [--read-only NAME]... [--ready-file PATH] [--flush-delay-us N]
//                        LISTEN... NAME:SIZE...
//   LISTEN: tcp://127.0.0.1:0 | unix:///tmp/x.sock     SIZE: 64M, 1G, 4096 ...
//
// Prints one "endpoint URI" line per bound address once listening (and writes them to
// --ready-file, renamed into place atomically), then serves until SIGINT/SIGTERM.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "proto/memory_export.h"
#include "proto/nbd/nbd_server.h"
#include "util/human_size.h"

using namespace arbor;

namespace {

// Makes flush() take `delay_us` (a stand-in for the store's fsync) to show it stalls no loop.
class SlowFlushExport : public proto::BlockExport {
 public:
  SlowFlushExport(std::shared_ptr<proto::BlockExport> inner, uint32_t delay_us) : inner_(std::move(inner)), delay_us_(delay_us) {}
  const std::string& name() const override { return inner_->name(); }
  uint64_t size_bytes() const override { return inner_->size_bytes(); }
  bool read_only() const override { return inner_->read_only(); }
  std::array<uint8_t, 16> uuid() const override { return inner_->uuid(); }
  Status read(uint64_t o, std::span<uint8_t> out) override { return inner_->read(o, out); }
  Status write(uint64_t o, std::span<const uint8_t> d, bool fua) override {
    Status s = inner_->write(o, d, fua);
    if (s.is_ok() && fua) sleep_us();
    return s;
  }
  Status flush() override {
    sleep_us();
    return inner_->flush();
  }
  Status trim(uint64_t o, uint64_t n) override { return inner_->trim(o, n); }
  Status write_zeroes(uint64_t o, uint64_t n, bool u) override { return inner_->write_zeroes(o, n, u); }

 private:
  void sleep_us() {
    timespec ts{0, long(delay_us_) * 1000};
    nanosleep(&ts, nullptr);
  }
  std::shared_ptr<proto::BlockExport> inner_;
  uint32_t delay_us_;
};

class SlowFlushCatalog : public proto::ExportCatalog {
 public:
  SlowFlushCatalog(proto::ExportCatalog& inner, uint32_t delay_us) : inner_(inner), delay_us_(delay_us) {}
  Result<std::shared_ptr<proto::BlockExport>> open(std::string_view name) override {
    ASSIGN_OR_RETURN(auto e, inner_.open(name));
    if (delay_us_ == 0) return e;
    return std::shared_ptr<proto::BlockExport>(std::make_shared<SlowFlushExport>(std::move(e), delay_us_));
  }
  std::vector<proto::ExportInfo> list() override { return inner_.list(); }

 private:
  proto::ExportCatalog& inner_;
  uint32_t delay_us_;
};

int usage() {
  std::fprintf(stderr,
               "usage: arbor-nbd-testserver [--loops N] [--workers N] [--offload-all] [--default NAME]\n"
               "         [--read-only NAME]... [--ready-file PATH] [--flush-delay-us N] LISTEN... NAME:SIZE...\n");
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  nbd::NbdServerOptions options;
  std::set<std::string> read_only;
  std::vector<std::pair<std::string, uint64_t>> exports;
  std::string ready_file;
  uint32_t flush_delay_us = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--loops" || a == "--workers" || a == "--read-only" || a == "--ready-file" || a == "--default" ||
        a == "--flush-delay-us") {
      const char* v = next();
      if (!v) return usage();
      if (a == "--loops") options.event_loops = std::atoi(v);
      if (a == "--workers") options.blocking_workers = std::atoi(v);
      if (a == "--read-only") read_only.insert(v);
      if (a == "--ready-file") ready_file = v;
      if (a == "--default") options.default_export = v;
      if (a == "--flush-delay-us") flush_delay_us = uint32_t(std::atoi(v));
    } else if (a == "--offload-all") {
      options.offload_all_io = true;
    } else if (a.find("://") != std::string::npos) {
      options.listen.push_back(a);
    } else if (size_t colon = a.rfind(':'); colon != std::string::npos && colon > 0) {
      auto size = parse_size_bytes(a.substr(colon + 1));
      if (!size.is_ok()) {
        std::fprintf(stderr, "arbor-nbd-testserver: %s\n", size.status().to_string().c_str());
        return 2;
      }
      exports.emplace_back(a.substr(0, colon), *size);
    } else {
      return usage();
    }
  }
  if (options.listen.empty() || exports.empty()) return usage();

  proto::MemoryCatalog catalog;
  for (auto& [name, size] : exports) {
    if (!catalog.add(name, size, read_only.count(name) > 0)) {
      std::fprintf(stderr, "arbor-nbd-testserver: duplicate export %s\n", name.c_str());
      return 2;
    }
  }
  // Block the signals before any thread starts so only sigwait below sees them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SlowFlushCatalog served(catalog, flush_delay_us);
  auto server = nbd::NbdServer::start(served, options);
  if (!server.is_ok()) {
    std::fprintf(stderr, "arbor-nbd-testserver: %s\n", server.status().to_string().c_str());
    return 1;
  }
  std::string lines;
  for (const std::string& e : (*server)->endpoints()) lines += "endpoint " + e + "\n";
  std::fputs(lines.c_str(), stdout);
  std::fflush(stdout);
  if (!ready_file.empty()) {
    std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << lines;
    std::rename(tmp.c_str(), ready_file.c_str());
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  (*server)->stop();
  std::fprintf(stderr, "arbor-nbd-testserver: stopped (flushes served: %llu)\n", (unsigned long long)catalog.flush_count());
  return 0;
}
