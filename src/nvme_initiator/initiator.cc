#include "nvme_initiator/initiator.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "proto/nvme_tcp/nvme_wire.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor::nvme_initiator {

using namespace arbor::nvme_tcp;

namespace {

constexpr uint32_t kMaxPduBytes = (1u << 20) + 4096;  // largest PDU we accept from a target
constexpr uint8_t kSglTransportNull = kSglTransportDataBlock;  // length 0: no data

}  // namespace

std::string status_text(uint16_t status) {
  const char* name = "";
  switch (status) {
    case kScSuccess: name = "Success"; break;
    case kScInvalidOpcode: name = "Invalid Opcode"; break;
    case kScInvalidField: name = "Invalid Field"; break;
    case kScInvalidNs: name = "Invalid Namespace"; break;
    case kScCmdSeqError: name = "Command Sequence Error"; break;
    case kScNsWriteProtected: name = "Namespace Write Protected"; break;
    case kScLbaRange: name = "LBA Out of Range"; break;
    case kScConnectInvalidHost: name = "Connect Invalid Host"; break;
    case kScConnectInvalidParam: name = "Connect Invalid Parameters"; break;
    default: name = "?"; break;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "status 0x%03x (%s)", status, name);
  return buf;
}

// One NVMe/TCP connection: one submission/completion queue pair.
class Queue {
 public:
  ~Queue() {
    if (fd_ >= 0) ::close(fd_);
  }

  static Result<std::unique_ptr<Queue>> open(const ConnectOptions& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(o.port);
    int rc = getaddrinfo(o.address.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return invalid_argument("cannot resolve " + o.address + ": " + gai_strerror(rc));
    int fd = -1, err = 0;
    for (addrinfo* a = res; a; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
      err = errno;
      ::close(fd);
      fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return io_error("cannot connect to " + o.address + ":" + port + ": " + std::strerror(err));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::unique_ptr<Queue> q(new Queue());
    q->fd_ = fd;
    RETURN_IF_ERROR(q->handshake(o));
    return q;
  }

  // Sends a command capsule. `in_capsule` data goes inside it; otherwise `write_buf` is sent on
  // R2T and `read_buf` filled by C2H data.
  Status submit(uint8_t sqe[kSqeLen], uint64_t tag, uint8_t* read_buf, const uint8_t* write_buf,
                uint32_t len, bool in_capsule) {
    if (!error_.is_ok()) return error_;
    if (inflight_.size() >= 0xFFFF) return busy("queue full");
    uint16_t cid = next_cid_++;
    while (inflight_.count(cid)) cid = next_cid_++;
    put_u16(&sqe[kSqeCid], cid);
    inflight_[cid] = Cmd{tag, read_buf, write_buf, len};
    std::vector<uint8_t> specific(sqe, sqe + kSqeLen);
    if (in_capsule) {
      Status st = send_pdu(kCapsuleCmd, 0, specific, write_buf, len);
      if (!st.is_ok()) return fail(st);
    } else {
      Status st = send_pdu(kCapsuleCmd, 0, specific, nullptr, 0);
      if (!st.is_ok()) return fail(st);
    }
    return Status::ok();
  }

  // Reads PDUs until at least one command completes.
  Status wait(std::vector<Completion>& out, uint64_t* result = nullptr) {
    const size_t before = out.size();
    while (out.size() == before) {
      if (!error_.is_ok()) return error_;
      if (inflight_.empty()) return internal_error("wait with nothing outstanding");
      Status st = receive_one(out, result);
      if (!st.is_ok()) return fail(st);
    }
    return Status::ok();
  }

  // Submit and wait for this one command (nothing else outstanding).
  Result<uint64_t> run(uint8_t sqe[kSqeLen], uint8_t* read_buf, const uint8_t* write_buf, uint32_t len,
                       bool in_capsule, uint16_t* status_out = nullptr) {
    if (!inflight_.empty()) return busy("synchronous command while asynchronous ones are outstanding");
    RETURN_IF_ERROR(submit(sqe, 0, read_buf, write_buf, len, in_capsule));
    std::vector<Completion> done;
    uint64_t result = 0;
    RETURN_IF_ERROR(wait(done, &result));
    if (status_out) *status_out = done[0].status;
    if (!done[0].ok()) return io_error(status_text(done[0].status));
    return result;
  }

  size_t outstanding() const { return inflight_.size(); }
  uint32_t max_h2c() const { return max_h2c_bytes_; }

 private:
  struct Cmd {
    uint64_t tag = 0;
    uint8_t* read_buf = nullptr;
    const uint8_t* write_buf = nullptr;
    uint32_t len = 0;
    uint32_t received = 0;
  };

  Queue() : inbuf_(size_t(256) << 10) {}

  Status fail(const Status& st) {
    if (error_.is_ok()) error_ = st;
    return st;
  }

  Status send_all(const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return io_error(std::string("send: ") + std::strerror(errno));
      p += w;
      n -= size_t(w);
    }
    return Status::ok();
  }

  // Reads through a buffer: one recv() takes whatever has arrived, often several PDUs (a C2H data
  // PDU and its response; at depth 32, many completions), instead of two recv() per PDU.
  Status recv_all(uint8_t* p, size_t n) {
    while (n > 0) {
      if (in_begin_ == in_end_) {
        in_begin_ = in_end_ = 0;
        ssize_t r = ::recv(fd_, inbuf_.data(), inbuf_.size(), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return io_error("the target closed the connection");
        if (r < 0) return io_error(std::string("recv: ") + std::strerror(errno));
        in_end_ = size_t(r);
      }
      size_t take = std::min(n, in_end_ - in_begin_);
      std::memcpy(p, inbuf_.data() + in_begin_, take);
      in_begin_ += take;
      p += take;
      n -= take;
    }
    return Status::ok();
  }

  // Common header + type-specific header (+ header digest) (+ data + data digest), PDO right
  // after the header (we ask for no data alignment and the targets give CPDA 0).
  Status send_pdu(uint8_t type, uint8_t flags, const std::vector<uint8_t>& specific, const uint8_t* data,
                  uint32_t len) {
    const uint32_t hlen = kChLen + uint32_t(specific.size());
    const uint32_t hd = hdgst_ ? kDigestLen : 0;
    const uint32_t dd = (ddgst_ && len > 0) ? kDigestLen : 0;
    const uint32_t pdo = len ? align_data(hlen + hd) : 0;
    const uint32_t plen = len ? pdo + len + dd : hlen + hd;
    buf_.assign(plen, 0);
    buf_[kChType] = type;
    buf_[kChFlags] = uint8_t(flags | (hd ? kFlagHdgst : 0) | (dd ? kFlagDdgst : 0));
    buf_[kChHlen] = uint8_t(hlen);
    buf_[kChPdo] = uint8_t(pdo);
    put_u32(&buf_[kChPlen], plen);
    std::memcpy(&buf_[kChLen], specific.data(), specific.size());
    if (hd) put_u32(&buf_[hlen], crc32c(buf_.data(), hlen));
    if (len) {
      std::memcpy(&buf_[pdo], data, len);
      if (dd) put_u32(&buf_[pdo + len], crc32c(data, len));
    }
    return send_all(buf_.data(), buf_.size());
  }

  uint32_t align_data(uint32_t off) const { return (off + cpda_align_ - 1) / cpda_align_ * cpda_align_; }

  Status handshake(const ConnectOptions& o) {
    std::vector<uint8_t> ic(kIcReqLen - kChLen, 0);
    // PFV 0, HPDA 0, digests asked for, MAXR2T 0 (one outstanding R2T per command).
    ic[kIcDigest - kChLen] = uint8_t((o.header_digest ? kDigestHeader : 0) | (o.data_digest ? kDigestData : 0));
    RETURN_IF_ERROR(send_pdu(kIcReq, 0, ic, nullptr, 0));
    uint8_t resp[kIcRespLen];
    RETURN_IF_ERROR(recv_all(resp, kIcRespLen));
    if (resp[kChType] != kIcResp || resp[kChHlen] != kIcRespLen || get_u32(&resp[kChPlen]) != kIcRespLen) {
      return io_error("bad ICResp (type " + std::to_string(resp[kChType]) + ")");
    }
    if (get_u16(&resp[kIcPfv]) != 0) return io_error("ICResp: unsupported PDU format version");
    cpda_align_ = (uint32_t(resp[kIcPda]) + 1) * 4;
    hdgst_ = resp[kIcDigest] & kDigestHeader;
    ddgst_ = resp[kIcDigest] & kDigestData;
    max_h2c_bytes_ = get_u32(&resp[kIcMaxh2cdata]);
    if (max_h2c_bytes_ < 4096) return io_error("ICResp: MAXH2CDATA " + std::to_string(max_h2c_bytes_) + " below 4096");
    if (o.header_digest != hdgst_ || o.data_digest != ddgst_) {
      return not_supported("the target did not grant the digests asked for");
    }
    return Status::ok();
  }

  Status receive_one(std::vector<Completion>& out, uint64_t* result) {
    uint8_t ch[kChLen];
    RETURN_IF_ERROR(recv_all(ch, kChLen));
    const uint8_t type = ch[kChType], flags = ch[kChFlags], hlen = ch[kChHlen], pdo = ch[kChPdo];
    const uint32_t plen = get_u32(&ch[kChPlen]);
    if (plen < hlen || hlen < kChLen || plen > kMaxPduBytes) {
      return io_error("bad PDU from the target: type " + std::to_string(type) + " hlen " + std::to_string(hlen) +
                      " plen " + std::to_string(plen));
    }
    rbuf_.resize(plen);
    std::memcpy(rbuf_.data(), ch, kChLen);
    RETURN_IF_ERROR(recv_all(rbuf_.data() + kChLen, plen - kChLen));
    const uint32_t hd = (flags & kFlagHdgst) ? kDigestLen : 0;
    if (hd && get_u32(&rbuf_[hlen]) != crc32c(rbuf_.data(), hlen)) return corruption("header digest mismatch from the target");
    const uint8_t* p = rbuf_.data();
    switch (type) {
      case kCapsuleResp: {
        if (hlen != kRespHlen) return io_error("bad CapsuleResp hlen");
        const uint8_t* cqe = p + kChLen;
        const uint16_t cid = get_u16(&cqe[kCqeCid]);
        auto it = inflight_.find(cid);
        if (it == inflight_.end()) return io_error("completion for unknown command id " + std::to_string(cid));
        if (result) *result = get_u64(&cqe[kCqeResult]);
        out.push_back(Completion{it->second.tag, uint16_t((get_u16(&cqe[kCqeStatus]) >> 1) & 0x7FF)});
        inflight_.erase(it);
        return Status::ok();
      }
      case kC2HData: {
        if (hlen != kDataHlen) return io_error("bad C2HData hlen");
        const uint16_t cid = get_u16(&p[kDataCccid]);
        const uint32_t off = get_u32(&p[kDataOffset]), len = get_u32(&p[kDataLength]);
        const uint32_t dd = (flags & kFlagDdgst) ? kDigestLen : 0;
        auto it = inflight_.find(cid);
        if (it == inflight_.end() || !it->second.read_buf) return io_error("C2HData for unknown command id " + std::to_string(cid));
        if (uint64_t(off) + len > it->second.len || uint64_t(pdo) + len + dd != plen || pdo < hlen + hd) {
          return io_error("C2HData outside its command");
        }
        if (dd && get_u32(&p[pdo + len]) != crc32c(p + pdo, len)) return corruption("data digest mismatch from the target");
        std::memcpy(it->second.read_buf + off, p + pdo, len);
        it->second.received += len;
        if (flags & kFlagDataSuccess) {  // no CapsuleResp follows
          out.push_back(Completion{it->second.tag, 0});
          inflight_.erase(it);
        }
        return Status::ok();
      }
      case kR2T: {
        if (hlen != kR2THlen) return io_error("bad R2T hlen");
        const uint16_t cid = get_u16(&p[kDataCccid]), ttag = get_u16(&p[kDataTtag]);
        const uint32_t off = get_u32(&p[kDataOffset]), len = get_u32(&p[kDataLength]);
        auto it = inflight_.find(cid);
        if (it == inflight_.end() || !it->second.write_buf) return io_error("R2T for unknown command id " + std::to_string(cid));
        if (uint64_t(off) + len > it->second.len || len == 0) return io_error("R2T outside its command");
        for (uint32_t done = 0; done < len;) {
          const uint32_t n = std::min(len - done, max_h2c_bytes_);
          std::vector<uint8_t> h(kDataHlen - kChLen, 0);
          put_u16(&h[kDataCccid - kChLen], cid);
          put_u16(&h[kDataTtag - kChLen], ttag);
          put_u32(&h[kDataOffset - kChLen], off + done);
          put_u32(&h[kDataLength - kChLen], n);
          RETURN_IF_ERROR(send_pdu(kH2CData, done + n == len ? kFlagDataLast : 0, h, it->second.write_buf + off + done, n));
          done += n;
        }
        return Status::ok();
      }
      case kC2HTermReq:
        return io_error("the target terminated the connection (FES " + std::to_string(get_u16(&p[kTermFes])) + ")");
      default:
        return io_error("unexpected PDU type " + std::to_string(type) + " from the target");
    }
  }

  int fd_ = -1;
  std::vector<uint8_t> inbuf_;
  size_t in_begin_ = 0, in_end_ = 0;
  bool hdgst_ = false, ddgst_ = false;
  uint32_t cpda_align_ = 4;
  uint32_t max_h2c_bytes_ = 0;
  uint16_t next_cid_ = 1;
  std::map<uint16_t, Cmd> inflight_;
  std::vector<uint8_t> buf_, rbuf_;
  Status error_;
};

namespace {

void sqe_init(uint8_t* sqe, uint8_t opcode) {
  std::memset(sqe, 0, kSqeLen);
  sqe[kSqeOpcode] = opcode;
  sqe[kSqeFlags] = 0x40;  // PSDT: SGL for data transfer (fabrics always use SGLs)
}
void sqe_sgl(uint8_t* sqe, uint32_t len, bool in_capsule) {
  put_u64(&sqe[kSqeSglAddr], 0);
  put_u32(&sqe[kSqeSglLength], len);
  sqe[kSqeSglType] = in_capsule ? kSglDataBlockOffset : kSglTransportDataBlock;
}

Result<uint64_t> fabrics_connect(Queue& q, const ConnectOptions& o, uint16_t qid, uint16_t sqsize, uint16_t cntlid) {
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kOpFabrics);
  sqe[kSqeFctype] = kFcConnect;
  sqe_sgl(sqe, kConnectDataLen, true);
  put_u16(&sqe[kConnQid], qid);
  put_u16(&sqe[kConnSqsize], sqsize);
  put_u32(&sqe[kConnKato], qid == 0 ? o.kato_ms : 0);
  std::vector<uint8_t> data(kConnectDataLen, 0);
  // Host ID: stable per host NQN (FNV-1a over it, twice).
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : o.host_nqn) h = (h ^ c) * 1099511628211ull;
  put_u64(&data[kCdHostid], h);
  put_u64(&data[kCdHostid + 8], h * 31 + 7);
  put_u16(&data[kCdCntlid], cntlid);
  if (o.subsys_nqn.size() > kNqnMaxLen || o.host_nqn.size() > kNqnMaxLen) return invalid_argument("NQN longer than 223 bytes");
  std::memcpy(&data[kCdSubnqn], o.subsys_nqn.data(), o.subsys_nqn.size());
  std::memcpy(&data[kCdHostnqn], o.host_nqn.data(), o.host_nqn.size());
  uint16_t status = 0;
  auto r = q.run(sqe, nullptr, data.data(), kConnectDataLen, true, &status);
  if (!r && status != 0) {
    return Status(status == kScConnectInvalidHost ? Code::kReadOnly : Code::kIOError,
                  "Connect to " + o.subsys_nqn + " refused: " + status_text(status));
  }
  return r;
}

Result<uint64_t> property(Queue& q, bool set, uint32_t offset, uint64_t value, bool eight_bytes) {
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kOpFabrics);
  sqe[kSqeFctype] = set ? kFcPropertySet : kFcPropertyGet;
  sqe_sgl(sqe, 0, false);
  sqe[kPropAttrib] = eight_bytes ? 1 : 0;
  put_u32(&sqe[kPropOffset], offset);
  if (set) put_u64(&sqe[kPropValue], value);
  return q.run(sqe, nullptr, nullptr, 0, false);
}

Status identify(Queue& q, uint8_t cns, uint32_t nsid, uint8_t* out4k) {
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kAdminIdentify);
  put_u32(&sqe[kSqeNsid], nsid);
  sqe_sgl(sqe, 4096, false);
  put_u32(&sqe[kSqeCdw10], cns);
  return q.run(sqe, out4k, nullptr, 4096, false).status();
}

}  // namespace

Controller::~Controller() = default;

Result<std::unique_ptr<Controller>> Controller::connect(const ConnectOptions& o) {
  if (o.subsys_nqn.empty()) return invalid_argument("no subsystem NQN given");
  if (o.queue_depth < 1 || o.queue_depth > 1024) return invalid_argument("queue depth must be 1 to 1024");
  std::unique_ptr<Controller> c(new Controller());
  c->options_ = o;
  ASSIGN_OR_RETURN(c->admin_, Queue::open(o));
  ASSIGN_OR_RETURN(uint64_t r, fabrics_connect(*c->admin_, o, 0, 31, kCntlidDynamic));
  c->cntlid_ = uint16_t(r & 0xFFFF);
  // Enable: CC.EN with 64-byte SQEs and 16-byte CQEs, then wait for CSTS.RDY (bounded).
  RETURN_IF_ERROR(property(*c->admin_, true, kPropCc, kCcEnable | (6u << 16) | (4u << 20), false).status());
  bool ready = false;
  for (int i = 0; i < 500 && !ready; i++) {
    ASSIGN_OR_RETURN(uint64_t csts, property(*c->admin_, false, kPropCsts, 0, false));
    if (csts & kCstsCfs) return io_error("controller fatal status after enable");
    ready = csts & kCstsRdy;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!ready) return io_error("controller not ready 5 s after enable");
  std::vector<uint8_t> id(4096);
  RETURN_IF_ERROR(identify(*c->admin_, kCnsController, 0, id.data()));
  const uint32_t ioccsz = get_u32(&id[1792]);
  c->in_capsule_bytes_ = ioccsz * 16 > kSqeLen ? ioccsz * 16 - kSqeLen : 0;
  RETURN_IF_ERROR(identify(*c->admin_, kCnsNamespace, 1, id.data()));
  c->ns_.nsid = 1;
  c->ns_.lba_count = get_u64(&id[0]);
  const uint8_t flbas = id[26] & 0xF;
  c->ns_.lba_bytes = 1u << id[128 + 4 * flbas + 2];
  c->ns_.read_only = id[99] & 1;
  if (c->ns_.lba_count == 0 || c->ns_.lba_bytes < 512) return io_error("namespace 1 is not active");
  // Set Features: one I/O queue.
  {
    uint8_t sqe[kSqeLen];
    sqe_init(sqe, kAdminSetFeatures);
    sqe_sgl(sqe, 0, false);
    put_u32(&sqe[kSqeCdw10], kFeatNumQueues);
    put_u32(&sqe[kSqeCdw11], 0);
    RETURN_IF_ERROR(c->admin_->run(sqe, nullptr, nullptr, 0, false).status());
  }
  ASSIGN_OR_RETURN(c->io_, Queue::open(o));
  RETURN_IF_ERROR(fabrics_connect(*c->io_, o, 1, uint16_t(o.queue_depth), c->cntlid_).status());
  return c;
}

Status Controller::submit_read(uint64_t lba, uint32_t n, void* buf, uint64_t tag) {
  if (n == 0 || n > 65536) return invalid_argument("block count must be 1 to 65536");
  if (io_->outstanding() >= options_.queue_depth) return busy("queue depth reached");
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kIoRead);
  put_u32(&sqe[kSqeNsid], ns_.nsid);
  const uint32_t len = n * ns_.lba_bytes;
  sqe_sgl(sqe, len, false);
  put_u64(&sqe[kSqeCdw10], lba);
  put_u32(&sqe[kSqeCdw12], n - 1);
  return io_->submit(sqe, tag, static_cast<uint8_t*>(buf), nullptr, len, false);
}

Status Controller::submit_write(uint64_t lba, uint32_t n, const void* buf, uint64_t tag, bool fua) {
  if (n == 0 || n > 65536) return invalid_argument("block count must be 1 to 65536");
  if (io_->outstanding() >= options_.queue_depth) return busy("queue depth reached");
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kIoWrite);
  put_u32(&sqe[kSqeNsid], ns_.nsid);
  const uint32_t len = n * ns_.lba_bytes;
  const bool in_capsule = len <= in_capsule_bytes_;
  sqe_sgl(sqe, len, in_capsule);
  put_u64(&sqe[kSqeCdw10], lba);
  put_u32(&sqe[kSqeCdw12], (n - 1) | (fua ? 1u << 30 : 0));
  return io_->submit(sqe, tag, nullptr, static_cast<const uint8_t*>(buf), len, in_capsule);
}

Status Controller::submit_flush(uint64_t tag) {
  if (io_->outstanding() >= options_.queue_depth) return busy("queue depth reached");
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kIoFlush);
  put_u32(&sqe[kSqeNsid], ns_.nsid);
  sqe_sgl(sqe, 0, false);
  return io_->submit(sqe, tag, nullptr, nullptr, 0, false);
}

Status Controller::wait(std::vector<Completion>& out) { return io_->wait(out); }
size_t Controller::outstanding() const { return io_->outstanding(); }

namespace {
Status one(Controller& c, Status submitted) {
  RETURN_IF_ERROR(submitted);
  std::vector<Completion> done;
  RETURN_IF_ERROR(c.wait(done));
  if (!done[0].ok()) return io_error(status_text(done[0].status));
  return Status::ok();
}
}  // namespace

Status Controller::read(uint64_t lba, uint32_t n, void* buf) {
  if (outstanding()) return busy("synchronous read while asynchronous commands are outstanding");
  return one(*this, submit_read(lba, n, buf, 0));
}
Status Controller::write(uint64_t lba, uint32_t n, const void* buf, bool fua) {
  if (outstanding()) return busy("synchronous write while asynchronous commands are outstanding");
  return one(*this, submit_write(lba, n, buf, 0, fua));
}
Status Controller::flush() {
  if (outstanding()) return busy("synchronous flush while asynchronous commands are outstanding");
  return one(*this, submit_flush(0));
}
Status Controller::keep_alive() {
  uint8_t sqe[kSqeLen];
  sqe_init(sqe, kAdminKeepAlive);
  sqe_sgl(sqe, 0, false);
  return admin_->run(sqe, nullptr, nullptr, 0, false).status();
}

}  // namespace arbor::nvme_initiator
