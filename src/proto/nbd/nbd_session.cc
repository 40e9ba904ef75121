#include "proto/nbd/nbd_session.h"

#include <algorithm>
#include <cstring>

#include "proto/run_planned_read.h"
#include "util/check.h"
#include "util/encoding.h"
#include "util/nonblocking_scope.h"

namespace arbor::nbd {

namespace {

std::vector<uint8_t> bytes_of(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

const char* description_of(const proto::BlockExport& e) {
  return e.read_only() ? "Arbor snapshot (read-only)" : "Arbor volume";
}

}  // namespace

NbdSession::NbdSession(proto::ExportCatalog& catalog, NbdSessionHost& host, NbdSessionOptions options)
    : catalog_(catalog), host_(host), options_(std::move(options)), alive_(std::make_shared<bool>(true)) {}

NbdSession::~NbdSession() { *alive_ = false; }

void NbdSession::start() {
  std::vector<uint8_t> g(kGreetingBytes);
  put_u64_be(g.data(), kNbdMagic);
  put_u64_be(g.data() + 8, kIHaveOpt);
  put_u16_be(g.data() + 16, kFlagFixedNewstyle | kFlagNoZeroes);
  host_.send(std::move(g));
}

void NbdSession::on_close() {
  phase_ = Phase::kClosed;
  *alive_ = false;  // completions still running on workers reply to no one
  export_.reset();
}

void NbdSession::fail(const std::string& why) {
  (void)why;  // the peer broke the protocol; the transport logs the close
  phase_ = Phase::kClosed;
  host_.close(false);
}

size_t NbdSession::on_data(std::span<const uint8_t> in, size_t* want_bytes) {
  *want_bytes = 0;
  size_t used = 0;
  while (phase_ != Phase::kClosed && !paused_ && !disconnecting_ && used < in.size()) {
    std::span<const uint8_t> rest = in.subspan(used);
    const uint8_t* p = rest.data();
    if (phase_ == Phase::kClientFlags) {
      if (rest.size() < kClientFlagsBytes) {
        *want_bytes = kClientFlagsBytes;
        return used;
      }
      uint32_t flags = get_u32_be(p);
      used += kClientFlagsBytes;
      // Unknown client flags and plain (not fixed) newstyle both end the session: we could not
      // answer options safely.
      if ((flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0 || !(flags & kClientFixedNewstyle)) {
        fail("bad client flags");
        break;
      }
      no_zeroes_ = (flags & kClientNoZeroes) != 0;
      phase_ = Phase::kOptions;
    } else if (phase_ == Phase::kOptions) {
      if (rest.size() < kOptionHeaderBytes) {
        *want_bytes = kOptionHeaderBytes;
        return used;
      }
      if (get_u64_be(p) != kIHaveOpt) {
        fail("bad option magic");
        break;
      }
      uint32_t option = get_u32_be(p + 8);
      uint32_t length = get_u32_be(p + 12);
      if (length > kMaxOptionBytes) {
        option_error(option, kRepErrTooBig, "option data over " + std::to_string(kMaxOptionBytes) + " bytes");
        phase_ = Phase::kClosed;
        host_.close(true);
        break;
      }
      if (rest.size() < kOptionHeaderBytes + length) {
        *want_bytes = kOptionHeaderBytes + length;
        return used;
      }
      used += kOptionHeaderBytes + length;
      handle_option(option, rest.subspan(kOptionHeaderBytes, length));
    } else if (phase_ == Phase::kTransmission) {
      size_t n = handle_request(rest, want_bytes);
      if (n == 0) return used;
      used += n;
    } else if (phase_ == Phase::kDiscard) {
      size_t take = size_t(std::min<uint64_t>(rest.size(), discard_left_));
      used += take;
      discard_left_ -= take;
      if (discard_left_ == 0) {
        phase_ = Phase::kTransmission;
        reply_error(discard_request_, kNbdEinval, "write payload over the " + std::to_string(kMaxPayloadBytes) + "-byte maximum");
      }
    }
  }
  // After a close or NBD_CMD_DISC nothing more is parsed: swallow the rest.
  if (phase_ == Phase::kClosed || disconnecting_) return in.size();
  return used;
}

// ---- Handshake ----

void NbdSession::option_reply(uint32_t option, uint32_t type, std::span<const uint8_t> data) {
  std::vector<uint8_t> b(kOptionReplyHeaderBytes + data.size());
  put_u64_be(b.data(), kOptReplyMagic);
  put_u32_be(b.data() + 8, option);
  put_u32_be(b.data() + 12, type);
  put_u32_be(b.data() + 16, uint32_t(data.size()));
  if (!data.empty()) std::memcpy(b.data() + kOptionReplyHeaderBytes, data.data(), data.size());
  host_.send(std::move(b));
}

void NbdSession::option_error(uint32_t option, uint32_t type, const std::string& message) {
  std::string m = message.substr(0, kMaxNameBytes);
  option_reply(option, type, bytes_of(m));
}

Result<std::shared_ptr<proto::BlockExport>> NbdSession::open_export(const std::string& name) {
  if (name.empty() && !options_.default_export.empty()) return catalog_.open(options_.default_export);
  return catalog_.open(name);
}

uint16_t NbdSession::transmission_flags(const proto::BlockExport& e) const {
  uint16_t f = kTxHasFlags | kTxSendFlush | kTxSendFua | kTxCanMultiConn;
  if (structured_) f |= kTxSendDf;  // every read is answered with one chunk anyway
  if (e.read_only()) {
    f |= kTxReadOnly;
  } else {
    f |= kTxSendTrim | kTxSendWriteZeroes;
  }
  return f;
}

void NbdSession::handle_option(uint32_t option, std::span<const uint8_t> data) {
  switch (option) {
    case kOptExportName: handle_export_name(data); return;
    case kOptAbort:
      option_reply(option, kRepAck);
      phase_ = Phase::kClosed;
      host_.close(true);
      return;
    case kOptList: handle_list(data); return;
    case kOptInfo:
    case kOptGo: handle_info_or_go(option, data); return;
    case kOptStructuredReply:
      if (!data.empty()) return option_error(option, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
      structured_ = true;
      option_reply(option, kRepAck);
      return;
    default:
      // STARTTLS (we run NOTLS), meta contexts (no block status yet), extended headers, unknown.
      option_error(option, kRepErrUnsup, "option " + std::to_string(option) + " is not supported");
      return;
  }
}

void NbdSession::handle_export_name(std::span<const uint8_t> data) {
  // NBD_OPT_EXPORT_NAME has no error reply: an unknown export can only close the connection.
  if (data.size() > kMaxNameBytes) return fail("export name too long");
  auto e = open_export(std::string(data.begin(), data.end()));
  if (!e.is_ok()) return fail(e.status().to_string());
  export_ = std::move(e).value();
  size_bytes_ = export_->size_bytes();
  read_only_ = export_->read_only();
  std::vector<uint8_t> b(kExportNameReplyBytes + (no_zeroes_ ? 0 : kExportNameZeroPadBytes), 0);
  put_u64_be(b.data(), size_bytes_);
  put_u16_be(b.data() + 8, transmission_flags(*export_));
  host_.send(std::move(b));
  phase_ = Phase::kTransmission;
}

void NbdSession::handle_list(std::span<const uint8_t> data) {
  if (!data.empty()) return option_error(kOptList, kRepErrInvalid, "NBD_OPT_LIST takes no data");
  for (const proto::ExportInfo& info : catalog_.list()) {
    std::string desc = info.read_only ? "Arbor snapshot (read-only)" : "Arbor volume";
    std::vector<uint8_t> b(4 + info.name.size() + desc.size());
    put_u32_be(b.data(), uint32_t(info.name.size()));
    std::memcpy(b.data() + 4, info.name.data(), info.name.size());
    std::memcpy(b.data() + 4 + info.name.size(), desc.data(), desc.size());
    option_reply(kOptList, kRepServer, b);
  }
  option_reply(kOptList, kRepAck);
}

void NbdSession::handle_info_or_go(uint32_t option, std::span<const uint8_t> data) {
  // Data: u32 name length, name, u16 number of info requests, u16 each.
  if (data.size() < 6) return option_error(option, kRepErrInvalid, "option data too short");
  uint32_t name_len = get_u32_be(data.data());
  if (name_len > data.size() - 6 || name_len > kMaxNameBytes) return option_error(option, kRepErrInvalid, "bad name length");
  uint16_t n_requests = get_u16_be(data.data() + 4 + name_len);
  if (data.size() != 4 + size_t(name_len) + 2 + 2 * size_t(n_requests))
    return option_error(option, kRepErrInvalid, "option length does not match its contents");
  std::string name(reinterpret_cast<const char*>(data.data()) + 4, name_len);
  bool want_name = false, want_description = false;
  for (uint16_t i = 0; i < n_requests; i++) {
    uint16_t t = get_u16_be(data.data() + 4 + name_len + 2 + 2 * i);
    if (t == kInfoName) want_name = true;
    if (t == kInfoDescription) want_description = true;
  }
  auto opened = open_export(name);
  if (!opened.is_ok()) {
    const Status& s = opened.status();
    uint32_t type = s.code() == Code::kNotFound ? kRepErrUnknown
                    : s.code() == Code::kInvalidArgument ? kRepErrInvalid : kRepErrPolicy;
    return option_error(option, type, s.to_string());
  }
  std::shared_ptr<proto::BlockExport> e = std::move(opened).value();

  uint8_t info[kInfoExportBytes];
  put_u16_be(info, kInfoExport);
  put_u64_be(info + 2, e->size_bytes());
  put_u16_be(info + 10, transmission_flags(*e));
  option_reply(option, kRepInfo, info);
  if (want_name) {
    std::vector<uint8_t> b(2 + e->name().size());
    put_u16_be(b.data(), kInfoName);
    std::memcpy(b.data() + 2, e->name().data(), e->name().size());
    option_reply(option, kRepInfo, b);
  }
  if (want_description) {
    std::string d = description_of(*e);
    std::vector<uint8_t> b(2 + d.size());
    put_u16_be(b.data(), kInfoDescription);
    std::memcpy(b.data() + 2, d.data(), d.size());
    option_reply(option, kRepInfo, b);
  }
  // Always sent: with a minimum of 1 the constraints restrict no client.
  uint8_t bs[kInfoBlockSizeBytes];
  put_u16_be(bs, kInfoBlockSize);
  put_u32_be(bs + 2, kMinBlockBytes);
  put_u32_be(bs + 6, kPreferredBlockBytes);
  put_u32_be(bs + 10, kMaxPayloadBytes);
  option_reply(option, kRepInfo, bs);
  option_reply(option, kRepAck);
  if (option == kOptGo) {
    export_ = std::move(e);
    size_bytes_ = export_->size_bytes();
    read_only_ = export_->read_only();
    phase_ = Phase::kTransmission;
  }
}

// ---- Transmission ----

uint32_t NbdSession::nbd_error(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return kNbdOk;
    case Code::kReadOnly: return kNbdEperm;
    case Code::kInvalidArgument:
    case Code::kOutOfRange: return kNbdEinval;
    case Code::kNoSpace: return kNbdEnospc;
    case Code::kNotSupported: return kNbdEnotsup;
    default: return kNbdEio;
  }
}

void NbdSession::reply_simple(uint64_t cookie, uint32_t error) {
  std::vector<uint8_t> b(kSimpleReplyBytes);
  put_u32_be(b.data(), kSimpleReplyMagic);
  put_u32_be(b.data() + 4, error);
  put_u64_be(b.data() + 8, cookie);
  host_.send(std::move(b));
}

void NbdSession::reply_error(const Request& r, uint32_t error, const std::string& message) {
  if (!structured_) return reply_simple(r.cookie, error);
  std::string m = message.substr(0, kMaxNameBytes);
  std::vector<uint8_t> b(kChunkHeaderBytes + 4 + 2 + m.size());
  put_u32_be(b.data(), kStructuredReplyMagic);
  put_u16_be(b.data() + 4, kReplyFlagDone);
  put_u16_be(b.data() + 6, kChunkError);
  put_u64_be(b.data() + 8, r.cookie);
  put_u32_be(b.data() + 16, uint32_t(4 + 2 + m.size()));
  put_u32_be(b.data() + 20, error);
  put_u16_be(b.data() + 24, uint16_t(m.size()));
  std::memcpy(b.data() + 26, m.data(), m.size());
  host_.send(std::move(b));
}

void NbdSession::begin_one() {
  inflight_++;
  if (inflight_ >= kMaxInflight && !paused_) {
    paused_ = true;
    host_.pause_receive(true);
  }
}

void NbdSession::finish_one() {
  ARBOR_CHECK(inflight_ > 0);
  inflight_--;
  if (paused_ && inflight_ <= kMaxInflight / 2) {
    paused_ = false;
    host_.pause_receive(false);
  }
  if (disconnecting_ && inflight_ == 0 && phase_ != Phase::kClosed) {
    phase_ = Phase::kClosed;
    host_.close(true);
  }
}

size_t NbdSession::handle_request(std::span<const uint8_t> in, size_t* want_bytes) {
  if (in.size() < kRequestBytes) {
    *want_bytes = kRequestBytes;
    return 0;
  }
  const uint8_t* p = in.data();
  if (get_u32_be(p) != kRequestMagic) {
    fail("bad request magic");
    return in.size();
  }
  Request r{get_u16_be(p + 4), get_u16_be(p + 6), get_u64_be(p + 8), get_u64_be(p + 16), get_u32_be(p + 24)};
  if (r.type == kCmdWrite) {
    if (r.length > kMaxPayloadBytes) {
      // Skip the payload without buffering it, then refuse.
      discard_left_ = r.length;
      discard_request_ = r;
      phase_ = Phase::kDiscard;
      return kRequestBytes;
    }
    if (in.size() < kRequestBytes + r.length) {
      *want_bytes = kRequestBytes + r.length;
      return 0;
    }
    do_write(r, in.subspan(kRequestBytes, r.length));
    return kRequestBytes + r.length;
  }
  // Flags a command may carry: FUA on every command (we advertise SEND_FUA), DF on reads once
  // structured replies are on, NO_HOLE on write-zeroes. Anything else is EINVAL.
  uint16_t allowed = kCmdFlagFua;
  if (r.type == kCmdRead && structured_) allowed |= kCmdFlagDf;
  if (r.type == kCmdWriteZeroes) allowed |= kCmdFlagNoHole;
  if (r.flags & ~allowed) {
    reply_error(r, kNbdEinval, "unsupported command flags");
    return kRequestBytes;
  }
  switch (r.type) {
    case kCmdRead: do_read(r); break;
    case kCmdFlush: do_flush(r); break;
    case kCmdTrim:
    case kCmdWriteZeroes: do_trim_or_zeroes(r); break;
    case kCmdDisc:
      disconnecting_ = true;
      if (inflight_ == 0) {
        phase_ = Phase::kClosed;
        host_.close(true);
      }
      break;
    default: reply_error(r, kNbdEinval, "command " + std::to_string(r.type) + " is not supported"); break;
  }
  return kRequestBytes;
}

void NbdSession::run(std::function<Status()> work, std::function<void(const Status&)> reply, bool blocking) {
  if (!blocking) {
    reply(work());
    return;
  }
  begin_one();
  auto status = std::make_shared<Status>();
  host_.run_blocking([work = std::move(work), status] { *status = work(); },
                     [this, alive = alive_, status, reply = std::move(reply)] {
                       if (!*alive) return;
                       reply(*status);
                       finish_one();
                     });
}

void NbdSession::do_read(const Request& r) {
  if (r.length > kMaxPayloadBytes)
    return reply_error(r, (r.flags & kCmdFlagDf) ? kNbdEoverflow : kNbdEinval, "read longer than the maximum payload");
  if (r.offset > size_bytes_ || r.length > size_bytes_ - r.offset) return reply_error(r, kNbdEinval, "read past the end of the export");
  size_t header = structured_ ? kChunkHeaderBytes + 8 : kSimpleReplyBytes;
  if (r.length == 0) {
    if (!structured_) return reply_simple(r.cookie, kNbdOk);
    std::vector<uint8_t> b(kChunkHeaderBytes);
    put_u32_be(b.data(), kStructuredReplyMagic);
    put_u16_be(b.data() + 4, kReplyFlagDone);
    put_u16_be(b.data() + 6, kChunkNone);
    put_u64_be(b.data() + 8, r.cookie);
    put_u32_be(b.data() + 16, 0);
    return host_.send(std::move(b));
  }
  // Header and data in one buffer: the export reads straight into the reply.
  auto buf = std::make_shared<std::vector<uint8_t>>(header + r.length);
  auto work = [e = export_, buf, header, r] { return e->read(r.offset, std::span<uint8_t>(buf->data() + header, r.length)); };
  auto reply = [this, buf, r](const Status& s) {
    if (!s.is_ok()) return reply_error(r, nbd_error(s), s.to_string());
    uint8_t* b = buf->data();
    if (structured_) {
      put_u32_be(b, kStructuredReplyMagic);
      put_u16_be(b + 4, kReplyFlagDone);
      put_u16_be(b + 6, kChunkOffsetData);
      put_u64_be(b + 8, r.cookie);
      put_u32_be(b + 16, 8 + r.length);
      put_u64_be(b + 20, r.offset);
    } else {
      put_u32_be(b, kSimpleReplyMagic);
      put_u32_be(b + 4, kNbdOk);
      put_u64_be(b + 8, r.cookie);
    }
    host_.send(std::move(*buf));
  };
  if (!options_.offload_all_io) {
    // A page-cache hit is served here on the loop. A miss is planned here and its blocks read on
    // the loop's ring: it holds up no request behind it, and no thread waits for it. Where the
    // store would wait even to plan (its lock, a map node not in memory), or cannot plan, the read
    // goes to a worker.
    Status s;
    std::unique_ptr<PlannedRead> plan;
    {
      NonBlockingScope no_wait;
      s = work();
      if (s.code() == Code::kWouldBlock) {
        Result<std::unique_ptr<PlannedRead>> p = export_->plan_read(r.offset, std::span<uint8_t>(buf->data() + header, r.length));
        if (p.is_ok()) {
          plan = std::move(p).value();
        } else if (p.status().code() != Code::kNotSupported) {
          s = p.status();
        }
      }
    }
    if (plan) {
      count(&NbdReadCounters::on_ring);
      return read_planned(std::move(plan), std::move(reply));
    }
    if (s.code() != Code::kWouldBlock) {
      if (s.is_ok()) count(&NbdReadCounters::from_memory);
      return reply(s);
    }
  }
  count(&NbdReadCounters::on_worker);
  run(std::move(work), std::move(reply), true);
}

void NbdSession::count(std::atomic<uint64_t> NbdReadCounters::*which) {
  if (options_.read_counters != nullptr) (options_.read_counters->*which).fetch_add(1, std::memory_order_relaxed);
}

void NbdSession::read_planned(std::unique_ptr<PlannedRead> plan, std::function<void(const Status&)> reply) {
  begin_one();
  auto read_file = [this](const FileRead& f, std::function<void(const Status&)> done) { host_.read_file(f, std::move(done)); };
  proto::run_planned_read(std::move(plan), read_file, [this, alive = alive_, reply = std::move(reply)](const Status& s) {
    if (!*alive) return;
    reply(s);
    finish_one();
  });
}

void NbdSession::do_write(const Request& r, std::span<const uint8_t> payload) {
  uint16_t allowed = kCmdFlagFua;
  if (r.flags & ~allowed) return reply_error(r, kNbdEinval, "unsupported command flags");
  if (read_only_) return reply_error(r, kNbdEperm, "export is read-only");
  if (r.offset > size_bytes_ || r.length > size_bytes_ - r.offset) return reply_error(r, kNbdEnospc, "write past the end of the export");
  bool fua = (r.flags & kCmdFlagFua) != 0;
  auto reply = [this, r](const Status& s) {
    if (s.is_ok()) return reply_simple(r.cookie, kNbdOk);
    reply_error(r, nbd_error(s), s.to_string());
  };
  if (!fua && !options_.offload_all_io) {
    // Inline: the payload is still in the receive buffer, no copy.
    reply(export_->write(r.offset, payload, false));
    return;
  }
  auto data = std::make_shared<std::vector<uint8_t>>(payload.begin(), payload.end());
  run([e = export_, data, r, fua] { return e->write(r.offset, *data, fua); }, std::move(reply), true);
}

void NbdSession::do_flush(const Request& r) {
  auto reply = [this, r](const Status& s) {
    if (s.is_ok()) return reply_simple(r.cookie, kNbdOk);
    reply_error(r, nbd_error(s), s.to_string());
  };
  // flush() may fsync (~0.4 ms): never on the loop.
  run([e = export_] { return e->flush(); }, std::move(reply), true);
}

void NbdSession::do_trim_or_zeroes(const Request& r) {
  if (read_only_) return reply_error(r, kNbdEperm, "export is read-only");
  if (r.offset > size_bytes_ || r.length > size_bytes_ - r.offset) return reply_error(r, kNbdEnospc, "range past the end of the export");
  bool fua = (r.flags & kCmdFlagFua) != 0;
  bool trim = r.type == kCmdTrim;
  bool may_unmap = (r.flags & kCmdFlagNoHole) == 0;
  auto work = [e = export_, r, fua, trim, may_unmap]() -> Status {
    if (r.length > 0) {
      Status s = trim ? e->trim(r.offset, r.length) : e->write_zeroes(r.offset, r.length, may_unmap);
      if (!s.is_ok()) return s;
    }
    return fua ? e->flush() : Status::ok();
  };
  auto reply = [this, r](const Status& s) {
    if (s.is_ok()) return reply_simple(r.cookie, kNbdOk);
    reply_error(r, nbd_error(s), s.to_string());
  };
  run(std::move(work), std::move(reply), fua || options_.offload_all_io);
}

}  // namespace arbor::nbd
