// Session core tests with hand-built PDUs: the good paths a kernel initiator takes, and each class
// of malformed input (wrong type, HLEN, PLEN past the maximum, data outside the command, digest
// mismatches, commands before Connect, unknown opcodes, truncated PDUs).
#include "proto/nvme_tcp/session.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>

#include "proto/memory_export.h"
#include "proto/planned_file_catalog.h"
#include "util/crc32c.h"
#include "util/encoding.h"

namespace arbor::nvme_tcp {
namespace {

constexpr char kHostNqn[] = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";
constexpr char kPrefix[] = "nqn.2026-01.dev.arbor:";

struct Pdu {
  std::vector<uint8_t> b;
  uint8_t type() const { return b[0]; }
  uint32_t plen() const { return get_u32(&b[4]); }
};

using Sqe = std::array<uint8_t, 64>;

// The host side: builds PDUs with or without digests and parses what the session sends.
class Host {
 public:
  explicit Host(TargetContext& ctx) : s(ctx, now) {}

  void feed(const std::vector<uint8_t>& bytes) {
    pending.insert(pending.end(), bytes.begin(), bytes.end());
    size_t used = s.receive(pending, now);
    pending.erase(pending.begin(), pending.begin() + used);
    for (auto& o : s.take_output()) {
      // Every output buffer is exactly one PDU whose PLEN is its size.
      EXPECT_EQ(get_u32(&o[4]), o.size());
      out.push_back({o});
    }
  }
  Pdu next() {
    EXPECT_FALSE(out.empty());
    if (out.empty()) return {std::vector<uint8_t>(24, 0xEE)};
    Pdu p = out.front();
    out.erase(out.begin());
    return p;
  }

  std::vector<uint8_t> icreq(uint8_t digest = 0) {
    std::vector<uint8_t> p(128, 0);
    p[0] = kIcReq;
    p[2] = 128;
    put_u32(&p[4], 128);
    p[11] = digest;
    put_u32(&p[12], 0);
    return p;
  }
  void handshake(uint8_t digest = 0) {
    feed(icreq(digest));
    Pdu r = next();
    ASSERT_EQ(r.type(), kIcResp);
    ASSERT_EQ(r.plen(), 128u);
    ASSERT_EQ(r.b[11], digest);
    ASSERT_EQ(get_u32(&r.b[12]), kMaxH2CDataBytes);
    hd = digest & 1;
    dd = digest & 2;
  }

  std::vector<uint8_t> capsule(const Sqe& sqe, const std::vector<uint8_t>& data = {}) {
    const uint32_t h = hd ? 4 : 0, d = (dd && !data.empty()) ? 4 : 0;
    const uint32_t pdo = data.empty() ? 0 : 72 + h;
    const uint32_t plen = data.empty() ? 72 + h : pdo + uint32_t(data.size()) + d;
    std::vector<uint8_t> p(plen, 0);
    p[0] = kCapsuleCmd;
    p[1] = uint8_t((hd ? 1 : 0) | (d ? 2 : 0));
    p[2] = 72;
    p[3] = uint8_t(pdo);
    put_u32(&p[4], plen);
    std::memcpy(&p[8], sqe.data(), 64);
    if (h) put_u32(&p[72], crc32c(p.data(), 72));
    if (!data.empty()) {
      std::memcpy(&p[pdo], data.data(), data.size());
      if (d) put_u32(&p[pdo + data.size()], crc32c(data.data(), data.size()));
    }
    return p;
  }
  std::vector<uint8_t> h2c(uint16_t cid, uint16_t ttag, uint32_t off, const std::vector<uint8_t>& data) {
    const uint32_t h = hd ? 4 : 0, d = dd ? 4 : 0;
    const uint32_t pdo = 24 + h, plen = pdo + uint32_t(data.size()) + d;
    std::vector<uint8_t> p(plen, 0);
    p[0] = kH2CData;
    p[1] = uint8_t(kFlagDataLast | (hd ? 1 : 0) | (dd ? 2 : 0));
    p[2] = 24;
    p[3] = uint8_t(pdo);
    put_u32(&p[4], plen);
    put_u16(&p[8], cid);
    put_u16(&p[10], ttag);
    put_u32(&p[12], off);
    put_u32(&p[16], uint32_t(data.size()));
    if (h) put_u32(&p[24], crc32c(p.data(), 24));
    std::memcpy(&p[pdo], data.data(), data.size());
    if (d) put_u32(&p[pdo + data.size()], crc32c(data.data(), data.size()));
    return p;
  }

  static Sqe sqe(uint8_t opcode, uint16_t cid, uint32_t nsid = 0) {
    Sqe q{};
    q[0] = opcode;
    q[1] = 0x40;  // PSDT: SGL
    put_u16(&q[2], cid);
    put_u32(&q[4], nsid);
    return q;
  }
  static void sgl(Sqe& q, uint8_t type, uint32_t len) {
    put_u32(&q[32], len);
    q[39] = type;
  }
  static Sqe fabrics(uint8_t fctype, uint16_t cid) {
    Sqe q = sqe(kOpFabrics, cid);
    q[4] = fctype;
    return q;
  }
  static std::vector<uint8_t> connect_data(const std::string& subnqn, const std::string& hostnqn, uint16_t cntlid) {
    std::vector<uint8_t> d(1024, 0);
    put_u16(&d[16], cntlid);
    std::memcpy(&d[256], subnqn.data(), subnqn.size());
    std::memcpy(&d[512], hostnqn.data(), hostnqn.size());
    return d;
  }

  // Sends a command and returns (status without phase, dw0) of the response; data PDUs go to `data`.
  std::pair<uint16_t, uint64_t> run(const std::vector<uint8_t>& pdu, std::vector<uint8_t>* data = nullptr) {
    feed(pdu);
    Pdu r = next();
    if (r.type() == kC2HData) {
      const uint32_t pdo = r.b[3];
      const uint32_t len = get_u32(&r.b[16]);
      if (data) data->assign(r.b.begin() + pdo, r.b.begin() + pdo + len);
      if (dd) {
        EXPECT_EQ(get_u32(&r.b[pdo + len]), crc32c(&r.b[pdo], len));
      }
      r = next();
    }
    EXPECT_EQ(r.type(), kCapsuleResp);
    if (r.type() != kCapsuleResp) return {0xFFFF, 0};
    if (hd) {
      EXPECT_EQ(get_u32(&r.b[24]), crc32c(r.b.data(), 24));
    }
    return {uint16_t(get_u16(&r.b[8 + 14]) >> 1), get_u64(&r.b[8])};
  }

  uint16_t connect(const std::string& subnqn, uint16_t qid, uint16_t cntlid = 0xFFFF, const std::string& host = kHostNqn,
                   uint64_t* dw0 = nullptr) {
    Sqe q = fabrics(kFcConnect, 1);
    put_u16(&q[42], qid);
    put_u16(&q[44], 31);
    put_u32(&q[48], 5000);
    sgl(q, kSglDataBlockOffset, 1024);
    auto [st, r] = run(capsule(q, connect_data(subnqn, host, cntlid)));
    if (dw0) *dw0 = r;
    return st;
  }
  uint16_t enable() {
    Sqe q = fabrics(kFcPropertySet, 2);
    put_u32(&q[44], kPropCc);
    put_u64(&q[48], 1 | (6u << 16) | (4u << 20));
    return run(capsule(q)).first;
  }
  uint16_t admin_connect(const std::string& subnqn, uint16_t* cntlid = nullptr) {
    uint64_t dw0 = 0;
    uint16_t st = connect(subnqn, 0, 0xFFFF, kHostNqn, &dw0);
    if (cntlid) *cntlid = uint16_t(dw0);
    if (st != 0) return st;
    return enable();
  }

  uint64_t now = 1000;
  Session s;
  std::vector<uint8_t> pending;
  std::vector<Pdu> out;
  bool hd = false, dd = false;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    catalog.add("vol", 1 << 20);
    catalog.add("vol@snap", 1 << 20, true);
    catalog.add("secret", 1 << 20);
    allow.allow("secret", "nqn.other-host");
    ctx.catalog = &catalog;
    ctx.allow = &allow;
    ctx.nqn_prefix = kPrefix;
  }
  std::string nqn(const std::string& e) { return std::string(kPrefix) + e; }
  // An I/O queue host connected to `vol`.
  std::unique_ptr<Host> io_host(Host& admin, uint16_t cntlid, uint8_t digest = 0) {
    auto h = std::make_unique<Host>(ctx);
    h->handshake(digest);
    EXPECT_EQ(h->connect(nqn("vol"), 1, cntlid), 0);
    return h;
  }
  Sqe rw(uint8_t op, uint16_t cid, uint64_t slba, uint32_t nlb) {
    Sqe q = Host::sqe(op, cid, 1);
    put_u64(&q[40], slba);
    put_u32(&q[48], nlb - 1);
    return q;
  }

  proto::MemoryCatalog catalog;
  StaticHostAllowList allow;
  TargetContext ctx;
};

TEST_F(SessionTest, HandshakeNegotiatesDigests) {
  Host h(ctx);
  h.handshake(3);
  EXPECT_TRUE(h.s.header_digest());
  EXPECT_TRUE(h.s.data_digest());
  EXPECT_FALSE(h.s.closing());
}

TEST_F(SessionTest, AdminConnectPropertiesIdentify) {
  Host h(ctx);
  h.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(h.admin_connect(nqn("vol"), &cntlid), 0);
  EXPECT_GE(cntlid, 1);
  Sqe cap = Host::fabrics(kFcPropertyGet, 3);
  cap[40] = 1;  // 8 bytes
  auto [st, v] = h.run(h.capsule(cap));
  EXPECT_EQ(st, 0);
  EXPECT_EQ(v & 0xFFFF, kMaxQueueEntries - 1u);
  EXPECT_TRUE(v >> 37 & 1);
  Sqe csts = Host::fabrics(kFcPropertyGet, 4);
  put_u32(&csts[44], kPropCsts);
  EXPECT_EQ(h.run(h.capsule(csts)).second, kCstsRdy);

  Sqe id = Host::sqe(kAdminIdentify, 5);
  put_u32(&id[40], kCnsController);
  Host::sgl(id, kSglTransportDataBlock, 4096);
  std::vector<uint8_t> data;
  ASSERT_EQ(h.run(h.capsule(id), &data).first, 0);
  ASSERT_EQ(data.size(), 4096u);
  EXPECT_EQ(get_u16(&data[78]), cntlid);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&data[768])), nqn("vol"));
  EXPECT_EQ(get_u16(&data[520]), kOncsDsm | kOncsWriteZeroes);
  EXPECT_EQ(data[77], kMdts);

  Sqe ns = Host::sqe(kAdminIdentify, 6, 1);
  put_u32(&ns[40], kCnsNamespace);
  Host::sgl(ns, kSglTransportDataBlock, 4096);
  ASSERT_EQ(h.run(h.capsule(ns), &data).first, 0);
  EXPECT_EQ(get_u64(&data[0]), (1u << 20) / 4096);
  EXPECT_EQ(data[130], 12);
  EXPECT_EQ(data[99], 0);

  Sqe list = Host::sqe(kAdminIdentify, 7, 0);
  put_u32(&list[40], kCnsActiveNsList);
  Host::sgl(list, kSglTransportDataBlock, 4096);
  ASSERT_EQ(h.run(h.capsule(list), &data).first, 0);
  EXPECT_EQ(get_u32(&data[0]), 1u);
  EXPECT_EQ(get_u32(&data[4]), 0u);

  Sqe desc = Host::sqe(kAdminIdentify, 8, 1);
  put_u32(&desc[40], kCnsNsDescList);
  Host::sgl(desc, kSglTransportDataBlock, 4096);
  ASSERT_EQ(h.run(h.capsule(desc), &data).first, 0);
  EXPECT_EQ(data[0], 2);  // NGUID
  auto uuid = catalog.open("vol")->get()->uuid();
  EXPECT_EQ(std::memcmp(&data[4], uuid.data(), 16), 0);

  Sqe bad = Host::sqe(kAdminIdentify, 9, 2);  // namespace 2 does not exist
  put_u32(&bad[40], kCnsNamespace);
  Host::sgl(bad, kSglTransportDataBlock, 4096);
  EXPECT_EQ(h.run(h.capsule(bad)).first, kScInvalidNs | kStatusDnr);
}

TEST_F(SessionTest, FeaturesKeepAliveAndAer) {
  Host h(ctx);
  h.handshake();
  ASSERT_EQ(h.admin_connect(nqn("vol")), 0);
  Sqe nq = Host::sqe(kAdminSetFeatures, 10);
  put_u32(&nq[40], kFeatNumQueues);
  put_u32(&nq[44], (3u << 16) | 3u);
  auto [st, dw0] = h.run(h.capsule(nq));
  EXPECT_EQ(st, 0);
  EXPECT_EQ(dw0, (3u << 16) | 3u);
  Sqe aec = Host::sqe(kAdminSetFeatures, 11);
  put_u32(&aec[40], kFeatAsyncEventConfig);
  put_u32(&aec[44], 1u << 8);
  EXPECT_EQ(h.run(h.capsule(aec)).first, 0);
  Sqe get = Host::sqe(kAdminGetFeatures, 12);
  put_u32(&get[40], kFeatAsyncEventConfig);
  EXPECT_EQ(h.run(h.capsule(get)).second, 1u << 8);
  Sqe unknown = Host::sqe(kAdminGetFeatures, 13);
  put_u32(&unknown[40], 0x7E);
  EXPECT_EQ(h.run(h.capsule(unknown)).first, kScInvalidField | kStatusDnr);

  // AERs are held: no response until an event (none come), and the fifth is over the limit.
  for (uint16_t i = 0; i <= kAerLimit; i++) {
    h.feed(h.capsule(Host::sqe(kAdminAsyncEvent, uint16_t(20 + i))));
    EXPECT_TRUE(h.out.empty());
  }
  EXPECT_EQ(h.run(h.capsule(Host::sqe(kAdminAsyncEvent, 30))).first, kScAsyncLimit);

  // Keep Alive resets the timer (KATO 5 s from Connect; we allow 2 x KATO).
  h.now += 9000;
  h.s.tick(h.now);
  EXPECT_FALSE(h.s.closing());
  h.now += 500;
  EXPECT_EQ(h.run(h.capsule(Host::sqe(kAdminKeepAlive, 31))).first, 0);
  h.now += 9000;
  h.s.tick(h.now);
  EXPECT_FALSE(h.s.closing());
  h.now += 2000;
  h.s.tick(h.now);
  EXPECT_TRUE(h.s.closing());
  EXPECT_EQ(h.s.close_reason(), "keep-alive timeout");
}

TEST_F(SessionTest, KeepAliveExpiryTakesIoQueuesDown) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  auto io = io_host(admin, cntlid);
  admin.now += 20000;
  admin.s.tick(admin.now);
  ASSERT_TRUE(admin.s.closing());
  io->s.tick(admin.now);
  EXPECT_TRUE(io->s.closing());
}

TEST_F(SessionTest, IoWriteReadInCapsuleAndR2T) {
  for (uint8_t digest : {0, 3}) {
    SCOPED_TRACE(int(digest));
    Host admin(ctx);
    admin.handshake(digest);
    uint16_t cntlid = 0;
    ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
    auto io = io_host(admin, cntlid, digest);

    // In-capsule write of 2 blocks.
    std::vector<uint8_t> a(8192);
    for (size_t i = 0; i < a.size(); i++) a[i] = uint8_t(i * 7 + digest);
    Sqe w = rw(kIoWrite, 40, 4, 2);
    Host::sgl(w, kSglDataBlockOffset, 8192);
    EXPECT_EQ(io->run(io->capsule(w, a)).first, 0);

    // R2T write of 64 blocks, sent in two H2C PDUs.
    std::vector<uint8_t> b(64 * 4096);
    for (size_t i = 0; i < b.size(); i++) b[i] = uint8_t(i * 13 + 1);
    Sqe w2 = rw(kIoWrite, 41, 100, 64);
    Host::sgl(w2, kSglTransportDataBlock, uint32_t(b.size()));
    io->feed(io->capsule(w2));
    Pdu r2t = io->next();
    ASSERT_EQ(r2t.type(), kR2T);
    EXPECT_EQ(get_u16(&r2t.b[8]), 41);
    EXPECT_EQ(get_u32(&r2t.b[12]), 0u);
    EXPECT_EQ(get_u32(&r2t.b[16]), b.size());
    const uint16_t ttag = get_u16(&r2t.b[10]);
    const size_t half = b.size() / 2;
    io->feed(io->h2c(41, ttag, 0, {b.begin(), b.begin() + half}));
    EXPECT_TRUE(io->out.empty());
    auto [st, dw0] = io->run(io->h2c(41, ttag, uint32_t(half), {b.begin() + half, b.end()}));
    EXPECT_EQ(st, 0);

    std::vector<uint8_t> got;
    Sqe r = rw(kIoRead, 42, 4, 2);
    Host::sgl(r, kSglTransportDataBlock, 8192);
    ASSERT_EQ(io->run(io->capsule(r), &got).first, 0);
    EXPECT_EQ(got, a);
    Sqe r2 = rw(kIoRead, 43, 100, 64);
    Host::sgl(r2, kSglTransportDataBlock, uint32_t(b.size()));
    ASSERT_EQ(io->run(io->capsule(r2), &got).first, 0);
    EXPECT_EQ(got, b);

    // Flush reaches the store.
    const uint64_t flushes = catalog.flush_count();
    EXPECT_EQ(io->run(io->capsule(Host::sqe(kIoFlush, 44, 1))).first, 0);
    EXPECT_EQ(catalog.flush_count(), flushes + 1);
  }
}

TEST_F(SessionTest, WriteZeroesAndDeallocate) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  auto io = io_host(admin, cntlid);
  std::vector<uint8_t> ones(4 * 4096, 0xFF);
  Sqe w = rw(kIoWrite, 1, 0, 4);
  Host::sgl(w, kSglDataBlockOffset, uint32_t(ones.size()));
  ASSERT_EQ(io->run(io->capsule(w, ones)).first, 0);
  Sqe wz = rw(kIoWriteZeroes, 2, 1, 1);
  ASSERT_EQ(io->run(io->capsule(wz)).first, 0);
  std::vector<uint8_t> range(16, 0);
  put_u32(&range[4], 1);  // NLB
  put_u64(&range[8], 3);  // SLBA
  Sqe dsm = Host::sqe(kIoDsm, 3, 1);
  put_u32(&dsm[44], 1u << 2);  // AD
  Host::sgl(dsm, kSglDataBlockOffset, 16);
  ASSERT_EQ(io->run(io->capsule(dsm, range)).first, 0);
  std::vector<uint8_t> got;
  Sqe r = rw(kIoRead, 4, 0, 4);
  Host::sgl(r, kSglTransportDataBlock, 4 * 4096);
  ASSERT_EQ(io->run(io->capsule(r), &got).first, 0);
  for (int blk = 0; blk < 4; blk++) {
    const uint8_t want = (blk == 1 || blk == 3) ? 0 : 0xFF;
    EXPECT_EQ(got[blk * 4096], want) << blk;
    EXPECT_EQ(got[blk * 4096 + 4095], want) << blk;
  }
  // A range past the end trims nothing.
  put_u64(&range[8], (1 << 20) / 4096);
  EXPECT_EQ(io->run(io->capsule(dsm, range)).first, kScLbaRange | kStatusDnr);
  // Linux sends NR=0 with a 4 KiB buffer (room for 256 ranges, nvme_setup_discard): accepted, and
  // only NR ranges are read. A buffer shorter than NR ranges is refused.
  std::vector<uint8_t> page(4096, 0);
  put_u32(&page[4], 1);
  put_u64(&page[8], 2);
  Host::sgl(dsm, kSglDataBlockOffset, 4096);
  EXPECT_EQ(io->run(io->capsule(dsm, page)).first, 0);
  put_u32(&dsm[40], 1);  // NR = 2 ranges, 16 bytes sent
  Host::sgl(dsm, kSglDataBlockOffset, 16);
  put_u64(&range[8], 0);
  EXPECT_EQ(io->run(io->capsule(dsm, range)).first, kScSglInvalidData | kStatusDnr);
}

TEST_F(SessionTest, CommandErrorsKeepTheConnection) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  EXPECT_EQ(admin.run(admin.capsule(Host::sqe(0xC4, 1))).first, kScInvalidOpcode | kStatusDnr);
  auto io = io_host(admin, cntlid);
  EXPECT_EQ(io->run(io->capsule(Host::sqe(0x7C, 2, 1))).first, kScInvalidOpcode | kStatusDnr);
  Sqe past = rw(kIoRead, 3, (1 << 20) / 4096 - 1, 2);
  Host::sgl(past, kSglTransportDataBlock, 8192);
  EXPECT_EQ(io->run(io->capsule(past)).first, kScLbaRange | kStatusDnr);
  Sqe badlen = rw(kIoRead, 4, 0, 2);
  Host::sgl(badlen, kSglTransportDataBlock, 4096);
  EXPECT_EQ(io->run(io->capsule(badlen)).first, kScSglInvalidData | kStatusDnr);
  Sqe badns = rw(kIoRead, 5, 0, 1);
  put_u32(&badns[4], 7);
  Host::sgl(badns, kSglTransportDataBlock, 4096);
  EXPECT_EQ(io->run(io->capsule(badns)).first, kScInvalidNs | kStatusDnr);
  Sqe badsgl = rw(kIoRead, 6, 0, 1);
  Host::sgl(badsgl, 0x20, 4096);
  EXPECT_EQ(io->run(io->capsule(badsgl)).first, kScSglInvalidType | kStatusDnr);
  Sqe huge = rw(kIoRead, 7, 0, 1024);
  Host::sgl(huge, kSglTransportDataBlock, 1024 * 4096);
  EXPECT_EQ(io->run(io->capsule(huge)).first, kScInvalidField | kStatusDnr);
  EXPECT_FALSE(io->s.closing());
  EXPECT_FALSE(admin.s.closing());
}

TEST_F(SessionTest, ConnectRefusals) {
  Host h(ctx);
  h.handshake();
  uint64_t dw0 = 0;
  EXPECT_EQ(h.connect(nqn("nope"), 0, 0xFFFF, kHostNqn, &dw0), kScConnectInvalidParam | kStatusDnr);
  EXPECT_EQ(dw0, (1u << 16) | 256u);  // in the data, at SUBNQN
  EXPECT_EQ(h.connect(nqn("secret"), 0), kScConnectInvalidHost | kStatusDnr);
  EXPECT_EQ(h.connect("nqn.other:vol", 0), kScConnectInvalidParam | kStatusDnr);
  EXPECT_EQ(h.connect(nqn("vol"), 1, 77), kScConnectInvalidParam | kStatusDnr);  // no controller 77
  EXPECT_FALSE(h.s.connected());
  EXPECT_EQ(h.connect(nqn("secret"), 0, 0xFFFF, "nqn.other-host"), 0);  // the allowed host
  EXPECT_EQ(h.connect(nqn("vol"), 0), kScCmdSeqError | kStatusDnr);        // already connected
}

TEST_F(SessionTest, IoQueueRulesAndReadOnlySnapshot) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol@snap"), &cntlid), 0);
  Host io(ctx);
  io.handshake();
  EXPECT_EQ(io.connect(nqn("vol@snap"), 1, cntlid, "nqn.someone-else"), kScConnectInvalidParam | kStatusDnr);
  ASSERT_EQ(io.connect(nqn("vol@snap"), 1, cntlid), 0);
  Host dup(ctx);
  dup.handshake();
  EXPECT_EQ(dup.connect(nqn("vol@snap"), 1, cntlid), kScConnectInvalidParam | kStatusDnr);  // qid 1 taken
  std::vector<uint8_t> blk(4096, 1);
  Sqe w = rw(kIoWrite, 9, 0, 1);
  Host::sgl(w, kSglDataBlockOffset, 4096);
  EXPECT_EQ(io.run(io.capsule(w, blk)).first, kScNsWriteProtected | kStatusDnr);
  Sqe ns = Host::sqe(kAdminIdentify, 6, 1);
  put_u32(&ns[40], kCnsNamespace);
  Host::sgl(ns, kSglTransportDataBlock, 4096);
  std::vector<uint8_t> data;
  ASSERT_EQ(admin.run(admin.capsule(ns), &data).first, 0);
  EXPECT_EQ(data[99], 1);  // NSATTR write protected
}

TEST_F(SessionTest, DiscoveryLogListsAllowedExports) {
  Host h(ctx);
  h.handshake();
  ASSERT_EQ(h.admin_connect(kDiscoveryNqn), 0);
  Sqe lp = Host::sqe(kAdminGetLogPage, 3);
  put_u32(&lp[40], kLogDiscovery | ((4096 / 4 - 1) << 16));
  Host::sgl(lp, kSglTransportDataBlock, 4096);
  std::vector<uint8_t> data;
  ASSERT_EQ(h.run(h.capsule(lp), &data).first, 0);
  EXPECT_EQ(get_u64(&data[8]), 2u);  // vol, vol@snap; not secret
  std::string first(reinterpret_cast<char*>(&data[1024 + 256]));
  std::string second(reinterpret_cast<char*>(&data[2048 + 256]));
  EXPECT_EQ(first, nqn("vol"));
  EXPECT_EQ(second, nqn("vol@snap"));
  EXPECT_EQ(data[1024], 3);  // TCP
  // Offset read of the second entry only.
  Sqe lp2 = Host::sqe(kAdminGetLogPage, 4);
  put_u32(&lp2[40], kLogDiscovery | ((1024 / 4 - 1) << 16));
  put_u32(&lp2[48], 2048);
  Host::sgl(lp2, kSglTransportDataBlock, 1024);
  ASSERT_EQ(h.run(h.capsule(lp2), &data).first, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&data[256])), nqn("vol@snap"));
  // An I/O log page is not on the discovery controller; I/O queues are refused.
  Sqe smart = Host::sqe(kAdminGetLogPage, 5);
  put_u32(&smart[40], kLogSmart | (127u << 16));
  Host::sgl(smart, kSglTransportDataBlock, 512);
  EXPECT_EQ(h.run(h.capsule(smart)).first, kScInvalidLogPage | kStatusDnr);
}

// ---- malformed PDUs: each gets a C2HTermReq with the right FES and the session closes.

void expect_term(Host& h, uint16_t fes) {
  Pdu p = h.next();
  EXPECT_EQ(p.type(), kC2HTermReq);
  EXPECT_EQ(get_u16(&p.b[8]), fes);
  EXPECT_TRUE(h.s.closing());
}

TEST_F(SessionTest, PduBeforeIcReq) {
  Host h(ctx);
  h.feed(h.capsule(Host::sqe(kAdminKeepAlive, 1)));
  expect_term(h, kFesPduSequenceError);
}

TEST_F(SessionTest, WrongPduType) {
  for (uint8_t type : {uint8_t(kIcResp), uint8_t(kCapsuleResp), uint8_t(kC2HData), uint8_t(kR2T), uint8_t(0x08),
                       uint8_t(0x42)}) {
    Host h(ctx);
    h.handshake();
    std::vector<uint8_t> p(24, 0);
    p[0] = type;
    p[2] = 24;
    put_u32(&p[4], 24);
    h.feed(p);
    expect_term(h, kFesInvalidHeaderField);
  }
}

TEST_F(SessionTest, WrongHeaderLength) {
  Host h(ctx);
  h.handshake();
  auto p = h.capsule(Host::sqe(kAdminKeepAlive, 1));
  p[2] = 64;
  h.feed(p);
  expect_term(h, kFesInvalidHeaderField);
  Host bad_ic(ctx);
  auto ic = bad_ic.icreq();
  put_u32(&ic[4], 132);
  bad_ic.feed(ic);
  expect_term(bad_ic, kFesInvalidHeaderField);
}

TEST_F(SessionTest, PduLengthPastMaximumIsRefusedWithoutWaiting) {
  Host h(ctx);
  h.handshake();
  auto p = h.capsule(Host::sqe(kAdminKeepAlive, 1));
  put_u32(&p[4], 0x7FFFFFFF);  // only the header arrives; we must not wait for 2 GiB
  h.feed(p);
  expect_term(h, kFesInvalidHeaderField);
  Host small(ctx);
  small.handshake();
  auto q = small.capsule(Host::sqe(kAdminKeepAlive, 1));
  put_u32(&q[4], 40);  // shorter than its own header
  small.feed(q);
  expect_term(small, kFesInvalidHeaderField);
}

TEST_F(SessionTest, HeaderDigestMismatch) {
  Host h(ctx);
  h.handshake(kDigestHeader);
  auto p = h.capsule(Host::sqe(kAdminKeepAlive, 1));
  p[72] ^= 1;
  h.feed(p);
  expect_term(h, kFesHeaderDigestError);
}

TEST_F(SessionTest, DataDigestMismatchFailsTheCommandOnly) {
  Host admin(ctx);
  admin.handshake(3);
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  auto io = io_host(admin, cntlid, 3);
  std::vector<uint8_t> blk(4096, 9);
  Sqe w = rw(kIoWrite, 1, 0, 1);
  Host::sgl(w, kSglDataBlockOffset, 4096);
  auto p = io->capsule(w, blk);
  p.back() ^= 0x80;
  EXPECT_EQ(io->run(p).first, kScTransientTransport);
  // H2C data with a bad digest: the command fails once all its data is in.
  Sqe w2 = rw(kIoWrite, 2, 0, 1);
  Host::sgl(w2, kSglTransportDataBlock, 4096);
  io->feed(io->capsule(w2));
  Pdu r2t = io->next();
  auto d = io->h2c(2, get_u16(&r2t.b[10]), 0, blk);
  d.back() ^= 1;
  EXPECT_EQ(io->run(d).first, kScTransientTransport);
  EXPECT_FALSE(io->s.closing());
  // Nothing was written.
  std::vector<uint8_t> got;
  Sqe r = rw(kIoRead, 3, 0, 1);
  Host::sgl(r, kSglTransportDataBlock, 4096);
  ASSERT_EQ(io->run(io->capsule(r), &got).first, 0);
  EXPECT_EQ(got, std::vector<uint8_t>(4096, 0));
}

TEST_F(SessionTest, H2CDataOutsideTheCommand) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  std::vector<uint8_t> blk(4096, 9);
  for (int c = 0; c < 4; c++) {
    SCOPED_TRACE(c);
    Host io(ctx);
    io.handshake();
    ASSERT_EQ(io.connect(nqn("vol"), uint16_t(1 + c), cntlid), 0);
    Sqe w = rw(kIoWrite, 5, 0, 1);
    Host::sgl(w, kSglTransportDataBlock, 4096);
    io.feed(io.capsule(w));
    Pdu r2t = io.next();
    const uint16_t ttag = get_u16(&r2t.b[10]);
    if (c == 0) {
      io.feed(io.h2c(5, ttag, 4096, blk));  // offset past the R2T
      expect_term(io, kFesDataOutOfRange);
    } else if (c == 1) {
      io.feed(io.h2c(5, ttag, 0, std::vector<uint8_t>(8192, 1)));  // longer than the command
      expect_term(io, kFesDataOutOfRange);
    } else if (c == 2) {
      io.feed(io.h2c(5, uint16_t(ttag + 1), 0, blk));  // unknown transfer tag
      expect_term(io, kFesInvalidHeaderField);
    } else {
      auto p = io.h2c(5, ttag, 0, blk);
      put_u32(&p[16], 100);  // DATAL disagrees with PLEN
      io.feed(p);
      expect_term(io, kFesInvalidHeaderField);
    }
  }
}

TEST_F(SessionTest, CommandsBeforeConnect) {
  Host h(ctx);
  h.handshake();
  EXPECT_EQ(h.run(h.capsule(Host::sqe(kAdminKeepAlive, 1))).first, kScCmdSeqError | kStatusDnr);
  EXPECT_EQ(h.run(h.capsule(Host::fabrics(kFcPropertyGet, 2))).first, kScCmdSeqError | kStatusDnr);
  EXPECT_FALSE(h.s.closing());
  // Admin commands before CC.EN are a sequence error too.
  uint64_t dw0;
  ASSERT_EQ(h.connect(nqn("vol"), 0, 0xFFFF, kHostNqn, &dw0), 0);
  Sqe id = Host::sqe(kAdminIdentify, 3);
  put_u32(&id[40], kCnsController);
  Host::sgl(id, kSglTransportDataBlock, 4096);
  EXPECT_EQ(h.run(h.capsule(id)).first, kScCmdSeqError);
}

TEST_F(SessionTest, TruncatedPdusWaitAndByteAtATimeMatchesWhole) {
  // Whole: handshake + connect + enable + identify in one buffer.
  Host whole(ctx);
  std::vector<uint8_t> stream = whole.icreq(3);
  whole.hd = whole.dd = true;
  Sqe q = Host::fabrics(kFcConnect, 1);
  put_u16(&q[44], 31);
  Host::sgl(q, kSglDataBlockOffset, 1024);
  auto c = whole.capsule(q, Host::connect_data(nqn("vol"), kHostNqn, 0xFFFF));
  stream.insert(stream.end(), c.begin(), c.end());
  Sqe id = Host::sqe(kAdminKeepAlive, 2);
  auto k = whole.capsule(id);
  stream.insert(stream.end(), k.begin(), k.end());

  Session a(ctx, 0);
  size_t used = a.receive(stream, 0);
  EXPECT_EQ(used, stream.size());
  auto out_a = a.take_output();

  Session b(ctx, 0);
  std::vector<uint8_t> buf;
  std::vector<std::vector<uint8_t>> out_b;
  for (uint8_t byte : stream) {
    buf.push_back(byte);
    size_t want = 0;
    size_t n = b.receive(buf, 0, &want);
    buf.erase(buf.begin(), buf.begin() + n);
    if (n == 0) {
      EXPECT_GT(want, buf.size());
    }
    for (auto& o : b.take_output()) out_b.push_back(o);
  }
  EXPECT_TRUE(buf.empty());
  ASSERT_EQ(out_a.size(), out_b.size());
  ASSERT_EQ(out_a.size(), 3u);  // ICResp, Connect response, Keep Alive response
  for (size_t i = 0; i < out_a.size(); i++) {
    // Controller ids differ between the two sessions; compare everything else.
    auto x = out_a[i], y = out_b[i];
    if (i == 1) {
      x[8] = y[8] = 0;
      x[9] = y[9] = 0;
      x[24] = y[24] = x[25] = y[25] = x[26] = y[26] = x[27] = y[27] = 0;
    }
    EXPECT_EQ(x, y) << i;
  }
  EXPECT_FALSE(b.closing());
}

TEST_F(SessionTest, HostTermReqCloses) {
  Host h(ctx);
  h.handshake();
  std::vector<uint8_t> p(24, 0);
  p[0] = kH2CTermReq;
  p[2] = 24;
  put_u32(&p[4], 24);
  h.feed(p);
  EXPECT_TRUE(h.s.closing());
  EXPECT_TRUE(h.out.empty());
}

TEST_F(SessionTest, ShutdownFlushesAndDisconnectCloses) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  auto io = io_host(admin, cntlid);
  EXPECT_EQ(io->run(io->capsule(Host::fabrics(kFcDisconnect, 7))).first, 0);
  EXPECT_TRUE(io->s.closing());
  const uint64_t flushes = catalog.flush_count();
  Sqe shn = Host::fabrics(kFcPropertySet, 8);
  put_u32(&shn[44], kPropCc);
  put_u64(&shn[48], 1 | (6u << 16) | (4u << 20) | (1u << 14));
  EXPECT_EQ(admin.run(admin.capsule(shn)).first, 0);
  EXPECT_EQ(catalog.flush_count(), flushes + 1);
  Sqe csts = Host::fabrics(kFcPropertyGet, 9);
  put_u32(&csts[44], kPropCsts);
  EXPECT_EQ(admin.run(admin.capsule(csts)).second & 0xC, kCstsShstComplete);
}
}  // namespace
}  // namespace arbor::nvme_tcp

namespace arbor::nvme_tcp {
namespace {

// An export that records how writes arrive (FUA or not).
class RecordingCatalog : public proto::ExportCatalog {
 public:
  struct Exp : proto::BlockExport {
    std::string n = "rec";
    std::vector<uint8_t> bytes = std::vector<uint8_t>(1 << 20);
    int fua_writes = 0, plain_writes = 0, trims = 0;
    const std::string& name() const override { return n; }
    uint64_t size_bytes() const override { return bytes.size(); }
    bool read_only() const override { return false; }
    std::array<uint8_t, 16> uuid() const override { return {1, 2, 3}; }
    Status read(uint64_t off, std::span<uint8_t> out) override {
      std::memcpy(out.data(), bytes.data() + off, out.size());
      return Status::ok();
    }
    Status write(uint64_t off, std::span<const uint8_t> d, bool fua) override {
      (fua ? fua_writes : plain_writes)++;
      std::memcpy(bytes.data() + off, d.data(), d.size());
      return Status::ok();
    }
    Status flush() override { return Status::ok(); }
    Status trim(uint64_t, uint64_t) override {
      trims++;
      return Status::ok();
    }
    Status write_zeroes(uint64_t, uint64_t, bool) override { return Status::ok(); }
  };
  std::shared_ptr<Exp> exp = std::make_shared<Exp>();
  Result<std::shared_ptr<proto::BlockExport>> open(std::string_view name) override {
    if (name != "rec") return not_found("no");
    return std::shared_ptr<proto::BlockExport>(exp);
  }
  std::vector<proto::ExportInfo> list() override { return {{"rec", exp->bytes.size(), false}}; }
};

TEST(SessionMore, WriteCacheOffMakesWritesFuaDsmWithoutAdDoesNothingSmartCounts) {
  RecordingCatalog catalog;
  StaticHostAllowList allow;
  TargetContext ctx;
  ctx.catalog = &catalog;
  ctx.allow = &allow;
  ctx.nqn_prefix = kPrefix;
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(std::string(kPrefix) + "rec", &cntlid), 0);
  Host io(ctx);
  io.handshake();
  ASSERT_EQ(io.connect(std::string(kPrefix) + "rec", 1, cntlid), 0);
  std::vector<uint8_t> blk(4096, 3);
  auto write = [&](uint16_t cid, bool fua) {
    Sqe w = Host::sqe(kIoWrite, cid, 1);
    put_u32(&w[48], fua ? (1u << 30) : 0);
    Host::sgl(w, kSglDataBlockOffset, 4096);
    return io.run(io.capsule(w, blk)).first;
  };
  ASSERT_EQ(write(1, false), 0);
  ASSERT_EQ(write(2, true), 0);
  EXPECT_EQ(catalog.exp->plain_writes, 1);
  EXPECT_EQ(catalog.exp->fua_writes, 1);
  Sqe wce = Host::sqe(kAdminSetFeatures, 3);
  put_u32(&wce[40], kFeatVolatileWc);
  put_u32(&wce[44], 0);
  ASSERT_EQ(admin.run(admin.capsule(wce)).first, 0);
  ASSERT_EQ(write(4, false), 0);
  EXPECT_EQ(catalog.exp->fua_writes, 2);  // no volatile cache: every write is durable on completion

  std::vector<uint8_t> range(16, 0);
  put_u32(&range[4], 8);
  Sqe dsm = Host::sqe(kIoDsm, 5, 1);  // no AD bit: attributes only
  Host::sgl(dsm, kSglDataBlockOffset, 16);
  ASSERT_EQ(io.run(io.capsule(dsm, range)).first, 0);
  EXPECT_EQ(catalog.exp->trims, 0);

  Sqe smart = Host::sqe(kAdminGetLogPage, 6);
  put_u32(&smart[40], kLogSmart | (127u << 16));
  Host::sgl(smart, kSglTransportDataBlock, 512);
  std::vector<uint8_t> log;
  ASSERT_EQ(admin.run(admin.capsule(smart), &log).first, 0);
  EXPECT_EQ(get_u64(&log[80]), 3u);  // host write commands
  EXPECT_EQ(get_u64(&log[48]), 1u);  // data units written (12 KiB rounds up to one unit)

  // Property commands belong to the admin queue.
  Sqe prop = Host::fabrics(kFcPropertyGet, 7);
  EXPECT_EQ(io.run(io.capsule(prop)).first, kScInvalidOpcode | kStatusDnr);
  // Log page offsets must be dword aligned and inside the log.
  Sqe odd = smart;
  put_u32(&odd[48], 2);
  EXPECT_EQ(admin.run(admin.capsule(odd)).first, kScInvalidField | kStatusDnr);
}

}  // namespace
}  // namespace arbor::nvme_tcp

namespace arbor::nvme_tcp {
namespace {

TEST(SessionMore, FlushAndFuaWritesRunOffTheLoopAndAnswerWhenDone) {
  proto::MemoryCatalog catalog;
  catalog.add("vol", 1 << 20);
  StaticHostAllowList allow;
  TargetContext ctx;
  ctx.catalog = &catalog;
  ctx.allow = &allow;
  ctx.nqn_prefix = kPrefix;
  // A pretend worker pool: queue the work, run it (and its `done`) when the test says so.
  std::vector<std::pair<std::function<void()>, std::function<void()>>> queued;
  auto pool = [&](std::function<void()> work, std::function<void()> done) { queued.emplace_back(work, done); };
  Host admin(ctx);
  admin.s.set_run_blocking(pool);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(std::string(kPrefix) + "vol", &cntlid), 0);
  Host io(ctx);
  io.s.set_run_blocking(pool);
  io.handshake();
  ASSERT_EQ(io.connect(std::string(kPrefix) + "vol", 1, cntlid), 0);

  const uint64_t flushes = catalog.flush_count();
  io.feed(io.capsule(Host::sqe(kIoFlush, 1, 1)));
  EXPECT_TRUE(io.out.empty());  // not answered while the flush runs
  ASSERT_EQ(queued.size(), 1u);
  // A plain write and a read are served meanwhile (completions may come out of order).
  std::vector<uint8_t> blk(4096, 0x11);
  Sqe w = Host::sqe(kIoWrite, 2, 1);
  Host::sgl(w, kSglDataBlockOffset, 4096);
  EXPECT_EQ(io.run(io.capsule(w, blk)).first, 0);
  Sqe fua = Host::sqe(kIoWrite, 3, 1);
  put_u64(&fua[40], 1);
  put_u32(&fua[48], 1u << 30);
  Host::sgl(fua, kSglDataBlockOffset, 4096);
  auto fua_pdu = io.capsule(fua, std::vector<uint8_t>(4096, 0x22));
  io.feed(fua_pdu);
  EXPECT_TRUE(io.out.empty());
  ASSERT_EQ(queued.size(), 2u);
  std::fill(fua_pdu.begin(), fua_pdu.end(), 0);  // the receive buffer is reused: the write must not care
  for (auto& [work, done] : queued) {
    work();
    done();
    io.feed({});
  }
  queued.clear();
  ASSERT_EQ(io.out.size(), 2u);
  EXPECT_EQ(get_u16(&io.out[0].b[8 + 12]), 1);  // flush
  EXPECT_EQ(get_u16(&io.out[1].b[8 + 12]), 3);  // FUA write
  EXPECT_EQ(get_u16(&io.out[1].b[8 + 14]) >> 1, 0);
  io.out.clear();
  EXPECT_EQ(catalog.flush_count(), flushes + 1);
  std::vector<uint8_t> got;
  Sqe r = Host::sqe(kIoRead, 4, 1);
  put_u64(&r[40], 1);
  Host::sgl(r, kSglTransportDataBlock, 4096);
  ASSERT_EQ(io.run(io.capsule(r), &got).first, 0);
  EXPECT_EQ(got, std::vector<uint8_t>(4096, 0x22));

  // Shutdown: CSTS.SHST says "occurring" until the flush is done, then "complete".
  Sqe shn = Host::fabrics(kFcPropertySet, 8);
  put_u32(&shn[44], kPropCc);
  put_u64(&shn[48], 1 | (6u << 16) | (4u << 20) | (1u << 14));
  admin.feed(admin.capsule(shn));
  EXPECT_TRUE(admin.out.empty());
  Sqe csts = Host::fabrics(kFcPropertyGet, 9);
  put_u32(&csts[44], kPropCsts);
  EXPECT_EQ(admin.run(admin.capsule(csts)).second & 0xC, kCstsShstOccurring);
  ASSERT_EQ(queued.size(), 1u);
  queued[0].first();
  queued[0].second();
  admin.feed({});
  ASSERT_EQ(admin.out.size(), 1u);  // the Property Set answer, now
  EXPECT_EQ(get_u16(&admin.next().b[8 + 12]), 8);
  EXPECT_EQ(admin.run(admin.capsule(csts)).second & 0xC, kCstsShstComplete);
}

TEST_F(SessionTest, ColdReadRunsOffTheLoopAndHotReadsAreNotHeldBehindIt) {
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(nqn("vol"), &cntlid), 0);
  auto io = io_host(admin, cntlid);
  // A pretend worker pool: queue the work, run it (and its `done`) when the test says so.
  std::vector<std::pair<std::function<void()>, std::function<void()>>> queued;
  io->s.set_run_blocking([&](std::function<void()> work, std::function<void()> done) { queued.emplace_back(work, done); });

  std::vector<uint8_t> blocks(8192);
  for (size_t i = 0; i < blocks.size(); i++) blocks[i] = uint8_t(i * 5 + 1);
  Sqe w = rw(kIoWrite, 1, 0, 2);
  Host::sgl(w, kSglDataBlockOffset, 8192);
  ASSERT_EQ(io->run(io->capsule(w, blocks)).first, 0);
  ASSERT_TRUE(catalog.make_cold("vol", 0, 4096));

  auto read_sqe = [&](uint16_t cid, uint64_t lba) {
    Sqe r = rw(kIoRead, cid, lba, 1);
    Host::sgl(r, kSglTransportDataBlock, 4096);
    return r;
  };
  io->feed(io->capsule(read_sqe(2, 0)));  // cold
  EXPECT_TRUE(io->out.empty());
  ASSERT_EQ(queued.size(), 1u);
  std::vector<uint8_t> got;
  ASSERT_EQ(io->run(io->capsule(read_sqe(3, 1)), &got).first, 0);  // hot: answered meanwhile
  EXPECT_EQ(got, std::vector<uint8_t>(blocks.begin() + 4096, blocks.end()));
  queued[0].first();
  queued[0].second();
  queued.clear();
  io->feed({});
  Pdu data = io->next();
  ASSERT_EQ(data.type(), kC2HData);
  EXPECT_EQ(get_u16(&data.b[8]), 2);
  EXPECT_EQ(std::vector<uint8_t>(data.b.begin() + data.b[3], data.b.end()),
            std::vector<uint8_t>(blocks.begin(), blocks.begin() + 4096));
  Pdu resp = io->next();
  ASSERT_EQ(resp.type(), kCapsuleResp);
  EXPECT_EQ(get_u16(&resp.b[8 + 12]), 2);
  EXPECT_EQ(get_u16(&resp.b[8 + 14]) >> 1, 0);
  // Warm now: served on the loop.
  ASSERT_EQ(io->run(io->capsule(read_sqe(4, 0)), &got).first, 0);
  EXPECT_TRUE(queued.empty());
  EXPECT_EQ(got, std::vector<uint8_t>(blocks.begin(), blocks.begin() + 4096));
}

// With a read_file hook (the event loop's ring), a page-cache miss is planned and its runs read
// there: no worker, an answer once every run is in, and an error status when a run or the check
// fails.
TEST(SessionMore, ColdReadWaitsOnTheRingNotOnAWorker) {
  proto::PlannedFileCatalog files;
  StaticHostAllowList allow;
  TargetContext ctx;
  ctx.catalog = &files;
  ctx.allow = &allow;
  ctx.nqn_prefix = kPrefix;
  int worker_calls = 0;
  auto pool = [&](std::function<void()> work, std::function<void()> done) {
    worker_calls++;
    work();
    done();
  };
  std::deque<std::function<void()>> ring;  // file reads, run when the test says
  bool fail_runs = false;
  auto read_file = [&](const FileRead& f, std::function<void(const Status&)> done) {
    ring.push_back([&fail_runs, f, done = std::move(done)] {
      if (fail_runs) return done(io_error("injected"));
      bool whole = ::pread(f.fd, f.into.data(), f.into.size(), off_t(f.offset)) == ssize_t(f.into.size());
      done(whole ? Status::ok() : io_error("short read"));
    });
  };
  Host admin(ctx);
  admin.handshake();
  uint16_t cntlid = 0;
  ASSERT_EQ(admin.admin_connect(std::string(kPrefix) + "file", &cntlid), 0);
  Host io(ctx);
  io.s.set_run_blocking(pool);
  io.s.set_read_file(read_file);
  io.handshake();
  ASSERT_EQ(io.connect(std::string(kPrefix) + "file", 1, cntlid), 0);

  std::vector<uint8_t> blocks(8192);
  for (size_t i = 0; i < blocks.size(); i++) blocks[i] = uint8_t(i * 3 + 7);
  Sqe w = Host::sqe(kIoWrite, 1, 1);
  put_u64(&w[40], 2);
  put_u32(&w[48], 1);
  Host::sgl(w, kSglDataBlockOffset, 8192);
  ASSERT_EQ(io.run(io.capsule(w, blocks)).first, 0);
  auto read_sqe = [&](uint16_t cid) {
    Sqe r = Host::sqe(kIoRead, cid, 1);
    put_u64(&r[40], 2);
    put_u32(&r[48], 1);
    Host::sgl(r, kSglTransportDataBlock, 8192);
    return r;
  };
  auto run_ring = [&] {
    while (!ring.empty()) {
      auto f = std::move(ring.back());  // last run first
      ring.pop_back();
      f();
    }
    io.feed({});
  };

  io.feed(io.capsule(read_sqe(2)));
  EXPECT_TRUE(io.out.empty());
  EXPECT_EQ(ring.size(), 2u);
  run_ring();
  Pdu data = io.next();
  ASSERT_EQ(data.type(), kC2HData);
  EXPECT_EQ(std::vector<uint8_t>(data.b.begin() + data.b[3], data.b.end()), blocks);
  Pdu resp = io.next();
  EXPECT_EQ(get_u16(&resp.b[8 + 12]), 2);
  EXPECT_EQ(get_u16(&resp.b[8 + 14]) >> 1, 0);
  EXPECT_EQ(worker_calls, 0);
  EXPECT_EQ(files.live_plans, 0);

  fail_runs = true;
  io.feed(io.capsule(read_sqe(3)));
  run_ring();
  resp = io.next();
  ASSERT_EQ(resp.type(), kCapsuleResp);  // no data before an error
  EXPECT_EQ(get_u16(&resp.b[8 + 12]), 3);
  EXPECT_NE(get_u16(&resp.b[8 + 14]) >> 1, 0);
  fail_runs = false;
  files.finish_status = corruption("checksum mismatch");
  io.feed(io.capsule(read_sqe(4)));
  run_ring();
  resp = io.next();
  ASSERT_EQ(resp.type(), kCapsuleResp);
  EXPECT_NE(get_u16(&resp.b[8 + 14]) >> 1, 0);
  EXPECT_EQ(files.live_plans, 0);
  EXPECT_EQ(worker_calls, 0);
}

}  // namespace
}  // namespace arbor::nvme_tcp
