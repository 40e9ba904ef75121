#include "daemon/frontends.h"

#include <spdlog/spdlog.h>

#ifdef ARBOR_HAVE_NBD
#include "proto/nbd/nbd_server.h"
#endif
#ifdef ARBOR_HAVE_NVME_TCP
#include "proto/nvme_tcp/subsystems.h"
#include "proto/nvme_tcp/target.h"
#endif
#include "daemon/export_allow.h"

namespace arbor::daemon {
Result<std::string> normalize_listen(const std::string& text) {
  if (text.rfind("tcp://", 0) == 0) return text;
  if (text.rfind("unix:///", 0) == 0) return text;
  if (text.rfind("unix:", 0) == 0) {
    std::string path = text.substr(5);
    if (path.empty() || path[0] != '/') {
      return invalid_argument("listen address '" + text + "': a unix socket path must be absolute");
    }
    return "unix://" + path;
  }
  if (!text.empty() && text[0] == '/') return "unix://" + text;
  size_t colon = text.rfind(':');
  if (colon != std::string::npos && colon > 0 && colon + 1 < text.size() &&
      text.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    return "tcp://" + text;
  }
  return invalid_argument("listen address '" + text +
                          "': expected HOST:PORT, tcp://HOST:PORT or unix:///PATH");
}

struct Frontends::Impl {
  FrontendOptions options;
  std::vector<Endpoint> endpoints;
  std::vector<std::string> notes;
  std::string nbd_unix_socket;
#ifdef ARBOR_HAVE_NBD
  std::unique_ptr<nbd::NbdServer> nbd;
#endif
#ifdef ARBOR_HAVE_NVME_TCP
  // The daemon's persisted allow-list (export_allow.h), or any host when there is none.
  struct Allow : nvme_tcp::HostAllowList {
    const ExportAllowList* list = nullptr;
    bool host_allowed(std::string_view export_name, std::string_view host_nqn) const override {
      return list == nullptr || list->host_allowed(export_name, host_nqn);
    }
  } allow;
  std::unique_ptr<nvme_tcp::NvmeTcpTarget> nvme;
#endif
};

Frontends::Frontends() : impl_(std::make_unique<Impl>()) {}
Frontends::~Frontends() { stop(); }

Status Frontends::start(const FrontendOptions& options, proto::ExportCatalog& catalog) {
  impl_->options = options;
  if (options.nbd) {
#ifdef ARBOR_HAVE_NBD
    nbd::NbdServerOptions nbd_options;
    nbd_options.listen = options.nbd_listen;
    auto server = nbd::NbdServer::start(catalog, nbd_options);
    if (!server) {
      return Status(server.status().code(), "NBD: " + server.status().message() +
                                                " (move it with --nbd-listen, or --no-nbd)");
    }
    impl_->nbd = std::move(server).value();
    for (const auto& uri : impl_->nbd->endpoints()) {
      impl_->endpoints.push_back({"nbd", uri});
      const std::string unix_prefix = "nbd+unix:///?socket=";
      if (uri.rfind(unix_prefix, 0) == 0 && impl_->nbd_unix_socket.empty()) {
        impl_->nbd_unix_socket = uri.substr(unix_prefix.size());
      }
    }
#else
    impl_->notes.push_back("nbd: not built into this arbord");
#endif
  }
  if (options.nvme) {
#ifdef ARBOR_HAVE_NVME_TCP
    auto host_port = [](const std::string& a) { return a.rfind("tcp://", 0) == 0 ? a.substr(6) : a; };
    if (options.nvme_listen.rfind("unix://", 0) == 0) {
      return invalid_argument("NVMe/TCP listens on TCP only, not " + options.nvme_listen);
    }
    nvme_tcp::NvmeTcpOptions nvme_options;
    nvme_options.io_listen = host_port(options.nvme_listen);
    nvme_options.discovery_listen = host_port(options.nvme_discovery_listen);
    nvme_options.advertised_address = options.nvme_advertise;
    impl_->allow.list = options.allow;
    auto target = nvme_tcp::NvmeTcpTarget::start(catalog, impl_->allow, nvme_options);
    if (!target) {
      stop();
      return Status(target.status().code(), "NVMe/TCP: " + target.status().message() +
                                                " (move it with --nvme-listen, or --no-nvme)");
    }
    impl_->nvme = std::move(target).value();
    for (const auto& uri : impl_->nvme->endpoints()) {
      bool discovery = uri.find("/discovery") != std::string::npos;
      impl_->endpoints.push_back({discovery ? "nvme-tcp-discovery" : "nvme-tcp", uri});
    }
#else
    impl_->notes.push_back("nvme-tcp: not built into this arbord");
#endif
  }
  for (const auto& note : impl_->notes) spdlog::warn("{}", note);
  (void)catalog;
  return Status::ok();
}

void Frontends::stop() {
#ifdef ARBOR_HAVE_NVME_TCP
  if (impl_->nvme) impl_->nvme->stop();
  impl_->nvme.reset();
#endif
#ifdef ARBOR_HAVE_NBD
  if (impl_->nbd) impl_->nbd->stop();
  impl_->nbd.reset();
#endif
}

std::vector<Endpoint> Frontends::endpoints() const { return impl_->endpoints; }
std::string Frontends::nbd_unix_socket() const { return impl_->nbd_unix_socket; }
std::vector<std::string> Frontends::notes() const { return impl_->notes; }

FrontendStats Frontends::stats() const {
  FrontendStats s;
#ifdef ARBOR_HAVE_NBD
  if (impl_->nbd) {
    const nbd::NbdReadCounters& r = impl_->nbd->read_counters();
    s.nbd_connections = impl_->nbd->connection_count();
    s.nbd_reads_from_memory = r.from_memory.load(std::memory_order_relaxed);
    s.nbd_reads_on_ring = r.on_ring.load(std::memory_order_relaxed);
    s.nbd_reads_on_worker = r.on_worker.load(std::memory_order_relaxed);
  }
#endif
  return s;
}

}  // namespace arbor::daemon
