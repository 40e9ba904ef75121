// The PDU layer of a session: framing, header checks, digests, ICReq, capsules, R2T and H2C data.
// Command semantics live in commands.cc.
#include "proto/nvme_tcp/session.h"

#include <algorithm>
#include <cstring>

#include "util/check.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor::nvme_tcp {

namespace {
uint32_t align_up(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }
}  // namespace

Session::Session(TargetContext& ctx, uint64_t now_ms) : ctx_(ctx), now_ms_(now_ms), last_keep_alive_ms_(now_ms) {}

Session::~Session() { release_controller(); }

void Session::release_controller() {
  if (!ctrl_) return;
  if (qid_ == 0) {
    // The admin queue owns the controller: its I/O queues notice `dead` and close.
    ctrl_->dead.store(true);
    ctx_.controllers.remove(ctrl_->cntlid);
  } else if (qid_ > 0) {
    std::lock_guard lock(ctrl_->mu);
    ctrl_->io_qids.erase(uint16_t(qid_));
  }
  ctrl_.reset();
}

size_t Session::max_pdu_bytes() const {
  // A command capsule with the largest in-capsule data, or an H2C Data PDU with MAXH2CDATA, each
  // with both digests and at most 255 bytes of header + padding (PDO is one byte).
  return 256 + std::max(kInCapsuleDataBytes, kMaxH2CDataBytes) + kDigestLen;
}

std::vector<std::vector<uint8_t>> Session::take_output() { return std::exchange(out_, {}); }

void Session::close(std::string reason) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = std::move(reason);
  transfers_.clear();
  release_controller();
}

void Session::fatal(uint16_t fes, uint32_t fei, std::span<const uint8_t> pdu_header, std::string reason) {
  if (closing_) return;
  // C2HTermReq: common header, FES, FEI, reserved, then up to 152 bytes of the offending header.
  size_t copy = std::min<size_t>(pdu_header.size(), kTermMaxErrorData);
  std::vector<uint8_t> pdu(kTermReqHlen + copy, 0);
  pdu[kChType] = kC2HTermReq;
  pdu[kChHlen] = kTermReqHlen;
  put_u32(&pdu[kChPlen], uint32_t(pdu.size()));
  put_u16(&pdu[kTermFes], fes);
  put_u32(&pdu[kTermFei], fei);
  if (copy) std::memcpy(&pdu[kTermReqHlen], pdu_header.data(), copy);
  out_.push_back(std::move(pdu));
  close("fatal transport error: " + reason);
}

void Session::emit(uint8_t type, uint8_t flags, std::span<const uint8_t> specific, std::span<const uint8_t> data) {
  // `specific` is the type-specific header after the common header.
  const uint32_t hlen = kChLen + uint32_t(specific.size());
  const uint32_t hd = hdgst_ ? kDigestLen : 0;
  const uint32_t dd = (ddgst_ && !data.empty()) ? kDigestLen : 0;
  const uint32_t pdo = data.empty() ? 0 : align_up(hlen + hd, hpda_align_);
  const uint32_t plen = data.empty() ? hlen + hd : pdo + uint32_t(data.size()) + dd;
  std::vector<uint8_t> pdu(plen, 0);
  pdu[kChType] = type;
  pdu[kChFlags] = uint8_t(flags | (hd ? kFlagHdgst : 0) | (dd ? kFlagDdgst : 0));
  pdu[kChHlen] = uint8_t(hlen);
  pdu[kChPdo] = uint8_t(pdo);
  put_u32(&pdu[kChPlen], plen);
  if (!specific.empty()) std::memcpy(&pdu[kChLen], specific.data(), specific.size());
  if (hd) put_u32(&pdu[hlen], crc32c(pdu.data(), hlen));
  if (!data.empty()) {
    std::memcpy(&pdu[pdo], data.data(), data.size());
    if (dd) put_u32(&pdu[pdo + data.size()], crc32c(data.data(), data.size()));
  }
  out_.push_back(std::move(pdu));
}

void Session::send_response(const Sqe& sqe, const Completion& c) {
  uint8_t cqe[kCqeLen] = {};
  put_u64(&cqe[kCqeResult], c.result);
  put_u16(&cqe[kCqeSqhd], sqhd_);
  put_u16(&cqe[kCqeSqid], uint16_t(std::max(qid_, 0)));
  std::memcpy(&cqe[kCqeCid], &sqe[kSqeCid], 2);  // command id is opaque: echo its bytes
  put_u16(&cqe[kCqeStatus], wire_status(c.status));
  emit(kCapsuleResp, 0, cqe, {});
}

void Session::send_c2h_data(uint16_t cid, std::span<const uint8_t> data) {
  uint8_t h[kDataHlen - kChLen] = {};
  put_u16(&h[kDataCccid - kChLen], cid);
  put_u32(&h[kDataOffset - kChLen], 0);
  put_u32(&h[kDataLength - kChLen], uint32_t(data.size()));
  emit(kC2HData, kFlagDataLast, h, data);
}

void Session::send_r2t(uint16_t cid, uint16_t ttag, uint32_t offset, uint32_t length) {
  uint8_t h[kR2THlen - kChLen] = {};
  put_u16(&h[kDataCccid - kChLen], cid);
  put_u16(&h[kDataTtag - kChLen], ttag);
  put_u32(&h[kDataOffset - kChLen], offset);
  put_u32(&h[kDataLength - kChLen], length);
  emit(kR2T, 0, h, {});
}

size_t Session::receive(std::span<const uint8_t> data, uint64_t now_ms, size_t* want_bytes) {
  now_ms_ = now_ms;
  size_t off = 0;
  if (want_bytes) *want_bytes = kChLen;
  while (!closing_) {
    const size_t avail = data.size() - off;
    if (avail < kChLen) break;
    const uint8_t* ch = data.data() + off;
    const uint8_t type = ch[kChType];
    const uint32_t hlen = ch[kChHlen];
    const uint32_t plen = get_u32(ch + kChPlen);
    std::span<const uint8_t> head(ch, std::min<size_t>(avail, std::max<uint32_t>(hlen, kChLen)));

    // Checks that need only the common header, so a bad length never makes us wait for bytes.
    uint32_t want_hlen = 0;
    switch (type) {
      case kIcReq: want_hlen = kIcReqLen; break;
      case kCapsuleCmd: want_hlen = kCmdHlen; break;
      case kH2CData: want_hlen = kDataHlen; break;
      case kH2CTermReq: want_hlen = kTermReqHlen; break;
      default:
        fatal(kFesInvalidHeaderField, kChType, head, "unexpected PDU type " + std::to_string(type));
        return off;
    }
    if (!ic_done_ && type != kIcReq) {
      fatal(kFesPduSequenceError, 0, head, "PDU before ICReq");
      return off;
    }
    if (ic_done_ && type == kIcReq) {
      fatal(kFesPduSequenceError, 0, head, "second ICReq");
      return off;
    }
    if (hlen != want_hlen) {
      fatal(kFesInvalidHeaderField, kChHlen, head, "bad HLEN " + std::to_string(hlen));
      return off;
    }
    const uint32_t hd = (hdgst_ && (type == kCapsuleCmd || type == kH2CData)) ? kDigestLen : 0;
    if (plen < hlen + hd || plen > max_pdu_bytes() ||
        (type == kIcReq && plen != kIcReqLen) || (type == kH2CTermReq && plen > kTermReqHlen + kTermMaxErrorData)) {
      fatal(kFesInvalidHeaderField, kChPlen, head, "bad PLEN " + std::to_string(plen));
      return off;
    }
    if (avail < plen) {
      if (want_bytes) *want_bytes = plen;
      break;
    }
    handle_pdu(data.subspan(off, plen));
    off += plen;
    if (want_bytes) *want_bytes = kChLen;
  }
  return off;
}

void Session::handle_pdu(std::span<const uint8_t> pdu) {
  const uint8_t type = pdu[kChType];
  const uint32_t hlen = pdu[kChHlen];
  if (type == kIcReq) return handle_icreq(pdu);
  if (type == kH2CTermReq) return close("host sent H2CTermReq fes=" + std::to_string(get_u16(&pdu[kTermFes])));
  if (hdgst_) {
    const uint32_t want = crc32c(pdu.data(), hlen);
    if (get_u32(&pdu[hlen]) != want) return fatal(kFesHeaderDigestError, 0, pdu.first(hlen), "header digest mismatch");
  }
  if (type == kCapsuleCmd) return handle_capsule(pdu);
  return handle_h2c_data(pdu);
}

void Session::handle_icreq(std::span<const uint8_t> pdu) {
  if (get_u16(&pdu[kIcPfv]) != 0) return fatal(kFesInvalidHeaderField, kIcPfv, pdu, "unsupported PFV");
  const uint8_t hpda = pdu[kIcPda];
  if (hpda > 31) return fatal(kFesInvalidHeaderField, kIcPda, pdu, "HPDA out of range");
  const uint8_t digest = pdu[kIcDigest];
  hpda_align_ = (uint32_t(hpda) + 1) * 4;
  // MAXR2T is the host's limit on R2Ts outstanding per command; we issue one per command.
  uint8_t r[kIcRespLen - kChLen] = {};
  put_u16(&r[kIcPfv - kChLen], 0);
  r[kIcPda - kChLen] = 0;  // CPDA: no alignment needed for data the host sends us
  r[kIcDigest - kChLen] = uint8_t(digest & (kDigestHeader | kDigestData));
  put_u32(&r[kIcMaxh2cdata - kChLen], kMaxH2CDataBytes);
  emit(kIcResp, 0, r, {});  // digests are off for the ICResp itself
  hdgst_ = digest & kDigestHeader;
  ddgst_ = digest & kDigestData;
  ic_done_ = true;
}

void Session::handle_capsule(std::span<const uint8_t> pdu) {
  const uint32_t hd = hdgst_ ? kDigestLen : 0;
  const uint32_t pdo = pdu[kChPdo];
  const uint32_t plen = uint32_t(pdu.size());
  Sqe sqe;
  std::memcpy(sqe.data(), &pdu[kChLen], kSqeLen);
  std::span<const uint8_t> in_capsule;
  bool digest_error = false;
  if (plen > kCmdHlen + hd) {
    const uint32_t dd = ddgst_ ? kDigestLen : 0;
    if (pdo < kCmdHlen + hd || pdo + dd > plen) return fatal(kFesInvalidHeaderField, kChPdo, pdu.first(kCmdHlen), "bad PDO");
    const uint32_t len = plen - pdo - dd;
    if (len > kInCapsuleDataBytes) return fatal(kFesDataLimitExceeded, kChPlen, pdu.first(kCmdHlen), "in-capsule data too long");
    in_capsule = pdu.subspan(pdo, len);
    if (dd && get_u32(&pdu[pdo + len]) != crc32c(in_capsule.data(), len)) digest_error = true;
  }
  start_command(sqe, in_capsule, digest_error);
}

void Session::start_command(const Sqe& sqe, std::span<const uint8_t> in_capsule, bool digest_error) {
  if (connected()) sqhd_ = uint16_t((sqhd_ + 1) % (uint32_t(sqsize_) + 1));
  const uint8_t opcode = sqe[kSqeOpcode];
  // Data direction is in the low two bits of the opcode (for Fabrics commands, of FCTYPE).
  const uint8_t dir = (opcode == kOpFabrics ? sqe[kSqeFctype] : opcode) & 3;
  const uint8_t sgl_type = sqe[kSqeSglType];
  const uint32_t sgl_len = get_u32(&sqe[kSqeSglLength]);
  const uint64_t sgl_addr = get_u64(&sqe[kSqeSglAddr]);
  auto fail = [&](uint16_t status) {
    Completion c;
    c.status = status;
    send_response(sqe, c);
  };
  if (digest_error) return fail(kScTransientTransport);
  if (sgl_len == 0) {
    if (!in_capsule.empty()) return fail(kScInvalidField | kStatusDnr);
    return finish_command(sqe, {});
  }
  if (sgl_len > kMaxDataBytes) return fail(kScInvalidField | kStatusDnr);
  if (dir == 1) {  // host to controller
    if (sgl_type == kSglDataBlockOffset) {
      if (sgl_addr != 0) return fail(kScSglInvalidOffset | kStatusDnr);
      if (sgl_len > in_capsule.size()) return fail(kScSglInvalidData | kStatusDnr);
      return finish_command(sqe, in_capsule.first(sgl_len));
    }
    if (sgl_type != kSglTransportDataBlock) return fail(kScSglInvalidType | kStatusDnr);
    if (!in_capsule.empty()) return fail(kScInvalidField | kStatusDnr);
    if (transfers_.size() > size_t(sqsize_) + 1) return fail(kScCmdSeqError | kStatusDnr);
    uint16_t ttag = next_ttag_;
    while (transfers_.count(ttag)) ttag++;
    next_ttag_ = uint16_t(ttag + 1);
    Transfer& t = transfers_[ttag];
    t.sqe = sqe;
    t.buf.resize(sgl_len);
    send_r2t(get_u16(&sqe[kSqeCid]), ttag, 0, sgl_len);
    return;
  }
  if (dir == 2) {  // controller to host
    if (!in_capsule.empty()) return fail(kScInvalidField | kStatusDnr);
    if (sgl_type != kSglTransportDataBlock) return fail(kScSglInvalidType | kStatusDnr);
    return finish_command(sqe, {});
  }
  fail(kScInvalidField | kStatusDnr);  // data with a command that moves none, or bidirectional
}

void Session::finish_command(const Sqe& sqe, std::span<const uint8_t> host_data) {
  const uint8_t opcode = sqe[kSqeOpcode];
  const uint8_t dir = (opcode == kOpFabrics ? sqe[kSqeFctype] : opcode) & 3;
  const uint32_t c2h_len = dir == 2 ? get_u32(&sqe[kSqeSglLength]) : 0;
  Completion c = execute(sqe, host_data, c2h_len);
  if (c.deferred) return;
  if (c.status == kScSuccess && c2h_len > 0) {
    // Admin data structures are sized by the command: truncate or zero-pad to what the host asked.
    c.data.resize(c2h_len, 0);
    send_c2h_data(get_u16(&sqe[kSqeCid]), c.data);
  }
  send_response(sqe, c);
  if (c.close_after) close("Disconnect");
}

void Session::handle_h2c_data(std::span<const uint8_t> pdu) {
  const uint32_t hd = hdgst_ ? kDigestLen : 0;
  const uint32_t dd = ddgst_ ? kDigestLen : 0;
  const uint32_t pdo = pdu[kChPdo];
  const uint32_t plen = uint32_t(pdu.size());
  const uint16_t cid = get_u16(&pdu[kDataCccid]);
  const uint16_t ttag = get_u16(&pdu[kDataTtag]);
  const uint32_t datao = get_u32(&pdu[kDataOffset]);
  const uint32_t datal = get_u32(&pdu[kDataLength]);
  auto header = pdu.first(kDataHlen);
  if (pdo < kDataHlen + hd || uint64_t(pdo) + datal + dd != plen) {
    return fatal(kFesInvalidHeaderField, kChPdo, header, "H2C data PDO/PLEN/DATAL disagree");
  }
  if (datal == 0) return fatal(kFesInvalidHeaderField, kDataLength, header, "empty H2C data");
  if (datal > kMaxH2CDataBytes) return fatal(kFesDataLimitExceeded, kDataLength, header, "H2C data over MAXH2CDATA");
  auto it = transfers_.find(ttag);
  if (it == transfers_.end() || get_u16(&it->second.sqe[kSqeCid]) != cid) {
    return fatal(kFesInvalidHeaderField, kDataTtag, header, "H2C data for no outstanding R2T");
  }
  Transfer& t = it->second;
  // Data must arrive in order and inside what the R2T asked for.
  if (datao != t.received || uint64_t(datao) + datal > t.buf.size()) {
    return fatal(kFesDataOutOfRange, kDataOffset, header, "H2C data outside its R2T");
  }
  auto data = pdu.subspan(pdo, datal);
  if (dd && get_u32(&pdu[pdo + datal]) != crc32c(data.data(), datal)) t.digest_error = true;
  std::memcpy(t.buf.data() + datao, data.data(), datal);
  t.received += datal;
  if (t.received < t.buf.size()) return;
  Transfer done = std::move(t);
  transfers_.erase(it);
  if (done.digest_error) {
    Completion c;
    c.status = kScTransientTransport;
    return send_response(done.sqe, c);
  }
  finish_command(done.sqe, done.buf);
}

void Session::tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  if (closing_ || !ctrl_) return;
  if (ctrl_->dead.load()) return close("controller gone");
  if (qid_ == 0 && ctrl_->kato_ms > 0) {
    // Hosts send Keep Alive every KATO (older kernels) or KATO/2; allow a full extra KATO of slack.
    const uint64_t limit_ms = 2ull * ctrl_->kato_ms;
    if (now_ms > last_keep_alive_ms_ + limit_ms) close("keep-alive timeout");
  }
}

}  // namespace arbor::nvme_tcp
