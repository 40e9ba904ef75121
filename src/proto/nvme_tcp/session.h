// One NVMe/TCP connection (one queue pair), sans I/O: bytes in, PDUs out, BlockExport calls in
// between. The transport feeds whatever it received to receive(), sends every buffer take_output()
// returns in order, calls tick() now and then (keep-alive), and closes the socket once closing() is
// true and the output is drained. Unit tests and the fuzzer drive it the same way, without sockets.
//
// Connection life: ICReq -> ICResp (digests negotiated) -> Fabrics Connect (admin queue qid 0
// creates a controller; qid > 0 joins one) -> commands. Commands run to completion inside
// receive(): a write whose data is not in the capsule gets one R2T for all of it and runs when the
// last H2C Data PDU arrives. Responses go out in the order commands complete.
//
// Errors: a malformed PDU (wrong type for the state, bad HLEN/PLEN/PDO, data outside its command,
// header digest mismatch) gets a C2HTermReq with the spec's fatal error status and the connection
// closes. A malformed command gets an NVMe status and the connection stays up.
//
// Threading: one thread at a time (the connection's loop). Shared target state is in
// TargetContext, which locks for itself.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proto/nvme_tcp/nvme_wire.h"
#include "proto/nvme_tcp/subsystems.h"
#include "proto/run_planned_read.h"

namespace arbor::nvme_tcp {

class Session {
 public:
  Session(TargetContext& ctx, uint64_t now_ms);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Consumes whole PDUs from the front of `data` and returns how many bytes it consumed. Sets
  // *want_bytes (if given) to the full size of the next PDU when its header is in, else 8.
  // Stops consuming once closing().
  size_t receive(std::span<const uint8_t> data, uint64_t now_ms, size_t* want_bytes = nullptr);
  // PDUs produced since the last call, in send order.
  std::vector<std::vector<uint8_t>> take_output();
  // Keep-alive and controller liveness; may start closing.
  void tick(uint64_t now_ms);

  // Where calls that may block for long (Flush, FUA writes, the shutdown flush) run. `work` runs
  // on another thread and touches no session state; `done` must then run on this session's
  // thread, only while the session lives, after which the caller collects take_output(). Unset:
  // everything runs inline inside receive() (unit tests, the fuzzer).
  using RunBlocking = std::function<void(std::function<void()> work, std::function<void()> done)>;
  void set_run_blocking(RunBlocking run_blocking) { run_blocking_ = std::move(run_blocking); }
  // Where the file runs of a planned read (io/planned_read.h) are read without blocking this
  // thread (the event loop's io_uring); `done` runs as run_blocking's does. With it, a read that
  // misses the page cache waits on the ring, not on a worker.
  using ReadFile = proto::ReadFileFn;
  void set_read_file(ReadFile read_file) { read_file_ = std::move(read_file); }

  bool closing() const { return closing_; }
  const std::string& close_reason() const { return close_reason_; }
  // The largest PDU this session accepts (for the transport's receive buffer bound).
  size_t max_pdu_bytes() const;

  // Introspection for tests.
  bool connected() const { return qid_ >= 0; }
  int qid() const { return qid_; }
  bool header_digest() const { return hdgst_; }
  bool data_digest() const { return ddgst_; }
  const Controller* controller() const { return ctrl_.get(); }

 private:
  struct Completion {
    uint16_t status = kScSuccess;
    uint64_t result = 0;
    std::vector<uint8_t> data;  // controller-to-host data (sent before the response)
    bool deferred = false;      // no response now (AER)
    bool close_after = false;   // Disconnect
  };
  using Sqe = std::array<uint8_t, kSqeLen>;
  struct Transfer {  // a write waiting for H2C data after our R2T
    Sqe sqe{};
    std::vector<uint8_t> buf;
    uint32_t received = 0;
    bool digest_error = false;
  };

  // PDU layer (session.cc).
  void handle_pdu(std::span<const uint8_t> pdu);
  void handle_icreq(std::span<const uint8_t> pdu);
  void handle_capsule(std::span<const uint8_t> pdu);
  void handle_h2c_data(std::span<const uint8_t> pdu);
  void fatal(uint16_t fes, uint32_t fei, std::span<const uint8_t> pdu_header, std::string reason);
  void close(std::string reason);
  void emit(uint8_t type, uint8_t flags, std::span<const uint8_t> specific, std::span<const uint8_t> data);
  void send_response(const Sqe& sqe, const Completion& c);
  void send_c2h_data(uint16_t cid, std::span<const uint8_t> data);
  void send_r2t(uint16_t cid, uint16_t ttag, uint32_t offset, uint32_t length);
  void start_command(const Sqe& sqe, std::span<const uint8_t> in_capsule, bool data_digest_error);
  void finish_command(const Sqe& sqe, std::span<const uint8_t> host_data);

  // Commands (commands.cc).
  Completion execute(const Sqe& sqe, std::span<const uint8_t> host_data, uint32_t c2h_len);
  Completion fabrics(const Sqe& sqe, std::span<const uint8_t> host_data);
  Completion connect(const Sqe& sqe, std::span<const uint8_t> host_data);
  Completion property_get(const Sqe& sqe);
  Completion property_set(const Sqe& sqe);
  Completion admin(const Sqe& sqe, uint32_t c2h_len);
  Completion identify(const Sqe& sqe);
  Completion get_log_page(const Sqe& sqe, uint32_t c2h_len);
  Completion features(const Sqe& sqe, bool set);
  Completion io(const Sqe& sqe, std::span<const uint8_t> host_data);
  std::vector<uint8_t> identify_controller() const;
  std::vector<uint8_t> identify_namespace() const;
  std::vector<uint8_t> discovery_log() const;
  std::vector<uint8_t> smart_log() const;
  void release_controller();
  // Runs `call` inline or through run_blocking_, then answers `sqe` with its status.
  // `on_done` runs on the session's thread just before the response is queued; controller-to-host
  // data it puts in the completion goes out first (a read finished on a worker).
  Completion blocking_call(const Sqe& sqe, std::function<Status()> call, bool is_write,
                           std::function<void(Completion&)> on_done = {});
  // Reads the runs of `plan` through read_file_, then answers `sqe` as blocking_call does.
  Completion planned_read(const Sqe& sqe, std::unique_ptr<PlannedRead> plan, std::function<void(Completion&)> on_done);
  // The answer to a command whose call finished elsewhere (a worker, the ring).
  void answer_deferred(const Sqe& sqe, const Status& result, bool is_write, const std::function<void(Completion&)>& on_done);

  TargetContext& ctx_;
  uint64_t now_ms_ = 0;
  bool ic_done_ = false;
  bool hdgst_ = false, ddgst_ = false;
  uint32_t hpda_align_ = 4;  // host PDU data alignment in bytes
  bool closing_ = false;
  std::string close_reason_;
  std::vector<std::vector<uint8_t>> out_;

  int qid_ = -1;
  uint16_t sqsize_ = 0;  // 0's based
  uint16_t sqhd_ = 0;
  std::shared_ptr<Controller> ctrl_;
  uint64_t last_keep_alive_ms_ = 0;
  std::vector<uint16_t> pending_aers_;
  std::map<uint16_t, Transfer> transfers_;  // by ttag
  uint16_t next_ttag_ = 0;
  RunBlocking run_blocking_;
  ReadFile read_file_;
};

}  // namespace arbor::nvme_tcp
