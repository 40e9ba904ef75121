// arbor-nvme-initiator: our userspace NVMe/TCP initiator as a command (initiator.h).
//
//   arbor-nvme-initiator info   --addr A --port P --nqn SUBNQN [--hostnqn N] [--hdgst] [--ddgst]
//   arbor-nvme-initiator verify ... [--seed S] [--offset-mib M]
//       writes a pattern in 1, 4, 5, 32 and 128-block commands (in-capsule, past in-capsule, R2T,
//       several H2C PDUs), flushes, reads it back synchronously and at queue depth 16, compares;
//       prints "VERIFY-OK bytes=..." and exits 0, or one error line and exits 1.
//   arbor-nvme-initiator bench  ... --rw randread|randwrite --qd N --seconds S [--span-mib M]
//       4 KiB random I/O at queue depth N for S seconds; prints one JSON line
//       {"rw","qd","iops","lat_us_mean","lat_us_p99","ios"}.
// Exit 0 = success, 1 = failure (one line on stderr), 2 = command-line mistake.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "nvme_initiator/initiator.h"

using namespace arbor;
using namespace arbor::nvme_initiator;

namespace {

int fail(const std::string& m) {
  std::fprintf(stderr, "arbor-nvme-initiator: error: %s\n", m.c_str());
  return 1;
}

void fill(std::vector<uint8_t>& b, uint64_t seed) {
  std::mt19937_64 r(seed);
  for (size_t i = 0; i + 8 <= b.size(); i += 8) {
    uint64_t v = r();
    std::memcpy(&b[i], &v, 8);
  }
}

Status verify(Controller& c, uint64_t seed, uint64_t offset_bytes) {
  const uint32_t lb = c.ns().lba_bytes;
  const uint64_t base = offset_bytes / lb;
  const uint32_t sizes[] = {1, 4, 5, 32, 128, 1, 2};
  uint64_t lba = base, total = 0;
  struct Piece {
    uint64_t lba;
    uint32_t n;
    std::vector<uint8_t> data;
  };
  std::vector<Piece> pieces;
  for (int round = 0; round < 3; round++) {
    for (uint32_t n : sizes) {
      Piece p{lba, n, std::vector<uint8_t>(size_t(n) * lb)};
      fill(p.data, seed * 1000 + pieces.size());
      if ((lba + n) * uint64_t(lb) > c.ns().size_bytes()) return out_of_range("namespace too small for the pattern");
      RETURN_IF_ERROR(c.write(p.lba, n, p.data.data()));
      lba += n;
      total += p.data.size();
      pieces.push_back(std::move(p));
    }
  }
  RETURN_IF_ERROR(c.flush());
  std::vector<uint8_t> got;
  for (const auto& p : pieces) {
    got.assign(p.data.size(), 0);
    RETURN_IF_ERROR(c.read(p.lba, p.n, got.data()));
    if (got != p.data) return corruption("read back differs at LBA " + std::to_string(p.lba) + " (synchronous)");
  }
  // The same at queue depth: every piece read at once, compared when all are back.
  std::vector<std::vector<uint8_t>> bufs(pieces.size());
  size_t next = 0, completed = 0;
  std::vector<Completion> done;
  while (completed < pieces.size()) {
    while (next < pieces.size() && c.outstanding() < std::min<size_t>(16, c.queue_depth())) {
      bufs[next].assign(pieces[next].data.size(), 0);
      RETURN_IF_ERROR(c.submit_read(pieces[next].lba, pieces[next].n, bufs[next].data(), next));
      next++;
    }
    done.clear();
    RETURN_IF_ERROR(c.wait(done));
    for (const auto& d : done) {
      if (!d.ok()) return io_error("read: " + status_text(d.status));
      if (bufs[d.tag] != pieces[d.tag].data) return corruption("read back differs at LBA " + std::to_string(pieces[d.tag].lba) + " (queued)");
      completed++;
    }
  }
  std::printf("VERIFY-OK bytes=%llu commands=%zu lba_bytes=%u in_capsule_bytes=%u\n", (unsigned long long)total,
              pieces.size(), lb, c.in_capsule_bytes());
  return Status::ok();
}

Status bench(Controller& c, const std::string& rw, int qd, double seconds, uint64_t span_mib) {
  const uint32_t lb = c.ns().lba_bytes;
  const uint32_t n = 4096 / lb ? 4096 / lb : 1;
  uint64_t span_lbas = std::min<uint64_t>(c.ns().lba_count, span_mib * 1048576 / lb);
  if (span_lbas < n) return invalid_argument("namespace too small");
  const bool write = rw == "randwrite";
  if (!write && rw != "randread") return invalid_argument("--rw must be randread or randwrite");
  if (qd < 1 || qd > c.queue_depth()) return invalid_argument("--qd must be 1 to " + std::to_string(c.queue_depth()));
  std::vector<std::vector<uint8_t>> bufs(qd, std::vector<uint8_t>(size_t(n) * lb));
  for (int i = 0; i < qd; i++) fill(bufs[i], 77 + i);
  std::vector<std::chrono::steady_clock::time_point> started(qd);
  std::vector<double> lat_us;
  lat_us.reserve(1 << 20);
  std::mt19937_64 rng(12345);
  auto submit = [&](int slot) {
    uint64_t lba = (rng() % (span_lbas / n)) * n;
    started[slot] = std::chrono::steady_clock::now();
    return write ? c.submit_write(lba, n, bufs[slot].data(), slot) : c.submit_read(lba, n, bufs[slot].data(), slot);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  for (int i = 0; i < qd; i++) RETURN_IF_ERROR(submit(i));
  std::vector<Completion> done;
  bool stopping = false;
  while (c.outstanding() > 0) {
    done.clear();
    RETURN_IF_ERROR(c.wait(done));
    auto now = std::chrono::steady_clock::now();
    if (now >= end) stopping = true;
    for (const auto& d : done) {
      if (!d.ok()) return io_error(rw + ": " + status_text(d.status));
      lat_us.push_back(std::chrono::duration<double, std::micro>(now - started[d.tag]).count());
      if (!stopping) RETURN_IF_ERROR(submit(int(d.tag)));
    }
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double sum = 0;
  for (double l : lat_us) sum += l;
  std::sort(lat_us.begin(), lat_us.end());
  const double p99 = lat_us.empty() ? 0 : lat_us[size_t(lat_us.size() * 0.99)];
  std::printf("{\"rw\": \"%s\", \"qd\": %d, \"iops\": %.0f, \"lat_us_mean\": %.1f, \"lat_us_p99\": %.1f, \"ios\": %zu}\n",
              rw.c_str(), qd, lat_us.size() / elapsed, lat_us.empty() ? 0 : sum / lat_us.size(), p99, lat_us.size());
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"arbor-nvme-initiator: a userspace NVMe/TCP initiator (info, verify, bench)"};
  app.require_subcommand(1);
  ConnectOptions o;
  std::string rw = "randread";
  int qd = 1;
  double seconds = 5;
  uint64_t seed = 1, offset_mib = 0, span_mib = 256;
  auto common = [&](CLI::App* s) {
    s->add_option("--addr", o.address, "Target address")->capture_default_str();
    s->add_option("--port", o.port, "Target I/O port")->capture_default_str();
    s->add_option("--nqn", o.subsys_nqn, "Subsystem NQN")->required();
    s->add_option("--hostnqn", o.host_nqn, "Host NQN")->capture_default_str();
    s->add_flag("--hdgst", o.header_digest, "Ask for header digests");
    s->add_flag("--ddgst", o.data_digest, "Ask for data digests");
  };
  auto* info = app.add_subcommand("info", "Connect, print the namespace, disconnect");
  common(info);
  auto* ver = app.add_subcommand("verify", "Write a pattern, flush, read back and compare");
  common(ver);
  ver->add_option("--seed", seed)->capture_default_str();
  ver->add_option("--offset-mib", offset_mib, "Where the pattern goes")->capture_default_str();
  auto* bn = app.add_subcommand("bench", "4 KiB random I/O at a queue depth");
  common(bn);
  bn->add_option("--rw", rw, "randread or randwrite")->capture_default_str();
  bn->add_option("--qd", qd, "Queue depth")->capture_default_str();
  bn->add_option("--seconds", seconds)->capture_default_str();
  bn->add_option("--span-mib", span_mib, "I/O within the first MiB of the namespace")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (bn->parsed()) o.queue_depth = uint16_t(std::max(qd, 1));
  auto c = Controller::connect(o);
  if (!c) return fail(c.status().to_string());
  Controller& ctrl = **c;
  Status st;
  if (info->parsed()) {
    std::printf("cntlid=%u size_bytes=%llu lba_bytes=%u read_only=%d in_capsule_bytes=%u\n", ctrl.cntlid(),
                (unsigned long long)ctrl.ns().size_bytes(), ctrl.ns().lba_bytes, ctrl.ns().read_only ? 1 : 0,
                ctrl.in_capsule_bytes());
  } else if (ver->parsed()) {
    st = verify(ctrl, seed, offset_mib * 1048576);
  } else {
    st = bench(ctrl, rw, qd, seconds, span_mib);
  }
  if (!st.is_ok()) return fail(st.to_string());
  return 0;
}
