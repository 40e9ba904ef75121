// One NBD connection's protocol state machine: fixed newstyle handshake, option haggling, then
// the transmission phase. Transport-free: bytes come in through on_data(), replies leave through
// NbdSessionHost::send(), so unit tests drive it with hand-built byte sequences.
//
// Threading: all methods, and every callback the host makes back into the session (the `done`
// half of run_blocking), run on one thread (the connection's event loop).
//
// Invariants:
//   - Nothing is allocated from a length the client sent before the length is checked against a
//     bound (kMaxOptionBytes, kMaxPayloadBytes); oversize write payloads are skipped, not buffered.
//   - Every request gets exactly one reply (NBD_CMD_DISC excepted), possibly out of order.
//   - At most kMaxInflight requests run on workers or wait for file reads at once; input pauses
//     beyond that.
//   - A protocol violation that leaves the byte stream unparseable (bad magic, unknown client
//     flags) closes this connection only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proto/block_export.h"
#include "proto/nbd/nbd_wire.h"

namespace arbor::nbd {

class NbdSessionHost {
 public:
  virtual ~NbdSessionHost() = default;
  virtual void send(std::vector<uint8_t> bytes) = 0;
  // Runs `work` where it may block (a worker thread), then `done` back on the session's thread.
  // `done` is not called if the connection has closed meanwhile.
  virtual void run_blocking(std::function<void()> work, std::function<void()> done) = 0;
  // Reads a file run of a planned read (io/planned_read.h) without blocking this thread (on the
  // event loop's io_uring), then calls `done` on the session's thread; `done` is not called if
  // the connection has closed meanwhile, but it is destroyed either way.
  virtual void read_file(const FileRead& f, std::function<void(const Status&)> done) = 0;
  virtual void pause_receive(bool paused) = 0;
  // after_send: close once queued replies are out (soft); otherwise drop the connection now.
  virtual void close(bool after_send) = 0;
};

// How READ commands were served, across sessions (any thread may read them).
struct NbdReadCounters {
  std::atomic<uint64_t> from_memory{0};  // inline on the loop: page cache, write buffer, holes
  std::atomic<uint64_t> on_ring{0};      // a miss, planned and read on the loop's io_uring
  std::atomic<uint64_t> on_worker{0};    // would have waited even to plan, or offload_all_io
};

struct NbdSessionOptions {
  // Export used when the client asks for the empty name ""; empty means none.
  std::string default_export;
  // Run every data command (not only flush and FUA) on the blocking pool: for stores whose reads
  // and writes may block on a device. The memory catalog is faster inline.
  bool offload_all_io = false;
  // Counted into when set (shared by every session of a server).
  NbdReadCounters* read_counters = nullptr;
};

class NbdSession {
 public:
  static constexpr int kMaxInflight = 128;

  NbdSession(proto::ExportCatalog& catalog, NbdSessionHost& host, NbdSessionOptions options);
  ~NbdSession();
  // Sends the server greeting.
  void start();
  // Consumes whole messages from `in`; returns bytes consumed. `*want_bytes` is the size of the
  // next message (bounded by kMaxPayloadBytes + header), or 0 when unknown.
  size_t on_data(std::span<const uint8_t> in, size_t* want_bytes);
  // The transport is gone.
  void on_close();

  bool in_transmission() const { return phase_ == Phase::kTransmission; }
  bool structured_replies() const { return structured_; }
  int inflight() const { return inflight_; }

 private:
  enum class Phase { kClientFlags, kOptions, kTransmission, kDiscard, kClosed };

  // Handshake.
  void handle_option(uint32_t option, std::span<const uint8_t> data);
  void option_reply(uint32_t option, uint32_t type, std::span<const uint8_t> data = {});
  void option_error(uint32_t option, uint32_t type, const std::string& message);
  void handle_info_or_go(uint32_t option, std::span<const uint8_t> data);
  void handle_export_name(std::span<const uint8_t> data);
  void handle_list(std::span<const uint8_t> data);
  Result<std::shared_ptr<proto::BlockExport>> open_export(const std::string& name);
  uint16_t transmission_flags(const proto::BlockExport& e) const;

  // Transmission.
  struct Request {
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t length;
  };
  size_t handle_request(std::span<const uint8_t> in, size_t* want_bytes);
  void do_read(const Request& r);
  void read_planned(std::unique_ptr<PlannedRead> plan, std::function<void(const Status&)> reply);
  void count(std::atomic<uint64_t> NbdReadCounters::*which);
  void do_write(const Request& r, std::span<const uint8_t> payload);
  void do_flush(const Request& r);
  void do_trim_or_zeroes(const Request& r);
  void reply_simple(uint64_t cookie, uint32_t error);
  void reply_error(const Request& r, uint32_t error, const std::string& message);
  void run(std::function<Status()> work, std::function<void(const Status&)> reply, bool blocking);
  void begin_one();
  void finish_one();
  void fail(const std::string& why);
  static uint32_t nbd_error(const Status& s);

  proto::ExportCatalog& catalog_;
  NbdSessionHost& host_;
  NbdSessionOptions options_;
  Phase phase_ = Phase::kClientFlags;
  bool no_zeroes_ = false;
  bool structured_ = false;
  bool disconnecting_ = false;
  bool paused_ = false;
  int inflight_ = 0;
  std::shared_ptr<proto::BlockExport> export_;
  uint64_t size_bytes_ = 0;
  bool read_only_ = false;
  // kDiscard: bytes of an oversize write payload still to skip, then this reply.
  uint64_t discard_left_ = 0;
  Request discard_request_{};
  // Shared with `done` callbacks so they can tell the session has gone.
  std::shared_ptr<bool> alive_;
};

}  // namespace arbor::nbd
