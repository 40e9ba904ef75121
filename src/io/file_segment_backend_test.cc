#include "io/file_segment_backend.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "store/store.h"
#include "util/nonblocking_scope.h"
#include "util/units.h"

namespace arbor {
namespace {

class SegmentFilePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("arbor-pool-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<SegmentFilePool> open_pool(SegmentFilePoolOptions options = {}) {
    auto r = SegmentFilePool::open(dir_ + "/spare", options, [] { return uint64_t(1) << 40; });
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return std::move(r).value();
  }
  static void make_file(const std::string& path, uint64_t size) {
    std::ofstream(path).close();
    std::filesystem::resize_file(path, size);
  }
  static uint64_t file_size(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  }
  std::string dir_;
};

TEST_F(SegmentFilePoolTest, PreparesZeroFilledSpareOfTheSizeAskedFor) {
  auto pool = open_pool();
  pool->wait_idle();
  EXPECT_EQ(pool->spare_count(), 0u);  // no size known before the first take
  auto first = pool->take(dir_ + "/a.seg", mib(1));
  ASSERT_TRUE(first.is_ok());
  EXPECT_FALSE(*first);
  pool->wait_idle();
  ASSERT_EQ(pool->spare_count(), 1u);
  auto second = pool->take(dir_ + "/b.seg", mib(1));
  ASSERT_TRUE(second.is_ok());
  ASSERT_TRUE(*second);
  ASSERT_EQ(file_size(dir_ + "/b.seg"), mib(1));
  std::ifstream in(dir_ + "/b.seg", std::ios::binary);
  std::vector<char> bytes(mib(1));
  in.read(bytes.data(), std::streamsize(bytes.size()));
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), 0), std::ptrdiff_t(bytes.size()));
  pool->wait_idle();
  EXPECT_EQ(pool->spare_count(), 1u);  // refilled
}

TEST_F(SegmentFilePoolTest, RecyclesUpToItsLimitAndDropsOtherSizes) {
  SegmentFilePoolOptions options;
  options.max_spares = 2;
  options.prepared_target = 0;
  auto pool = open_pool(options);
  ASSERT_TRUE(pool->take(dir_ + "/x.seg", mib(1)).is_ok());
  for (int i = 0; i < 3; i++) {
    std::string p = dir_ + "/old" + std::to_string(i) + ".seg";
    make_file(p, mib(1));
    bool adopted = pool->give(p);
    EXPECT_EQ(adopted, i < 2) << i;
    EXPECT_EQ(std::filesystem::exists(p), !adopted);
  }
  std::string small = dir_ + "/small.seg";
  std::ofstream(small).put('x');
  EXPECT_FALSE(pool->give(small));  // not whole: its size is not the segment size
  EXPECT_EQ(pool->spare_count(), 2u);
  // The store reopened with another segment size: the old spares are of no use.
  auto r = pool->take(dir_ + "/y.seg", mib(2));
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(pool->spare_count(), 0u);
}

TEST_F(SegmentFilePoolTest, ReopenKeepsSparesAndDeletesPartialPreparations) {
  std::filesystem::create_directories(dir_ + "/spare");
  make_file(dir_ + "/spare/7.seg", mib(1));
  std::ofstream(dir_ + "/spare/tmp-8.seg").put('x');
  SegmentFilePoolOptions options;
  options.prepared_target = 0;
  auto pool = open_pool(options);
  EXPECT_EQ(pool->spare_count(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/spare/tmp-8.seg"));
  auto r = pool->take(dir_ + "/z.seg", mib(1));
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(file_size(dir_ + "/z.seg"), mib(1));
}

std::vector<uint8_t> pattern(size_t len, uint8_t seed) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; i++) v[i] = uint8_t(seed + i * 13 + (i >> 12));
  return v;
}

// Segments freed by a delete are recycled with their old records still inside; a store that then
// writes into them and stops without a checkpoint must replay exactly its new records.
TEST_F(SegmentFilePoolTest, StoreRecoversFromRecycledSegmentsHoldingStaleRecords) {
  StoreOptions options;
  options.segment_size_bytes = mib(1);
  auto b_data = pattern(mib(3), 5);
  size_t spares_after_delete = 0;
  {
    auto backend = FileSegmentBackend::open(dir_);
    ASSERT_TRUE(backend.is_ok());
    FileSegmentBackend* raw = backend->get();
    auto store = Store::open(std::move(backend).value(), options, true);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    ASSERT_TRUE((*store)->create_volume("a", mib(16)).is_ok());
    auto a = (*store)->open_volume("a");
    ASSERT_TRUE((*store)->write(*a, 0, pattern(mib(6), 1)).is_ok());
    ASSERT_TRUE((*store)->flush().is_ok());
    (*store)->close_volume(*a);
    ASSERT_TRUE((*store)->remove("a").is_ok());
    raw->spare_pool().wait_idle();
    spares_after_delete = raw->spare_pool().spare_count();
    ASSERT_GE(spares_after_delete, 3u);  // 6 MiB of data in 1 MiB segments came free
    ASSERT_TRUE((*store)->create_volume("b", mib(16)).is_ok());
    auto b = (*store)->open_volume("b");
    ASSERT_TRUE((*store)->write(*b, mib(2), b_data).is_ok());
    ASSERT_TRUE((*store)->flush().is_ok());
    (*store)->close_volume(*b);
    raw->spare_pool().wait_idle();
    EXPECT_LT(raw->spare_pool().spare_count(), spares_after_delete);  // new segments came from the pool
    // No checkpoint since the writes to b: reopening replays them from the recycled segments.
  }
  auto backend = FileSegmentBackend::open(dir_);
  ASSERT_TRUE(backend.is_ok());
  auto store = Store::open(std::move(backend).value(), options, false);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  EXPECT_FALSE((*store)->open_volume("a").is_ok());
  auto b = (*store)->open_volume("b");
  ASSERT_TRUE(b.is_ok());
  std::vector<uint8_t> out(b_data.size());
  ASSERT_TRUE((*store)->read(*b, mib(2), out).is_ok());
  EXPECT_EQ(out, b_data);
  EXPECT_TRUE((*store)->verify().is_ok());
  (*store)->close_volume(*b);
}

// Pages of the file at `path` in the page cache (mincore over a mapping of it).
size_t resident_pages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  size_t pages = (size_t(st.st_size) + 4095) / 4096, resident = 0;
  if (pages > 0) {
    void* m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    EXPECT_NE(m, MAP_FAILED);
    std::vector<unsigned char> vec(pages);
    EXPECT_EQ(::mincore(m, size_t(st.st_size), vec.data()), 0);
    for (unsigned char v : vec) resident += v & 1;
    ::munmap(m, size_t(st.st_size));
  }
  ::close(fd);
  return resident;
}

// Evicts every segment file of the store in `dir` from the page cache (they are clean after a
// flush), and checks they are gone: DONTNEED skips a page it cannot take at that moment.
void evict_segments(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir + "/segments")) {
    if (!e.is_regular_file()) continue;
    size_t left = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
      int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
      ::close(fd);
      left = resident_pages(e.path());
      if (left == 0) break;
    }
    ASSERT_EQ(left, 0u) << e.path() << " stays in the page cache";
  }
}

// The real kernel path: RWF_NOWAIT on ext4 (so the directory is under /var/tmp, not a tmpfs).
// A new store of 1 MiB segments in `dir` (emptied first) with volume "v" of `size` bytes open.
Result<std::pair<std::unique_ptr<Store>, VolumeId>> store_with_volume(const std::string& dir, uint64_t size) {
  std::filesystem::remove_all(dir);
  if (!std::filesystem::create_directories(dir)) return io_error("cannot make " + dir);
  StoreOptions options;
  options.segment_size_bytes = mib(1);
  ASSIGN_OR_RETURN(auto backend, FileSegmentBackend::open(dir));
  ASSIGN_OR_RETURN(auto store, Store::open(std::move(backend), options, true));
  RETURN_IF_ERROR(store->create_volume("v", size).status());
  ASSIGN_OR_RETURN(VolumeId v, store->open_volume("v"));
  return std::make_pair(std::move(store), v);
}

TEST(NonBlockingReads, EvictedBlocksWouldBlockOnlyInsideTheScopeAndABlockingReadWarmsThem) {
  std::string dir = "/var/tmp/arbor-nowait-" + std::to_string(::getpid());
  auto opened = store_with_volume(dir, mib(16));
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto& [store, v] = *opened;
  auto data = pattern(mib(4), 9);
  ASSERT_TRUE(store->write(v, 0, data).is_ok());
  ASSERT_TRUE(store->flush().is_ok());
  evict_segments(dir);

  std::vector<uint8_t> out(4096);
  {
    NonBlockingScope no_wait;
    EXPECT_EQ(store->read(v, mib(1), out).code(), Code::kWouldBlock);
  }
  ASSERT_TRUE(store->read(v, mib(1), out).is_ok());  // outside the scope: waits for the disk
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + mib(1)));
  {
    NonBlockingScope no_wait;
    std::fill(out.begin(), out.end(), 0);
    ASSERT_TRUE(store->read(v, mib(1), out).is_ok());  // now in the page cache
    EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + mib(1)));
  }
  // Scopes nest and end: the flag is restored on the way out.
  {
    NonBlockingScope outer;
    { NonBlockingScope inner; }
    EXPECT_TRUE(NonBlockingScope::active());
  }
  EXPECT_FALSE(NonBlockingScope::active());
  store->close_volume(v);
  store.reset();
  std::filesystem::remove_all(dir);
}

// tmpfs refuses RWF_NOWAIT (EOPNOTSUPP): inside the scope that is "would block", so the frontends
// read it the waiting way, not an I/O error (NBD clients saw EIO on every read of a store in
// /dev/shm).
TEST(NonBlockingReads, AStoreOnTmpfsWouldBlockInsideTheScopeAndReadsOutside) {
  std::string dir = "/dev/shm/arbor-nowait-" + std::to_string(::getpid());
  auto opened = store_with_volume(dir, mib(4));
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto& [store, v] = *opened;
  auto data = pattern(mib(2), 5);
  ASSERT_TRUE(store->write(v, 0, data).is_ok());
  ASSERT_TRUE(store->flush().is_ok());
  std::vector<uint8_t> out(4096);
  {
    NonBlockingScope no_wait;
    Status s = store->read(v, mib(1), out);
    EXPECT_TRUE(s.is_ok() || s.code() == Code::kWouldBlock) << s.to_string();
  }
  ASSERT_TRUE(store->read(v, mib(1), out).is_ok());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + mib(1)));
  store->close_volume(v);
  store.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace arbor
