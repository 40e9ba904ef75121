// The socket side of the target, on the shared io_uring server (net/server.h): one Protocol per
// connection wrapping a Session, plus a timer thread that posts keep-alive ticks to every open
// connection's loop every 250 ms. All protocol decisions are in Session.
#include "proto/nvme_tcp/target.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "net/server.h"
#include "net/worker_pool.h"
#include "proto/nvme_tcp/session.h"

namespace arbor::nvme_tcp {

namespace {

uint64_t now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch()).count());
}

constexpr auto kTick = std::chrono::milliseconds(250);

// "HOST:PORT" -> "tcp://HOST:PORT" (IPv4 literal or localhost).
Result<std::string> tcp_uri(const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0) return invalid_argument("listen address '" + host_port + "' is not HOST:PORT");
  return "tcp://" + host_port;
}

}  // namespace

struct NvmeTcpTarget::Impl {
  TargetContext ctx;
  std::unique_ptr<net::WorkerPool> workers;  // Flush, FUA writes: calls that may block
  std::unique_ptr<net::Server> server;
  std::string io_host, disc_host;
  uint16_t io_port = 0, disc_port = 0;

  // Open connections, for the keep-alive timer.
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  struct Registered {
    std::weak_ptr<net::Connection> conn;
    void* protocol;  // NvmeProtocol, alive while the connection is open
  };
  std::map<uint64_t, Registered> conns;
  std::thread timer;
  bool stopped = false;

  void run_timer();
};

namespace {

class NvmeProtocol : public net::Protocol {
 public:
  NvmeProtocol(NvmeTcpTarget::Impl* impl, net::Connection& conn)
      : impl_(impl), conn_(conn), session_(impl->ctx, now_ms()) {
    session_.set_run_blocking([this](std::function<void()> work, std::function<void()> done) {
      // The task holds the connection (not the session) alive; post() skips `done` once it has
      // closed, and while it is open this protocol and its session are alive.
      impl_->workers->submit([conn = conn_.shared_from_this(), this, work = std::move(work),
                              done = std::move(done)]() mutable {
        work();
        conn->post([this, done = std::move(done)] {
          done();
          drain(conn_);
        });
      });
    });
  }

  void on_open(net::Connection& conn) override {
    // Runs complete on this loop; while the connection is open this protocol is alive.
    session_.set_read_file([this](const FileRead& f, std::function<void(const Status&)> done) {
      conn_.read_file(f, [this, done = std::move(done)](const Status& s) {
        done(s);
        drain(conn_);
      });
    });
    id_ = conn.id();
    std::lock_guard lock(impl_->mu);
    impl_->conns[id_] = {conn.weak_from_this(), this};
  }
  size_t on_receive(net::Connection& conn, std::span<const uint8_t> data, size_t* want_bytes) override {
    size_t used = session_.receive(data, now_ms(), want_bytes);
    drain(conn);
    return used;
  }
  void on_close() override {
    std::lock_guard lock(impl_->mu);
    impl_->conns.erase(id_);
  }
  // Loop thread (posted by the timer).
  void tick(net::Connection& conn) {
    session_.tick(now_ms());
    drain(conn);
  }

 private:
  void drain(net::Connection& conn) {
    for (auto& pdu : session_.take_output()) conn.send(std::move(pdu));
    if (session_.closing()) conn.close_after_send();
  }
  NvmeTcpTarget::Impl* impl_;
  net::Connection& conn_;
  Session session_;
  uint64_t id_ = 0;
};

}  // namespace

void NvmeTcpTarget::Impl::run_timer() {
  std::unique_lock lock(mu);
  while (!cv.wait_for(lock, kTick, [this] { return stopping; })) {
    std::vector<std::pair<std::shared_ptr<net::Connection>, void*>> live;
    for (auto& [id, r] : conns)
      if (auto c = r.conn.lock()) live.emplace_back(std::move(c), r.protocol);
    lock.unlock();
    for (auto& [c, protocol] : live) {
      net::Connection* conn = c.get();
      // Runs on the connection's loop, and only while it is open, so its protocol is alive.
      c->post([conn, p = static_cast<NvmeProtocol*>(protocol)] { p->tick(*conn); });
    }
    live.clear();
    lock.lock();
  }
}

NvmeTcpTarget::NvmeTcpTarget(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NvmeTcpTarget::~NvmeTcpTarget() { stop(); }

Result<std::unique_ptr<NvmeTcpTarget>> NvmeTcpTarget::start(proto::ExportCatalog& catalog, const HostAllowList& allow,
                                                            NvmeTcpOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->ctx.catalog = &catalog;
  impl->ctx.allow = &allow;
  impl->ctx.nqn_prefix = options.nqn_prefix;
  net::ServerOptions so;
  so.event_loops = std::max(1, options.event_loops);
  ASSIGN_OR_RETURN(std::string io_uri, tcp_uri(options.io_listen));
  so.listen.push_back(io_uri);
  if (!options.discovery_listen.empty()) {
    ASSIGN_OR_RETURN(std::string disc_uri, tcp_uri(options.discovery_listen));
    so.listen.push_back(disc_uri);
  }
  // The largest PDU plus slack: the server grows a receive buffer only to what a session asks for.
  so.initial_rx_bytes = size_t(64) << 10;
  Impl* raw = impl.get();
  impl->workers = std::make_unique<net::WorkerPool>(std::max(1, options.blocking_workers));
  auto server = net::Server::start(so, [raw](net::Connection& conn) { return std::make_unique<NvmeProtocol>(raw, conn); });
  if (!server.is_ok()) {
    impl->workers->stop();
    return server.status();
  }
  impl->server = std::move(server).value();
  const auto& bound = impl->server->bound();
  impl->io_host = bound[0].host;
  impl->io_port = bound[0].port;
  if (bound.size() > 1) {
    impl->disc_host = bound[1].host;
    impl->disc_port = bound[1].port;
  }
  impl->ctx.io_port.traddr = !options.advertised_address.empty() ? options.advertised_address
                             : impl->io_host == "0.0.0.0"          ? "127.0.0.1"
                                                                   : impl->io_host;
  impl->ctx.io_port.trsvcid = std::to_string(impl->io_port);
  impl->timer = std::thread([raw] { raw->run_timer(); });
  return std::unique_ptr<NvmeTcpTarget>(new NvmeTcpTarget(std::move(impl)));
}

void NvmeTcpTarget::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->timer.join();
  // Loops first (no new work is submitted; sessions release their controllers), then workers
  // (running calls finish; their answers are posted to stopped loops and dropped).
  impl_->server->stop();
  impl_->workers->stop();
}

std::vector<std::string> NvmeTcpTarget::endpoints() const {
  std::vector<std::string> out;
  out.push_back("nvme+tcp://" + impl_->io_host + ":" + std::to_string(impl_->io_port));
  if (impl_->disc_port) out.push_back("nvme+tcp://" + impl_->disc_host + ":" + std::to_string(impl_->disc_port) + "/discovery");
  return out;
}

uint16_t NvmeTcpTarget::io_port() const { return impl_->io_port; }
uint16_t NvmeTcpTarget::discovery_port() const { return impl_->disc_port; }
std::string NvmeTcpTarget::nqn_for(std::string_view export_name) const { return export_nqn(impl_->ctx.nqn_prefix, export_name); }
size_t NvmeTcpTarget::connection_count() const { return impl_->server->connection_count(); }

}  // namespace arbor::nvme_tcp
