#include "net/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <mutex>
#include <unordered_map>

#include "util/check.h"

namespace arbor::net {

namespace {

// user_data tags: pointers are at least 8-aligned, so the low 3 bits carry the operation kind.
enum Tag : uint64_t { kTagWake = 1, kTagAccept = 2, kTagRecv = 3, kTagSend = 4, kTagIgnore = 5, kTagFileRead = 6 };
constexpr uint64_t kTagMask = 7;
uint64_t tagged(const void* p, Tag t) { return reinterpret_cast<uint64_t>(p) | t; }

std::string format_peer(const sockaddr_storage& ss, socklen_t len, bool is_unix) {
  if (is_unix) return "unix";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "?";
}

}  // namespace

// One Connection::read_file in flight; owned by the ring until its last completion.
struct FileReadOp {
  std::shared_ptr<Connection> conn;
  FileRead file;
  size_t done = 0;
  std::function<void(const Status&)> callback;
};

struct Listener {
  int fd = -1;
  bool is_unix = false;
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(sockaddr_storage);
  bool accept_inflight = false;
};

class Loop {
 public:
  Loop(int index, const ServerOptions& options, ProtocolFactory factory)
      : index_(index), options_(options), factory_(std::move(factory)) {}
  ~Loop() {
    if (event_fd_ >= 0) ::close(event_fd_);
  }

  Status init() {
    event_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (event_fd_ < 0) return errno_status(errno, "eventfd");
    return Status::ok();
  }
  void set_peers(std::vector<Loop*> loops, std::vector<Listener*> listeners) {
    loops_ = std::move(loops);
    listeners_ = std::move(listeners);
  }
  // The ring is created on the loop's own thread: each thread owns its ring, and io_uring's task
  // work never lands on the caller's thread. Returns once the ring exists (or failed).
  Status start_thread() {
    std::promise<Status> ready;
    std::future<Status> result = ready.get_future();
    thread_ = std::thread([this, &ready] {
      // A completion queue far larger than the submission queue: file reads (many per request)
      // can have thousands in flight, and a full one makes the kernel refuse submissions.
      io_uring_params params{};
      params.flags = IORING_SETUP_CQSIZE;
      params.cq_entries = options_.completion_queue_entries;
      int rc = io_uring_queue_init_params(256, &ring_, &params);
      if (rc < 0) {
        ready.set_value(errno_status(-rc, "io_uring_queue_init"));
        return;
      }
      ring_ok_ = true;
      ready.set_value(Status::ok());
      run();
    });
    return result.get();
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Any thread.
  void post(std::function<void()> fn) {
    bool was_empty;
    {
      std::lock_guard lock(mu_);
      was_empty = posted_.empty();
      posted_.push_back(std::move(fn));
    }
    if (was_empty) {
      uint64_t one = 1;
      ssize_t n = ::write(event_fd_, &one, sizeof one);
      (void)n;  // eventfd write only fails on counter overflow, which cannot happen here
    }
  }
  void request_stop() {
    post([this] { begin_stop(); });
  }
  size_t connection_count() const { return conn_count_.load(std::memory_order_relaxed); }

  // Loop thread only, from here down.
  void mark_tx(Connection* c) {
    if (c->tx_pending_) return;
    c->tx_pending_ = true;
    tx_list_.push_back(c);
  }
  void mark_closing(Connection* c) { reap_list_.push_back(c); }

  // Too many reply bytes wait for this client: stop reading and parsing until it catches up.
  bool tx_full(const Connection* c) const { return c->tx_queued_bytes_ > options_.max_tx_queue_bytes; }

  void arm_recv(Connection* c) {
    if (c->recv_inflight_ || c->state_ != Connection::State::kOpen || c->paused_by_protocol_) return;
    if (tx_full(c)) return;  // on_send resumes
    size_t need = std::max<size_t>(c->rx_want_, 1);
    size_t have = c->rx_end_ - c->rx_begin_;
    if (c->rx_begin_ > 0 && (c->rx_end_ == c->rx_.size() || c->rx_.size() - c->rx_begin_ < need)) {
      std::memmove(c->rx_.data(), c->rx_.data() + c->rx_begin_, have);
      c->rx_begin_ = 0;
      c->rx_end_ = have;
    }
    if (c->rx_.size() - c->rx_begin_ < need) c->rx_.resize(c->rx_begin_ + need);
    // A protocol that consumed nothing must have asked for more than it has.
    ARBOR_CHECK(c->rx_end_ < c->rx_.size());
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_recv(sqe, c->fd_, c->rx_.data() + c->rx_end_, c->rx_.size() - c->rx_end_, 0);
    io_uring_sqe_set_data64(sqe, tagged(c, kTagRecv));
    c->recv_inflight_ = true;
  }

  void submit_file_read(FileReadOp* op) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, op->file.fd, op->file.into.data() + op->done, unsigned(op->file.into.size() - op->done),
                       op->file.offset + op->done);
    io_uring_sqe_set_data64(sqe, tagged(op, kTagFileRead));
  }
  void start_file_read(std::unique_ptr<FileReadOp> op) {
    file_reads_inflight_++;
    submit_file_read(op.release());
  }

  void cancel_ops(Connection* c) {
    if (c->recv_inflight_) cancel(tagged(c, kTagRecv));
    if (c->send_inflight_) cancel(tagged(c, kTagSend));
  }

  void add_connection(int fd, std::string peer) {
    if (stopping_) {
      ::close(fd);
      return;
    }
    auto conn = std::shared_ptr<Connection>(new Connection(this, fd, next_id_++, std::move(peer), options_.initial_rx_bytes));
    Connection* c = conn.get();
    conns_.emplace(c, conn);
    conn_count_.fetch_add(1, std::memory_order_relaxed);
    c->protocol_ = factory_(*c);
    c->protocol_->on_open(*c);
    if (c->state_ == Connection::State::kOpen) arm_recv(c);
  }

 private:
  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {  // submission queue full: hand what we have to the kernel
      if (io_uring_submit(&ring_) == -EBUSY) {
        // Completions the CQ had no room for wait in the kernel, and older kernels take no
        // submission until they are reaped (6.x keeps a backlog and goes on). Handlers must not
        // run here (we are inside one): set them aside.
        io_uring_get_events(&ring_);
        set_aside_completions();
      }
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }
  void set_aside_completions() {
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      set_aside_.push_back({io_uring_cqe_get_data64(cqe), cqe->res});
      seen++;
    }
    io_uring_cq_advance(&ring_, seen);
  }
  void handle_completion(uint64_t ud, int res) {
    void* p = reinterpret_cast<void*>(ud & ~kTagMask);
    switch (ud & kTagMask) {
      case kTagWake: arm_wake(); break;  // posted work runs at the top of the loop
      case kTagAccept: on_accept(static_cast<Listener*>(p), res); break;
      case kTagRecv: on_recv(static_cast<Connection*>(p), res); break;
      case kTagSend: on_send(static_cast<Connection*>(p), res); break;
      case kTagFileRead: on_file_read(static_cast<FileReadOp*>(p), res); break;
      default: break;
    }
  }
  void cancel(uint64_t user_data) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, kTagIgnore);
  }
  void arm_wake() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, event_fd_, &wake_buf_, sizeof wake_buf_, 0);
    io_uring_sqe_set_data64(sqe, tagged(this, kTagWake));
  }
  void arm_accept(Listener* l) {
    if (stopping_ || l->accept_inflight) return;
    l->peer_len = sizeof l->peer;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_accept(sqe, l->fd, reinterpret_cast<sockaddr*>(&l->peer), &l->peer_len, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tagged(l, kTagAccept));
    l->accept_inflight = true;
  }

  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    for (Listener* l : listeners_)
      if (l->accept_inflight) cancel(tagged(l, kTagAccept));
    for (auto& [c, conn] : conns_) c->begin_close();
  }

  void on_accept(Listener* l, int res) {
    l->accept_inflight = false;
    if (res >= 0) {
      int fd = res;
      if (!l->is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      std::string peer = format_peer(l->peer, l->peer_len, l->is_unix);
      Loop* target = loops_[next_loop_++ % loops_.size()];
      if (target == this) {
        add_connection(fd, std::move(peer));
      } else {
        target->post([target, fd, peer = std::move(peer)]() mutable { target->add_connection(fd, std::move(peer)); });
      }
    } else if (res != -ECANCELED && res != -EINTR && res != -ECONNABORTED) {
      std::fprintf(stderr, "arbor net: accept failed: %s\n", std::strerror(-res));
    }
    arm_accept(l);
  }

  void on_recv(Connection* c, int res) {
    c->recv_inflight_ = false;
    if (c->state_ != Connection::State::kOpen) return;  // draining or closing: input is ignored
    if (res == -EINTR || res == -EAGAIN) {
      arm_recv(c);
      return;
    }
    if (res <= 0) {  // 0: peer closed; <0: reset, cancelled
      c->begin_close();
      return;
    }
    c->rx_end_ += size_t(res);
    c->dispatch();
  }

  void on_send(Connection* c, int res) {
    c->send_inflight_ = false;
    if (res < 0 && (res == -EINTR || res == -EAGAIN)) res = 0;
    if (res < 0) {
      c->begin_close();
      return;
    }
    size_t left = size_t(res);
    c->tx_queued_bytes_ -= left;
    while (left > 0) {
      ARBOR_CHECK(!c->txq_.empty());
      size_t in_front = c->txq_.front().size() - c->tx_front_offset_;
      if (left >= in_front) {
        left -= in_front;
        c->txq_.pop_front();
        c->tx_front_offset_ = 0;
      } else {
        c->tx_front_offset_ += left;
        left = 0;
      }
    }
    if (c->state_ == Connection::State::kClosing) return;
    if (!c->txq_.empty()) {
      mark_tx(c);
    } else if (c->state_ == Connection::State::kDraining) {
      c->begin_close();
      return;
    }
    // Backpressure released: parse what is already buffered, then read more.
    if (c->state_ == Connection::State::kOpen && !tx_full(c) && !c->in_dispatch_ && c->rx_end_ > c->rx_begin_ && !c->recv_inflight_) {
      c->dispatch();
    } else {
      arm_recv(c);
    }
  }

  void on_file_read(FileReadOp* op, int res) {
    if (res == -EINTR || res == -EAGAIN) return submit_file_read(op);
    if (res > 0) {
      op->done += size_t(res);
      if (op->done < op->file.into.size()) return submit_file_read(op);  // short read: the rest
    }
    std::unique_ptr<FileReadOp> owned(op);
    file_reads_inflight_--;
    Status status;
    if (res < 0) {
      status = errno_status(-res, "read");
    } else if (res == 0) {  // past the end of the file: never-written bytes read as zeros
      std::memset(op->file.into.data() + op->done, 0, op->file.into.size() - op->done);
    }
    if (op->conn->state_ != Connection::State::kClosed) op->callback(status);
  }

  void flush_tx() {
    for (Connection* c : tx_list_) {
      c->tx_pending_ = false;
      if (c->send_inflight_ || c->txq_.empty()) continue;
      if (c->state_ != Connection::State::kOpen && c->state_ != Connection::State::kDraining) continue;
      int n = 0;
      size_t offset = c->tx_front_offset_;
      for (auto it = c->txq_.begin(); it != c->txq_.end() && n < Connection::kMaxIov; ++it, ++n) {
        c->iov_[n].iov_base = it->data() + offset;
        c->iov_[n].iov_len = it->size() - offset;
        offset = 0;
      }
      c->msg_ = msghdr{};
      c->msg_.msg_iov = c->iov_;
      c->msg_.msg_iovlen = size_t(n);
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_sendmsg(sqe, c->fd_, &c->msg_, MSG_NOSIGNAL);
      io_uring_sqe_set_data64(sqe, tagged(c, kTagSend));
      c->send_inflight_ = true;
    }
    tx_list_.clear();
  }

  void reap() {
    // Connections whose close began: finish once the kernel holds none of their buffers.
    std::vector<Connection*> keep;
    for (Connection* c : reap_list_) {
      if (c->recv_inflight_ || c->send_inflight_) {
        if (!c->cancel_issued_) {
          c->cancel_issued_ = true;
          cancel_ops(c);
        }
        keep.push_back(c);
        continue;
      }
      auto it = conns_.find(c);
      if (it == conns_.end()) continue;  // listed twice
      std::shared_ptr<Connection> conn = std::move(it->second);
      conns_.erase(it);
      ::close(c->fd_);
      c->fd_ = -1;
      c->state_ = Connection::State::kClosed;
      c->txq_.clear();
      c->tx_queued_bytes_ = 0;
      std::vector<uint8_t>().swap(c->rx_);
      conn_count_.fetch_sub(1, std::memory_order_relaxed);
      c->protocol_->on_close();
      // `conn` may be the last reference; posted closures keep others alive until they run.
    }
    reap_list_.swap(keep);
  }

  void run_posted() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(posted_);
    }
    for (auto& fn : batch) fn();
  }

  bool accepts_inflight() const {
    for (Listener* l : listeners_)
      if (l->accept_inflight) return true;
    return false;
  }

  void run() {
    arm_wake();
    for (Listener* l : listeners_) arm_accept(l);
    while (true) {
      run_posted();
      flush_tx();
      reap();
      // File reads write into buffers their callbacks own: wait for them, closed or not.
      if (stopping_ && conns_.empty() && !accepts_inflight() && file_reads_inflight_ == 0) break;
      // Completions set aside are waiting: hand over the submissions, but do not wait.
      int rc = set_aside_.empty() ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit(&ring_);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        std::fprintf(stderr, "arbor net: io_uring_submit_and_wait: %s\n", std::strerror(-rc));
      }
      // Older first: those set aside, then what the CQ holds (handled one by one, as a handler
      // may set more aside).
      std::vector<std::pair<uint64_t, int>> older;
      older.swap(set_aside_);
      for (auto [ud, res] : older) handle_completion(ud, res);
      io_uring_cqe* cqe;
      while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        handle_completion(ud, res);
      }
    }
    io_uring_queue_exit(&ring_);
    ring_ok_ = false;
  }

  int index_;
  ServerOptions options_;
  ProtocolFactory factory_;
  io_uring ring_{};
  bool ring_ok_ = false;
  int event_fd_ = -1;
  uint64_t wake_buf_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  std::vector<Loop*> loops_;
  std::vector<Listener*> listeners_;
  size_t next_loop_ = 0;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;
  std::vector<Connection*> tx_list_;
  std::vector<Connection*> reap_list_;
  std::atomic<size_t> conn_count_{0};
  size_t file_reads_inflight_ = 0;
  // Completions taken off a full CQ inside a handler (get_sqe), handled at the next turn.
  std::vector<std::pair<uint64_t, int>> set_aside_;

 public:
  std::vector<std::unique_ptr<Listener>> owned_listeners;
};

// ---- Connection ----

Connection::Connection(Loop* loop, int fd, uint64_t id, std::string peer, size_t rx_bytes)
    : loop_(loop), fd_(fd), id_(id), peer_(std::move(peer)), rx_(rx_bytes), rx_initial_(rx_bytes) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

void Connection::send(std::vector<uint8_t> bytes) {
  if (state_ != State::kOpen && state_ != State::kDraining) return;
  if (bytes.empty()) return;
  tx_queued_bytes_ += bytes.size();
  txq_.push_back(std::move(bytes));
  loop_->mark_tx(this);
}

void Connection::close_after_send() {
  if (state_ != State::kOpen) return;
  state_ = State::kDraining;
  if (txq_.empty() && !send_inflight_) begin_close();
}

void Connection::close_now() { begin_close(); }

void Connection::begin_close() {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  state_ = State::kClosing;
  ::shutdown(fd_, SHUT_RDWR);  // wakes a parked recv (returns 0) and fails a blocked send
  loop_->mark_closing(this);
}

void Connection::pause_receive(bool paused) {
  if (paused_by_protocol_ == paused) return;
  paused_by_protocol_ = paused;
  if (!paused && !in_dispatch_ && state_ == State::kOpen) dispatch();
}

void Connection::post(std::function<void()> fn) {
  loop_->post([self = shared_from_this(), fn = std::move(fn)] {
    if (self->state_ != State::kClosed) fn();
  });
}

void Connection::read_file(const FileRead& f, std::function<void(const Status&)> done) {
  if (state_ == State::kClosed) return;
  if (f.into.empty()) return done(Status::ok());
  auto op = std::make_unique<FileReadOp>();
  op->conn = shared_from_this();
  op->file = f;
  op->callback = std::move(done);
  loop_->start_file_read(std::move(op));
}

void Connection::dispatch() {
  in_dispatch_ = true;
  while (state_ == State::kOpen && !paused_by_protocol_ && rx_end_ > rx_begin_ && !loop_->tx_full(this)) {
    size_t want = 0;
    size_t n = protocol_->on_receive(*this, std::span<const uint8_t>(rx_.data() + rx_begin_, rx_end_ - rx_begin_), &want);
    ARBOR_CHECK(n <= rx_end_ - rx_begin_);
    rx_begin_ += n;
    rx_want_ = want;
    if (n == 0) break;
  }
  in_dispatch_ = false;
  if (rx_begin_ == rx_end_ && !recv_inflight_) {
    rx_begin_ = rx_end_ = 0;
    // Give back a buffer grown for one large message once it is consumed.
    if (rx_.size() > 4 * rx_initial_ && rx_want_ <= rx_initial_) std::vector<uint8_t>(rx_initial_).swap(rx_);
  }
  loop_->arm_recv(this);
}

// ---- Server ----

namespace {

Result<int> bind_listener(ListenAddress& a) {
  if (a.kind == ListenAddress::Kind::kUnix) {
    struct stat st;
    if (::lstat(a.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) return already_exists(a.path + " exists and is not a socket");
      // A socket file nobody listens on is left over from a dead process: replace it.
      int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::memcpy(sa.sun_path, a.path.c_str(), a.path.size());
      bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
      ::close(probe);
      if (live) return busy(a.path + " is in use by a live server");
      ::unlink(a.path.c_str());
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_status(errno, "socket");
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, a.path.c_str(), a.path.size());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(fd, 128) < 0) {
      Status s = errno_status(errno, "bind/listen " + a.uri());
      ::close(fd);
      return s;
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port = std::to_string(a.port);
  int rc = ::getaddrinfo(a.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return invalid_argument("cannot resolve " + a.host + ": " + gai_strerror(rc));
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return errno_status(errno, "socket");
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) < 0 || ::listen(fd, 128) < 0) {
    Status s = errno_status(errno, "bind/listen " + a.uri());
    ::freeaddrinfo(res);
    ::close(fd);
    return s;
  }
  ::freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) a.port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) a.port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return fd;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, ProtocolFactory factory) {
  if (options.event_loops < 1 || options.event_loops > 64) return invalid_argument("event_loops must be 1..64");
  if (options.listen.empty()) return invalid_argument("no listen addresses");
  std::unique_ptr<Server> s(new Server());
  for (const std::string& text : options.listen) {
    ASSIGN_OR_RETURN(ListenAddress a, parse_listen_address(text));
    Result<int> fd = bind_listener(a);
    if (!fd.is_ok()) {
      s->stop();
      return fd.status();
    }
    s->listen_fds_.push_back(*fd);
    s->bound_.push_back(a);
  }
  std::vector<Loop*> loops;
  for (int i = 0; i < options.event_loops; i++) {
    auto loop = std::make_unique<Loop>(i, options, factory);
    Status st = loop->init();
    if (!st.is_ok()) {
      s->stop();
      return st;
    }
    loops.push_back(loop.get());
    s->loops_.push_back(std::move(loop));
  }
  for (size_t i = 0; i < loops.size(); i++) {
    std::vector<Listener*> listeners;
    if (i == 0) {
      for (size_t j = 0; j < s->listen_fds_.size(); j++) {
        auto l = std::make_unique<Listener>();
        l->fd = s->listen_fds_[j];
        l->is_unix = s->bound_[j].kind == ListenAddress::Kind::kUnix;
        listeners.push_back(l.get());
        loops[0]->owned_listeners.push_back(std::move(l));
      }
    }
    loops[i]->set_peers(loops, std::move(listeners));
  }
  for (Loop* l : loops) {
    Status st = l->start_thread();
    if (!st.is_ok()) {
      s->stop();
      return st;
    }
  }
  return s;
}

Server::~Server() { stop(); }

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& l : loops_) l->request_stop();
  for (auto& l : loops_) l->join();
  for (int fd : listen_fds_) ::close(fd);
  for (const ListenAddress& a : bound_)
    if (a.kind == ListenAddress::Kind::kUnix) ::unlink(a.path.c_str());
  listen_fds_.clear();
  // Loops stay allocated until the Server is destroyed: a worker may still post to them.
}

size_t Server::connection_count() const {
  size_t n = 0;
  for (auto& l : loops_) n += l->connection_count();
  return n;
}

}  // namespace arbor::net
