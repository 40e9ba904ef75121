#include "proto/nbd/nbd_server.h"

#include <cstdio>

#include "net/server.h"
#include "net/worker_pool.h"
#include "proto/nbd/nbd_session.h"

namespace arbor::nbd {

namespace {

// Glue: one per connection, lives on the connection's loop.
class NbdProtocol : public net::Protocol, public NbdSessionHost {
 public:
  NbdProtocol(net::Connection& conn, proto::ExportCatalog& catalog, net::WorkerPool& workers, NbdSessionOptions options)
      : conn_(conn), workers_(workers), session_(catalog, *this, std::move(options)) {}

  // net::Protocol
  void on_open(net::Connection&) override { session_.start(); }
  size_t on_receive(net::Connection&, std::span<const uint8_t> data, size_t* want_bytes) override {
    return session_.on_data(data, want_bytes);
  }
  void on_close() override { session_.on_close(); }

  // NbdSessionHost
  void send(std::vector<uint8_t> bytes) override { conn_.send(std::move(bytes)); }
  void run_blocking(std::function<void()> work, std::function<void()> done) override {
    // The task holds the connection (not the session) alive; post() skips `done` once it closed.
    workers_.submit([conn = conn_.shared_from_this(), work = std::move(work), done = std::move(done)]() mutable {
      work();
      conn->post(std::move(done));
    });
  }
  void read_file(const FileRead& f, std::function<void(const Status&)> done) override {
    conn_.read_file(f, std::move(done));
  }
  void pause_receive(bool paused) override { conn_.pause_receive(paused); }
  void close(bool after_send) override {
    if (after_send) {
      conn_.close_after_send();
    } else {
      conn_.close_now();
    }
  }

 private:
  net::Connection& conn_;
  net::WorkerPool& workers_;
  NbdSession session_;
};

std::string nbd_uri(const net::ListenAddress& a) {
  if (a.kind == net::ListenAddress::Kind::kUnix) return "nbd+unix:///?socket=" + a.path;
  bool v6 = a.host.find(':') != std::string::npos;
  return "nbd://" + (v6 ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
}

}  // namespace

Result<std::unique_ptr<NbdServer>> NbdServer::start(proto::ExportCatalog& catalog, NbdServerOptions options) {
  if (options.blocking_workers < 1 || options.blocking_workers > 64) return invalid_argument("blocking_workers must be 1..64");
  std::unique_ptr<NbdServer> s(new NbdServer());
  s->workers_ = std::make_unique<net::WorkerPool>(options.blocking_workers);
  net::ServerOptions net_options;
  net_options.listen = options.listen;
  net_options.event_loops = options.event_loops;
  NbdSessionOptions session_options{options.default_export, options.offload_all_io, s->read_counters_.get()};
  net::WorkerPool* workers = s->workers_.get();
  auto factory = [&catalog, workers, session_options](net::Connection& conn) -> std::unique_ptr<net::Protocol> {
    return std::make_unique<NbdProtocol>(conn, catalog, *workers, session_options);
  };
  auto net = net::Server::start(std::move(net_options), std::move(factory));
  if (!net.is_ok()) {
    s->workers_->stop();
    return net.status();
  }
  s->net_ = std::move(net).value();
  return s;
}

NbdServer::~NbdServer() { stop(); }

void NbdServer::stop() {
  // Loops first (no new work is submitted), then workers (running calls finish; their replies are
  // posted to stopped loops and dropped). The loops stay allocated until net_ is destroyed.
  if (net_) net_->stop();
  if (workers_) workers_->stop();
}

std::vector<std::string> NbdServer::endpoints() const {
  std::vector<std::string> out;
  if (net_)
    for (const net::ListenAddress& a : net_->bound()) out.push_back(nbd_uri(a));
  return out;
}

size_t NbdServer::connection_count() const { return net_ ? net_->connection_count() : 0; }

}  // namespace arbor::nbd
