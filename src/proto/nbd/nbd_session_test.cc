// NbdSession driven by hand-built byte sequences: good handshakes and commands, and malformed
// ones (bad magic, oversize lengths, offsets past the end, unknown options and commands).
#include "proto/nbd/nbd_session.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <deque>
#include <functional>

#include "proto/memory_export.h"
#include "proto/planned_file_catalog.h"
#include "util/encoding.h"
#include "util/nonblocking_scope.h"

namespace arbor::nbd {
namespace {

using Bytes = std::vector<uint8_t>;

class FakeHost : public NbdSessionHost {
 public:
  void send(Bytes b) override {
    ASSERT_FALSE(closed) << "send after close";
    out.insert(out.end(), b.begin(), b.end());
  }
  void run_blocking(std::function<void()> work, std::function<void()> done) override {
    if (defer) {
      deferred.push_back([work, done] { work(); done(); });
    } else {
      work();
      done();
    }
  }
  void read_file(const FileRead& f, std::function<void(const Status&)> done) override {
    auto read = [this, f, done = std::move(done)] {
      if (fail_file_reads) return done(io_error("injected read error"));
      ssize_t n = ::pread(f.fd, f.into.data(), f.into.size(), off_t(f.offset));
      done(n == ssize_t(f.into.size()) ? Status::ok() : io_error("short read"));
    };
    if (defer_file_reads) {
      file_reads.push_back(std::move(read));
    } else {
      read();
    }
  }
  void pause_receive(bool p) override { paused = p; }
  void close(bool after_send) override {
    closed = true;
    soft_close = after_send;
  }
  void run_deferred() {
    while (!deferred.empty()) {
      auto f = std::move(deferred.front());
      deferred.pop_front();
      f();
    }
  }
  Bytes out;
  size_t cursor = 0;
  bool closed = false, soft_close = false, paused = false, defer = false;
  std::deque<std::function<void()>> deferred;
  bool defer_file_reads = false, fail_file_reads = false;
  std::deque<std::function<void()>> file_reads;  // run by the test, in the order it likes

  // Output readers: each consumes from `cursor`.
  size_t unread() const { return out.size() - cursor; }
  uint16_t u16() { uint16_t v = get_u16_be(&out.at(cursor)); cursor += 2; return v; }
  uint32_t u32() { uint32_t v = get_u32_be(&out.at(cursor)); cursor += 4; return v; }
  uint64_t u64() { uint64_t v = get_u64_be(&out.at(cursor)); cursor += 8; return v; }
  Bytes take(size_t n) {
    EXPECT_LE(cursor + n, out.size());
    Bytes b(out.begin() + cursor, out.begin() + cursor + n);
    cursor += n;
    return b;
  }
};

struct OptReply {
  uint32_t option = 0, type = 0;
  Bytes data;
};

Bytes be32(uint32_t v) { Bytes b(4); put_u32_be(b.data(), v); return b; }
void append(Bytes& a, const Bytes& b) { a.insert(a.end(), b.begin(), b.end()); }

Bytes option(uint32_t opt, const Bytes& data, uint64_t magic = kIHaveOpt) {
  Bytes b(16);
  put_u64_be(b.data(), magic);
  put_u32_be(b.data() + 8, opt);
  put_u32_be(b.data() + 12, uint32_t(data.size()));
  append(b, data);
  return b;
}

Bytes go_data(const std::string& name, std::vector<uint16_t> infos = {}) {
  Bytes b = be32(uint32_t(name.size()));
  b.insert(b.end(), name.begin(), name.end());
  Bytes n(2);
  put_u16_be(n.data(), uint16_t(infos.size()));
  append(b, n);
  for (uint16_t i : infos) {
    put_u16_be(n.data(), i);
    append(b, n);
  }
  return b;
}

Bytes request(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length, uint16_t flags = 0,
              const Bytes& payload = {}, uint32_t magic = kRequestMagic) {
  Bytes b(28);
  put_u32_be(b.data(), magic);
  put_u16_be(b.data() + 4, flags);
  put_u16_be(b.data() + 6, type);
  put_u64_be(b.data() + 8, cookie);
  put_u64_be(b.data() + 16, offset);
  put_u32_be(b.data() + 24, length);
  append(b, payload);
  return b;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(catalog.add("vol", 1 << 20));
    ASSERT_TRUE(catalog.add("vol@snap", 1 << 20, /*read_only=*/true));
    session = std::make_unique<NbdSession>(catalog, host, NbdSessionOptions{});
    session->start();
    host.cursor = kGreetingBytes;
  }
  // Feeds everything, as a transport would: returns bytes left unconsumed.
  size_t feed(const Bytes& b) {
    pending.insert(pending.end(), b.begin(), b.end());
    size_t want = 0;
    size_t n = session->on_data(pending, &want);
    last_want = want;
    pending.erase(pending.begin(), pending.begin() + n);
    return pending.size();
  }
  OptReply read_opt_reply() {
    OptReply r;
    EXPECT_EQ(host.u64(), kOptReplyMagic);
    r.option = host.u32();
    r.type = host.u32();
    r.data = host.take(host.u32());
    return r;
  }
  void handshake_go(const std::string& name, bool structured) {
    feed(be32(kClientFixedNewstyle | kClientNoZeroes));
    if (structured) {
      feed(option(kOptStructuredReply, {}));
      EXPECT_EQ(read_opt_reply().type, kRepAck);
    }
    feed(option(kOptGo, go_data(name)));
    OptReply r;
    do {
      r = read_opt_reply();
    } while (r.type == kRepInfo);
    ASSERT_EQ(r.type, kRepAck);
    ASSERT_TRUE(session->in_transmission());
  }
  // Simple reply: returns the error, checks the cookie.
  uint32_t simple_reply(uint64_t cookie) {
    EXPECT_EQ(host.u32(), kSimpleReplyMagic);
    uint32_t err = host.u32();
    EXPECT_EQ(host.u64(), cookie);
    return err;
  }

  proto::MemoryCatalog catalog;
  FakeHost host;
  std::unique_ptr<NbdSession> session;
  Bytes pending;
  size_t last_want = 0;
};

class PlannedReadTest : public SessionTest {
 protected:
  void SetUp() override {
    NbdSessionOptions options;
    options.read_counters = &counters;
    session = std::make_unique<NbdSession>(files, host, options);
    session->start();
    host.cursor = kGreetingBytes;
    handshake_go("file", false);
    data.resize(8192);
    for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i * 13 + 1);
    feed(request(kCmdWrite, 1, 4096, 8192, 0, data));
    EXPECT_EQ(simple_reply(1), 0u);
  }
  proto::PlannedFileCatalog files;
  NbdReadCounters counters;
  Bytes data;
};

TEST_F(PlannedReadTest, RepliesOnceEveryFileRunIsInAndChecked) {
  host.defer_file_reads = true;
  feed(request(kCmdRead, 2, 4096, 8192));
  feed(request(kCmdRead, 3, 4096, 4096));
  EXPECT_EQ(host.file_reads.size(), 4u);  // two runs each, none read yet
  EXPECT_EQ(host.unread(), 0u);
  EXPECT_EQ(session->inflight(), 2);
  // Runs complete out of order: a reply goes out only when its last run is in.
  auto run = [&](size_t i) {
    auto f = std::move(host.file_reads[i]);
    host.file_reads[i] = [] {};
    f();
  };
  run(3);
  run(0);
  EXPECT_EQ(host.unread(), 0u);
  run(2);  // request 3 is complete
  EXPECT_EQ(simple_reply(3), 0u);
  EXPECT_EQ(host.take(4096), Bytes(data.begin(), data.begin() + 4096));
  EXPECT_EQ(files.live_plans, 1);  // request 3's plan (its segment pin) is gone as soon as it is done
  run(1);
  EXPECT_EQ(simple_reply(2), 0u);
  EXPECT_EQ(host.take(8192), data);
  EXPECT_EQ(files.finishes, 2);
  EXPECT_EQ(files.live_plans, 0);
  EXPECT_EQ(session->inflight(), 0);
  EXPECT_TRUE(host.deferred.empty());  // no worker was involved

  // A hit is answered at once, ahead of a miss still waiting for its runs, and is not planned.
  feed(request(kCmdRead, 4, 4096, 4096));
  files.cold = false;
  feed(request(kCmdRead, 5, 8192, 4096));
  EXPECT_EQ(files.plans, 3);
  EXPECT_EQ(simple_reply(5), 0u);
  EXPECT_EQ(host.take(4096), Bytes(data.begin() + 4096, data.end()));
  EXPECT_EQ(host.unread(), 0u);
  while (!host.file_reads.empty()) {
    auto f = std::move(host.file_reads.front());
    host.file_reads.pop_front();
    f();
  }
  EXPECT_EQ(simple_reply(4), 0u);
  EXPECT_EQ(host.take(4096), Bytes(data.begin(), data.begin() + 4096));
  EXPECT_EQ(counters.on_ring.load(), 3u);
  EXPECT_EQ(counters.from_memory.load(), 1u);
  EXPECT_EQ(counters.on_worker.load(), 0u);
}

TEST_F(PlannedReadTest, AFailedRunOrCheckIsAnErrorReplyAndTheSessionGoesOn) {
  host.fail_file_reads = true;
  feed(request(kCmdRead, 2, 4096, 8192));
  EXPECT_EQ(simple_reply(2), uint32_t(kNbdEio));
  EXPECT_EQ(files.finishes, 0);  // nothing to check: the data never came
  host.fail_file_reads = false;
  files.finish_status = corruption("checksum mismatch");
  feed(request(kCmdRead, 3, 4096, 8192));
  EXPECT_EQ(simple_reply(3), uint32_t(kNbdEio));
  EXPECT_EQ(host.unread(), 0u);  // no data after an error reply
  files.finish_status = Status::ok();
  feed(request(kCmdRead, 4, 4096, 8192));
  EXPECT_EQ(simple_reply(4), 0u);
  EXPECT_EQ(host.take(8192), data);
  EXPECT_EQ(files.live_plans, 0);
  EXPECT_EQ(session->inflight(), 0);
}

TEST_F(PlannedReadTest, RunsCompletingAfterCloseReleaseThePlanAndTouchNoSession) {
  host.defer_file_reads = true;
  feed(request(kCmdRead, 2, 4096, 8192));
  session->on_close();
  session.reset();
  while (!host.file_reads.empty()) {
    auto f = std::move(host.file_reads.front());
    host.file_reads.pop_front();
    f();
  }
  EXPECT_EQ(host.unread(), 0u);
  EXPECT_EQ(files.live_plans, 0);
}

TEST_F(SessionTest, GreetingIsFixedNewstyle) {
  host.cursor = 0;
  EXPECT_EQ(host.u64(), kNbdMagic);
  EXPECT_EQ(host.u64(), kIHaveOpt);
  EXPECT_EQ(host.u16(), kFlagFixedNewstyle | kFlagNoZeroes);
  EXPECT_EQ(host.unread(), 0u);
}

TEST_F(SessionTest, UnknownClientFlagsClose) {
  feed(be32(kClientFixedNewstyle | (1u << 7)));
  EXPECT_TRUE(host.closed);
  EXPECT_FALSE(host.soft_close);
}

TEST_F(SessionTest, PlainNewstyleClientIsRefused) {
  feed(be32(0));
  EXPECT_TRUE(host.closed);
}

TEST_F(SessionTest, BadOptionMagicCloses) {
  feed(be32(kClientFixedNewstyle));
  feed(option(kOptList, {}, 0x1122334455667788ULL));
  EXPECT_TRUE(host.closed);
  EXPECT_EQ(host.unread(), 0u);
}

TEST_F(SessionTest, OversizeOptionIsRefusedWithoutWaitingForItsData) {
  feed(be32(kClientFixedNewstyle));
  Bytes hdr(16);
  put_u64_be(hdr.data(), kIHaveOpt);
  put_u32_be(hdr.data() + 8, kOptGo);
  put_u32_be(hdr.data() + 12, 0x40000000);  // 1 GiB of "name"
  feed(hdr);
  OptReply r = read_opt_reply();
  EXPECT_EQ(r.type, kRepErrTooBig);
  EXPECT_TRUE(host.closed);
  EXPECT_TRUE(host.soft_close);
  EXPECT_LT(last_want, size_t(1) << 20);
}

TEST_F(SessionTest, UnknownOptionIsUnsupportedAndSessionContinues) {
  feed(be32(kClientFixedNewstyle));
  feed(option(0x7777, {1, 2, 3}));
  OptReply r = read_opt_reply();
  EXPECT_EQ(r.option, 0x7777u);
  EXPECT_EQ(r.type, kRepErrUnsup);
  feed(option(kOptStartTls, {}));
  EXPECT_EQ(read_opt_reply().type, kRepErrUnsup);
  feed(option(kOptSetMetaContext, {0, 0, 0, 0}));
  EXPECT_EQ(read_opt_reply().type, kRepErrUnsup);
  EXPECT_FALSE(host.closed);
  feed(option(kOptList, {}));
  EXPECT_EQ(read_opt_reply().type, kRepServer);
}

TEST_F(SessionTest, ListShowsEveryExportIncludingReadOnly) {
  feed(be32(kClientFixedNewstyle));
  feed(option(kOptList, {}));
  std::vector<std::string> names;
  OptReply r;
  while ((r = read_opt_reply()).type == kRepServer) {
    uint32_t len = get_u32_be(r.data.data());
    ASSERT_LE(len + 4, r.data.size());
    names.emplace_back(r.data.begin() + 4, r.data.begin() + 4 + len);
  }
  EXPECT_EQ(r.type, kRepAck);
  EXPECT_EQ(names, (std::vector<std::string>{"vol", "vol@snap"}));
  feed(option(kOptList, {0}));
  EXPECT_EQ(read_opt_reply().type, kRepErrInvalid);
}

TEST_F(SessionTest, InfoReportsSizeFlagsBlockSizeAndStaysInOptions) {
  feed(be32(kClientFixedNewstyle));
  feed(option(kOptInfo, go_data("vol@snap", {kInfoName, kInfoDescription, kInfoBlockSize})));
  bool saw_export = false, saw_block = false, saw_name = false;
  OptReply r;
  while ((r = read_opt_reply()).type == kRepInfo) {
    uint16_t t = get_u16_be(r.data.data());
    if (t == kInfoExport) {
      ASSERT_EQ(r.data.size(), kInfoExportBytes);
      EXPECT_EQ(get_u64_be(r.data.data() + 2), 1u << 20);
      uint16_t f = get_u16_be(r.data.data() + 10);
      EXPECT_TRUE(f & kTxHasFlags);
      EXPECT_TRUE(f & kTxReadOnly);
      EXPECT_TRUE(f & kTxCanMultiConn);
      EXPECT_FALSE(f & kTxSendTrim);
      saw_export = true;
    } else if (t == kInfoBlockSize) {
      ASSERT_EQ(r.data.size(), kInfoBlockSizeBytes);
      EXPECT_EQ(get_u32_be(r.data.data() + 2), kMinBlockBytes);
      EXPECT_EQ(get_u32_be(r.data.data() + 6), 4096u);
      EXPECT_EQ(get_u32_be(r.data.data() + 10), kMaxPayloadBytes);
      saw_block = true;
    } else if (t == kInfoName) {
      EXPECT_EQ(std::string(r.data.begin() + 2, r.data.end()), "vol@snap");
      saw_name = true;
    }
  }
  EXPECT_EQ(r.type, kRepAck);
  EXPECT_TRUE(saw_export && saw_block && saw_name);
  EXPECT_FALSE(session->in_transmission());
}

TEST_F(SessionTest, InfoErrors) {
  feed(be32(kClientFixedNewstyle));
  feed(option(kOptGo, go_data("nope")));
  EXPECT_EQ(read_opt_reply().type, kRepErrUnknown);
  Bytes bad = go_data("vol");
  put_u32_be(bad.data(), 1000);  // name length past the option's end
  feed(option(kOptGo, bad));
  EXPECT_EQ(read_opt_reply().type, kRepErrInvalid);
  Bytes trailing = go_data("vol");
  trailing.push_back(0);  // info count does not match the length
  feed(option(kOptInfo, trailing));
  EXPECT_EQ(read_opt_reply().type, kRepErrInvalid);
  feed(option(kOptGo, {0, 0}));
  EXPECT_EQ(read_opt_reply().type, kRepErrInvalid);
  feed(option(kOptStructuredReply, {1}));
  EXPECT_EQ(read_opt_reply().type, kRepErrInvalid);
  EXPECT_FALSE(host.closed);
  EXPECT_FALSE(session->in_transmission());
}

TEST_F(SessionTest, ExportNameReplyWithAndWithoutZeroes) {
  feed(be32(kClientFixedNewstyle));
  feed(option(kOptExportName, Bytes{'v', 'o', 'l'}));
  EXPECT_EQ(host.u64(), 1u << 20);
  uint16_t f = host.u16();
  EXPECT_TRUE(f & kTxSendFlush);
  EXPECT_TRUE(f & kTxSendWriteZeroes);
  EXPECT_EQ(host.take(124), Bytes(124, 0));
  EXPECT_TRUE(session->in_transmission());
}

TEST_F(SessionTest, ExportNameUnknownCloses) {
  feed(be32(kClientFixedNewstyle | kClientNoZeroes));
  feed(option(kOptExportName, Bytes{'x'}));
  EXPECT_TRUE(host.closed);
  EXPECT_EQ(host.unread(), 0u);
}

TEST_F(SessionTest, AbortAcksAndClosesSoftly) {
  feed(be32(kClientFixedNewstyle));
  feed(option(kOptAbort, {}));
  EXPECT_EQ(read_opt_reply().type, kRepAck);
  EXPECT_TRUE(host.closed);
  EXPECT_TRUE(host.soft_close);
}

TEST_F(SessionTest, WriteReadRoundTripSimpleReplies) {
  handshake_go("vol", false);
  Bytes data(5000);
  for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i * 7 + 1);
  feed(request(kCmdWrite, 1, 4095, uint32_t(data.size()), 0, data));
  EXPECT_EQ(simple_reply(1), 0u);
  feed(request(kCmdRead, 2, 4095, uint32_t(data.size())));
  EXPECT_EQ(simple_reply(2), 0u);
  EXPECT_EQ(host.take(data.size()), data);
  feed(request(kCmdFlush, 3, 0, 0));
  EXPECT_EQ(simple_reply(3), 0u);
  EXPECT_EQ(catalog.flush_count(), 1u);
  feed(request(kCmdWrite, 4, 0, 4, kCmdFlagFua, {1, 2, 3, 4}));
  EXPECT_EQ(simple_reply(4), 0u);
  feed(request(kCmdTrim, 5, 4095, 10));
  EXPECT_EQ(simple_reply(5), 0u);
  feed(request(kCmdWriteZeroes, 6, 4105, 10, kCmdFlagNoHole | kCmdFlagFua));
  EXPECT_EQ(simple_reply(6), 0u);
  EXPECT_EQ(catalog.flush_count(), 2u);  // FUA on write-zeroes flushes
  feed(request(kCmdRead, 7, 4095, 30));
  EXPECT_EQ(simple_reply(7), 0u);
  Bytes expect(30, 0);
  for (size_t i = 20; i < 30; i++) expect[i] = data[i];
  EXPECT_EQ(host.take(30), expect);
}

TEST_F(SessionTest, StructuredReadIsOneOffsetDataChunk) {
  handshake_go("vol", true);
  feed(request(kCmdRead, 9, 512, 100, kCmdFlagDf));
  EXPECT_EQ(host.u32(), kStructuredReplyMagic);
  EXPECT_EQ(host.u16(), kReplyFlagDone);
  EXPECT_EQ(host.u16(), kChunkOffsetData);
  EXPECT_EQ(host.u64(), 9u);
  EXPECT_EQ(host.u32(), 108u);
  EXPECT_EQ(host.u64(), 512u);
  EXPECT_EQ(host.take(100), Bytes(100, 0));
  // Errors on reads are error chunks, never simple replies.
  feed(request(kCmdRead, 10, (1 << 20) - 10, 11));
  EXPECT_EQ(host.u32(), kStructuredReplyMagic);
  EXPECT_EQ(host.u16(), kReplyFlagDone);
  EXPECT_EQ(host.u16(), kChunkError);
  EXPECT_EQ(host.u64(), 10u);
  uint32_t len = host.u32();
  EXPECT_EQ(host.u32(), kNbdEinval);
  uint16_t msg = host.u16();
  EXPECT_EQ(len, 6u + msg);
  host.take(msg);
  EXPECT_EQ(host.unread(), 0u);
}

TEST_F(SessionTest, CommandErrors) {
  handshake_go("vol", false);
  feed(request(kCmdRead, 1, 1 << 20, 1));
  EXPECT_EQ(simple_reply(1), kNbdEinval);
  feed(request(kCmdRead, 2, ~0ULL - 2, 8));  // offset + length wraps
  EXPECT_EQ(simple_reply(2), kNbdEinval);
  feed(request(kCmdWrite, 3, (1 << 20) - 2, 4, 0, {1, 2, 3, 4}));
  EXPECT_EQ(simple_reply(3), kNbdEnospc);
  feed(request(kCmdTrim, 4, 0, (1 << 20) + 1));
  EXPECT_EQ(simple_reply(4), kNbdEnospc);
  feed(request(99, 5, 0, 0));
  EXPECT_EQ(simple_reply(5), kNbdEinval);
  feed(request(kCmdBlockStatus, 6, 0, 4096));
  EXPECT_EQ(simple_reply(6), kNbdEinval);
  feed(request(kCmdRead, 7, 0, 16, 1u << 9));  // undefined flag
  EXPECT_EQ(simple_reply(7), kNbdEinval);
  feed(request(kCmdRead, 8, 0, kMaxPayloadBytes + 1));
  EXPECT_EQ(simple_reply(8), kNbdEinval);
  feed(request(kCmdRead, 9, 0, 8, kCmdFlagDf));  // DF without structured replies
  EXPECT_EQ(simple_reply(9), kNbdEinval);
  EXPECT_EQ(host.unread(), 0u);
  EXPECT_FALSE(host.closed);
}

TEST_F(SessionTest, ReadOnlyRefusesWrites) {
  handshake_go("vol@snap", false);
  feed(request(kCmdWrite, 1, 0, 4, 0, {1, 2, 3, 4}));
  EXPECT_EQ(simple_reply(1), kNbdEperm);
  feed(request(kCmdWriteZeroes, 2, 0, 4096));
  EXPECT_EQ(simple_reply(2), kNbdEperm);
  feed(request(kCmdTrim, 3, 0, 4096));
  EXPECT_EQ(simple_reply(3), kNbdEperm);
  feed(request(kCmdRead, 4, 0, 4));
  EXPECT_EQ(simple_reply(4), 0u);
  EXPECT_EQ(host.take(4), Bytes(4, 0));
}

TEST_F(SessionTest, OversizeWriteIsSkippedNotBuffered) {
  handshake_go("vol", false);
  uint32_t len = kMaxPayloadBytes + 4096;
  feed(request(kCmdWrite, 1, 0, len));
  EXPECT_EQ(host.unread(), 0u);  // no reply until the payload has gone by
  size_t sent = 0;
  Bytes chunk(1 << 20, 0xab);
  while (sent + chunk.size() <= len) {
    EXPECT_EQ(feed(chunk), 0u);
    EXPECT_LT(last_want, size_t(64) << 10);  // never asks for a buffer the size of the payload
    sent += chunk.size();
  }
  Bytes tail(len - sent, 0xab);
  append(tail, request(kCmdRead, 2, 0, 4));  // next request right behind the payload
  feed(tail);
  EXPECT_EQ(simple_reply(1), kNbdEinval);
  EXPECT_EQ(simple_reply(2), 0u);
  EXPECT_EQ(host.take(4), Bytes(4, 0));
}

TEST_F(SessionTest, BadRequestMagicCloses) {
  handshake_go("vol", false);
  feed(request(kCmdRead, 1, 0, 4, 0, {}, 0x25609514));
  EXPECT_TRUE(host.closed);
  EXPECT_FALSE(host.soft_close);
  EXPECT_EQ(host.unread(), 0u);
}

TEST_F(SessionTest, ByteAtATimeMatchesWholeMessages) {
  Bytes all = be32(kClientFixedNewstyle | kClientNoZeroes);
  append(all, option(kOptGo, go_data("vol")));
  append(all, request(kCmdWrite, 1, 10, 3, 0, {7, 8, 9}));
  append(all, request(kCmdRead, 2, 10, 3));
  for (uint8_t b : all) feed(Bytes{b});
  EXPECT_TRUE(pending.empty());
  OptReply r;
  while ((r = read_opt_reply()).type == kRepInfo) {
  }
  EXPECT_EQ(r.type, kRepAck);
  EXPECT_EQ(simple_reply(1), 0u);
  EXPECT_EQ(simple_reply(2), 0u);
  EXPECT_EQ(host.take(3), (Bytes{7, 8, 9}));
}

TEST_F(SessionTest, WantBytesCoversWholeWrite) {
  handshake_go("vol", false);
  Bytes req = request(kCmdWrite, 1, 0, 8192, 0, Bytes(8192, 1));
  feed(Bytes(req.begin(), req.begin() + 100));
  EXPECT_EQ(last_want, 28u + 8192u);
}

TEST_F(SessionTest, DiscWaitsForInflightFlush) {
  handshake_go("vol", false);
  host.defer = true;
  feed(request(kCmdFlush, 1, 0, 0));
  Bytes disc = request(kCmdDisc, 2, 0, 0);
  append(disc, Bytes{1, 2, 3});  // garbage after DISC is ignored
  EXPECT_EQ(feed(disc), 0u);
  EXPECT_FALSE(host.closed);
  host.run_deferred();
  EXPECT_EQ(simple_reply(1), 0u);
  EXPECT_TRUE(host.closed);
  EXPECT_TRUE(host.soft_close);
}

TEST_F(SessionTest, InflightIsBoundedByPausingInput) {
  handshake_go("vol", false);
  host.defer = true;
  Bytes many;
  for (int i = 0; i < 200; i++) append(many, request(kCmdFlush, uint64_t(i), 0, 0));
  size_t left = feed(many);
  EXPECT_TRUE(host.paused);
  EXPECT_EQ(session->inflight(), NbdSession::kMaxInflight);
  EXPECT_EQ(left, size_t(200 - NbdSession::kMaxInflight) * kRequestBytes);
  host.run_deferred();
  EXPECT_FALSE(host.paused);
  EXPECT_EQ(feed({}), 0u);
  host.run_deferred();
  for (int i = 0; i < 200; i++) EXPECT_EQ(simple_reply(uint64_t(i)), 0u);
  EXPECT_EQ(catalog.flush_count(), 200u);
}

TEST_F(SessionTest, ColdReadGoesToWorkerAndHotReadsAreNotHeldBehindIt) {
  handshake_go("vol", false);
  Bytes data(8192);
  for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i * 7 + 3);
  feed(request(kCmdWrite, 1, 0, 8192, 0, data));
  EXPECT_EQ(simple_reply(1), 0u);
  ASSERT_TRUE(catalog.make_cold("vol", 0, 4096));
  host.defer = true;  // workers run only when the test says
  feed(request(kCmdRead, 2, 0, 4096));     // cold: must not be answered on the loop
  feed(request(kCmdRead, 3, 4096, 4096));  // hot: answered at once, ahead of the cold one
  EXPECT_EQ(host.deferred.size(), 1u);
  EXPECT_EQ(session->inflight(), 1);
  EXPECT_EQ(simple_reply(3), 0u);
  EXPECT_EQ(host.take(4096), Bytes(data.begin() + 4096, data.end()));
  EXPECT_EQ(host.unread(), 0u);
  host.run_deferred();
  EXPECT_EQ(simple_reply(2), 0u);
  EXPECT_EQ(host.take(4096), Bytes(data.begin(), data.begin() + 4096));
  EXPECT_EQ(session->inflight(), 0);
  // The worker's blocking read warmed the range: the next read is served on the loop.
  feed(request(kCmdRead, 4, 0, 4096));
  EXPECT_TRUE(host.deferred.empty());
  EXPECT_EQ(simple_reply(4), 0u);
  EXPECT_EQ(host.take(4096), Bytes(data.begin(), data.begin() + 4096));
}

TEST_F(SessionTest, CompletionAfterCloseIsDropped) {
  handshake_go("vol", false);
  host.defer = true;
  feed(request(kCmdFlush, 1, 0, 0));
  session->on_close();
  session.reset();
  host.run_deferred();  // must not touch the destroyed session
  EXPECT_EQ(host.unread(), 0u);
}

}  // namespace
}  // namespace arbor::nbd
