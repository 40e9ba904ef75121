// How a Status becomes a control-API error: an HTTP status and a stable machine-readable code.
//
//   {"error": {"code": "not_found", "message": "no volume named 'db'"}}
//
// The table is documented in docs/api.md; clients branch on `code`, humans read `message`.
#pragma once

#include "util/status.h"

namespace arbor::daemon {

// 400 invalid input, 404 unknown name, 409 exists/busy/read-only, 507 no space, 5xx our side.
int http_status_for(Code code);
// "not_found", "already_exists", "invalid_argument", ... (snake_case of the Code).
const char* api_error_code(Code code);

}  // namespace arbor::daemon
