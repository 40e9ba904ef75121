// NVMe/TCP and NVMe wire constants: PDU types and sizes, field offsets, opcodes, status codes, and
// the limits this target advertises. Every byte of a PDU or a data structure is read and written
// through util/encoding.h at the offsets named here; docs/protocol-nvme-tcp.md has the field tables.
//
// Sources: NVM Express over Fabrics TCP transport binding (rev 1.0), NVMe over Fabrics 1.1, NVMe
// base 1.4. Offsets were checked against the structures in the Linux kernel's nvme headers.
#pragma once

#include <cstdint>

namespace arbor::nvme_tcp {

// ---- PDU common header (8 bytes) ----
inline constexpr uint32_t kChLen = 8;
inline constexpr uint32_t kChType = 0, kChFlags = 1, kChHlen = 2, kChPdo = 3, kChPlen = 4;
inline constexpr uint32_t kDigestLen = 4;

enum PduType : uint8_t {
  kIcReq = 0x00,
  kIcResp = 0x01,
  kH2CTermReq = 0x02,
  kC2HTermReq = 0x03,
  kCapsuleCmd = 0x04,
  kCapsuleResp = 0x05,
  kH2CData = 0x06,
  kC2HData = 0x07,
  kR2T = 0x09,
};

enum PduFlags : uint8_t {
  kFlagHdgst = 1 << 0,
  kFlagDdgst = 1 << 1,
  kFlagDataLast = 1 << 2,
  kFlagDataSuccess = 1 << 3,
};

// Header lengths (hlen) per type.
inline constexpr uint32_t kIcReqLen = 128;
inline constexpr uint32_t kIcRespLen = 128;
inline constexpr uint32_t kTermReqHlen = 24;
inline constexpr uint32_t kCmdHlen = 8 + 64;
inline constexpr uint32_t kRespHlen = 8 + 16;
inline constexpr uint32_t kDataHlen = 24;  // H2C and C2H data
inline constexpr uint32_t kR2THlen = 24;
// A termination request carries at most this many bytes of the offending PDU header.
inline constexpr uint32_t kTermMaxErrorData = 152;

// ICReq / ICResp fields (after the common header).
inline constexpr uint32_t kIcPfv = 8;       // u16, must be 0
inline constexpr uint32_t kIcPda = 10;      // u8 HPDA (ICReq) / CPDA (ICResp), 0's based dwords
inline constexpr uint32_t kIcDigest = 11;   // u8: bit0 header digest, bit1 data digest
inline constexpr uint32_t kIcMaxr2t = 12;   // u32 ICReq: MAXR2T 0's based
inline constexpr uint32_t kIcMaxh2cdata = 12;  // u32 ICResp: MAXH2CDATA bytes
inline constexpr uint8_t kDigestHeader = 1 << 0, kDigestData = 1 << 1;

// Term req fields.
inline constexpr uint32_t kTermFes = 8;   // u16
inline constexpr uint32_t kTermFei = 10;  // u32
enum FatalErrorStatus : uint16_t {
  kFesInvalidHeaderField = 0x01,
  kFesPduSequenceError = 0x02,
  kFesHeaderDigestError = 0x03,
  kFesDataOutOfRange = 0x04,
  kFesDataLimitExceeded = 0x05,
  kFesUnsupportedParameter = 0x06,
};

// Data / R2T PDU fields.
inline constexpr uint32_t kDataCccid = 8;    // u16
inline constexpr uint32_t kDataTtag = 10;    // u16
inline constexpr uint32_t kDataOffset = 12;  // u32 DATAO / R2TO
inline constexpr uint32_t kDataLength = 16;  // u32 DATAL / R2TL

// ---- Submission queue entry (64 bytes, at offset 8 of a command capsule PDU) ----
inline constexpr uint32_t kSqeLen = 64;
inline constexpr uint32_t kSqeOpcode = 0, kSqeFlags = 1, kSqeCid = 2, kSqeNsid = 4;
inline constexpr uint32_t kSqeSglAddr = 24, kSqeSglLength = 32, kSqeSglType = 39;
inline constexpr uint32_t kSqeCdw10 = 40, kSqeCdw11 = 44, kSqeCdw12 = 48, kSqeCdw13 = 52;
inline constexpr uint32_t kSqeCdw14 = 56, kSqeCdw15 = 60;
// Fabrics commands: fctype at byte 4.
inline constexpr uint32_t kSqeFctype = 4;
// Connect: recfmt u16 @40, qid u16 @42, sqsize u16 @44, cattr u8 @46, kato u32 @48.
inline constexpr uint32_t kConnRecfmt = 40, kConnQid = 42, kConnSqsize = 44, kConnCattr = 46, kConnKato = 48;
// Property Get/Set: attrib u8 @40 (size: 0 = 4 bytes, 1 = 8 bytes), offset u32 @44, value u64 @48.
inline constexpr uint32_t kPropAttrib = 40, kPropOffset = 44, kPropValue = 48;

// SGL descriptor types (byte 15 of the descriptor).
inline constexpr uint8_t kSglDataBlockOffset = 0x01;  // in-capsule data (data block, offset)
inline constexpr uint8_t kSglTransportDataBlock = 0x5A;  // transport SGL data block (data via R2T / C2H)

// Connect data (1024 bytes).
inline constexpr uint32_t kConnectDataLen = 1024;
inline constexpr uint32_t kCdHostid = 0, kCdCntlid = 16, kCdSubnqn = 256, kCdHostnqn = 512;
inline constexpr uint32_t kNqnFieldLen = 256;
inline constexpr uint16_t kCntlidDynamic = 0xFFFF;
inline constexpr uint16_t kCntlidMax = 0xFFEF;

// ---- Completion queue entry (16 bytes, at offset 8 of a response capsule PDU) ----
inline constexpr uint32_t kCqeLen = 16;
inline constexpr uint32_t kCqeResult = 0, kCqeSqhd = 8, kCqeSqid = 10, kCqeCid = 12, kCqeStatus = 14;

// ---- Opcodes ----
enum FabricsType : uint8_t {
  kFcPropertySet = 0x00,
  kFcConnect = 0x01,
  kFcPropertyGet = 0x04,
  kFcDisconnect = 0x08,
};
inline constexpr uint8_t kOpFabrics = 0x7F;

enum AdminOpcode : uint8_t {
  kAdminGetLogPage = 0x02,
  kAdminIdentify = 0x06,
  kAdminAbort = 0x08,
  kAdminSetFeatures = 0x09,
  kAdminGetFeatures = 0x0A,
  kAdminAsyncEvent = 0x0C,
  kAdminKeepAlive = 0x18,
};

enum IoOpcode : uint8_t {
  kIoFlush = 0x00,
  kIoWrite = 0x01,
  kIoRead = 0x02,
  kIoWriteZeroes = 0x08,
  kIoDsm = 0x09,
};

enum IdentifyCns : uint8_t {
  kCnsNamespace = 0x00,
  kCnsController = 0x01,
  kCnsActiveNsList = 0x02,
  kCnsNsDescList = 0x03,
  kCnsCsiController = 0x06,
};

enum FeatureId : uint8_t {
  kFeatVolatileWc = 0x06,
  kFeatNumQueues = 0x07,
  kFeatAsyncEventConfig = 0x0B,
  kFeatKeepAliveTimer = 0x0F,
};

enum LogId : uint8_t {
  kLogError = 0x01,
  kLogSmart = 0x02,
  kLogChangedNs = 0x04,
  kLogDiscovery = 0x70,
};

// ---- Status: (SCT << 8) | SC, as the Linux kernel spells them; DNR separately ----
enum NvmeStatus : uint16_t {
  kScSuccess = 0x000,
  kScInvalidOpcode = 0x001,
  kScInvalidField = 0x002,
  kScDataXferError = 0x004,
  kScInternal = 0x006,
  kScInvalidNs = 0x00B,
  kScCmdSeqError = 0x00C,
  kScSglInvalidData = 0x00F,  // Data SGL Length Invalid
  kScSglInvalidType = 0x011,
  kScSglInvalidOffset = 0x016,
  kScNsWriteProtected = 0x020,
  kScTransientTransport = 0x022,
  kScLbaRange = 0x080,
  kScCapExceeded = 0x081,
  kScAsyncLimit = 0x105,
  kScInvalidLogPage = 0x109,
  kScFeatureNotSaveable = 0x10D,
  kScConnectFormat = 0x180,
  kScConnectCtrlBusy = 0x181,
  kScConnectInvalidParam = 0x182,
  kScConnectInvalidHost = 0x184,
  kScWriteFault = 0x280,
  kScReadError = 0x281,
};
inline constexpr uint16_t kStatusDnr = 0x4000;  // added to the values above; the wire shifts left 1

// CQE status field on the wire: bit 0 phase (0 on fabrics), bits 8:1 SC, 11:9 SCT, 15 DNR.
inline constexpr uint16_t wire_status(uint16_t status) { return uint16_t(status << 1); }

// ---- Controller properties ----
inline constexpr uint32_t kPropCap = 0x00, kPropVs = 0x08, kPropCc = 0x14, kPropCsts = 0x1C;
inline constexpr uint32_t kCcEnable = 1 << 0;
inline constexpr uint32_t kCcShnMask = 3u << 14;
inline constexpr uint32_t kCstsRdy = 1 << 0, kCstsCfs = 1 << 1, kCstsShstOccurring = 1u << 2, kCstsShstComplete = 2u << 2;

// ---- What this target advertises ----
inline constexpr uint32_t kLbaSizeBytes = 4096;
inline constexpr uint32_t kLbaShift = 12;
inline constexpr uint16_t kMaxQueueEntries = 128;  // CAP.MQES + 1, MAXCMD
inline constexpr uint16_t kMaxIoQueues = 64;
inline constexpr uint8_t kMdts = 7;  // 2^7 * 4 KiB (CAP.MPSMIN) = 512 KiB per command
inline constexpr uint32_t kMaxDataBytes = kLbaSizeBytes << kMdts;
inline constexpr uint32_t kInCapsuleDataBytes = 16384;  // IOCCSZ = (64 + this) / 16
inline constexpr uint32_t kMaxH2CDataBytes = 131072;
inline constexpr uint8_t kAerLimit = 3;  // AERL: 0's based, 4 outstanding
inline constexpr uint16_t kKasUnits100ms = 10;  // KAS: keep-alive granularity 1 s
inline constexpr uint32_t kVersion = 0x00010300;  // NVMe 1.3
inline constexpr uint16_t kOncsDsm = 1 << 2, kOncsWriteZeroes = 1 << 3;
inline constexpr uint32_t kOaesNsAttrNotices = 1 << 8;

inline constexpr const char* kDiscoveryNqn = "nqn.2014-08.org.nvmexpress.discovery";
inline constexpr uint32_t kNqnMaxLen = 223;

}  // namespace arbor::nvme_tcp
