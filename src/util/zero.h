// Whether a buffer is all zero bytes: zero blocks become holes (the store, import) and are sent
// as write-zeroes (NBD transfers). Word-wise with memcpy loads, so any alignment is fine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace arbor {

inline bool is_all_zero(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) return false;
  }
  for (; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

}  // namespace arbor
