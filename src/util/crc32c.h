// CRC32C (Castagnoli), the checksum of every on-disk block and node and of NVMe/TCP digests.
// Standard parameters: crc32c("123456789") == 0xE3069283. Backed by ISA-L's crc32_iscsi.
#pragma once

#include <cstddef>
#include <cstdint>

namespace arbor {

uint32_t crc32c(const void* data, size_t len);
// Continues a CRC over more bytes: crc32c_extend(crc32c(a), b) == crc32c(a ++ b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len);
// The CRC32C of `len` bytes as if the 4-byte checksum field at `field_offset` were zero: how every
// self-checksummed block (record header, node, superblock) is checked, without copying it.
uint32_t crc32c_with_zero_field(const void* data, size_t len, size_t field_offset);

}  // namespace arbor
