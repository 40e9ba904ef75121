// NvmeTcpTarget over real loopback sockets: a client does ICReq, Connect, enable, write and read;
// a connection that sends garbage is closed while another keeps being served; stop() ends all.
#include "proto/nvme_tcp/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "proto/nvme_tcp/nvme_wire.h"
#include "proto/memory_export.h"
#include "util/encoding.h"

namespace arbor::nvme_tcp {
namespace {

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  }
  ~Client() { ::close(fd_); }
  bool ok() const { return connected_; }
  void send(const std::vector<uint8_t>& b) { ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), ssize_t(b.size())); }
  // One PDU, or empty on EOF / 5 s timeout.
  std::vector<uint8_t> recv_pdu() {
    std::vector<uint8_t> h(8);
    if (!read_exact(h.data(), 8)) return {};
    uint32_t plen = get_u32(&h[4]);
    if (plen < 8 || plen > (1u << 24)) return {};
    h.resize(plen);
    if (!read_exact(h.data() + 8, plen - 8)) return {};
    return h;
  }
  bool eof() {
    uint8_t b;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return false;
    return ::recv(fd_, &b, 1, 0) == 0;
  }

 private:
  bool read_exact(uint8_t* p, size_t n) {
    while (n > 0) {
      pollfd pf{fd_, POLLIN, 0};
      if (poll(&pf, 1, 5000) <= 0) return false;
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= size_t(r);
    }
    return true;
  }
  int fd_;
  bool connected_ = false;
};

std::vector<uint8_t> icreq() {
  std::vector<uint8_t> p(128, 0);
  p[0] = kIcReq;
  p[2] = 128;
  put_u32(&p[4], 128);
  return p;
}

std::vector<uint8_t> capsule(std::array<uint8_t, 64> sqe, const std::vector<uint8_t>& data = {}) {
  std::vector<uint8_t> p(72 + data.size(), 0);
  p[0] = kCapsuleCmd;
  p[2] = 72;
  p[3] = data.empty() ? 0 : 72;
  put_u32(&p[4], uint32_t(p.size()));
  std::memcpy(&p[8], sqe.data(), 64);
  if (!data.empty()) std::memcpy(&p[72], data.data(), data.size());
  return p;
}

std::array<uint8_t, 64> connect_sqe(uint16_t qid) {
  std::array<uint8_t, 64> q{};
  q[0] = kOpFabrics;
  q[4] = kFcConnect;
  put_u16(&q[42], qid);
  put_u16(&q[44], 15);
  put_u32(&q[32], 1024);
  q[39] = kSglDataBlockOffset;
  return q;
}

std::vector<uint8_t> connect_data(const std::string& nqn, uint16_t cntlid) {
  std::vector<uint8_t> d(1024, 0);
  put_u16(&d[16], cntlid);
  std::memcpy(&d[256], nqn.data(), nqn.size());
  const std::string host = "nqn.2014-08.org.nvmexpress:uuid:target-test";
  std::memcpy(&d[512], host.data(), host.size());
  return d;
}

uint16_t status_of(const std::vector<uint8_t>& resp) { return resp.size() >= 24 ? uint16_t(get_u16(&resp[22]) >> 1) : 0xFFFF; }

TEST(NvmeTcpTarget, ServesOverSocketsAndSurvivesABadPeer) {
  proto::MemoryCatalog catalog;
  catalog.add("vol", 1 << 20);
  StaticHostAllowList allow;
  NvmeTcpOptions opts;
  opts.io_listen = "127.0.0.1:0";
  opts.discovery_listen = "127.0.0.1:0";
  auto target = NvmeTcpTarget::start(catalog, allow, opts);
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  auto& t = *target;
  ASSERT_NE(t->io_port(), 0);
  ASSERT_NE(t->discovery_port(), 0);
  ASSERT_EQ(t->endpoints().size(), 2u);
  EXPECT_EQ(t->endpoints()[0], "nvme+tcp://127.0.0.1:" + std::to_string(t->io_port()));
  EXPECT_EQ(t->nqn_for("vol"), "nqn.2026-01.dev.arbor:vol");

  // Admin queue.
  Client admin(t->io_port());
  ASSERT_TRUE(admin.ok());
  admin.send(icreq());
  auto icresp = admin.recv_pdu();
  ASSERT_EQ(icresp.size(), 128u);
  EXPECT_EQ(icresp[0], kIcResp);
  admin.send(capsule(connect_sqe(0), connect_data(t->nqn_for("vol"), 0xFFFF)));
  auto resp = admin.recv_pdu();
  ASSERT_EQ(status_of(resp), 0);
  const uint16_t cntlid = get_u16(&resp[8]);
  std::array<uint8_t, 64> cc{};
  cc[0] = kOpFabrics;
  cc[4] = kFcPropertySet;
  put_u32(&cc[44], kPropCc);
  put_u64(&cc[48], 1 | (6u << 16) | (4u << 20));
  admin.send(capsule(cc));
  ASSERT_EQ(status_of(admin.recv_pdu()), 0);

  // A peer that sends garbage is cut off...
  Client bad(t->io_port());
  std::vector<uint8_t> junk(64, 0xAB);
  bad.send(junk);
  auto term = bad.recv_pdu();
  ASSERT_FALSE(term.empty());
  EXPECT_EQ(term[0], kC2HTermReq);
  EXPECT_TRUE(bad.eof());

  // ...while an I/O queue keeps working: write 2 blocks in-capsule, read them back.
  Client io(t->io_port());
  io.send(icreq());
  ASSERT_EQ(io.recv_pdu().size(), 128u);
  io.send(capsule(connect_sqe(1), connect_data(t->nqn_for("vol"), cntlid)));
  ASSERT_EQ(status_of(io.recv_pdu()), 0);
  std::vector<uint8_t> data(8192);
  for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i ^ (i >> 8));
  std::array<uint8_t, 64> w{};
  w[0] = kIoWrite;
  put_u16(&w[2], 9);
  put_u32(&w[4], 1);
  put_u64(&w[40], 10);
  put_u32(&w[48], 1);
  put_u32(&w[32], 8192);
  w[39] = kSglDataBlockOffset;
  io.send(capsule(w, data));
  ASSERT_EQ(status_of(io.recv_pdu()), 0);
  std::array<uint8_t, 64> r = w;
  r[0] = kIoRead;
  r[39] = kSglTransportDataBlock;
  io.send(capsule(r));
  auto c2h = io.recv_pdu();
  ASSERT_EQ(c2h[0], kC2HData);
  EXPECT_EQ(std::vector<uint8_t>(c2h.begin() + c2h[3], c2h.end()), data);
  ASSERT_EQ(status_of(io.recv_pdu()), 0);
  // Flush goes through the worker pool and comes back on the connection's loop.
  const uint64_t flushes = catalog.flush_count();
  std::array<uint8_t, 64> f{};
  f[0] = kIoFlush;
  put_u16(&f[2], 10);
  put_u32(&f[4], 1);
  io.send(capsule(f));
  auto fr = io.recv_pdu();
  ASSERT_EQ(status_of(fr), 0);
  EXPECT_EQ(get_u16(&fr[20]), 10);
  EXPECT_EQ(catalog.flush_count(), flushes + 1);
  EXPECT_EQ(t->connection_count(), 2u);

  t->stop();
  EXPECT_TRUE(io.eof());
  EXPECT_EQ(t->connection_count(), 0u);
}

TEST(NvmeTcpTarget, KeepAliveExpiryClosesTheAdminQueue) {
  proto::MemoryCatalog catalog;
  catalog.add("vol", 1 << 20);
  StaticHostAllowList allow;
  NvmeTcpOptions opts;
  opts.io_listen = "127.0.0.1:0";
  opts.discovery_listen = "";
  auto target = NvmeTcpTarget::start(catalog, allow, opts);
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  ASSERT_EQ((*target)->endpoints().size(), 1u);
  Client admin((*target)->io_port());
  admin.send(icreq());
  ASSERT_EQ(admin.recv_pdu().size(), 128u);
  auto sqe = connect_sqe(0);
  put_u32(&sqe[48], 300);  // KATO 300 ms; we never send Keep Alive
  admin.send(capsule(sqe, connect_data((*target)->nqn_for("vol"), 0xFFFF)));
  ASSERT_EQ(status_of(admin.recv_pdu()), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(admin.eof());  // within Client's 5 s poll
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(500));  // 2 x KATO
  EXPECT_LE(waited, std::chrono::milliseconds(2000));
}

TEST(NvmeTcpTarget, RefusesBadListenAddresses) {
  proto::MemoryCatalog catalog;
  StaticHostAllowList allow;
  NvmeTcpOptions opts;
  opts.io_listen = "not-an-address";
  EXPECT_FALSE(NvmeTcpTarget::start(catalog, allow, opts).is_ok());
  opts.io_listen = "127.0.0.1:0";
  opts.discovery_listen = "127.0.0.1:99999";
  EXPECT_FALSE(NvmeTcpTarget::start(catalog, allow, opts).is_ok());
}

}  // namespace
}  // namespace arbor::nvme_tcp
