#include "util/status.h"

#include <cstring>

namespace arbor {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kOutOfRange: return "out of range";
    case Code::kReadOnly: return "read-only";
    case Code::kBusy: return "busy";
    case Code::kNoSpace: return "no space";
    case Code::kIOError: return "I/O error";
    case Code::kCorruption: return "corruption";
    case Code::kNotSupported: return "not supported";
    case Code::kInternal: return "internal error";
    case Code::kWouldBlock: return "would block";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return message_.empty() ? std::string(code_name(code_)) : message_;
}

int Status::to_errno() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kAlreadyExists: return EEXIST;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kOutOfRange: return EINVAL;
    case Code::kReadOnly: return EPERM;
    case Code::kBusy: return EBUSY;
    case Code::kNoSpace: return ENOSPC;
    case Code::kNotSupported: return ENOTSUP;
    case Code::kWouldBlock: return EAGAIN;
    case Code::kIOError:
    case Code::kCorruption:
    case Code::kInternal: return EIO;
  }
  return EIO;
}

Status errno_status(int err, const std::string& what) {
  std::string m = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return no_space(m);
  return io_error(m);
}

}  // namespace arbor
