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

}  // namespace arbor
