// libFuzzer entry point over the session core: arbitrary bytes from the host, in any state.
//
// Input byte 0 picks the starting state so the fuzzer reaches deep code quickly:
//   bits 1:0  0 = raw (before ICReq), 1 = after ICReq, 2 = admin queue connected and enabled,
//             3 = I/O queue 1 connected to a live controller
//   bits 3:2  digests negotiated in the ICReq (header, data)
//   bits 6:4  how the rest is split into receive() calls (0 = one call, else chunks of 2^(k-1) bytes)
//   bit 7     blocking calls (Flush, FUA writes, shutdown) are deferred and run after each
//             receive(), as the transport's worker pool does, instead of inline
// The rest of the input is what the host sends. Invariants checked on every input: the session
// never consumes more than it was given, every output PDU's PLEN equals its size, and a closing
// session consumes nothing more.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "proto/nvme_tcp/session.h"
#include "proto/memory_export.h"
#include "util/check.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor::nvme_tcp {
namespace {

constexpr char kHost[] = "nqn.2014-08.org.nvmexpress:uuid:fuzz";

struct World {
  proto::MemoryCatalog catalog;
  StaticHostAllowList allow;
  TargetContext ctx;
  World() {
    catalog.add("vol", 256 << 10);
    catalog.add("ro@snap", 64 << 10, true);
    catalog.add("locked", 64 << 10);
    allow.allow("locked", "nqn.someone");
    ctx.catalog = &catalog;
    ctx.allow = &allow;
  }
};

std::vector<uint8_t> capsule(const uint8_t sqe[64], const std::vector<uint8_t>& data, bool hd, bool dd) {
  const uint32_t h = hd ? 4 : 0, d = (dd && !data.empty()) ? 4 : 0;
  const uint32_t pdo = data.empty() ? 0 : 72 + h;
  const uint32_t plen = data.empty() ? 72 + h : pdo + uint32_t(data.size()) + d;
  std::vector<uint8_t> p(plen, 0);
  p[0] = kCapsuleCmd;
  p[2] = 72;
  p[3] = uint8_t(pdo);
  put_u32(&p[4], plen);
  std::memcpy(&p[8], sqe, 64);
  if (h) put_u32(&p[72], crc32c(p.data(), 72));
  if (!data.empty()) {
    std::memcpy(&p[pdo], data.data(), data.size());
    if (d) put_u32(&p[pdo + data.size()], crc32c(data.data(), data.size()));
  }
  return p;
}

std::vector<uint8_t> icreq(uint8_t digest) {
  std::vector<uint8_t> p(128, 0);
  p[0] = kIcReq;
  p[2] = 128;
  put_u32(&p[4], 128);
  p[11] = digest;
  return p;
}

std::vector<uint8_t> connect_pdu(uint16_t qid, uint16_t cntlid, bool hd, bool dd) {
  uint8_t sqe[64] = {};
  sqe[0] = kOpFabrics;
  sqe[4] = kFcConnect;
  put_u16(&sqe[42], qid);
  put_u16(&sqe[44], 31);
  put_u32(&sqe[32], 1024);
  sqe[39] = kSglDataBlockOffset;
  std::vector<uint8_t> d(1024, 0);
  put_u16(&d[16], cntlid);
  const std::string sub = "nqn.2026-01.dev.arbor:vol";
  std::memcpy(&d[256], sub.data(), sub.size());
  std::memcpy(&d[512], kHost, sizeof(kHost) - 1);
  return capsule(sqe, d, hd, dd);
}

std::vector<uint8_t> enable_pdu(bool hd, bool dd) {
  uint8_t sqe[64] = {};
  sqe[0] = kOpFabrics;
  sqe[4] = kFcPropertySet;
  put_u32(&sqe[44], kPropCc);
  put_u64(&sqe[48], 1 | (6u << 16) | (4u << 20));
  return capsule(sqe, {}, hd, dd);
}

void feed(Session& s, const std::vector<uint8_t>& bytes) {
  size_t used = s.receive(bytes, 0);
  ARBOR_CHECK(used == bytes.size());
  (void)s.take_output();
}

void check_output(Session& s) {
  for (auto& pdu : s.take_output()) {
    ARBOR_CHECK(pdu.size() >= 8);
    ARBOR_CHECK(get_u32(&pdu[4]) == pdu.size());
  }
}

}  // namespace
}  // namespace arbor::nvme_tcp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace arbor::nvme_tcp;
  static World* world = new World();  // one catalog for the process: exports are cheap to keep
  if (size == 0) return 0;
  const uint8_t mode = data[0] & 3;
  const uint8_t digest = (data[0] >> 2) & 3;
  const uint8_t split = (data[0] >> 4) & 7;
  const bool deferred = data[0] >> 7;
  const bool hd = digest & 1, dd = digest & 2;
  std::vector<uint8_t> input(data + 1, data + size);

  Session admin(world->ctx, 0);
  Session s(world->ctx, 0);
  std::vector<std::pair<std::function<void()>, std::function<void()>>> queued;
  if (deferred) {
    s.set_run_blocking([&queued](std::function<void()> work, std::function<void()> done) {
      queued.emplace_back(std::move(work), std::move(done));
    });
  }
  if (mode == 3) {
    feed(admin, icreq(digest));
    admin.receive(connect_pdu(0, 0xFFFF, hd, dd), 0);
    auto out = admin.take_output();
    ARBOR_CHECK(admin.controller() != nullptr);
    feed(admin, enable_pdu(hd, dd));
    feed(s, icreq(digest));
    feed(s, connect_pdu(1, admin.controller()->cntlid, hd, dd));
    ARBOR_CHECK(s.connected());
  } else if (mode >= 1) {
    feed(s, icreq(digest));
    if (mode == 2) {
      feed(s, connect_pdu(0, 0xFFFF, hd, dd));
      feed(s, enable_pdu(hd, dd));
      ARBOR_CHECK(s.connected());
    }
  }

  std::vector<uint8_t> buf;
  size_t pos = 0;
  const size_t chunk = split == 0 ? input.size() + 1 : size_t(1) << (split - 1);
  while (pos < input.size() && !s.closing()) {
    size_t n = std::min(chunk, input.size() - pos);
    buf.insert(buf.end(), input.begin() + pos, input.begin() + pos + n);
    pos += n;
    size_t want = 0;
    size_t used = s.receive(buf, 1000, &want);
    ARBOR_CHECK(used <= buf.size());
    ARBOR_CHECK(want <= s.max_pdu_bytes() || s.closing());
    buf.erase(buf.begin(), buf.begin() + used);
    check_output(s);
    // Worker results come back after the receive buffer was consumed (and would be reused).
    std::fill(buf.begin(), buf.end(), 0xDD);
    auto batch = std::move(queued);
    queued.clear();
    for (auto& [work, done] : batch) {
      work();
      done();
    }
    check_output(s);
  }
  s.tick(1000000);
  admin.tick(1000000);
  check_output(s);
  if (s.closing()) ARBOR_CHECK(s.receive(input, 0) == 0);
  return 0;
}
