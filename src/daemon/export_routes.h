// The control API's NVMe host allow-list endpoints (docs/api.md, "Exports"):
//   GET  /v1/exports                 every export with entries
//   GET  /v1/exports/NAME            one export's entries
//   POST /v1/exports/NAME/allow      {"host_nqn": "nqn...."}
//   POST /v1/exports/NAME/revoke     {"host_nqn": "nqn...."}
// Kept apart from control_api.cc; registered from ControlApi's route table.
#pragma once

namespace httplib {
class Server;
}

namespace arbor::daemon {

class Daemon;
void add_export_routes(httplib::Server& server, Daemon& daemon);

}  // namespace arbor::daemon
