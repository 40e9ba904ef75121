// NBD on-wire constants and fixed-size message layouts (big-endian, per the NBD protocol,
// NetworkBlockDevice/nbd doc/proto.md). docs/protocol-nbd.md has the field tables and says what
// Arbor implements and advertises. Every integer goes through util/encoding.h (*_be helpers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace arbor::nbd {

// ---- Handshake (fixed newstyle) ----
inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943ULL;      // "NBDMAGIC"
inline constexpr uint64_t kIHaveOpt = 0x49484156454F5054ULL;      // "IHAVEOPT"
inline constexpr uint64_t kOptReplyMagic = 0x0003e889045565a9ULL;

// Server handshake flags (16 bits).
inline constexpr uint16_t kFlagFixedNewstyle = 1u << 0;
inline constexpr uint16_t kFlagNoZeroes = 1u << 1;
// Client flags (32 bits).
inline constexpr uint32_t kClientFixedNewstyle = 1u << 0;
inline constexpr uint32_t kClientNoZeroes = 1u << 1;

inline constexpr size_t kGreetingBytes = 8 + 8 + 2;
inline constexpr size_t kClientFlagsBytes = 4;
inline constexpr size_t kOptionHeaderBytes = 8 + 4 + 4;  // IHAVEOPT, option, length
inline constexpr size_t kOptionReplyHeaderBytes = 8 + 4 + 4 + 4;  // magic, option, type, length
inline constexpr size_t kExportNameReplyBytes = 8 + 2;  // size, transmission flags (+124 zeroes)
inline constexpr size_t kExportNameZeroPadBytes = 124;

enum Option : uint32_t {
  kOptExportName = 1,
  kOptAbort = 2,
  kOptList = 3,
  kOptStartTls = 5,
  kOptInfo = 6,
  kOptGo = 7,
  kOptStructuredReply = 8,
  kOptListMetaContext = 9,
  kOptSetMetaContext = 10,
  kOptExtendedHeaders = 11,
};

inline constexpr uint32_t kRepErrBit = 1u << 31;
enum OptionReply : uint32_t {
  kRepAck = 1,
  kRepServer = 2,
  kRepInfo = 3,
  kRepErrUnsup = kRepErrBit | 1,
  kRepErrPolicy = kRepErrBit | 2,
  kRepErrInvalid = kRepErrBit | 3,
  kRepErrPlatform = kRepErrBit | 4,
  kRepErrTlsReqd = kRepErrBit | 5,
  kRepErrUnknown = kRepErrBit | 6,
  kRepErrShutdown = kRepErrBit | 7,
  kRepErrBlockSizeReqd = kRepErrBit | 8,
  kRepErrTooBig = kRepErrBit | 9,
};

enum InfoType : uint16_t {
  kInfoExport = 0,       // u16 type, u64 size, u16 transmission flags: 12 bytes
  kInfoName = 1,         // u16 type, name
  kInfoDescription = 2,  // u16 type, description
  kInfoBlockSize = 3,    // u16 type, u32 minimum, u32 preferred, u32 maximum: 14 bytes
};
inline constexpr size_t kInfoExportBytes = 2 + 8 + 2;
inline constexpr size_t kInfoBlockSizeBytes = 2 + 4 + 4 + 4;

// Transmission flags (16 bits).
inline constexpr uint16_t kTxHasFlags = 1u << 0;
inline constexpr uint16_t kTxReadOnly = 1u << 1;
inline constexpr uint16_t kTxSendFlush = 1u << 2;
inline constexpr uint16_t kTxSendFua = 1u << 3;
inline constexpr uint16_t kTxRotational = 1u << 4;
inline constexpr uint16_t kTxSendTrim = 1u << 5;
inline constexpr uint16_t kTxSendWriteZeroes = 1u << 6;
inline constexpr uint16_t kTxSendDf = 1u << 7;
inline constexpr uint16_t kTxCanMultiConn = 1u << 8;

// ---- Transmission ----
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

inline constexpr size_t kRequestBytes = 4 + 2 + 2 + 8 + 8 + 4;  // magic, flags, type, cookie, offset, length
inline constexpr size_t kSimpleReplyBytes = 4 + 4 + 8;          // magic, error, cookie
inline constexpr size_t kChunkHeaderBytes = 4 + 2 + 2 + 8 + 4;  // magic, flags, type, cookie, length
static_assert(kRequestBytes == 28 && kSimpleReplyBytes == 16 && kChunkHeaderBytes == 20);

enum Command : uint16_t {
  kCmdRead = 0,
  kCmdWrite = 1,
  kCmdDisc = 2,
  kCmdFlush = 3,
  kCmdTrim = 4,
  kCmdCache = 5,
  kCmdWriteZeroes = 6,
  kCmdBlockStatus = 7,
};

inline constexpr uint16_t kCmdFlagFua = 1u << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1u << 1;
inline constexpr uint16_t kCmdFlagDf = 1u << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1u << 3;
inline constexpr uint16_t kCmdFlagFastZero = 1u << 4;

inline constexpr uint16_t kReplyFlagDone = 1u << 0;
enum ChunkType : uint16_t {
  kChunkNone = 0,
  kChunkOffsetData = 1,
  kChunkOffsetHole = 2,
  kChunkError = (1u << 15) | 1,
  kChunkErrorOffset = (1u << 15) | 2,
};

// NBD error values: fixed by the protocol, not the host's errno numbering.
enum NbdError : uint32_t {
  kNbdOk = 0,
  kNbdEperm = 1,
  kNbdEio = 5,
  kNbdEnomem = 12,
  kNbdEinval = 22,
  kNbdEnospc = 28,
  kNbdEoverflow = 75,
  kNbdEnotsup = 95,
  kNbdEshutdown = 108,
};

// ---- Limits we enforce and advertise ----
inline constexpr uint32_t kMinBlockBytes = 1;        // the store does read-modify-write on edges
inline constexpr uint32_t kPreferredBlockBytes = 4096;
inline constexpr uint32_t kMaxPayloadBytes = 32u << 20;  // largest READ/WRITE we accept
inline constexpr uint32_t kMaxOptionBytes = 64u << 10;   // larger option data: NBD_REP_ERR_TOO_BIG, then close
inline constexpr uint32_t kMaxNameBytes = 4096;          // NBD strings are at most 4096 bytes

}  // namespace arbor::nbd
