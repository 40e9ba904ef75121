#include "daemon/api_errors.h"

namespace arbor::daemon {

int http_status_for(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kOutOfRange: return 400;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists:
    case Code::kBusy:
    case Code::kReadOnly: return 409;
    case Code::kNoSpace: return 507;
    case Code::kNotSupported: return 501;
    case Code::kIOError:
    case Code::kCorruption:
    case Code::kWouldBlock:  // only frontends ask not to wait, and they retry: never an API answer
    case Code::kInternal: return 500;
  }
  return 500;
}

const char* api_error_code(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kOutOfRange: return "out_of_range";
    case Code::kReadOnly: return "read_only";
    case Code::kBusy: return "busy";
    case Code::kNoSpace: return "no_space";
    case Code::kIOError: return "io_error";
    case Code::kCorruption: return "corruption";
    case Code::kNotSupported: return "not_supported";
    case Code::kWouldBlock:
    case Code::kInternal: return "internal";
  }
  return "internal";
}

}  // namespace arbor::daemon
