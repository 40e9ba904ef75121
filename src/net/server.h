// A small io_uring TCP + unix-socket server that protocol servers (NBD, later NVMe/TCP) plug into.
//
// Shape: a fixed number of event loops, each a thread that owns one io_uring. Loop 0 also accepts
// on every listener and hands new connections round-robin to the loops. A connection lives on one
// loop for its whole life: its Protocol is called only on that loop's thread, so protocol state
// needs no locks. Receives and sends are completion-driven (one recv and at most one gathered
// sendmsg in flight per connection); an idle connection has one recv parked in the kernel and
// costs no CPU. No busy polling. A protocol may also read files on the loop's ring (read_file):
// a buffered read of a page not in the cache completes later, without a thread waiting for it.
//
// Threading contract:
//   - Protocol methods and Connection methods run on the connection's loop thread, except
//     Connection::post(), which any thread may call (a worker hands a result back with it).
//   - Server::start/stop/endpoints are called by the owner thread.
//
// Bounds: the receive buffer grows only to what the protocol says its next message needs
// (`want_bytes`, which the protocol must bound before asking); reading pauses while more than
// `max_tx_queue_bytes` of replies wait to be sent, so a client that never reads cannot grow us.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <sys/uio.h>
#include <sys/socket.h>

#include "io/planned_read.h"
#include "net/listen_address.h"
#include "util/status.h"

namespace arbor::net {

class Loop;
class Connection;

// One connection's protocol state machine. Owned by its Connection.
class Protocol {
 public:
  virtual ~Protocol() = default;
  // The connection is up (send a greeting here if the protocol has one).
  virtual void on_open(Connection& conn) = 0;
  // `data` is every received byte not yet consumed. Return how many bytes were consumed (whole
  // messages only); set `*want_bytes` to the size of the next message counted from the first
  // unconsumed byte (0 if unknown/small) so the buffer can be sized for it. `data` is only valid
  // during the call: copy what must outlive it.
  virtual size_t on_receive(Connection& conn, std::span<const uint8_t> data, size_t* want_bytes) = 0;
  // The connection is closed (socket gone). Called exactly once; no more calls follow.
  virtual void on_close() = 0;
};

using ProtocolFactory = std::function<std::unique_ptr<Protocol>(Connection&)>;

struct ServerOptions {
  std::vector<std::string> listen;  // "tcp://127.0.0.1:10809", "unix:///path/x.sock"
  int event_loops = 2;
  size_t max_tx_queue_bytes = size_t(64) << 20;  // reading pauses above this much unsent reply data
  size_t initial_rx_bytes = size_t(64) << 10;
  // Per loop. Far more than the 256 submission entries: file reads can have thousands in flight.
  // A full queue is survived (completions are set aside), but costs kernel allocations.
  unsigned completion_queue_entries = 16384;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  ~Connection();
  // Loop thread only. Queues bytes; they go out in order. Dropped if the connection is closing.
  void send(std::vector<uint8_t> bytes);
  // Loop thread only. Stop reading; close once every queued byte has been sent.
  void close_after_send();
  // Loop thread only. Hard close now; queued bytes are dropped.
  void close_now();
  // Loop thread only. Stop (true) or resume (false) delivering received bytes to the protocol.
  void pause_receive(bool paused);
  // Any thread. Runs `fn` on this connection's loop, unless the connection has closed by then.
  void post(std::function<void()> fn);
  // Loop thread only. Reads f.into.size() bytes of f.fd at f.offset (zeros past the end of the
  // file) on this loop's ring, then calls `done` on the loop, unless the connection has closed by
  // then; `done` is destroyed either way, so it may own the buffer and whatever keeps f.fd open.
  // The loop does not stop while a file read is in flight.
  void read_file(const FileRead& f, std::function<void(const Status&)> done);

  bool is_open() const { return state_ == State::kOpen; }
  const std::string& peer() const { return peer_; }
  uint64_t id() const { return id_; }

 private:
  friend class Loop;
  enum class State { kOpen, kDraining, kClosing, kClosed };
  Connection(Loop* loop, int fd, uint64_t id, std::string peer, size_t rx_bytes);

  void dispatch();
  void begin_close();

  Loop* loop_;
  int fd_;
  uint64_t id_;
  std::string peer_;
  State state_ = State::kOpen;
  std::unique_ptr<Protocol> protocol_;

  std::vector<uint8_t> rx_;
  size_t rx_begin_ = 0, rx_end_ = 0, rx_want_ = 0, rx_initial_ = 0;
  bool recv_inflight_ = false;
  bool paused_by_protocol_ = false;
  bool in_dispatch_ = false;

  std::deque<std::vector<uint8_t>> txq_;
  size_t tx_front_offset_ = 0;
  size_t tx_queued_bytes_ = 0;
  bool send_inflight_ = false;
  bool tx_pending_ = false;  // on the loop's list of connections to arm a send for
  static constexpr int kMaxIov = 64;
  iovec iov_[kMaxIov];
  msghdr msg_{};
  bool cancel_issued_ = false;
};

class Server {
 public:
  // Binds every listen address (failing as a whole if any cannot be bound), then starts the loops.
  static Result<std::unique_ptr<Server>> start(ServerOptions options, ProtocolFactory factory);
  ~Server();
  // Stops accepting, hard-closes every connection (Protocol::on_close runs on its loop), joins the
  // loops, removes unix socket files. Idempotent.
  void stop();
  // The bound addresses (a tcp port 0 replaced by the real port).
  const std::vector<ListenAddress>& bound() const { return bound_; }
  // Connections currently open across all loops (for tests and status).
  size_t connection_count() const;

 private:
  Server() = default;
  std::vector<ListenAddress> bound_;
  std::vector<int> listen_fds_;
  std::vector<std::unique_ptr<Loop>> loops_;
  bool stopped_ = false;
};

}  // namespace arbor::net
