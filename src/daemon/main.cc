// arbord: the Arbor storage daemon. Owns one store directory, serves the control API on
// STORE/arbord.sock and the block protocols (NBD, NVMe/TCP) over the store's volumes.
//
//   arbord --store DIR [--nbd-listen ADDR]... [--no-nbd] [--nvme-listen ADDR] [--no-nvme]
//
// Stops gracefully on SIGTERM/SIGINT or POST /v1/daemon/stop: frontends stop, the store is
// flushed and checkpointed, exit 0. Logs to STORE/arbord.log.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <thread>

#include "daemon/control_api.h"
#include "daemon/daemon.h"
#include "util/human_size.h"

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "arbord: error: %s\n", message.c_str());
  if (spdlog::default_logger()) spdlog::error("{}", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace arbor;
  using namespace arbor::daemon;

  // Block-map nodes (8 KiB each) come and go by the thousand: writes copy them, a checkpoint frees
  // them. glibc gives freed heap back to the kernel past 128 KiB, so every burst faulted in and
  // zeroed fresh pages again (12.9% of arbord's samples during a branch at pgbench scale 500, when
  // a branch still copied every dirty node; 4.9% with this). Keep what was freed, up to 1 GiB.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  CLI::App app{"arbord: the Arbor storage daemon (copy-on-write branchable block volumes)"};
  std::string store_dir = "./arbor-data";
  std::string control_socket;
  std::vector<std::string> nbd_listen;
  bool no_nbd = false, no_nvme = false, verbose = false, log_stderr = false;
  std::string nvme_listen = "127.0.0.1:4420";
  std::string nvme_discovery = "127.0.0.1:8009";
  std::string segment_size = "32M";
  app.add_option("--store", store_dir, "Store directory (created when absent)")->capture_default_str();
  app.add_option("--control-socket", control_socket, "Control API unix socket (default STORE/arbord.sock)");
  app.add_option("--nbd-listen", nbd_listen,
                 "NBD listen address, repeatable: HOST:PORT, tcp://HOST:PORT, unix:///PATH "
                 "(default 127.0.0.1:10809 and unix STORE/nbd.sock)");
  app.add_flag("--no-nbd", no_nbd, "Do not serve NBD");
  app.add_option("--nvme-listen", nvme_listen, "NVMe/TCP I/O listen address")->capture_default_str();
  app.add_option("--nvme-discovery-listen", nvme_discovery, "NVMe/TCP discovery listen address")
      ->capture_default_str();
  std::string nvme_advertise;
  app.add_option("--nvme-advertise", nvme_advertise,
                 "Address the NVMe/TCP discovery log page gives hosts (default: the listen host)");
  app.add_flag("--no-nvme", no_nvme, "Do not serve NVMe/TCP");
  app.add_option("--segment-size", segment_size, "Segment size for a new store")->capture_default_str();
  std::string device, attach_via = "auto";
  int maintenance_ms = 10000;
  app.add_option("--device", device, "Keep the store on this block device (or file) instead of STORE/segments");
  app.add_option("--attach-via", attach_via,
                 "How `arbor attach` makes a block device: auto (the kernel's NBD client where the kernel has nbd, "
                 "else fuse), kernel-nbd, fuse (loop over a FUSE file served in arbord) or nbdfuse (loop over nbdfuse)")
      ->check(CLI::IsMember({"auto", "kernel-nbd", "fuse", "nbdfuse"}))
      ->capture_default_str();
  app.add_option("--maintenance-interval-ms", maintenance_ms, "Checkpoint and segment-cleaning period, 0 = off")
      ->check(CLI::Range(0, 86400000))
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "Log every API request");
  app.add_flag("--log-stderr", log_stderr, "Also log to stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::error_code ec;
  std::filesystem::create_directories(store_dir, ec);
  if (ec) return fail("cannot create store directory " + store_dir + ": " + ec.message());
  store_dir = std::filesystem::canonical(store_dir, ec).string();
  if (ec) return fail("cannot resolve store directory: " + ec.message());

  try {
    std::vector<spdlog::sink_ptr> sinks;
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(store_dir + "/arbord.log"));
    if (log_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    auto logger = std::make_shared<spdlog::logger>("arbord", sinks.begin(), sinks.end());
    logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
  } catch (const spdlog::spdlog_ex& e) {
    return fail(std::string("cannot open log: ") + e.what());
  }

  DaemonOptions options;
  options.store_dir = store_dir;
  options.control_socket = control_socket.empty() ? store_dir + "/arbord.sock" : control_socket;
  auto segment = parse_size_bytes(segment_size);
  if (!segment) return fail("--segment-size: " + segment.status().to_string());
  options.store.segment_size_bytes = *segment;
  options.device = device;
  options.attach_via = attach_via == "kernel-nbd" ? attach::AttachVia::kKernelNbd
                       : attach_via == "fuse"     ? attach::AttachVia::kFuse
                       : attach_via == "nbdfuse"  ? attach::AttachVia::kNbdfuse
                                                  : attach::AttachVia::kAuto;
  options.maintenance_interval_ms = maintenance_ms;
  options.frontends.nbd = !no_nbd;
  if (nbd_listen.empty()) nbd_listen = {"127.0.0.1:10809", "unix://" + store_dir + "/nbd.sock"};
  for (const auto& a : nbd_listen) {
    if (a == "none") continue;
    auto n = normalize_listen(a);
    if (!n) return fail("--nbd-listen: " + n.status().to_string());
    options.frontends.nbd_listen.push_back(*n);
  }
  if (options.frontends.nbd_listen.empty()) options.frontends.nbd = false;
  options.frontends.nvme = !no_nvme && nvme_listen != "none";
  if (options.frontends.nvme) {
    auto n = normalize_listen(nvme_listen);
    if (!n) return fail("--nvme-listen: " + n.status().to_string());
    options.frontends.nvme_listen = *n;
    options.frontends.nvme_advertise = nvme_advertise;
    if (nvme_discovery != "none") {
      auto d = normalize_listen(nvme_discovery);
      if (!d) return fail("--nvme-discovery-listen: " + d.status().to_string());
      options.frontends.nvme_discovery_listen = *d;
    }
  }

  // Signals are taken by one thread with sigwait; every other thread inherits the blocked mask.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  spdlog::info("arbord {} starting on store {}", getpid(), store_dir);
  auto daemon = Daemon::start(options);
  if (!daemon) return fail(daemon.status().to_string());
  Daemon& d = **daemon;

  ControlApi api(d);
  Status st = api.listen(options.control_socket);
  if (!st.is_ok()) {
    (void)d.shutdown();
    return fail(st.to_string());
  }
  std::thread signal_thread([&d, stop_signals] {
    int sig = 0;
    if (sigwait(&stop_signals, &sig) == 0) d.request_stop(std::string("signal ") + strsignal(sig));
  });
  signal_thread.detach();
  std::thread server([&] {
    if (!api.serve()) d.request_stop("control API server failed");
  });
  spdlog::info("ready: control API on {}", options.control_socket);

  d.wait_for_stop();
  api.stop();
  server.join();
  st = d.shutdown();
  // `arbor daemon stop` waits for this process to exit, then reads how the stop went here.
  if (FILE* f = std::fopen((options.store_dir + "/arbord.stopped").c_str(), "w")) {
    std::fprintf(f, "%d\n%s\n", int(getpid()), st.is_ok() ? "ok" : st.to_string().c_str());
    std::fclose(f);
  }
  if (!st.is_ok()) return fail("stop: " + st.to_string());
  spdlog::info("arbord {} stopped cleanly", getpid());
  return 0;
}
