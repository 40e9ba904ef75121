// The socket side of the target: listeners, event loops, per-connection buffers. All protocol
// decisions are in Session.
#include "proto/nvme_tcp/target.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "proto/nvme_tcp/session.h"
#include "util/check.h"

namespace arbor::nvme_tcp {

namespace {

uint64_t now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch()).count());
}

constexpr size_t kMaxTxQueuedBytes = size_t(64) << 20;
constexpr int kTickMs = 250;

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

Result<HostPort> parse_host_port(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return invalid_argument("listen address '" + s + "' is not HOST:PORT");
  HostPort hp;
  hp.host = s.substr(0, colon);
  const std::string port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return invalid_argument("bad port in '" + s + "'");
  }
  hp.port = uint16_t(std::stoul(port));
  return hp;
}

Result<int> listen_on(const HostPort& hp, uint16_t* bound_port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(hp.port);
  if (inet_pton(AF_INET, hp.host.c_str(), &sa.sin_addr) != 1) return invalid_argument("not an IPv4 address: " + hp.host);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_status(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status(e, "bind/listen " + hp.host + ":" + std::to_string(hp.port));
  }
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *bound_port = ntohs(sa.sin_port);
  return fd;
}

struct Conn {
  int fd = -1;
  std::unique_ptr<Session> session;
  std::vector<uint8_t> rx;
  size_t rx_len = 0;
  std::deque<std::vector<uint8_t>> tx;
  size_t tx_front_off = 0;
  size_t tx_bytes = 0;
  uint32_t events = 0;
};

}  // namespace

class Loop {
 public:
  Loop(TargetContext& ctx, std::atomic<size_t>& conns) : ctx_(ctx), conns_(conns) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ARBOR_CHECK(ep_ >= 0 && wake_ >= 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev);
  }
  ~Loop() {
    for (auto& [fd, c] : conns_by_fd_) {
      ::close(fd);
      conns_.fetch_sub(1);
    }
    conns_by_fd_.clear();
    ::close(ep_);
    ::close(wake_);
  }
  void add_listener(int fd) {
    listeners_.push_back(fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }
  void set_peers(std::vector<Loop*> loops) { loops_ = std::move(loops); }
  // Any thread.
  void hand_over(int fd) {
    {
      std::lock_guard lock(mu_);
      incoming_.push_back(fd);
    }
    uint64_t one = 1;
    (void)!write(wake_, &one, sizeof(one));
  }
  void request_stop() {
    stop_.store(true);
    uint64_t one = 1;
    (void)!write(wake_, &one, sizeof(one));
  }
  void run() {
    uint64_t last_tick = now_ms();
    epoll_event evs[64];
    while (!stop_.load()) {
      int n = epoll_wait(ep_, evs, 64, kTickMs);
      for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == wake_) {
          uint64_t v;
          (void)!read(wake_, &v, sizeof(v));
          adopt_incoming();
        } else if (is_listener(fd)) {
          accept_all(fd);
        } else {
          auto it = conns_by_fd_.find(fd);
          if (it == conns_by_fd_.end()) continue;
          Conn& c = *it->second;
          bool alive = true;
          if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) alive = on_readable(c);
          if (alive && (evs[i].events & EPOLLOUT)) alive = flush(c);
          if (alive) alive = settle(c);
          if (!alive) drop(fd);
        }
      }
      uint64_t t = now_ms();
      if (t - last_tick >= uint64_t(kTickMs)) {
        last_tick = t;
        std::vector<int> dead;
        for (auto& [fd, c] : conns_by_fd_) {
          c->session->tick(t);
          pump_output(*c);
          if (!flush(*c) || !settle(*c)) dead.push_back(fd);
        }
        for (int fd : dead) drop(fd);
      }
    }
  }

 private:
  bool is_listener(int fd) const {
    for (int l : listeners_) if (l == fd) return true;
    return false;
  }
  void accept_all(int lfd) {
    for (;;) {
      int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or an error we retry on the next readiness
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      Loop* target = loops_[next_loop_++ % loops_.size()];
      target->hand_over(fd);
    }
  }
  void adopt_incoming() {
    std::vector<int> fds;
    {
      std::lock_guard lock(mu_);
      fds.assign(incoming_.begin(), incoming_.end());
      incoming_.clear();
    }
    for (int fd : fds) {
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      c->session = std::make_unique<Session>(ctx_, now_ms());
      c->rx.resize(64 << 10);
      c->events = EPOLLIN;
      epoll_event ev{};
      ev.events = c->events;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      conns_by_fd_[fd] = std::move(c);
      conns_.fetch_add(1);
    }
  }
  // Reads what is there, feeds the session. False: the peer is gone.
  bool on_readable(Conn& c) {
    for (int round = 0; round < 16; round++) {
      if (c.session->closing() || c.tx_bytes > kMaxTxQueuedBytes) return true;
      if (c.rx_len == c.rx.size()) c.rx.resize(std::min(c.rx.size() * 2, c.session->max_pdu_bytes() + 4096));
      ssize_t r = ::recv(c.fd, c.rx.data() + c.rx_len, c.rx.size() - c.rx_len, 0);
      if (r == 0) return false;
      if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.rx_len += size_t(r);
      size_t want = 0;
      size_t used = c.session->receive(std::span<const uint8_t>(c.rx.data(), c.rx_len), now_ms(), &want);
      std::memmove(c.rx.data(), c.rx.data() + used, c.rx_len - used);
      c.rx_len -= used;
      if (want > c.rx.size()) c.rx.resize(want);  // bounded by the session's max PDU size
      pump_output(c);
      if (!flush(c)) return false;
    }
    return true;
  }
  void pump_output(Conn& c) {
    for (auto& buf : c.session->take_output()) {
      c.tx_bytes += buf.size();
      c.tx.push_back(std::move(buf));
    }
  }
  // Writes what the socket takes. False: the peer is gone.
  bool flush(Conn& c) {
    while (!c.tx.empty()) {
      iovec iov[32];
      int n = 0;
      size_t off = c.tx_front_off;
      for (auto it = c.tx.begin(); it != c.tx.end() && n < 32; ++it, off = 0) {
        iov[n].iov_base = it->data() + off;
        iov[n].iov_len = it->size() - off;
        n++;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = size_t(n);
      ssize_t w = sendmsg(c.fd, &msg, MSG_NOSIGNAL);
      if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      size_t left = size_t(w);
      c.tx_bytes -= left;
      while (left > 0) {
        size_t front = c.tx.front().size() - c.tx_front_off;
        if (left >= front) {
          left -= front;
          c.tx.pop_front();
          c.tx_front_off = 0;
        } else {
          c.tx_front_off += left;
          left = 0;
        }
      }
    }
    return true;
  }
  // Updates epoll interest; false when the connection should go (session closed, output sent).
  bool settle(Conn& c) {
    if (c.session->closing() && c.tx.empty()) return false;
    uint32_t want = 0;
    if (!c.session->closing() && c.tx_bytes <= kMaxTxQueuedBytes) want |= EPOLLIN;
    if (!c.tx.empty()) want |= EPOLLOUT;
    if (want != c.events) {
      c.events = want;
      epoll_event ev{};
      ev.events = want;
      ev.data.fd = c.fd;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    }
    return true;
  }
  void drop(int fd) {
    auto it = conns_by_fd_.find(fd);
    if (it == conns_by_fd_.end()) return;
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_by_fd_.erase(it);  // Session destructor releases its controller / queue id
    conns_.fetch_sub(1);
  }

  TargetContext& ctx_;
  std::atomic<size_t>& conns_;
  int ep_ = -1, wake_ = -1;
  std::vector<int> listeners_;
  std::vector<Loop*> loops_;
  size_t next_loop_ = 0;
  std::mutex mu_;
  std::vector<int> incoming_;
  std::atomic<bool> stop_{false};
  std::unordered_map<int, std::unique_ptr<Conn>> conns_by_fd_;
};

struct NvmeTcpTarget::Impl {
  TargetContext ctx;
  std::string io_host, disc_host;
  uint16_t io_port = 0, disc_port = 0;
  std::vector<int> listen_fds;
  std::vector<std::unique_ptr<Loop>> loops;
  std::vector<std::thread> threads;
  std::atomic<size_t> conns{0};
  bool stopped = false;
};

NvmeTcpTarget::NvmeTcpTarget(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NvmeTcpTarget::~NvmeTcpTarget() { stop(); }

Result<std::unique_ptr<NvmeTcpTarget>> NvmeTcpTarget::start(proto::ExportCatalog& catalog, const HostAllowList& allow,
                                                            NvmeTcpOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->ctx.catalog = &catalog;
  impl->ctx.allow = &allow;
  impl->ctx.nqn_prefix = options.nqn_prefix;
  ASSIGN_OR_RETURN(HostPort io, parse_host_port(options.io_listen));
  ASSIGN_OR_RETURN(int io_fd, listen_on(io, &impl->io_port));
  impl->listen_fds.push_back(io_fd);
  impl->io_host = io.host;
  if (!options.discovery_listen.empty()) {
    auto disc = parse_host_port(options.discovery_listen);
    Result<int> fd = disc.is_ok() ? listen_on(*disc, &impl->disc_port) : Result<int>(disc.status());
    if (!fd.is_ok()) {
      for (int l : impl->listen_fds) ::close(l);
      return fd.status();
    }
    impl->listen_fds.push_back(*fd);
    impl->disc_host = disc->host;
  }
  impl->ctx.io_port.traddr = !options.advertised_address.empty() ? options.advertised_address
                             : io.host == "0.0.0.0"                ? "127.0.0.1"
                                                                   : io.host;
  impl->ctx.io_port.trsvcid = std::to_string(impl->io_port);
  const int n = std::max(1, options.event_loops);
  std::vector<Loop*> peers;
  for (int i = 0; i < n; i++) {
    impl->loops.push_back(std::make_unique<Loop>(impl->ctx, impl->conns));
    peers.push_back(impl->loops.back().get());
  }
  for (int l : impl->listen_fds) impl->loops[0]->add_listener(l);
  impl->loops[0]->set_peers(peers);
  for (auto& loop : impl->loops) impl->threads.emplace_back([l = loop.get()] { l->run(); });
  return std::unique_ptr<NvmeTcpTarget>(new NvmeTcpTarget(std::move(impl)));
}

void NvmeTcpTarget::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  for (auto& l : impl_->loops) l->request_stop();
  for (auto& t : impl_->threads) t.join();
  impl_->loops.clear();  // closes every connection; sessions release their controllers
  for (int fd : impl_->listen_fds) ::close(fd);
  impl_->listen_fds.clear();
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
size_t NvmeTcpTarget::connection_count() const { return impl_->conns.load(); }

}  // namespace arbor::nvme_tcp
