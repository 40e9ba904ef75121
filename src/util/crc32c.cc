#include "util/crc32c.h"

#include <isa-l.h>

namespace arbor {

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len) {
  // ISA-L's crc32_iscsi takes and returns the raw register: invert in and out for standard CRC32C.
  return crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len),
                     crc ^ 0xFFFFFFFFu) ^
         0xFFFFFFFFu;
}

uint32_t crc32c(const void* data, size_t len) { return crc32c_extend(0, data, len); }

uint32_t crc32c_with_zero_field(const void* data, size_t len, size_t field_offset) {
  const auto* p = static_cast<const unsigned char*>(data);
  static const unsigned char kZeros[4] = {0, 0, 0, 0};
  uint32_t crc = crc32c_extend(0, p, field_offset);
  crc = crc32c_extend(crc, kZeros, 4);
  return crc32c_extend(crc, p + field_offset + 4, len - field_offset - 4);
}

}  // namespace arbor
