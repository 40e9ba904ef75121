// A deterministic stand-in for libFuzzer so every ctest run exercises the fuzz entry point, even
// with gcc: builds valid PDU streams for each starting state, then mutates them with a seeded PRNG
// (bit flips, byte overwrites with interesting values, truncation, duplication, length-field
// edits) and runs each through LLVMFuzzerTestOneInput.
//
//   nvme_tcp_fuzz_replay [ITERATIONS [SEED]]   or   nvme_tcp_fuzz_replay FILE...  (replay inputs)
//   nvme_tcp_fuzz_replay --write-seeds DIR     (the seed streams, as a libFuzzer starting corpus)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "proto/nvme_tcp/nvme_wire.h"
#include "util/crc32c.h"
#include "util/encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

using namespace arbor;
using namespace arbor::nvme_tcp;

namespace {

std::vector<uint8_t> cmd(uint8_t op, uint16_t cid, uint32_t nsid, uint32_t cdw10, uint32_t cdw12, uint8_t sgl_type,
                         uint32_t sgl_len, const std::vector<uint8_t>& data) {
  const uint32_t pdo = data.empty() ? 0 : 72;
  std::vector<uint8_t> p(72 + data.size(), 0);
  p[0] = kCapsuleCmd;
  p[2] = 72;
  p[3] = uint8_t(pdo);
  put_u32(&p[4], uint32_t(p.size()));
  p[8] = op;
  put_u16(&p[10], cid);
  put_u32(&p[12], nsid);
  put_u32(&p[8 + 32], sgl_len);
  p[8 + 39] = sgl_type;
  put_u32(&p[8 + 40], cdw10);
  put_u32(&p[8 + 48], cdw12);
  if (!data.empty()) std::memcpy(&p[72], data.data(), data.size());
  return p;
}

std::vector<uint8_t> h2c(uint16_t cid, uint16_t ttag, uint32_t off, uint32_t len) {
  std::vector<uint8_t> p(24 + len, 0x5A);
  p[0] = kH2CData;
  p[1] = kFlagDataLast;
  p[2] = 24;
  p[3] = 24;
  put_u32(&p[4], uint32_t(p.size()));
  put_u16(&p[8], cid);
  put_u16(&p[10], ttag);
  put_u32(&p[12], off);
  put_u32(&p[16], len);
  return p;
}

void append(std::vector<uint8_t>& a, const std::vector<uint8_t>& b) { a.insert(a.end(), b.begin(), b.end()); }

std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> out;
  // I/O queue (mode 3): in-capsule write, R2T write + data, read, flush, write zeroes, DSM.
  std::vector<uint8_t> io = {3};
  append(io, cmd(kIoWrite, 1, 1, 0, 0, kSglDataBlockOffset, 4096, std::vector<uint8_t>(4096, 7)));
  append(io, cmd(kIoWrite, 2, 1, 8, 1, kSglTransportDataBlock, 8192, {}));
  append(io, h2c(2, 0, 0, 4096));
  append(io, h2c(2, 0, 4096, 4096));
  append(io, cmd(kIoRead, 3, 1, 0, 3, kSglTransportDataBlock, 16384, {}));
  append(io, cmd(kIoFlush, 4, 1, 0, 0, 0, 0, {}));
  append(io, cmd(kIoWriteZeroes, 5, 1, 2, 1u << 25, 0, 0, {}));
  std::vector<uint8_t> range(16, 0);
  put_u32(&range[4], 2);
  append(io, cmd(kIoDsm, 6, 1, 0, 0, kSglDataBlockOffset, 16, range));
  out.push_back(io);
  // The same stream with blocking calls deferred (bit 7), plus a FUA write.
  std::vector<uint8_t> deferred = io;
  deferred[0] = 3 | 0x80;
  append(deferred, cmd(kIoWrite, 7, 1, 0, 1u << 30, kSglDataBlockOffset, 4096, std::vector<uint8_t>(4096, 9)));
  out.push_back(deferred);
  // Admin queue (mode 2): identify variants, log pages, features, keep alive, AER.
  std::vector<uint8_t> adm = {2};
  for (uint32_t cns : {0u, 1u, 2u, 3u, 6u, 9u}) append(adm, cmd(kAdminIdentify, 10, 1, cns, 0, kSglTransportDataBlock, 4096, {}));
  for (uint32_t lid : {1u, 2u, 4u, 0x70u}) append(adm, cmd(kAdminGetLogPage, 11, 0, lid | (127u << 16), 0, kSglTransportDataBlock, 512, {}));
  append(adm, cmd(kAdminSetFeatures, 12, 0, kFeatNumQueues, 0, 0, 0, {}));
  append(adm, cmd(kAdminGetFeatures, 13, 0, kFeatKeepAliveTimer, 0, 0, 0, {}));
  append(adm, cmd(kAdminKeepAlive, 14, 0, 0, 0, 0, 0, {}));
  append(adm, cmd(kAdminAsyncEvent, 15, 0, 0, 0, 0, 0, {}));
  out.push_back(adm);
  // Digests on (mode 2 | both digests): the fuzzer has to fix CRCs, mostly hits the error paths.
  std::vector<uint8_t> dig = adm;
  dig[0] = 2 | (3 << 2);
  out.push_back(dig);
  // Raw (mode 0): ICReq then a connect with data via R2T.
  std::vector<uint8_t> raw = {0x10};
  std::vector<uint8_t> ic(128, 0);
  ic[0] = kIcReq;
  ic[2] = 128;
  put_u32(&ic[4], 128);
  append(raw, ic);
  std::vector<uint8_t> conn = cmd(kOpFabrics, 1, 0, 0, 0, kSglTransportDataBlock, 1024, {});
  conn[8 + 4] = kFcConnect;
  put_u16(&conn[8 + 44], 15);
  append(raw, conn);
  append(raw, h2c(1, 0, 0, 1024));
  out.push_back(raw);
  return out;
}

const uint32_t kInteresting[] = {0, 1, 2, 3, 4, 7, 8, 23, 24, 72, 127, 128, 255, 256, 1023, 1024, 4096, 0x7FFF,
                                 0xFFFF, 0x10000, 0x20000, 0x7FFFFFFF, 0xFFFFFFFF};

std::vector<uint8_t> mutate(std::vector<uint8_t> v, std::mt19937_64& rng) {
  const int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits && !v.empty(); e++) {
    const size_t at = rng() % v.size();
    switch (rng() % 7) {
      case 0: v[at] ^= uint8_t(1u << (rng() % 8)); break;
      case 1: v[at] = uint8_t(rng()); break;
      case 2: v.resize(at + 1); break;
      case 3: {
        const size_t len = std::min<size_t>(v.size() - at, 1 + rng() % 200);
        std::vector<uint8_t> dup(v.begin() + at, v.begin() + at + len);
        v.insert(v.begin() + at, dup.begin(), dup.end());
        break;
      }
      case 4:
        if (at + 4 <= v.size()) put_u32(&v[at], kInteresting[rng() % std::size(kInteresting)]);
        break;
      case 5:
        if (at + 2 <= v.size()) put_u16(&v[at], uint16_t(kInteresting[rng() % std::size(kInteresting)]));
        break;
      case 6: v[0] = uint8_t(rng()); break;  // starting state / digests / split
    }
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    int i = 0;
    for (auto& s : seeds()) {
      std::ofstream f(std::string(argv[2]) + "/seed-" + std::to_string(i++), std::ios::binary);
      f.write(reinterpret_cast<const char*>(s.data()), std::streamsize(s.size()));
    }
    std::printf("wrote %d seeds to %s\n", i, argv[2]);
    return 0;
  }
  if (argc > 1 && std::strspn(argv[1], "0123456789") != std::strlen(argv[1])) {
    for (int i = 1; i < argc; i++) {
      std::ifstream f(argv[i], std::ios::binary);
      std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(d.data(), d.size());
      std::printf("replayed %s (%zu bytes)\n", argv[i], d.size());
    }
    return 0;
  }
  const long iterations = argc > 1 ? std::atol(argv[1]) : 20000;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20260101;
  std::mt19937_64 rng(seed);
  auto corpus = seeds();
  for (auto& s : corpus) LLVMFuzzerTestOneInput(s.data(), s.size());
  for (long i = 0; i < iterations; i++) {
    auto in = mutate(corpus[size_t(rng()) % corpus.size()], rng);
    LLVMFuzzerTestOneInput(in.data(), in.size());
    if (i % 97 == 0 && corpus.size() < 64) corpus.push_back(in);  // keep some mutants as new seeds
  }
  std::printf("nvme_tcp_fuzz_replay: %ld mutated inputs, seed %llu: no invariant broken\n", iterations,
              (unsigned long long)seed);
  return 0;
}
