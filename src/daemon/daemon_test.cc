// Daemon control operations against a real store in a temp directory (no HTTP, no frontends):
// every refusal the API promises, and the listen-address and error mappings.
#include "daemon/daemon.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "daemon/api_errors.h"

namespace arbor::daemon {
namespace {

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/arbord-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    DaemonOptions options;
    options.store_dir = dir_;
    options.frontends.nbd = false;
    options.frontends.nvme = false;
    auto d = Daemon::start(options);
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    daemon_ = std::move(d).value();
  }
  void TearDown() override {
    if (daemon_) {
      EXPECT_TRUE(daemon_->shutdown().is_ok());
    }
    daemon_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, CreateBranchSnapshotDelete) {
  auto v = daemon_->create_volume("db", 1 << 30);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v.value()["size_bytes"], 1u << 30);
  auto b = daemon_->branch("dev", "db");
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_GT(b.value()["duration_ns"].get<int64_t>(), 0);
  EXPECT_EQ(b.value()["parent"], "db");
  auto s = daemon_->snapshot("db@s1");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s.value()["kind"], "snapshot");
  EXPECT_EQ(daemon_->list_volumes(false).value()["volumes"].size(), 3u);
  auto refused = daemon_->remove("db");  // its snapshot must go first
  EXPECT_EQ(refused.status().code(), Code::kBusy);
  EXPECT_NE(refused.status().message().find("snapshot"), std::string::npos) << refused.status().to_string();
  EXPECT_TRUE(daemon_->remove("db@s1").is_ok());
  auto removed = daemon_->remove("db");  // a parent goes while its branch lives
  EXPECT_TRUE(removed.is_ok()) << removed.status().to_string();
  EXPECT_EQ(daemon_->list_volumes(false).value()["volumes"].size(), 1u);
}

TEST_F(DaemonTest, RefusesBadInput) {
  ASSERT_TRUE(daemon_->create_volume("db", 1 << 20).is_ok());
  ASSERT_TRUE(daemon_->snapshot("db@s").is_ok());
  EXPECT_EQ(daemon_->create_volume("db", 1 << 20).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(daemon_->create_volume("Bad", 1 << 20).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->create_volume("x", 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->create_volume("x", 1ull << 51).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->branch("b", "nope").status().code(), Code::kNotFound);
  EXPECT_EQ(daemon_->branch("db", "db@s").status().code(), Code::kAlreadyExists);
  EXPECT_EQ(daemon_->branch("x@y", "db").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->snapshot("db@s").status().code(), Code::kAlreadyExists);
  EXPECT_EQ(daemon_->snapshot("db").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->snapshot("nope@s").status().code(), Code::kNotFound);
  EXPECT_EQ(daemon_->resize("db", 1 << 10).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->resize("db@s", 1 << 30).status().code(), Code::kReadOnly);
  EXPECT_EQ(daemon_->remove("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(daemon_->detach("db").status().code(), Code::kNotFound);
  EXPECT_EQ(daemon_->clean(0.0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(daemon_->attach("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(daemon_->list_volumes(false).value()["volumes"].size(), 2u);
}

TEST_F(DaemonTest, DeleteOfAnOpenVolumeIsBusy) {
  ASSERT_TRUE(daemon_->create_volume("db", 1 << 20).is_ok());
  auto id = daemon_->store().open_volume("db");
  ASSERT_TRUE(id.is_ok());
  EXPECT_EQ(daemon_->remove("db").status().code(), Code::kBusy);
  daemon_->store().close_volume(*id);
  EXPECT_TRUE(daemon_->remove("db").is_ok());
}

TEST_F(DaemonTest, UsageAndStatus) {
  ASSERT_TRUE(daemon_->create_volume("db", 1 << 20).is_ok());
  auto u = daemon_->usage("");
  ASSERT_TRUE(u.is_ok());
  EXPECT_TRUE(u.value().contains("store"));
  EXPECT_EQ(u.value()["volumes"][0]["usage"]["logical_size_bytes"], 1u << 20);
  auto s = daemon_->status();
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s.value()["endpoints"][0]["protocol"], "http");
}

TEST(ListenAddress, Normalizes) {
  EXPECT_EQ(normalize_listen("127.0.0.1:10809").value(), "tcp://127.0.0.1:10809");
  EXPECT_EQ(normalize_listen("tcp://[::1]:0").value(), "tcp://[::1]:0");
  EXPECT_EQ(normalize_listen("unix:/x/nbd.sock").value(), "unix:///x/nbd.sock");
  EXPECT_EQ(normalize_listen("unix:///x/nbd.sock").value(), "unix:///x/nbd.sock");
  EXPECT_EQ(normalize_listen("/x/nbd.sock").value(), "unix:///x/nbd.sock");
  EXPECT_FALSE(normalize_listen("unix:relative").is_ok());
  EXPECT_FALSE(normalize_listen("localhost").is_ok());
  EXPECT_FALSE(normalize_listen("host:port").is_ok());
}

TEST(ApiErrors, StatusesAndCodes) {
  EXPECT_EQ(http_status_for(Code::kInvalidArgument), 400);
  EXPECT_EQ(http_status_for(Code::kNotFound), 404);
  EXPECT_EQ(http_status_for(Code::kAlreadyExists), 409);
  EXPECT_EQ(http_status_for(Code::kBusy), 409);
  EXPECT_EQ(http_status_for(Code::kNoSpace), 507);
  EXPECT_STREQ(api_error_code(Code::kReadOnly), "read_only");
}

}  // namespace
}  // namespace arbor::daemon
