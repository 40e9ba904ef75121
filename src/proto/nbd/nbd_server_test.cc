// NbdServer over real sockets (unix and TCP) on the io_uring loops: pipelining, many connections,
// abrupt disconnects that must not disturb other clients or leak connections, stop() with clients.
#include "proto/nbd/nbd_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "net/server.h"
#include "proto/memory_export.h"
#include "proto/nbd/nbd_wire.h"
#include "util/encoding.h"

namespace arbor::nbd {
namespace {

using Bytes = std::vector<uint8_t>;

class Client {
 public:
  explicit Client(const std::string& uri) {
    const std::string unix_prefix = "nbd+unix:///?socket=";
    if (uri.rfind(unix_prefix, 0) == 0) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::string path = uri.substr(unix_prefix.size());
      std::memcpy(sa.sun_path, path.c_str(), path.size());
      ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    } else {
      size_t colon = uri.rfind(':');
      fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(uint16_t(std::stoi(uri.substr(colon + 1))));
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    }
    timeval tv{10, 0};  // a stalled server fails the test instead of hanging it
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool ok() const { return ok_; }
  void write_all(const Bytes& b) {
    size_t off = 0;
    while (off < b.size()) {
      ssize_t n = ::send(fd_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0);
      off += size_t(n);
    }
  }
  // Returns false on EOF.
  bool read_exact(uint8_t* p, size_t n) {
    size_t off = 0;
    while (off < n) {
      ssize_t r = ::recv(fd_, p + off, n - off, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (r < 0) std::fprintf(stderr, "recv: %s\n", std::strerror(errno));
        return false;
      }
      off += size_t(r);
    }
    return true;
  }
  Bytes read_n(size_t n) {
    Bytes b(n);
    EXPECT_TRUE(read_exact(b.data(), n));
    return b;
  }
  // Handshake through NBD_OPT_GO (no structured replies). Returns the export size.
  uint64_t go(const std::string& name) {
    Bytes g = read_n(kGreetingBytes);
    EXPECT_EQ(get_u64_be(g.data()), kNbdMagic);
    Bytes out(4);
    put_u32_be(out.data(), kClientFixedNewstyle | kClientNoZeroes);
    Bytes opt(16 + 4 + name.size() + 2);
    put_u64_be(opt.data(), kIHaveOpt);
    put_u32_be(opt.data() + 8, kOptGo);
    put_u32_be(opt.data() + 12, uint32_t(4 + name.size() + 2));
    put_u32_be(opt.data() + 16, uint32_t(name.size()));
    std::memcpy(opt.data() + 20, name.data(), name.size());
    out.insert(out.end(), opt.begin(), opt.end());
    write_all(out);
    uint64_t size = 0;
    while (true) {
      Bytes h = read_n(kOptionReplyHeaderBytes);
      uint32_t type = get_u32_be(h.data() + 12);
      Bytes d = read_n(get_u32_be(h.data() + 16));
      if (type == kRepInfo && get_u16_be(d.data()) == kInfoExport) size = get_u64_be(d.data() + 2);
      if (type != kRepInfo) {
        EXPECT_EQ(type, kRepAck);
        break;
      }
    }
    return size;
  }
  static Bytes request(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length, const Bytes& payload = {}) {
    Bytes b(28);
    put_u32_be(b.data(), kRequestMagic);
    put_u16_be(b.data() + 6, type);
    put_u64_be(b.data() + 8, cookie);
    put_u64_be(b.data() + 16, offset);
    put_u32_be(b.data() + 24, length);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

std::string temp_socket_path() {
  return "/tmp/arbor-nbd-test-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000) + ".sock";
}

bool wait_for(std::function<bool()> cond) {
  for (int i = 0; i < 500; i++) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(catalog.add("vol", 8 << 20));
    sock = temp_socket_path();
    NbdServerOptions o;
    o.listen = {"unix://" + sock, "tcp://127.0.0.1:0"};
    o.event_loops = 2;
    auto s = NbdServer::start(catalog, o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server = std::move(s).value();
  }
  proto::MemoryCatalog catalog;
  std::string sock;
  std::unique_ptr<NbdServer> server;
};

TEST_F(ServerTest, EndpointsAreNbdUris) {
  auto e = server->endpoints();
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0], "nbd+unix:///?socket=" + sock);
  EXPECT_EQ(e[1].rfind("nbd://127.0.0.1:", 0), 0u);
  EXPECT_NE(e[1], "nbd://127.0.0.1:0");
}

TEST_F(ServerTest, PipelinedRequestsAllAnswered) {
  for (const std::string& uri : server->endpoints()) {
    Client c(uri);
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c.go("vol"), uint64_t(8) << 20);
    // 64 writes, a flush, then 64 reads, all sent before reading a single reply.
    Bytes batch;
    for (uint64_t i = 0; i < 64; i++) {
      Bytes p(4096, uint8_t(i + 1));
      Bytes r = Client::request(kCmdWrite, i, i * 4096, 4096, p);
      batch.insert(batch.end(), r.begin(), r.end());
    }
    Bytes f = Client::request(kCmdFlush, 1000, 0, 0);
    batch.insert(batch.end(), f.begin(), f.end());
    for (uint64_t i = 0; i < 64; i++) {
      Bytes r = Client::request(kCmdRead, 2000 + i, i * 4096, 4096);
      batch.insert(batch.end(), r.begin(), r.end());
    }
    std::thread writer([&] { c.write_all(batch); });
    std::map<uint64_t, Bytes> replies;
    for (int n = 0; n < 129; n++) {
      Bytes h = c.read_n(kSimpleReplyBytes);
      ASSERT_EQ(get_u32_be(h.data()), kSimpleReplyMagic);
      ASSERT_EQ(get_u32_be(h.data() + 4), 0u);
      uint64_t cookie = get_u64_be(h.data() + 8);
      replies[cookie] = cookie >= 2000 ? c.read_n(4096) : Bytes{};
    }
    writer.join();
    ASSERT_EQ(replies.size(), 129u);
    for (uint64_t i = 0; i < 64; i++) EXPECT_EQ(replies[2000 + i], Bytes(4096, uint8_t(i + 1)));
  }
  EXPECT_GE(catalog.flush_count(), 2u);
}

TEST_F(ServerTest, AbruptDisconnectsDoNotHurtOthersOrLeak) {
  Client good(server->endpoints()[0]);
  ASSERT_EQ(good.go("vol"), uint64_t(8) << 20);
  for (int i = 0; i < 20; i++) {
    Client bad(server->endpoints()[i % 2]);
    ASSERT_TRUE(bad.ok());
    if (i % 4 == 0) continue;  // gone before the greeting is read
    bad.go("vol");
    // Half a write, then vanish (RST on TCP with SO_LINGER 0 for some).
    Bytes r = Client::request(kCmdWrite, 1, 0, 65536, Bytes(1000, 1));
    bad.write_all(r);
    if (i % 3 == 0) {
      linger l{1, 0};
      setsockopt(bad.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
  }
  good.write_all(Client::request(kCmdRead, 7, 0, 512));
  Bytes h = good.read_n(kSimpleReplyBytes);
  EXPECT_EQ(get_u32_be(h.data() + 4), 0u);
  EXPECT_EQ(good.read_n(512), Bytes(512, 0));
  EXPECT_TRUE(wait_for([&] { return server->connection_count() == 1; })) << server->connection_count();
  good.close();
  EXPECT_TRUE(wait_for([&] { return server->connection_count() == 0; }));
}

TEST_F(ServerTest, ClientThatNeverReadsIsBounded) {
  // Pipeline many large reads and never read a reply: the server must pause reading from this
  // client (tx backpressure) rather than queue unbounded replies, and keep serving others.
  Client hog(server->endpoints()[0]);
  ASSERT_EQ(hog.go("vol"), uint64_t(8) << 20);
  int buf = 1 << 16;
  setsockopt(hog.fd(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  Bytes batch;
  for (int i = 0; i < 200; i++) {
    Bytes r = Client::request(kCmdRead, uint64_t(i), 0, 4 << 20);
    batch.insert(batch.end(), r.begin(), r.end());
  }
  hog.write_all(batch);  // 5.6 KB: fits in socket buffers even when the server stops reading
  Client other(server->endpoints()[1]);
  ASSERT_EQ(other.go("vol"), uint64_t(8) << 20);
  other.write_all(Client::request(kCmdFlush, 1, 0, 0));
  Bytes h = other.read_n(kSimpleReplyBytes);
  EXPECT_EQ(get_u32_be(h.data() + 4), 0u);
  hog.close();
  EXPECT_TRUE(wait_for([&] { return server->connection_count() == 1; }));
}

TEST_F(ServerTest, StopWithOpenConnections) {
  Client a(server->endpoints()[0]);
  Client b(server->endpoints()[1]);
  ASSERT_EQ(a.go("vol"), uint64_t(8) << 20);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(wait_for([&] { return server->connection_count() == 2; }));
  server->stop();
  uint8_t x;
  EXPECT_FALSE(a.read_exact(&x, 1));  // closed by the server
  EXPECT_NE(::access(sock.c_str(), F_OK), 0);  // socket file removed
}

// flush() blocks until released: stands in for a slow fsync.
class GatedFlushCatalog : public proto::ExportCatalog {
 public:
  explicit GatedFlushCatalog(proto::ExportCatalog& inner) : inner_(inner) {}
  class Export : public proto::BlockExport {
   public:
    Export(std::shared_ptr<proto::BlockExport> e, GatedFlushCatalog* c) : e_(std::move(e)), c_(c) {}
    const std::string& name() const override { return e_->name(); }
    uint64_t size_bytes() const override { return e_->size_bytes(); }
    bool read_only() const override { return e_->read_only(); }
    std::array<uint8_t, 16> uuid() const override { return e_->uuid(); }
    Status read(uint64_t o, std::span<uint8_t> out) override { return e_->read(o, out); }
    Status write(uint64_t o, std::span<const uint8_t> d, bool fua) override { return e_->write(o, d, fua); }
    Status flush() override {
      std::unique_lock lock(c_->mu);
      c_->flush_entered = true;
      c_->cv.notify_all();
      c_->cv.wait(lock, [&] { return c_->released; });
      return e_->flush();
    }
    Status trim(uint64_t o, uint64_t n) override { return e_->trim(o, n); }
    Status write_zeroes(uint64_t o, uint64_t n, bool u) override { return e_->write_zeroes(o, n, u); }

   private:
    std::shared_ptr<proto::BlockExport> e_;
    GatedFlushCatalog* c_;
  };
  Result<std::shared_ptr<proto::BlockExport>> open(std::string_view name) override {
    ASSIGN_OR_RETURN(auto e, inner_.open(name));
    return std::shared_ptr<proto::BlockExport>(std::make_shared<Export>(std::move(e), this));
  }
  std::vector<proto::ExportInfo> list() override { return inner_.list(); }
  void release() {
    std::lock_guard lock(mu);
    released = true;
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  bool flush_entered = false, released = false;

 private:
  proto::ExportCatalog& inner_;
};

TEST(ServerBlocking, SlowFlushDoesNotStallOtherConnectionsOnTheSameLoop) {
  proto::MemoryCatalog memory;
  ASSERT_TRUE(memory.add("vol", 1 << 20));
  GatedFlushCatalog gated(memory);
  NbdServerOptions o;
  o.listen = {"unix://" + temp_socket_path()};
  o.event_loops = 1;  // both connections on one loop: the worst case
  auto s = NbdServer::start(gated, o);
  ASSERT_TRUE(s.is_ok());
  Client a((*s)->endpoints()[0]), b((*s)->endpoints()[0]);
  ASSERT_EQ(a.go("vol"), 1u << 20);
  ASSERT_EQ(b.go("vol"), 1u << 20);
  a.write_all(Client::request(kCmdFlush, 1, 0, 0));
  {
    std::unique_lock lock(gated.mu);
    ASSERT_TRUE(gated.cv.wait_for(lock, std::chrono::seconds(10), [&] { return gated.flush_entered; }));
  }
  // The flush is stuck in the store; b's requests (and a's next read) are still served.
  b.write_all(Client::request(kCmdWrite, 2, 0, 4, {1, 2, 3, 4}));
  b.write_all(Client::request(kCmdRead, 3, 0, 4));
  Bytes h = b.read_n(kSimpleReplyBytes);
  EXPECT_EQ(get_u64_be(h.data() + 8), 2u);
  h = b.read_n(kSimpleReplyBytes);
  EXPECT_EQ(get_u64_be(h.data() + 8), 3u);
  EXPECT_EQ(b.read_n(4), (Bytes{1, 2, 3, 4}));
  a.write_all(Client::request(kCmdRead, 4, 0, 4));
  h = a.read_n(kSimpleReplyBytes);
  EXPECT_EQ(get_u64_be(h.data() + 8), 4u);  // replied before the earlier flush: out of order
  EXPECT_EQ(a.read_n(4), (Bytes{1, 2, 3, 4}));
  gated.release();
  h = a.read_n(kSimpleReplyBytes);
  EXPECT_EQ(get_u64_be(h.data() + 8), 1u);
  EXPECT_EQ(get_u32_be(h.data() + 4), 0u);
  (*s)->stop();
}

TEST(ServerStart, BadListenAddressFails) {
  proto::MemoryCatalog catalog;
  NbdServerOptions o;
  o.listen = {"http://x"};
  EXPECT_FALSE(NbdServer::start(catalog, o).is_ok());
  o.listen = {"unix://relative.sock"};
  EXPECT_FALSE(NbdServer::start(catalog, o).is_ok());
  o.listen = {"tcp://127.0.0.1:99999"};
  EXPECT_FALSE(NbdServer::start(catalog, o).is_ok());
}

}  // namespace
}  // namespace arbor::nbd

namespace arbor::nbd {
namespace {

// net::Connection::read_file past a full completion queue: a protocol that, for each byte it
// receives, reads 3000 blocks of a memory file at once on a loop whose CQ holds 256, then answers
// with how many came back right. Nothing is lost, nothing hangs, and the connection goes on.
class ManyFileReads : public net::Protocol {
 public:
  explicit ManyFileReads(int fd) : fd_(fd) {}
  void on_open(net::Connection&) override {}
  size_t on_receive(net::Connection& conn, std::span<const uint8_t> data, size_t*) override {
    for (size_t i = 0; i < data.size(); i++) start(conn);
    return data.size();
  }
  void on_close() override {}
  static constexpr int kReads = 3000;

 private:
  void start(net::Connection& conn) {
    auto buffers = std::make_shared<std::vector<std::array<uint8_t, 4096>>>(kReads);
    auto left = std::make_shared<int>(kReads);
    auto right = std::make_shared<int>(0);
    for (int i = 0; i < kReads; i++) {
      FileRead f{fd_, uint64_t(i % 256) * 4096, std::span<uint8_t>((*buffers)[i])};
      conn.read_file(f, [&conn, buffers, left, right, i](const Status& s) {
        const auto& b = (*buffers)[i];
        if (s.is_ok() && b[0] == uint8_t(i % 256) && b[4095] == uint8_t(i % 256)) ++*right;
        if (--*left > 0) return;
        std::vector<uint8_t> answer(4);
        put_u32_be(answer.data(), uint32_t(*right));
        conn.send(std::move(answer));
      });
    }
  }
  int fd_;
};

TEST(NetServer, FileReadsBeyondAFullCompletionQueueAllComplete) {
  int fd = ::memfd_create("many-file-reads", 0);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> block(4096);
  for (int i = 0; i < 256; i++) {
    std::fill(block.begin(), block.end(), uint8_t(i));
    ASSERT_EQ(::pwrite(fd, block.data(), block.size(), off_t(i) * 4096), ssize_t(block.size()));
  }
  std::string sock = temp_socket_path();
  net::ServerOptions o;
  o.listen = {"unix://" + sock};
  o.event_loops = 1;
  o.completion_queue_entries = 256;
  auto server = net::Server::start(o, [fd](net::Connection&) { return std::make_unique<ManyFileReads>(fd); });
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  Client c("nbd+unix:///?socket=" + sock);
  ASSERT_TRUE(c.ok());
  for (int round = 0; round < 2; round++) {
    c.write_all(Bytes(2, 0));  // two bursts at once
    for (int burst = 0; burst < 2; burst++) {
      Bytes answer = c.read_n(4);
      ASSERT_EQ(answer.size(), 4u);
      EXPECT_EQ(get_u32_be(answer.data()), uint32_t(ManyFileReads::kReads));
    }
  }
  c.close();
  (*server)->stop();
  ::close(fd);
}

}  // namespace
}  // namespace arbor::nbd
