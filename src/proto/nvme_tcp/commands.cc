// Command semantics of a session: Fabrics (Connect, Property Get/Set, Disconnect), admin (Identify,
// Get Log Page, Get/Set Features, Keep Alive, AER, Abort) and I/O (Read, Write, Flush, Write Zeroes,
// Dataset Management). Each returns a Completion; session.cc moves the bytes.
#include <algorithm>
#include <cstring>
#include <optional>

#include "proto/nvme_tcp/session.h"
#include "proto/run_planned_read.h"
#include "util/encoding.h"
#include "util/nonblocking_scope.h"

namespace arbor::nvme_tcp {

namespace {

uint32_t cdw(const std::array<uint8_t, kSqeLen>& sqe, uint32_t off) { return get_u32(&sqe[off]); }

// A NUL-terminated string from a fixed-size field; empty if it has no terminator.
std::string fixed_string(std::span<const uint8_t> field) {
  auto end = std::find(field.begin(), field.end(), uint8_t(0));
  if (end == field.end()) return {};
  return std::string(field.begin(), end);
}

// Space-padded ASCII (Identify strings).
void put_ascii(uint8_t* p, size_t n, std::string_view s) {
  std::memset(p, ' ', n);
  std::memcpy(p, s.data(), std::min(n, s.size()));
}

void put_string(uint8_t* p, size_t n, std::string_view s) { std::memcpy(p, s.data(), std::min(n - 1, s.size())); }

uint16_t status_for(const Status& s, bool is_write) {
  switch (s.code()) {
    case Code::kOk: return kScSuccess;
    case Code::kOutOfRange: return kScLbaRange | kStatusDnr;
    case Code::kReadOnly: return kScNsWriteProtected | kStatusDnr;
    case Code::kNoSpace: return kScCapExceeded | kStatusDnr;
    case Code::kInvalidArgument: return kScInvalidField | kStatusDnr;
    case Code::kIOError: return is_write ? kScWriteFault : kScReadError;
    case Code::kCorruption: return kScReadError | kStatusDnr;
    default: return kScInternal;
  }
}

// Connect Invalid Parameters: DW0 says which field (IATTR bit 16: 1 = in the data, 0 = in the SQE).
uint64_t invalid_param(bool in_data, uint16_t offset) { return (uint64_t(in_data) << 16) | offset; }

}  // namespace

Session::Completion Session::execute(const Sqe& sqe, std::span<const uint8_t> host_data, uint32_t c2h_len) {
  const uint8_t opcode = sqe[kSqeOpcode];
  Completion c;
  if (opcode == kOpFabrics) return fabrics(sqe, host_data);
  if (!connected()) {
    c.status = kScCmdSeqError | kStatusDnr;  // nothing but Connect before Connect
    return c;
  }
  if (ctrl_->dead.load()) {
    c.status = kScInternal;
    close("controller gone");
    return c;
  }
  if (qid_ == 0) return admin(sqe, c2h_len);
  if (!ctrl_->enabled.load()) {
    c.status = kScCmdSeqError;
    return c;
  }
  return io(sqe, host_data);
}

// ---------------------------------------------------------------- Fabrics

Session::Completion Session::fabrics(const Sqe& sqe, std::span<const uint8_t> host_data) {
  Completion c;
  const uint8_t fctype = sqe[kSqeFctype];
  if (fctype == kFcConnect) return connect(sqe, host_data);
  if (!connected()) {
    c.status = kScCmdSeqError | kStatusDnr;
    return c;
  }
  switch (fctype) {
    case kFcPropertyGet:
      if (qid_ != 0) break;
      return property_get(sqe);
    case kFcPropertySet:
      if (qid_ != 0) break;
      return property_set(sqe);
    case kFcDisconnect:
      c.close_after = true;
      return c;
    default:
      break;
  }
  c.status = kScInvalidOpcode | kStatusDnr;
  return c;
}

Session::Completion Session::connect(const Sqe& sqe, std::span<const uint8_t> d) {
  Completion c;
  if (connected()) {
    c.status = kScCmdSeqError | kStatusDnr;
    return c;
  }
  if (get_u16(&sqe[kConnRecfmt]) != 0) {
    c.status = kScConnectFormat | kStatusDnr;
    return c;
  }
  if (d.size() != kConnectDataLen) {
    c.status = kScSglInvalidData | kStatusDnr;
    return c;
  }
  const uint16_t qid = get_u16(&sqe[kConnQid]);
  const uint16_t sqsize = get_u16(&sqe[kConnSqsize]);
  const uint16_t cntlid = get_u16(&d[kCdCntlid]);
  const std::string subnqn = fixed_string(d.subspan(kCdSubnqn, kNqnFieldLen));
  const std::string hostnqn = fixed_string(d.subspan(kCdHostnqn, kNqnFieldLen));
  auto bad = [&](bool in_data, uint16_t offset) {
    c.status = kScConnectInvalidParam | kStatusDnr;
    c.result = invalid_param(in_data, offset);
    return c;
  };
  if (sqsize == 0 || sqsize >= kMaxQueueEntries) return bad(false, kConnSqsize);
  if (subnqn.empty() || subnqn.size() > kNqnMaxLen) return bad(true, kCdSubnqn);
  if (hostnqn.empty() || hostnqn.size() > kNqnMaxLen) return bad(true, kCdHostnqn);
  const bool discovery = subnqn == kDiscoveryNqn;
  std::string export_name;
  if (!discovery) {
    auto name = export_from_nqn(ctx_.nqn_prefix, subnqn);
    if (!name) return bad(true, kCdSubnqn);
    export_name = *name;
  }

  if (qid == 0) {
    if (cntlid != kCntlidDynamic) return bad(true, kCdCntlid);
    auto ctrl = std::make_unique<Controller>();
    ctrl->discovery = discovery;
    ctrl->subsys_nqn = subnqn;
    ctrl->host_nqn = hostnqn;
    std::memcpy(ctrl->host_id.data(), &d[kCdHostid], 16);
    if (!discovery) {
      auto exp = ctx_.catalog->open(export_name);
      if (!exp.is_ok()) return bad(true, kCdSubnqn);
      if (!ctx_.allow->host_allowed(export_name, hostnqn)) {
        c.status = kScConnectInvalidHost | kStatusDnr;
        return c;
      }
      ctrl->exp = std::move(exp).value();
    }
    ctrl->kato_ms = get_u32(&sqe[kConnKato]);
    auto shared = ctx_.controllers.create(std::move(ctrl));
    if (!shared) {
      c.status = kScConnectCtrlBusy;
      return c;
    }
    ctrl_ = std::move(shared);
    last_keep_alive_ms_ = now_ms_;
  } else {
    if (discovery) return bad(false, kConnQid);
    auto ctrl = ctx_.controllers.find(cntlid, subnqn, hostnqn);
    if (!ctrl) return bad(true, kCdCntlid);
    if (qid > ctrl->io_queues.load()) return bad(false, kConnQid);
    {
      std::lock_guard lock(ctrl->mu);
      if (!ctrl->io_qids.insert(qid).second) return bad(false, kConnQid);
    }
    ctrl_ = std::move(ctrl);
  }
  qid_ = qid;
  sqsize_ = sqsize;
  sqhd_ = 1 % (uint32_t(sqsize_) + 1);  // the Connect itself was the first entry
  c.result = ctrl_->cntlid;
  return c;
}

Session::Completion Session::property_get(const Sqe& sqe) {
  Completion c;
  const bool eight = (sqe[kPropAttrib] & 7) == 1;
  const uint32_t off = get_u32(&sqe[kPropOffset]);
  switch (off) {
    case kPropCap:
      if (!eight) break;
      // MQES (0's based), CQR (contiguous queues required), TO = 15 * 500 ms, CSS = NVM command set.
      c.result = uint64_t(kMaxQueueEntries - 1) | (1ull << 16) | (15ull << 24) | (1ull << 37);
      return c;
    case kPropVs: c.result = kVersion; return c;
    case kPropCc: c.result = ctrl_->cc; return c;
    case kPropCsts: c.result = ctrl_->csts; return c;
    default: break;
  }
  c.status = kScInvalidField | kStatusDnr;
  return c;
}

Session::Completion Session::property_set(const Sqe& sqe) {
  Completion c;
  const uint32_t off = get_u32(&sqe[kPropOffset]);
  if (off != kPropCc || (sqe[kPropAttrib] & 7) != 0) {
    c.status = kScInvalidField | kStatusDnr;
    return c;
  }
  const uint32_t cc = uint32_t(get_u64(&sqe[kPropValue]));
  const uint32_t old = ctrl_->cc;
  ctrl_->cc = cc;
  if ((cc & kCcEnable) && !(old & kCcEnable)) {
    // I/O queue entry sizes must be 2^6 (SQE) and 2^4 (CQE); MPS 4 KiB; NVM command set.
    const bool ok = ((cc >> 16) & 0xF) == 6 && ((cc >> 20) & 0xF) == 4 && ((cc >> 7) & 0xF) == 0 &&
                    ((cc >> 4) & 7) == 0;
    ctrl_->csts = ok ? kCstsRdy : kCstsCfs;
    ctrl_->enabled.store(ok);
  } else if (!(cc & kCcEnable) && (old & kCcEnable)) {
    ctrl_->csts = 0;
    ctrl_->enabled.store(false);
  }
  if ((cc & kCcShnMask) && !(old & kCcShnMask)) {
    // Shutdown notification: make everything durable, then report shutdown complete. The
    // command completes after the flush either way (a failed flush cannot be retried by a host
    // that is going away).
    ctrl_->csts = (ctrl_->csts & ~(3u << 2)) | kCstsShstOccurring;
    auto ctrl = ctrl_;
    auto mark_complete = [ctrl](Completion&) { ctrl->csts = (ctrl->csts & ~(3u << 2)) | kCstsShstComplete; };
    if (!ctrl_->exp) {
      mark_complete(c);
      return c;
    }
    return blocking_call(sqe, [e = ctrl_->exp] {
      (void)e->flush();
      return Status::ok();
    }, true, mark_complete);
  }
  return c;
}

Session::Completion Session::blocking_call(const Sqe& sqe, std::function<Status()> call, bool is_write,
                                           std::function<void(Completion&)> on_done) {
  Completion c;
  if (!run_blocking_) {
    c.status = status_for(call(), is_write);
    if (on_done) on_done(c);
    return c;
  }
  auto result = std::make_shared<Status>();
  run_blocking_([call = std::move(call), result] { *result = call(); },
                [this, sqe, result, is_write, on_done = std::move(on_done)] {
                  answer_deferred(sqe, *result, is_write, on_done);
                });
  c.deferred = true;
  return c;
}

void Session::answer_deferred(const Sqe& sqe, const Status& result, bool is_write,
                              const std::function<void(Completion&)>& on_done) {
  Completion done;
  done.status = status_for(result, is_write);
  if (on_done) on_done(done);
  if (done.status == kScSuccess && !done.data.empty()) send_c2h_data(get_u16(&sqe[kSqeCid]), done.data);
  send_response(sqe, done);
}

Session::Completion Session::planned_read(const Sqe& sqe, std::unique_ptr<PlannedRead> plan,
                                          std::function<void(Completion&)> on_done) {
  Completion c;
  c.deferred = true;
  proto::run_planned_read(std::move(plan), read_file_, [this, sqe, on_done = std::move(on_done)](const Status& s) {
    answer_deferred(sqe, s, false, on_done);
  });
  return c;
}

// ---------------------------------------------------------------- Admin

Session::Completion Session::admin(const Sqe& sqe, uint32_t c2h_len) {
  Completion c;
  const uint8_t opcode = sqe[kSqeOpcode];
  const bool disc = ctrl_->discovery;
  if (!ctrl_->enabled.load() && opcode != kAdminKeepAlive) {
    c.status = kScCmdSeqError;
    return c;
  }
  switch (opcode) {
    case kAdminIdentify: return identify(sqe);
    case kAdminGetLogPage: return get_log_page(sqe, c2h_len);
    case kAdminSetFeatures: return features(sqe, true);
    case kAdminGetFeatures: return features(sqe, false);
    case kAdminKeepAlive:
      last_keep_alive_ms_ = now_ms_;
      return c;
    case kAdminAsyncEvent:
      if (pending_aers_.size() > kAerLimit) {
        c.status = kScAsyncLimit;
        return c;
      }
      // We never raise an event (a subsystem's one namespace never changes); the host's AERs wait.
      pending_aers_.push_back(get_u16(&sqe[kSqeCid]));
      c.deferred = true;
      return c;
    case kAdminAbort:
      if (disc) break;
      c.result = 1;  // commands run to completion: nothing is ever aborted
      return c;
    default:
      break;
  }
  c.status = kScInvalidOpcode | kStatusDnr;
  return c;
}

Session::Completion Session::identify(const Sqe& sqe) {
  Completion c;
  const uint8_t cns = uint8_t(cdw(sqe, kSqeCdw10) & 0xFF);
  const uint32_t nsid = get_u32(&sqe[kSqeNsid]);
  const bool disc = ctrl_->discovery;
  switch (cns) {
    case kCnsController:
      c.data = identify_controller();
      return c;
    case kCnsNamespace:
      if (disc) break;
      if (nsid != 1) {
        c.status = kScInvalidNs | kStatusDnr;
        return c;
      }
      c.data = identify_namespace();
      return c;
    case kCnsActiveNsList:
      if (disc) break;
      if (nsid >= 0xFFFFFFFE) {
        c.status = kScInvalidNs | kStatusDnr;
        return c;
      }
      c.data.assign(4096, 0);
      if (nsid < 1) put_u32(&c.data[0], 1);  // ids greater than NSID, ascending
      return c;
    case kCnsNsDescList: {
      if (disc) break;
      if (nsid != 1) {
        c.status = kScInvalidNs | kStatusDnr;
        return c;
      }
      c.data.assign(4096, 0);
      const auto uuid = ctrl_->exp->uuid();
      size_t p = 0;
      for (uint8_t type : {uint8_t(2), uint8_t(3)}) {  // NGUID, UUID: both the volume's identity
        c.data[p] = type;
        c.data[p + 1] = 16;
        std::memcpy(&c.data[p + 4], uuid.data(), 16);
        p += 20;
      }
      c.data[p] = 4;  // CSI: NVM command set (0)
      c.data[p + 1] = 1;
      return c;
    }
    case kCnsCsiController:
      if (disc) break;
      // I/O command set specific controller data for NVM: no extra limits (all zero).
      if ((cdw(sqe, kSqeCdw11) >> 24) != 0) break;
      c.data.assign(4096, 0);
      return c;
    default:
      break;
  }
  c.status = kScInvalidField | kStatusDnr;
  return c;
}

std::vector<uint8_t> Session::identify_controller() const {
  std::vector<uint8_t> d(4096, 0);
  uint8_t* p = d.data();
  const bool disc = ctrl_->discovery;
  std::string serial = "arbor-discovery";
  if (!disc) {
    static const char kHex[] = "0123456789abcdef";
    serial.clear();
    for (uint8_t b : ctrl_->exp->uuid()) {
      serial.push_back(kHex[b >> 4]);
      serial.push_back(kHex[b & 15]);
    }
  }
  put_u16(p + 0, 0);                                   // VID
  put_u16(p + 2, 0);                                   // SSVID
  put_ascii(p + 4, 20, serial.substr(0, 20));          // SN
  put_ascii(p + 24, 40, disc ? "Arbor discovery" : "Arbor volume");  // MN
  put_ascii(p + 64, 8, "0.1");                         // FR
  p[76] = disc ? 0 : 0x02;                             // CMIC: more than one controller allowed
  p[77] = kMdts;                                       // MDTS
  put_u16(p + 78, ctrl_->cntlid);                      // CNTLID
  put_u32(p + 80, kVersion);                           // VER
  put_u32(p + 92, disc ? 0 : kOaesNsAttrNotices);      // OAES
  p[111] = disc ? 2 : 1;                               // CNTRLTYPE: discovery / I/O
  put_u16(p + 256, 0);                                 // OACS: no optional admin commands
  p[258] = 3;                                          // ACL (0's based)
  p[259] = kAerLimit;                                  // AERL (0's based)
  p[261] = 1 << 2;                                     // LPA: extended data (offsets) for Get Log Page
  p[262] = 0;                                          // ELPE: one error log entry
  put_u16(p + 320, kKasUnits100ms);                    // KAS
  p[512] = 0x66;                                       // SQES: 64 bytes
  p[513] = 0x44;                                       // CQES: 16 bytes
  put_u16(p + 514, kMaxQueueEntries);                  // MAXCMD
  put_u32(p + 516, disc ? 0 : 1);                      // NN
  put_u16(p + 520, disc ? 0 : (kOncsDsm | kOncsWriteZeroes));  // ONCS
  p[525] = disc ? 0 : 1;                               // VWC: volatile write cache present
  put_u32(p + 536, (1u << 0) | (1u << 20));            // SGLS: SGLs, offsets in in-capsule data
  put_string(p + 768, 256, ctrl_->subsys_nqn);         // SUBNQN
  put_u32(p + 1792, (kSqeLen + kInCapsuleDataBytes) / 16);  // IOCCSZ
  put_u32(p + 1796, kCqeLen / 16);                     // IORCSZ
  put_u16(p + 1800, 0);                                // ICDOFF
  p[1802] = 0;                                         // FCATT: dynamic controller model
  p[1803] = 1;                                         // MSDBD
  return d;
}

std::vector<uint8_t> Session::identify_namespace() const {
  std::vector<uint8_t> d(4096, 0);
  uint8_t* p = d.data();
  const uint64_t nlb = ctrl_->exp->size_bytes() >> kLbaShift;
  put_u64(p + 0, nlb);    // NSZE
  put_u64(p + 8, nlb);    // NCAP
  put_u64(p + 16, nlb);   // NUSE
  p[25] = 0;              // NLBAF: one format (0's based)
  p[26] = 0;              // FLBAS: format 0
  p[30] = 1;              // NMIC: may be shared by several controllers
  p[33] = 0x09;           // DLFEAT: deallocated reads zeros; Write Zeroes honours DEAC
  p[99] = ctrl_->exp->read_only() ? 1 : 0;  // NSATTR: write protected
  const auto uuid = ctrl_->exp->uuid();
  std::memcpy(p + 104, uuid.data(), 16);    // NGUID
  put_u16(p + 128, 0);    // LBAF0.MS
  p[130] = kLbaShift;     // LBAF0.LBADS: 4096
  p[131] = 0;             // LBAF0.RP: best
  return d;
}

std::vector<uint8_t> Session::discovery_log() const {
  std::vector<proto::ExportInfo> exports = ctx_.catalog->list();
  std::vector<std::string> nqns;
  uint64_t genctr = 1469598103934665603ull;  // FNV-1a of the listed NQNs: changes when the list does
  for (auto& e : exports) {
    if (!ctx_.allow->host_allowed(e.name, ctrl_->host_nqn)) continue;
    nqns.push_back(export_nqn(ctx_.nqn_prefix, e.name));
    for (char ch : nqns.back()) genctr = (genctr ^ uint8_t(ch)) * 1099511628211ull;
    genctr = (genctr ^ 0xFF) * 1099511628211ull;
  }
  std::vector<uint8_t> d(1024 * (1 + nqns.size()), 0);
  put_u64(&d[0], genctr);
  put_u64(&d[8], nqns.size());
  put_u16(&d[16], 0);  // RECFMT
  for (size_t i = 0; i < nqns.size(); i++) {
    uint8_t* e = &d[1024 * (i + 1)];
    e[0] = 3;                        // TRTYPE: TCP
    e[1] = 1;                        // ADRFAM: IPv4
    e[2] = 2;                        // SUBTYPE: NVMe subsystem
    // TREQ 0: "not specified". (02h "not required" makes libnvme 1.3 ask a 6.1 kernel for TLS, which
    // it does not know: connect-all then fails with EINVAL.)
    e[3] = 0;
    put_u16(e + 4, 1);               // PORTID
    put_u16(e + 6, kCntlidDynamic);  // CNTLID
    put_u16(e + 8, 32);              // ASQSZ
    put_string(e + 32, 32, ctx_.io_port.trsvcid);
    put_string(e + 256, 256, nqns[i]);
    put_string(e + 512, 256, ctx_.io_port.traddr);
    e[768] = 0;                      // TSAS.SECTYPE: none
  }
  return d;
}

std::vector<uint8_t> Session::smart_log() const {
  std::vector<uint8_t> d(512, 0);
  put_u16(&d[1], 273 + 25);  // composite temperature, kelvin
  d[3] = 100;                // available spare %
  d[4] = 10;                 // spare threshold %
  // Data units are thousands of 512-byte units, rounded up; counts are commands.
  auto units = [](uint64_t bytes) { return (bytes / 512 + 999) / 1000; };
  put_u64(&d[32], units(ctrl_->bytes_read.load()));
  put_u64(&d[48], units(ctrl_->bytes_written.load()));
  put_u64(&d[64], ctrl_->read_cmds.load());
  put_u64(&d[80], ctrl_->write_cmds.load());
  return d;
}

Session::Completion Session::get_log_page(const Sqe& sqe, uint32_t c2h_len) {
  Completion c;
  const uint32_t dw10 = cdw(sqe, kSqeCdw10), dw11 = cdw(sqe, kSqeCdw11);
  const uint8_t lid = uint8_t(dw10 & 0xFF);
  const uint64_t numd = ((uint64_t(dw11 & 0xFFFF) << 16) | (dw10 >> 16)) + 1;
  const uint64_t len = numd * 4;
  const uint64_t offset = (uint64_t(cdw(sqe, kSqeCdw13)) << 32) | cdw(sqe, kSqeCdw12);
  std::vector<uint8_t> log;
  const bool disc = ctrl_->discovery;
  if (lid == kLogDiscovery && disc) {
    log = discovery_log();
  } else if (lid == kLogError) {
    log.assign(64, 0);  // no errors recorded
  } else if (lid == kLogSmart && !disc) {
    log = smart_log();
  } else if (lid == kLogChangedNs && !disc) {
    log.assign(4096, 0);  // namespaces never change
  } else {
    c.status = kScInvalidLogPage | kStatusDnr;
    return c;
  }
  if (len > c2h_len || (offset & 3) != 0 || offset > log.size()) {
    c.status = kScInvalidField | kStatusDnr;
    return c;
  }
  c.data.assign(log.begin() + offset, log.begin() + std::min<uint64_t>(log.size(), offset + len));
  return c;
}

Session::Completion Session::features(const Sqe& sqe, bool set) {
  Completion c;
  const uint32_t dw10 = cdw(sqe, kSqeCdw10), dw11 = cdw(sqe, kSqeCdw11);
  const uint8_t fid = uint8_t(dw10 & 0xFF);
  const bool disc = ctrl_->discovery;
  if (set && (dw10 >> 31)) {
    c.status = kScFeatureNotSaveable | kStatusDnr;
    return c;
  }
  if (!set && ((dw10 >> 8) & 7) == 3) {  // SEL = supported capabilities: changeable, not saveable
    c.result = 1u << 2;
    return c;
  }
  switch (fid) {
    case kFeatNumQueues: {
      if (disc) break;
      if (set) {
        const uint32_t nsqr = dw11 & 0xFFFF, ncqr = dw11 >> 16;
        if (nsqr == 0xFFFF || ncqr == 0xFFFF) break;
        const uint32_t n = std::min<uint32_t>(std::max(nsqr, ncqr) + 1, kMaxIoQueues);
        ctrl_->io_queues.store(uint16_t(n));
      }
      const uint32_t n = ctrl_->io_queues.load() - 1;
      c.result = n | (n << 16);
      return c;
    }
    case kFeatKeepAliveTimer:
      if (set) {
        ctrl_->kato_ms = dw11;
        last_keep_alive_ms_ = now_ms_;
      }
      c.result = ctrl_->kato_ms;
      return c;
    case kFeatAsyncEventConfig:
      if (set) ctrl_->async_event_config = dw11;
      c.result = ctrl_->async_event_config;
      return c;
    case kFeatVolatileWc:
      if (disc) break;
      if (set) ctrl_->write_cache.store(dw11 & 1);
      c.result = ctrl_->write_cache.load() ? 1 : 0;
      return c;
    default:
      break;
  }
  c.status = kScInvalidField | kStatusDnr;
  return c;
}

// ---------------------------------------------------------------- I/O

Session::Completion Session::io(const Sqe& sqe, std::span<const uint8_t> host_data) {
  Completion c;
  const uint8_t opcode = sqe[kSqeOpcode];
  const uint32_t nsid = get_u32(&sqe[kSqeNsid]);
  proto::BlockExport* exp = ctrl_->exp.get();
  if (!exp) {
    c.status = kScInvalidOpcode | kStatusDnr;
    return c;
  }
  const bool broadcast_flush = opcode == kIoFlush && nsid == 0xFFFFFFFF;
  if (nsid != 1 && !broadcast_flush) {
    c.status = kScInvalidNs | kStatusDnr;
    return c;
  }
  const uint64_t nsze = exp->size_bytes() >> kLbaShift;
  const uint64_t slba = get_u64(&sqe[kSqeCdw10]);
  const uint32_t dw12 = cdw(sqe, kSqeCdw12);
  const uint64_t nlb = uint64_t(dw12 & 0xFFFF) + 1;
  auto range_ok = [&](uint64_t lba, uint64_t count) { return lba <= nsze && count <= nsze - lba; };
  const uint32_t sgl_len = get_u32(&sqe[kSqeSglLength]);

  switch (opcode) {
    case kIoRead: {
      if (!range_ok(slba, nlb)) return c.status = kScLbaRange | kStatusDnr, c;
      if (sgl_len != nlb << kLbaShift) return c.status = kScSglInvalidData | kStatusDnr, c;
      ctrl_->read_cmds.fetch_add(1);
      c.data.resize(nlb << kLbaShift);
      Status read_status;
      {
        // A page-cache hit is served on the loop; a read that would wait goes to a worker.
        std::optional<NonBlockingScope> no_wait;
        if (run_blocking_) no_wait.emplace();
        read_status = exp->read(slba << kLbaShift, c.data);
      }
      if (read_status.code() == Code::kWouldBlock) {
        auto data = std::make_shared<std::vector<uint8_t>>(std::move(c.data));
        auto on_done = [this, data](Completion& done) {
          if (done.status != kScSuccess) return;
          if (ctrl_) ctrl_->bytes_read.fetch_add(data->size());
          done.data = std::move(*data);
        };
        if (read_file_) {
          // A page-cache miss: wait for it on the loop's ring, not on a worker.
          Result<std::unique_ptr<PlannedRead>> plan = not_supported("");
          {
            NonBlockingScope no_wait;
            plan = exp->plan_read(slba << kLbaShift, *data);
          }
          if (plan.is_ok()) return planned_read(sqe, std::move(plan).value(), std::move(on_done));
          Code code = plan.status().code();
          if (code != Code::kNotSupported && code != Code::kWouldBlock) return c.status = status_for(plan.status(), false), c;
        }
        return blocking_call(sqe, [e = ctrl_->exp, off = slba << kLbaShift, data] { return e->read(off, *data); }, false,
                             std::move(on_done));
      }
      c.status = status_for(read_status, false);
      if (c.status != kScSuccess) c.data.clear();
      ctrl_->bytes_read.fetch_add(c.data.size());
      return c;
    }
    case kIoWrite: {
      if (!range_ok(slba, nlb)) return c.status = kScLbaRange | kStatusDnr, c;
      if (host_data.size() != nlb << kLbaShift) return c.status = kScSglInvalidData | kStatusDnr, c;
      if (exp->read_only()) return c.status = kScNsWriteProtected | kStatusDnr, c;
      const bool fua = ((dw12 >> 30) & 1) || !ctrl_->write_cache.load();
      ctrl_->write_cmds.fetch_add(1);
      ctrl_->bytes_written.fetch_add(host_data.size());
      if (fua && run_blocking_) {
        // Durable on completion: may wait for the device, so off the loop (data copied: the span
        // points into a receive buffer that is reused as soon as we return).
        std::vector<uint8_t> copy(host_data.begin(), host_data.end());
        return blocking_call(sqe, [e = ctrl_->exp, off = slba << kLbaShift, d = std::move(copy)] {
          return e->write(off, d, true);
        }, true);
      }
      c.status = status_for(exp->write(slba << kLbaShift, host_data, fua), true);
      return c;
    }
    case kIoFlush:
      return blocking_call(sqe, [e = ctrl_->exp] { return e->flush(); }, true);
    case kIoWriteZeroes: {
      if (!range_ok(slba, nlb)) return c.status = kScLbaRange | kStatusDnr, c;
      if (exp->read_only()) return c.status = kScNsWriteProtected | kStatusDnr, c;
      const bool deac = (dw12 >> 25) & 1;
      c.status = status_for(exp->write_zeroes(slba << kLbaShift, nlb << kLbaShift, deac), true);
      if (c.status == kScSuccess && (dw12 >> 30 & 1)) c.status = status_for(exp->flush(), true);
      return c;
    }
    case kIoDsm: {
      const uint32_t nr = (cdw(sqe, kSqeCdw10) & 0xFF) + 1;
      const bool deallocate = (cdw(sqe, kSqeCdw11) >> 2) & 1;
      // At least NR ranges. Linux always sends a 4 KiB buffer (256 ranges' worth; nvme_setup_discard
      // allocates NVME_DSM_MAX_RANGES for devices that ignore NR), so more is fine: we read NR.
      if (host_data.size() < nr * 16) return c.status = kScSglInvalidData | kStatusDnr, c;
      if (!deallocate) return c;  // attributes only: hints we may ignore
      if (exp->read_only()) return c.status = kScNsWriteProtected | kStatusDnr, c;
      for (uint32_t i = 0; i < nr; i++) {  // check every range before trimming any
        const uint64_t n = get_u32(&host_data[i * 16 + 4]), lba = get_u64(&host_data[i * 16 + 8]);
        if (!range_ok(lba, n)) return c.status = kScLbaRange | kStatusDnr, c;
      }
      for (uint32_t i = 0; i < nr; i++) {
        const uint64_t n = get_u32(&host_data[i * 16 + 4]), lba = get_u64(&host_data[i * 16 + 8]);
        if (n == 0) continue;
        c.status = status_for(exp->trim(lba << kLbaShift, n << kLbaShift), true);
        if (c.status != kScSuccess) return c;
      }
      return c;
    }
    default:
      break;
  }
  c.status = kScInvalidOpcode | kStatusDnr;
  return c;
}

}  // namespace arbor::nvme_tcp
