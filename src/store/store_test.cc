#include "store/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <random>

#include "io/file_segment_backend.h"
#include "io/sim_segment_backend.h"

namespace arbor {
namespace {

constexpr uint64_t kB = 4096;

std::vector<uint8_t> pattern(size_t len, uint8_t seed) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; i++) v[i] = uint8_t(seed + i * 7 + (i >> 12));
  return v;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.segment_size_bytes = mib(1);
    open();
  }
  void open() {
    store_.reset();
    auto r = Store::open(disk_.mount(), options_, true);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    store_ = std::move(r).value();
  }
  VolumeId id(const std::string& name) {
    auto r = store_->open_volume(name);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    store_->close_volume(*r);
    return *r;
  }
  std::vector<uint8_t> read(const std::string& name, uint64_t off, size_t len) {
    std::vector<uint8_t> out(len);
    Status s = store_->read(id(name), off, out);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return out;
  }
  void write(const std::string& name, uint64_t off, const std::vector<uint8_t>& data) {
    Status s = store_->write(id(name), off, data);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  SimDisk disk_{42};
  StoreOptions options_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, RefusesBadControlInput) {
  ASSERT_TRUE(store_->create_volume("db", mib(8)).is_ok());
  EXPECT_EQ(store_->create_volume("db", mib(8)).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(store_->create_volume("Bad", mib(8)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->create_volume("-x", mib(8)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->create_volume(std::string(64, 'a'), mib(8)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->create_volume("zero", 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->create_volume("odd", 4097).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->create_volume("huge", options_.max_volume_size_bytes + kB).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->branch("b", "missing").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->branch("db", "db").status().code(), Code::kAlreadyExists);
  EXPECT_EQ(store_->snapshot("db").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->snapshot("nope@s").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->remove("missing").code(), Code::kNotFound);
  EXPECT_EQ(store_->resize("db", mib(4)).code(), Code::kInvalidArgument);  // shrink
  std::vector<uint8_t> buf(kB);
  EXPECT_EQ(store_->read(id("db"), mib(8), buf).code(), Code::kOutOfRange);
  EXPECT_EQ(store_->write(id("db"), mib(8) - 512, buf).code(), Code::kOutOfRange);
}

TEST_F(StoreTest, SnapshotsAreReadOnlyAndVolumesInUseCannotBeDeleted) {
  ASSERT_TRUE(store_->create_volume("db", mib(8)).is_ok());
  ASSERT_TRUE(store_->snapshot("db@s1").is_ok());
  EXPECT_EQ(store_->write(id("db@s1"), 0, pattern(kB, 1)).code(), Code::kReadOnly);
  EXPECT_EQ(store_->trim(id("db@s1"), 0, kB).code(), Code::kReadOnly);
  EXPECT_EQ(store_->remove("db").code(), Code::kBusy);  // has a snapshot
  auto held = store_->open_volume("db@s1");
  ASSERT_TRUE(held.is_ok());
  EXPECT_EQ(store_->remove("db@s1").code(), Code::kBusy);
  store_->close_volume(*held);
  EXPECT_TRUE(store_->remove("db@s1").is_ok());
  EXPECT_TRUE(store_->remove("db").is_ok());
  EXPECT_TRUE(store_->list().empty());
}

TEST_F(StoreTest, UnwrittenReadsZeroAndUnalignedIoWorks) {
  ASSERT_TRUE(store_->create_volume("v", mib(4)).is_ok());
  EXPECT_EQ(read("v", 12345, 10000), std::vector<uint8_t>(10000, 0));
  auto data = pattern(10000, 3);
  write("v", 12345, data);
  EXPECT_EQ(read("v", 12345, 10000), data);
  auto around = read("v", 12345 - 100, 10200);
  EXPECT_EQ(std::vector<uint8_t>(around.begin(), around.begin() + 100), std::vector<uint8_t>(100, 0));
  ASSERT_TRUE(store_->trim(id("v"), 12345 + 1000, 5000).is_ok());
  auto after = read("v", 12345, 10000);
  std::vector<uint8_t> expect = data;
  std::fill(expect.begin() + 1000, expect.begin() + 6000, 0);
  EXPECT_EQ(after, expect);
}

TEST_F(StoreTest, BranchIsAConsistentPointAndIsolated) {
  ASSERT_TRUE(store_->create_volume("base", mib(16)).is_ok());
  auto a = pattern(mib(2), 1);
  write("base", 0, a);
  ASSERT_TRUE(store_->branch("child", "base").is_ok());
  auto b = pattern(kB * 3, 99);
  write("child", kB * 10, b);
  write("base", kB * 20, b);
  EXPECT_EQ(read("child", 0, kB * 10), std::vector<uint8_t>(a.begin(), a.begin() + kB * 10));
  EXPECT_EQ(read("child", kB * 10, kB * 3), b);
  EXPECT_EQ(read("child", kB * 20, kB * 3), std::vector<uint8_t>(a.begin() + kB * 20, a.begin() + kB * 23));
  EXPECT_EQ(read("base", kB * 10, kB * 3), std::vector<uint8_t>(a.begin() + kB * 10, a.begin() + kB * 13));
  EXPECT_EQ(read("base", kB * 20, kB * 3), b);
  auto info = store_->info("child");
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->parent, "base");
  EXPECT_TRUE(store_->verify().is_ok());
}

TEST_F(StoreTest, BranchSharesUnwrittenMapNodesAndEachSideCopiesWhatItChanges) {
  // Written since the last checkpoint: the block map's nodes on these paths are dirty (in memory).
  ASSERT_TRUE(store_->create_volume("p", mib(64)).is_ok());
  auto base = pattern(mib(4), 3);
  write("p", 0, base);
  for (uint64_t i = 0; i < 16; i++) write("p", mib(8) + i * mib(3), pattern(kB, uint8_t(i)));
  uint64_t dirty = store_->store_usage().dirty_map_nodes;
  ASSERT_GT(dirty, 16u);
  // A branch shares them (O(1)), also a branch of the branch.
  ASSERT_TRUE(store_->branch("c", "p").is_ok());
  ASSERT_TRUE(store_->branch("gc", "c").is_ok());
  EXPECT_EQ(store_->store_usage().dirty_map_nodes, dirty);
  EXPECT_TRUE(store_->verify().is_ok());

  // Writes through each copy the shared nodes on their path and change only that tree.
  auto pw = pattern(kB * 2, 50), cw = pattern(kB * 2, 60), gw = pattern(kB * 2, 70);
  write("p", kB * 5, pw);
  write("c", kB * 5, cw);
  write("gc", mib(11), gw);
  EXPECT_GT(store_->store_usage().dirty_map_nodes, dirty);
  auto slice = [&](uint64_t off, uint64_t len) { return std::vector<uint8_t>(base.begin() + off, base.begin() + off + len); };
  auto check_all = [&] {
    EXPECT_EQ(read("c", kB * 5, kB * 2), cw);
    EXPECT_EQ(read("gc", kB * 5, kB * 2), slice(kB * 5, kB * 2));
    EXPECT_EQ(read("c", mib(11), kB), pattern(kB, 1));
    EXPECT_EQ(read("gc", mib(11), kB * 2), gw);
    EXPECT_EQ(read("gc", mib(8) + 15 * mib(3), kB), pattern(kB, 15));
  };
  check_all();
  EXPECT_EQ(read("p", kB * 5, kB * 2), pw);
  auto p_at_11 = pattern(kB, 1);
  p_at_11.resize(kB * 2, 0);  // the block after it was never written
  EXPECT_EQ(read("p", mib(11), kB * 2), p_at_11);
  auto uc = store_->usage("c");
  ASSERT_TRUE(uc.is_ok());
  EXPECT_EQ(uc->owned_bytes, kB * 2);  // what c wrote; the rest it shares with p or gc
  EXPECT_TRUE(store_->verify().is_ok());

  // A trim through the branch, the parent deleted, a checkpoint (writes each shared node once).
  ASSERT_TRUE(store_->trim(id("gc"), mib(1), mib(1)).is_ok());
  ASSERT_TRUE(store_->remove("p").is_ok());
  EXPECT_TRUE(store_->verify().is_ok());
  check_all();
  EXPECT_EQ(read("gc", mib(1), mib(1)), std::vector<uint8_t>(mib(1), 0));
  EXPECT_EQ(read("c", mib(1), mib(1)), slice(mib(1), mib(1)));
  ASSERT_TRUE(store_->checkpoint().is_ok());
  EXPECT_EQ(store_->store_usage().dirty_map_nodes, 0u);
  EXPECT_TRUE(store_->verify().is_ok());
  check_all();

  // Journal replay branches the same way: a branch of a dirty tree, flushed, then a crash.
  write("c", mib(20), pattern(kB * 4, 80));
  ASSERT_TRUE(store_->branch("c2", "c").is_ok());
  write("c2", mib(20), pattern(kB, 90));
  write("c", mib(20) + kB, pattern(kB, 91));
  ASSERT_TRUE(store_->flush().is_ok());
  disk_.crash();
  open();
  EXPECT_TRUE(store_->verify().is_ok());
  check_all();
  auto c_expected = pattern(kB * 4, 80);
  auto c91 = pattern(kB, 91);
  std::copy(c91.begin(), c91.end(), c_expected.begin() + kB);
  EXPECT_EQ(read("c", mib(20), kB * 4), c_expected);
  auto c2_expected = pattern(kB * 4, 80);
  auto c90 = pattern(kB, 90);
  std::copy(c90.begin(), c90.end(), c2_expected.begin());
  EXPECT_EQ(read("c2", mib(20), kB * 4), c2_expected);
}

TEST_F(StoreTest, UsageSplitsOwnedAndShared) {
  ASSERT_TRUE(store_->create_volume("p", mib(16)).is_ok());
  write("p", 0, pattern(kB * 10, 5));
  ASSERT_TRUE(store_->branch("c", "p").is_ok());
  write("c", 0, pattern(kB * 3, 77));
  auto uc = store_->usage("c");
  ASSERT_TRUE(uc.is_ok());
  EXPECT_EQ(uc->owned_bytes, kB * 3);
  EXPECT_EQ(uc->shared_bytes, kB * 7);
  auto up = store_->usage("p");
  ASSERT_TRUE(up.is_ok());
  EXPECT_EQ(up->owned_bytes, kB * 3);  // the three blocks the child replaced are the parent's alone
  EXPECT_EQ(up->shared_bytes, kB * 7);
  EXPECT_EQ(up->logical_size_bytes, mib(16));
}

TEST_F(StoreTest, ParentDeletedWhileChildLivesAndDeepChainsReadTheSame) {
  ASSERT_TRUE(store_->create_volume("g0", mib(8)).is_ok());
  auto data = pattern(kB * 4, 9);
  write("g0", kB * 100, data);
  std::string prev = "g0";
  for (int i = 1; i <= 200; i++) {
    std::string name = "g" + std::to_string(i);
    ASSERT_TRUE(store_->branch(name, prev).is_ok()) << i;
    if (i % 50 == 0) write(name, 0, pattern(kB, uint8_t(i)));
    prev = name;
  }
  for (int i = 0; i < 200; i += 2) ASSERT_TRUE(store_->remove("g" + std::to_string(i)).is_ok()) << i;
  EXPECT_EQ(read("g200", kB * 100, kB * 4), data);
  EXPECT_EQ(read("g200", 0, kB), pattern(kB, 200));
  EXPECT_TRUE(store_->verify().is_ok());
  open();  // and the same after a reopen
  EXPECT_EQ(read("g200", kB * 100, kB * 4), data);
  EXPECT_TRUE(store_->verify().is_ok());
}

TEST_F(StoreTest, SpaceComesBackAfterOverwriteDeleteAndClean) {
  ASSERT_TRUE(store_->create_volume("v", mib(32)).is_ok());
  write("v", 0, pattern(mib(8), 1));
  ASSERT_TRUE(store_->checkpoint().is_ok());
  uint64_t live_first = store_->store_usage().live_bytes;
  EXPECT_GE(live_first, mib(8));
  // Overwrite every other block: half of each old segment dies.
  for (uint64_t b = 0; b < mib(8) / kB; b += 2) write("v", b * kB, pattern(kB, uint8_t(b)));
  ASSERT_TRUE(store_->checkpoint().is_ok());
  uint64_t segments_before = store_->store_usage().segments_in_use;
  auto stats = store_->clean(0.75);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_GT(stats->segments_cleaned, 0u);
  EXPECT_LT(store_->store_usage().segments_in_use, segments_before);
  EXPECT_TRUE(store_->verify().is_ok());
  EXPECT_EQ(read("v", 2 * kB, kB), pattern(kB, 2));
  auto original = pattern(mib(8), 1);
  EXPECT_EQ(read("v", 3 * kB, kB), std::vector<uint8_t>(original.begin() + 3 * kB, original.begin() + 4 * kB));
  ASSERT_TRUE(store_->remove("v").is_ok());
  EXPECT_EQ(store_->store_usage().live_bytes, 0u);
  EXPECT_LE(store_->store_usage().segments_in_use, 2u);
}

// A store filled by its own writes refuses more data, yet keeps the space a checkpoint and a
// recovery need: it checkpoints, opens again (after a clean close or a crash), and deleting a
// volume makes room for data again. Without the reserve, the refused store could not reopen.
TEST_F(StoreTest, AFullStoreRefusesDataButCheckpointsReopensAndFreesSpace) {
  disk_.set_capacity_bytes(mib(24));
  ASSERT_TRUE(store_->create_volume("v", mib(64)).is_ok());
  uint64_t written = 0;
  Status refused;
  for (; written < mib(64); written += kib(256)) {
    refused = store_->write(id("v"), written, pattern(kib(256), uint8_t(written >> 18)));
    if (!refused.is_ok()) break;
  }
  ASSERT_EQ(refused.code(), Code::kNoSpace) << refused.to_string();
  EXPECT_GT(written, mib(8));  // 1 MiB segments hold about half a MiB of 128-block records each
  ASSERT_TRUE(store_->flush().is_ok());
  ASSERT_TRUE(store_->checkpoint().is_ok());
  // Each open goes on in a fresh segment while there is room for one, then in the tail of the
  // last one (zeroed first): a full store opens as often as it is restarted.
  for (int i = 0; i < 12; i++) open();
  disk_.set_capacity_bytes(disk_.bytes_in_use());  // not one more segment
  open();
  open();
  disk_.crash();
  open();
  for (uint64_t off = 0; off < written; off += kib(256)) {
    ASSERT_EQ(read("v", off, kib(256)), pattern(kib(256), uint8_t(off >> 18))) << "at " << off;
  }
  EXPECT_TRUE(store_->verify().is_ok());
  disk_.set_capacity_bytes(mib(24));
  ASSERT_TRUE(store_->remove("v").is_ok());
  ASSERT_TRUE(store_->checkpoint().is_ok());
  ASSERT_TRUE(store_->create_volume("w", mib(16)).is_ok());
  write("w", 0, pattern(mib(8), 3));
  ASSERT_TRUE(store_->flush().is_ok());
  EXPECT_EQ(read("w", 0, mib(8)), pattern(mib(8), 3));
}

// Full of segments that are half dead (two volumes written interleaved, one deleted): only the
// cleaner gives that space back, and it must be able to run on a full store, a little at a time.
TEST_F(StoreTest, AFullStoreCleansHalfDeadSegmentsAndTakesDataAgain) {
  disk_.set_capacity_bytes(mib(24));
  ASSERT_TRUE(store_->create_volume("v", mib(32)).is_ok());
  ASSERT_TRUE(store_->create_volume("u", mib(32)).is_ok());
  uint64_t written = 0;
  Status refused;
  for (; written < mib(32); written += kib(64)) {
    refused = store_->write(id("v"), written, pattern(kib(64), uint8_t(written >> 16)));
    if (refused.is_ok()) refused = store_->write(id("u"), written, pattern(kib(64), 1));
    if (!refused.is_ok()) break;
  }
  ASSERT_EQ(refused.code(), Code::kNoSpace) << refused.to_string();
  ASSERT_TRUE(store_->flush().is_ok());
  ASSERT_TRUE(store_->remove("u").is_ok());
  uint64_t cleaned = 0;
  for (int round = 0; round < 40; round++) {
    auto r = store_->clean(0.75);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    if (r->segments_cleaned == 0) break;
    cleaned += r->segments_cleaned;
  }
  EXPECT_GE(cleaned, 8u);
  ASSERT_TRUE(store_->create_volume("w", mib(8)).is_ok());
  write("w", 0, pattern(mib(4), 9));
  ASSERT_TRUE(store_->flush().is_ok());
  EXPECT_EQ(read("w", 0, mib(4)), pattern(mib(4), 9));
  for (uint64_t off = 0; off < written; off += kib(64)) {
    ASSERT_EQ(read("v", off, kib(64)), pattern(kib(64), uint8_t(off >> 16))) << "at " << off;
  }
  EXPECT_TRUE(store_->verify().is_ok());
}

TEST_F(StoreTest, FlushedWritesSurviveACrash) {
  ASSERT_TRUE(store_->create_volume("v", mib(8)).is_ok());
  auto data = pattern(mib(1), 4);
  write("v", kB * 7, data);
  ASSERT_TRUE(store_->flush().is_ok());
  write("v", 0, pattern(kB, 8));  // not flushed: may or may not survive
  disk_.crash();
  open();
  EXPECT_EQ(read("v", kB * 7, mib(1)), data);
  EXPECT_TRUE(store_->verify().is_ok());
}

TEST_F(StoreTest, FlippedDataBitIsReportedNotReturned) {
  ASSERT_TRUE(store_->create_volume("v", mib(8)).is_ok());
  write("v", 0, pattern(mib(4), 4));
  ASSERT_TRUE(store_->remove("v").is_ok());  // leaves only dead blocks behind...
  ASSERT_TRUE(store_->create_volume("w", mib(1)).is_ok());
  ASSERT_TRUE(store_->clean(1.0).is_ok());
  write("w", 0, pattern(mib(1), 6));  // ...then one megabyte of live data
  ASSERT_TRUE(store_->checkpoint().is_ok());
  std::vector<uint8_t> out(mib(1));
  int corruptions = 0;
  for (int round = 0; round < 20; round++) {
    disk_.flip_random_bit_in_used_block();
    store_.reset();
    auto r = Store::open(disk_.mount(), options_, true);
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorruption);
      return;
    }
    store_ = std::move(r).value();
    Status s = store_->read(id("w"), 0, out);
    if (s.is_ok()) {
      EXPECT_EQ(out, pattern(mib(1), 6)) << "wrong data returned after a bit flip";
    } else {
      EXPECT_EQ(s.code(), Code::kCorruption);
      corruptions++;
    }
  }
  EXPECT_GT(corruptions, 0);
}

TEST(FileStore, PersistsAcrossReopenAndGrows) {
  std::string dir = std::filesystem::temp_directory_path() / ("arbor-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  StoreOptions options;
  options.segment_size_bytes = mib(4);
  auto data = pattern(mib(3), 11);
  {
    auto backend = FileSegmentBackend::open(dir);
    ASSERT_TRUE(backend.is_ok());
    auto store = Store::open(std::move(backend).value(), options, true);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    ASSERT_TRUE((*store)->create_volume("f", mib(8)).is_ok());
    auto id = (*store)->open_volume("f");
    ASSERT_TRUE((*store)->write(*id, mib(1), data).is_ok());
    ASSERT_TRUE((*store)->flush().is_ok());
    ASSERT_TRUE((*store)->resize("f", gib(2)).is_ok());
    ASSERT_TRUE((*store)->write(*id, gib(2) - kB, pattern(kB, 1)).is_ok());
    ASSERT_TRUE((*store)->flush().is_ok());
    (*store)->close_volume(*id);
  }
  {
    auto backend = FileSegmentBackend::open(dir);
    ASSERT_TRUE(backend.is_ok());
    auto store = Store::open(std::move(backend).value(), options, false);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    auto id = (*store)->open_volume("f");
    ASSERT_TRUE(id.is_ok());
    std::vector<uint8_t> out(mib(3));
    ASSERT_TRUE((*store)->read(*id, mib(1), out).is_ok());
    EXPECT_EQ(out, data);
    std::vector<uint8_t> tail(kB);
    ASSERT_TRUE((*store)->read(*id, gib(2) - kB, tail).is_ok());
    EXPECT_EQ(tail, pattern(kB, 1));
    EXPECT_TRUE((*store)->verify().is_ok());
    (*store)->close_volume(*id);
  }
  std::filesystem::remove_all(dir);
}

// Does what an event loop does with a plan: every file read, with pread here.
Status read_files(const PlannedRead& plan) {
  for (const FileRead& f : plan.file_reads()) {
    size_t done = 0;
    while (done < f.into.size()) {
      ssize_t n = ::pread(f.fd, f.into.data() + done, f.into.size() - done, off_t(f.offset + done));
      if (n < 0) return errno_status(errno, "pread");
      if (n == 0) {
        std::memset(f.into.data() + done, 0, f.into.size() - done);
        break;
      }
      done += size_t(n);
    }
  }
  return Status::ok();
}

TEST(FileStore, PlannedReadNamesFileRunsKeepsThemAndChecksWhatArrives) {
  std::string dir = std::filesystem::temp_directory_path() / ("arbor-plan-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  StoreOptions options;
  options.segment_size_bytes = mib(4);
  auto backend = FileSegmentBackend::open(dir);
  ASSERT_TRUE(backend.is_ok());
  auto opened = Store::open(std::move(backend).value(), options, true);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  Store& store = **opened;
  ASSERT_TRUE(store.create_volume("f", mib(8)).is_ok());
  VolumeId id = *store.open_volume("f");
  auto old_data = pattern(mib(1), 21);
  ASSERT_TRUE(store.write(id, 0, old_data).is_ok());
  // Another volume's writes fill the segment, so the one holding `old_data` is sealed: the
  // cleaner may take it.
  ASSERT_TRUE(store.create_volume("g", mib(8)).is_ok());
  VolumeId g = *store.open_volume("g");
  ASSERT_TRUE(store.write(g, 0, pattern(mib(5), 24)).is_ok());
  store.close_volume(g);
  ASSERT_TRUE(store.flush().is_ok());
  auto open_record = pattern(2 * kB, 22);  // not flushed: still in the log's write buffer
  ASSERT_TRUE(store.write(id, mib(2), open_record).is_ok());

  // [0, 3 MiB): written blocks (file runs), a hole, blocks from memory, a hole.
  std::vector<uint8_t> out(mib(3), 0xEE);
  auto plan = store.plan_read(id, 0, out);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  ASSERT_FALSE((*plan)->file_reads().empty());
  uint64_t planned = 0;
  for (const FileRead& f : (*plan)->file_reads()) planned += f.into.size();
  EXPECT_EQ(planned, mib(1));  // only the flushed megabyte is left to the caller

  // The blocks change and their segment is cleaned away while the plan is held: the file reads
  // still bring the blocks as they were when the read was planned.
  ASSERT_TRUE(store.write(id, 0, pattern(mib(1), 23)).is_ok());
  ASSERT_TRUE(store.flush().is_ok());
  ASSERT_TRUE(store.checkpoint().is_ok());
  ASSERT_TRUE(store.clean(1.0).is_ok());
  ASSERT_TRUE(store.checkpoint().is_ok());
  ASSERT_TRUE(read_files(**plan).is_ok());
  ASSERT_TRUE((*plan)->finish().is_ok());
  EXPECT_TRUE(std::equal(old_data.begin(), old_data.end(), out.begin()));
  EXPECT_TRUE(std::all_of(out.begin() + mib(1), out.begin() + mib(2), [](uint8_t b) { return b == 0; }));
  EXPECT_TRUE(std::equal(open_record.begin(), open_record.end(), out.begin() + mib(2)));
  EXPECT_TRUE(std::all_of(out.begin() + mib(2) + 2 * kB, out.end(), [](uint8_t b) { return b == 0; }));
  plan->reset();

  // What arrives damaged is refused, naming the volume.
  std::vector<uint8_t> block(kB);
  auto damaged = store.plan_read(id, 5 * kB, block);
  ASSERT_TRUE(damaged.is_ok());
  ASSERT_EQ((*damaged)->file_reads().size(), 1u);
  ASSERT_TRUE(read_files(**damaged).is_ok());
  block[100] ^= 0x04;
  Status s = (*damaged)->finish();
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.to_string().find("'f'"), std::string::npos) << s.to_string();
  damaged->reset();

  // Unaligned, and past the end: refused.
  std::vector<uint8_t> odd(100);
  EXPECT_EQ(store.plan_read(id, 0, odd).status().code(), Code::kNotSupported);
  EXPECT_EQ(store.plan_read(id, mib(8), block).status().code(), Code::kOutOfRange);
  store.close_volume(id);
  opened->reset();
  std::filesystem::remove_all(dir);
}

TEST(SimStore, PlannedReadIsNotSupportedWhereSegmentsAreNotFiles) {
  SimDisk disk(5);
  StoreOptions options;
  options.segment_size_bytes = mib(1);
  auto store = Store::open(disk.mount(), options, true);
  ASSERT_TRUE(store.is_ok());
  ASSERT_TRUE((*store)->create_volume("s", mib(4)).is_ok());
  VolumeId id = *(*store)->open_volume("s");
  ASSERT_TRUE((*store)->write(id, 0, pattern(kB, 3)).is_ok());
  ASSERT_TRUE((*store)->flush().is_ok());
  std::vector<uint8_t> block(kB);
  EXPECT_EQ((*store)->plan_read(id, 0, block).status().code(), Code::kNotSupported);
  (*store)->close_volume(id);
}

}  // namespace
}  // namespace arbor

namespace arbor {
namespace {

TEST_F(StoreTest, TrimOfParentLeavesBranchesOfItsSnapshotIntact) {
  ASSERT_TRUE(store_->create_volume("v", mib(8)).is_ok());
  auto data = pattern(mib(2), 3);
  write("v", 0, data);
  ASSERT_TRUE(store_->branch("b", "v").is_ok());
  ASSERT_TRUE(store_->snapshot("b@s").is_ok());
  ASSERT_TRUE(store_->branch("c", "b@s").is_ok());
  write("c", 276 * kB, pattern(4 * kB, 9));
  write("v", 26 * kB, pattern(kB, 5));
  ASSERT_TRUE(store_->trim(id("v"), 260 * kB, 46 * kB).is_ok());
  EXPECT_EQ(read("c", 297 * kB, kB), std::vector<uint8_t>(data.begin() + 297 * kB, data.begin() + 298 * kB));
  EXPECT_TRUE(store_->verify().is_ok());
  disk_.crash();
  open();
  EXPECT_EQ(read("c", 297 * kB, kB), std::vector<uint8_t>(data.begin() + 297 * kB, data.begin() + 298 * kB));
  EXPECT_TRUE(store_->verify().is_ok());
}

}  // namespace
}  // namespace arbor

#include "io/device_segment_backend.h"

namespace arbor {
namespace {

TEST(DeviceStore, SlotsAreReusedAndNothingResurrects) {
  std::string path = std::filesystem::temp_directory_path() / ("arbor-dev-" + std::to_string(::getpid()));
  struct RemoveAtEnd {  // a failed assertion returns early: the 17 MiB file must not stay behind
    std::string path;
    ~RemoveAtEnd() { std::filesystem::remove(path); }
  } remove_at_end{path};
  { std::filesystem::remove(path); FILE* f = std::fopen(path.c_str(), "w"); ASSERT_NE(f, nullptr); std::fclose(f); }
  // label area + 16 one-MiB slots: a round (3 MiB in 128-block records, about 6 slots) twice over,
  // plus the 2 slots and the map nodes kept for checkpoints (a full store refuses data first)
  std::filesystem::resize_file(path, mib(1) + mib(16));
  StoreOptions options;
  options.segment_size_bytes = mib(1);
  auto open = [&]() {
    auto b = DeviceSegmentBackend::open(path, mib(1), true);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    auto s = Store::open(std::move(b).value(), options, true);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return std::move(s).value();
  };
  auto store = open();
  ASSERT_TRUE(store->create_volume("v", mib(4)).is_ok());
  auto id = store->open_volume("v");
  // Far more than the device holds, over a small volume: slots must be freed and reused.
  for (int round = 0; round < 12; round++) {
    ASSERT_TRUE(store->write(*id, 0, pattern(mib(3), uint8_t(round))).is_ok()) << round;
    ASSERT_TRUE(store->checkpoint().is_ok()) << round;
    ASSERT_TRUE(store->clean(0.9).is_ok()) << round;
  }
  ASSERT_TRUE(store->flush().is_ok());
  store->close_volume(*id);
  store.reset();
  store = open();
  std::vector<uint8_t> out(mib(3));
  auto id2 = store->open_volume("v");
  ASSERT_TRUE(store->read(*id2, 0, out).is_ok());
  EXPECT_EQ(out, pattern(mib(3), 11));
  EXPECT_TRUE(store->verify().is_ok());
  store->close_volume(*id2);
  store.reset();
}

}  // namespace
}  // namespace arbor

#include "log/record_format.h"

namespace arbor {
namespace {

// A flushed journal record damaged in the middle of the log is reported, not replayed around.
TEST_F(StoreTest, DamagedFlushedJournalRecordIsCorruptionNotATornTail) {
  ASSERT_TRUE(store_->create_volume("v", mib(8)).is_ok());
  write("v", 0, pattern(128 * kB, 1));  // one full WRITE record
  ASSERT_TRUE(store_->flush().is_ok());
  write("v", mib(1), pattern(kB, 2));  // a later record, written after the first was durable
  ASSERT_TRUE(store_->flush().is_ok());
  auto backend = disk_.mount();
  auto ids = backend->list();
  ASSERT_TRUE(ids.is_ok());
  SegmentId seg = 0;
  std::vector<uint8_t> block(kB);
  uint64_t first_write = UINT64_MAX;
  for (SegmentId id : *ids) {
    for (uint64_t off = 0; off < mib(1) && first_write == UINT64_MAX; off += kB) {
      ASSERT_TRUE(backend->read(id, off, block).is_ok());
      auto h = decode_record_header(block);
      if (h.is_ok() && h->kind == RecordKind::kWrite && h->payload_blocks == 128) {
        first_write = off;
        seg = id;
      }
    }
  }
  ASSERT_NE(first_write, UINT64_MAX);
  disk_.flip_bit(seg, first_write + 5 * kB + 100, 3);  // inside the record's fifth data block
  store_.reset();
  auto r = Store::open(disk_.mount(), options_, true);
  ASSERT_FALSE(r.is_ok());
}

}  // namespace
}  // namespace arbor

#include <atomic>
#include <thread>

namespace arbor {
namespace {

// Readers, writers, flushes, branches, checkpoints and the cleaner all at once: each writer owns a
// region and checks every read of it; branches taken meanwhile must read as consistent points.
// Run under ThreadSanitizer too (docs: README "Tests").
TEST(StoreConcurrency, WritersReadersBranchesAndCleanerTogether) {
  SimDisk disk(9);
  StoreOptions options;
  options.segment_size_bytes = mib(1);
  options.checkpoint_interval_bytes = mib(4);
  options.max_cached_nodes = 64;
  auto opened = Store::open(disk.mount(), options, true);
  ASSERT_TRUE(opened.is_ok());
  Store& store = **opened;
  ASSERT_TRUE(store.create_volume("v", mib(16)).is_ok());
  VolumeId v = *store.open_volume("v");
  constexpr int kWriters = 4;
  constexpr uint64_t kRegion = mib(2);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; w++) {
    threads.emplace_back([&, w] {
      std::vector<uint8_t> mine(kRegion, 0), buf;
      std::mt19937_64 r(w);
      for (int i = 0; i < 400 && failures == 0; i++) {
        uint64_t off = (r() % (kRegion / 512 - 16)) * 512;
        size_t len = 512 * (1 + r() % 16);
        buf.assign(len, uint8_t(1 + r() % 250));
        if (!store.write(v, w * kRegion + off, buf).is_ok()) failures++;
        std::memcpy(mine.data() + off, buf.data(), len);
        std::vector<uint8_t> got(kRegion);
        if (i % 20 == 0) {
          if (!store.read(v, w * kRegion, got).is_ok() || got != mine) failures++;
        }
        if (i % 50 == 0 && !store.flush().is_ok()) failures++;
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 30 && failures == 0; i++) {
      std::string name = "b" + std::to_string(i);
      if (!store.branch(name, "v").is_ok()) failures++;
      // A branch is a point: reading it twice, with writers going on in v, gives the same bytes.
      auto b = store.open_volume(name);
      std::vector<uint8_t> x(mib(1)), y(mib(1));
      if (!b.is_ok() || !store.read(*b, 0, x).is_ok() || !store.read(*b, 0, y).is_ok() || x != y) failures++;
      if (b.is_ok()) store.close_volume(*b);
      if (i % 3 == 0 && !store.remove(name).is_ok()) failures++;
      if (i % 5 == 0 && !store.clean(0.7).is_ok()) failures++;
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  store.close_volume(v);
  EXPECT_TRUE(store.verify().is_ok());
  (void)stop;
}

TEST(StoreConcurrency, AReadWaitingOnTheDeviceHoldsNoLockAgainstWriters) {
  SimDisk disk(11);
  auto opened = Store::open(disk.mount(), StoreOptions{}, true);
  ASSERT_TRUE(opened.is_ok());
  Store& store = **opened;
  ASSERT_TRUE(store.create_volume("v", mib(1)).is_ok());
  VolumeId v = *store.open_volume("v");
  std::vector<uint8_t> before(64 * 1024, 0xA1), after(64 * 1024, 0xB2), got(64 * 1024);
  ASSERT_TRUE(store.write(v, 0, before).is_ok());
  ASSERT_TRUE(store.checkpoint().is_ok());  // the blocks leave the log's write buffer for the disk
  ASSERT_TRUE(store.read(v, 0, got).is_ok());  // and the map's nodes are cached: only data is read below

  std::atomic<bool> armed{true};
  std::promise<void> parked, release;
  std::shared_future<void> released = release.get_future().share();
  disk.set_before_read([&](SegmentId) {
    if (!armed.exchange(false)) return;
    parked.set_value();
    released.wait();
  });
  auto reader = std::async(std::launch::async, [&] { return store.read(v, 0, got); });
  ASSERT_EQ(parked.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  // The reader is inside its device read. A write (the store's exclusive lock) must not wait for it.
  auto writer = std::async(std::launch::async, [&] { return store.write(v, 0, after); });
  bool wrote_meanwhile = writer.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  release.set_value();
  EXPECT_TRUE(wrote_meanwhile) << "a write waited for another read's device I/O";
  EXPECT_TRUE(writer.get().is_ok());
  ASSERT_TRUE(reader.get().is_ok());
  EXPECT_EQ(got, before);  // the read returns the point it started at, checksums intact
  disk.set_before_read({});
  ASSERT_TRUE(store.read(v, 0, got).is_ok());
  EXPECT_EQ(got, after);
  store.close_volume(v);
  EXPECT_TRUE(store.verify().is_ok());
}

}  // namespace
}  // namespace arbor

namespace arbor {
namespace {

TEST_F(StoreTest, MaintainCleansWhenMuchIsDeadAndLeavesATidyStoreAlone) {
  ASSERT_TRUE(store_->create_volume("v", mib(32)).is_ok());
  write("v", 0, pattern(mib(8), 1));
  ASSERT_TRUE(store_->checkpoint().is_ok());
  auto idle = store_->maintain();
  ASSERT_TRUE(idle.is_ok());
  EXPECT_EQ(idle->segments_cleaned, 0u);  // nothing dead: nothing to do
  for (uint64_t b = 0; b < mib(8) / kB; b += 4) write("v", b * kB, pattern(kB, 3));  // a quarter dies
  for (uint64_t b = 1; b < mib(8) / kB; b += 4) write("v", b * kB, pattern(kB, 4));  // and another
  ASSERT_TRUE(store_->checkpoint().is_ok());
  uint64_t before = store_->store_usage().segments_in_use;
  auto r = store_->maintain(0.25, 4);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GT(r->segments_cleaned, 0u);
  EXPECT_LE(r->segments_cleaned, 4u);
  EXPECT_LT(store_->store_usage().segments_in_use, before);
  EXPECT_TRUE(store_->verify().is_ok());
  EXPECT_EQ(read("v", 0, kB), pattern(kB, 3));
  EXPECT_EQ(read("v", kB, kB), pattern(kB, 4));
}

}  // namespace
}  // namespace arbor
