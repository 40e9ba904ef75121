// Status and Result<T>: errors as values on the data path (no exceptions cross a layer).
//
// A Status is free when OK (one enum, an empty string). Corruption is kept apart from IOError so
// a caller can repair (later: from parity) instead of retrying. The codes map one-to-one to the
// errno values protocol frontends report (NBD_EIO, NVMe status codes, HTTP status).
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace arbor {

enum class Code : int {
  kOk = 0,
  kNotFound,         // no such volume / snapshot / segment
  kAlreadyExists,    // duplicate name
  kInvalidArgument,  // bad input from the world: refused, not obeyed
  kOutOfRange,       // offset or length past the end of a volume
  kReadOnly,         // write to a snapshot
  kBusy,             // in use (open, attached)
  kNoSpace,          // ENOSPC from the device or the store is full
  kIOError,          // the device failed an I/O
  kCorruption,       // a checksum or structure check failed: never returned as data
  kNotSupported,
  kInternal,
  kWouldBlock,       // asked not to wait (NonBlockingScope) and the answer needs a device or a lock
};

const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;
  // The errno a block protocol should report for this status.
  int to_errno() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status already_exists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status out_of_range(std::string m) { return {Code::kOutOfRange, std::move(m)}; }
inline Status read_only(std::string m) { return {Code::kReadOnly, std::move(m)}; }
inline Status busy(std::string m) { return {Code::kBusy, std::move(m)}; }
inline Status no_space(std::string m) { return {Code::kNoSpace, std::move(m)}; }
inline Status io_error(std::string m) { return {Code::kIOError, std::move(m)}; }
inline Status corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
inline Status not_supported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status would_block(std::string m) { return {Code::kWouldBlock, std::move(m)}; }
// An I/O error from errno, keeping ENOSPC apart.
Status errno_status(int err, const std::string& what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  Status status() const { return is_ok() ? Status() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace arbor

#define ARBOR_CONCAT_INNER(a, b) a##b
#define ARBOR_CONCAT(a, b) ARBOR_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                     \
  do {                                            \
    ::arbor::Status arbor_status_ = (expr);       \
    if (!arbor_status_.is_ok()) return arbor_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, f())`: unwraps a Result or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(ARBOR_CONCAT(arbor_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.is_ok()) return tmp.status();      \
  lhs = std::move(tmp).value()
