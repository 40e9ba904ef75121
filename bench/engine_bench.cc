// Engine benchmark: prints a markdown table per measurement, each with a baseline measured in the
// same run on the same file system. Not a test: no thresholds, only figures.
//
//   (a) branch creation time vs data written in the source, against cp of a file of that size
//   (b) 4 KiB random read latency at branch depth 1, 10, 100, 1000
//   (c) 4 KiB random read/write IOPS at queue depth 1 and 32, against fio (io_uring) on a raw file
//   (d) physical bytes after 100 branches of a volume, each rewriting 1% of it
//
// Usage: arbor-engine-bench [--dir DIR] [--sizes-gib 1,8,32] [--only a,b,c,d] [--quick]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "io/file_segment_backend.h"
#include "store/store.h"
#include "util/human_size.h"

using namespace arbor;
using Clock = std::chrono::steady_clock;

namespace {

std::string g_dir = "./bench-data";
bool g_quick = false;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void die_if(const Status& s, const char* what) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "bench: %s: %s\n", what, s.to_string().c_str());
    std::exit(1);
  }
}

std::unique_ptr<Store> fresh_store(const std::string& name) {
  std::string dir = g_dir + "/" + name;
  std::filesystem::remove_all(dir);
  auto backend = FileSegmentBackend::open(dir);
  die_if(backend.status(), "open backend");
  auto store = Store::open(std::move(backend).value(), StoreOptions{}, true);
  die_if(store.status(), "open store");
  return std::move(store).value();
}

// Distinct, non-zero blocks (zero blocks are stored as holes and would flatter every figure).
void fill(std::vector<uint8_t>& buf, uint64_t stamp) {
  std::mt19937_64 r(stamp);
  for (size_t i = 0; i < buf.size(); i += 8) {
    uint64_t v = r() | 1;
    std::memcpy(&buf[i], &v, 8);
  }
}

void write_sequential(Store& s, VolumeId id, uint64_t bytes) {
  std::vector<uint8_t> buf(mib(1));
  for (uint64_t off = 0; off < bytes; off += buf.size()) {
    fill(buf, off);
    die_if(s.write(id, off, buf), "write");
  }
  die_if(s.flush(), "flush");
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char line[4096];
  while (std::fgets(line, sizeof line, p)) out += line;
  ::pclose(p);
  return out;
}

double time_command(const std::string& cmd) {
  auto t0 = Clock::now();
  int rc = std::system(cmd.c_str());
  double t = seconds_since(t0);
  return rc == 0 ? t : -1;
}

// ---- (a) ----
void bench_branch_time(const std::vector<uint64_t>& sizes_gib) {
  std::printf("\n### (a) Branch creation time vs data in the source\n\n");
  std::printf("| data in source | arbor branch (engine, durable) | cp --reflink=auto of a file that size | plain cp |\n|---|---|---|---|\n");
  for (uint64_t g : sizes_gib) {
    auto store = fresh_store("branch");
    auto info = store->create_volume("src", gib(g));
    die_if(info.status(), "create");
    auto id = store->open_volume("src");
    write_sequential(*store, *id, gib(g));
    ::sync();  // let the kernel finish writing the load back: branch times, not writeback, are measured
    std::vector<double> ms;
    for (int i = 0; i < 5; i++) {
      // Some fresh writes first, so each branch also has dirty metadata to write out, as under load.
      std::vector<uint8_t> b(4096);
      fill(b, 1000 + i);
      for (int k = 0; k < 64; k++) die_if(store->write(*id, uint64_t(k) * mib(3) % gib(g), b), "write");
      auto t0 = Clock::now();
      die_if(store->branch("b" + std::to_string(i), "src").status(), "branch");
      ms.push_back(seconds_since(t0) * 1e3);
    }
    std::sort(ms.begin(), ms.end());
    store->close_volume(*id);
    store.reset();
    std::filesystem::remove_all(g_dir + "/branch");
    std::string f = g_dir + "/raw.img", f2 = g_dir + "/raw2.img", f3 = g_dir + "/raw3.img";
    run("dd if=/dev/urandom of=" + f + " bs=1M count=" + std::to_string(g * 1024) + " status=none");
    run("sync");
    double reflink = time_command("cp --reflink=auto " + f + " " + f2);
    double plain = time_command("cp " + f + " " + f3);
    std::filesystem::remove(f);
    std::filesystem::remove(f2);
    std::filesystem::remove(f3);
    std::printf("| %llu GiB | median %.3f ms (min %.3f, max %.3f) | %.0f ms | %.0f ms |\n", (unsigned long long)g, ms[2],
                ms[0], ms[4], reflink * 1e3, plain * 1e3);
    std::fflush(stdout);
  }
}

// ---- (b) ----
double random_read_latency_us(Store& s, VolumeId id, uint64_t size_bytes, int reads) {
  std::mt19937_64 r(7);
  std::vector<uint8_t> buf(4096);
  uint64_t blocks = size_bytes / 4096;
  for (int i = 0; i < reads / 4; i++) die_if(s.read(id, (r() % blocks) * 4096, buf), "warm read");
  auto t0 = Clock::now();
  for (int i = 0; i < reads; i++) die_if(s.read(id, (r() % blocks) * 4096, buf), "read");
  return seconds_since(t0) * 1e6 / reads;
}

void bench_depth() {
  std::printf("\n### (b) 4 KiB random read latency vs branch depth (page cache warm; best of 5 interleaved rounds)\n\n");
  auto store = fresh_store("depth");
  uint64_t size = g_quick ? mib(256) : gib(1);
  die_if(store->create_volume("d0", size).status(), "create");
  auto id0 = store->open_volume("d0");
  write_sequential(*store, *id0, size);
  store->close_volume(*id0);
  const std::vector<int> depths = {1, 10, 100, 1000};
  std::vector<uint8_t> b(4096);
  for (int depth = 1; depth <= depths.back(); depth++) {
    std::string name = "d" + std::to_string(depth);
    die_if(store->branch(name, "d" + std::to_string(depth - 1)).status(), "branch");
    // Each generation rewrites a block of its own, as a real chain of branches would.
    auto id = store->open_volume(name);
    fill(b, depth);
    die_if(store->write(*id, (uint64_t(depth) * 7919 % (size / 4096)) * 4096, b), "write");
    store->close_volume(*id);
  }
  std::vector<double> best(depths.size(), 1e9);
  for (int round = 0; round < 5; round++) {
    for (size_t i = 0; i < depths.size(); i++) {
      auto id = store->open_volume("d" + std::to_string(depths[i]));
      best[i] = std::min(best[i], random_read_latency_us(*store, *id, size, 100000));
      store->close_volume(*id);
    }
  }
  std::printf("volume %s\n\n| branch depth | mean latency | vs depth 1 |\n|---|---|---|\n", format_size_bytes(size).c_str());
  for (size_t i = 0; i < depths.size(); i++) std::printf("| %d | %.2f us | %.3fx |\n", depths[i], best[i], best[i] / best[0]);
  std::fflush(stdout);
}

// ---- (c) ----
double engine_iops(Store& s, VolumeId id, uint64_t size, bool write, int threads, double seconds) {
  std::atomic<uint64_t> ops{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937_64 r(t + 1);
      std::vector<uint8_t> buf(4096);
      fill(buf, t + 77);
      uint64_t blocks = size / 4096, n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t off = (r() % blocks) * 4096;
        if (write) {
          buf[0] = uint8_t(n);
          buf[1] = 1;
          die_if(s.write(id, off, buf), "write");
        } else {
          die_if(s.read(id, off, buf), "read");
        }
        n++;
      }
      ops += n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the measurement window
  stop = true;
  for (auto& t : ts) t.join();
  return double(ops) / seconds;
}

double fio_iops_engine(const std::string& file, const std::string& rw, int qd, int seconds, const std::string& engine) {
  std::string cmd = "fio --name=b --filename=" + file + " --ioengine=" + engine +
                    " --bs=4k --direct=0 --invalidate=0 --rw=" + rw + " --iodepth=" + std::to_string(qd) +
                    (engine == "psync" ? " --numjobs=" + std::to_string(qd) + " --group_reporting" : std::string()) +
                    " --runtime=" + std::to_string(seconds) + " --time_based --output-format=terse --terse-version=3 2>/dev/null";
  std::string out = run(cmd);
  // terse v3: field 8 = read IOPS, field 49 = write IOPS (1-based)
  std::vector<std::string> f;
  size_t start = 0;
  for (size_t i = 0; i <= out.size(); i++) {
    if (i == out.size() || out[i] == ';') {
      f.push_back(out.substr(start, i - start));
      start = i + 1;
    }
  }
  if (f.size() < 50) return -1;
  return std::atof((rw == "randread" ? f[7] : f[48]).c_str());
}

// The raw file's best: io_uring at the queue depth, or as many psync jobs (buffered io_uring
// writes are punted to kernel workers and can be the slower of the two).
double fio_iops(const std::string& file, const std::string& rw, int qd, int seconds, std::string* which) {
  double u = fio_iops_engine(file, rw, qd, seconds, "io_uring");
  double p = fio_iops_engine(file, rw, qd, seconds, "psync");
  *which = u >= p ? "io_uring" : "psync x" + std::to_string(qd);
  return std::max(u, p);
}

void bench_iops() {
  uint64_t size = g_quick ? mib(512) : gib(4);
  double secs = g_quick ? 3 : 8;
  std::printf("\n### (c) 4 KiB random IOPS, %s volume, both through the page cache (fio --direct=0 --invalidate=0), %.0f s each\n\n",
              format_size_bytes(size).c_str(), secs);
  std::printf("| workload | arbor engine | fio on raw file (best engine) | ratio |\n|---|---|---|---|\n");
  auto store = fresh_store("iops");
  die_if(store->create_volume("v", size).status(), "create");
  auto id = store->open_volume("v");
  write_sequential(*store, *id, size);
  std::string raw = g_dir + "/raw-iops.img";
  run("dd if=/dev/urandom of=" + raw + " bs=1M count=" + std::to_string(size >> 20) + " status=none");
  for (bool write : {false, true}) {
    for (int qd : {1, 32}) {
      double a = engine_iops(*store, *id, size, write, qd, secs);
      std::string which;
      double f = fio_iops(raw, write ? "randwrite" : "randread", qd, int(secs), &which);
      std::printf("| rand%s QD%d | %.0f | %.0f (%s) | %.2fx |\n", write ? "write" : "read", qd, a, f, which.c_str(),
                  f > 0 ? a / f : 0);
      std::fflush(stdout);
    }
  }
  store->close_volume(*id);
  std::filesystem::remove(raw);
}

// ---- (d) ----
void bench_space() {
  uint64_t size = g_quick ? mib(512) : gib(4);
  int branches = g_quick ? 20 : 100;
  std::printf("\n### (d) Physical space after %d branches of a %s volume, each rewriting 1%%\n\n", branches,
              format_size_bytes(size).c_str());
  auto store = fresh_store("space");
  die_if(store->create_volume("base", size).status(), "create");
  auto id = store->open_volume("base");
  write_sequential(*store, *id, size);
  store->close_volume(*id);
  uint64_t per_branch = size / 100 / 4096;
  std::vector<uint8_t> b(4096);
  std::mt19937_64 r(3);
  for (int i = 0; i < branches; i++) {
    std::string name = "br" + std::to_string(i);
    die_if(store->branch(name, "base").status(), "branch");
    auto bid = store->open_volume(name);
    for (uint64_t k = 0; k < per_branch; k++) {
      fill(b, r());
      die_if(store->write(*bid, (r() % (size / 4096)) * 4096, b), "write");
    }
    store->close_volume(*bid);
  }
  die_if(store->flush(), "flush");
  die_if(store->checkpoint(), "checkpoint");
  StoreUsage before = store->store_usage();
  auto cs = store->clean(0.5);  // moving segments that are mostly live costs more than it frees
  die_if(cs.status(), "clean");
  StoreUsage after = store->store_usage();
  double ideal = double(size + uint64_t(branches) * per_branch * 4096);
  std::printf("| | bytes | vs base + rewritten (%s) |\n|---|---|---|\n", format_size_bytes(uint64_t(ideal)).c_str());
  std::printf("| live data + block map | %s | %.3fx |\n", format_size_bytes(after.live_bytes).c_str(), after.live_bytes / ideal);
  std::printf("| segments on disk, before cleaning | %s | %.3fx |\n", format_size_bytes(before.physical_used_bytes).c_str(),
              before.physical_used_bytes / ideal);
  std::printf("| segments on disk, after cleaning (%llu segments cleaned) | %s | %.3fx |\n",
              (unsigned long long)cs->segments_cleaned, format_size_bytes(after.physical_used_bytes).c_str(),
              after.physical_used_bytes / ideal);
  std::printf("| full copies instead (cp per branch) | %s | %.1fx |\n", format_size_bytes(size * (branches + 1)).c_str(),
              double(size) * (branches + 1) / ideal);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes = {1, 8, 32};
  std::string only = "abcd";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) g_dir = argv[++i];
    else if (a == "--quick") g_quick = true;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--sizes-gib" && i + 1 < argc) {
      sizes.clear();
      std::string v = argv[++i];
      size_t pos = 0;
      while (pos < v.size()) {
        size_t c = v.find(',', pos);
        sizes.push_back(std::strtoull(v.substr(pos, c - pos).c_str(), nullptr, 10));
        pos = c == std::string::npos ? v.size() : c + 1;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--sizes-gib 1,8,32] [--only abcd] [--quick]\n", argv[0]);
      return 2;
    }
  }
  std::filesystem::create_directories(g_dir);
  std::printf("## Arbor engine benchmark (%s, %u cores)\n", g_dir.c_str(), std::thread::hardware_concurrency());
  if (only.find('a') != std::string::npos) bench_branch_time(g_quick ? std::vector<uint64_t>{1} : sizes);
  if (only.find('b') != std::string::npos) bench_depth();
  if (only.find('c') != std::string::npos) bench_iops();
  if (only.find('d') != std::string::npos) bench_space();
  std::filesystem::remove_all(g_dir);
  return 0;
}
