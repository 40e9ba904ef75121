#include "daemon/export_routes.h"

#include <algorithm>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "daemon/api_errors.h"
#include "daemon/daemon.h"
#include "daemon/export_allow.h"

namespace arbor::daemon {
namespace {

void send(httplib::Response& res, const Result<Json>& result) {
  if (result) {
    res.status = 200;
    res.set_content(result.value().dump() + "\n", "application/json");
    return;
  }
  std::string message = result.status().to_string();
  std::replace(message.begin(), message.end(), '\n', ' ');
  Json body{{"error", {{"code", api_error_code(result.status().code())}, {"message", message}}}};
  res.status = http_status_for(result.status().code());
  res.set_content(body.dump() + "\n", "application/json");
}

Json entry(ExportAllowList& list, const std::string& name) {
  return Json{{"name", name}, {"hosts", list.hosts(name)}};
}

Result<std::string> host_nqn_field(const httplib::Request& req) {
  Json j = Json::parse(req.body.empty() ? "{}" : req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("request body must be a JSON object");
  auto it = j.find("host_nqn");
  if (it == j.end() || !it->is_string()) return invalid_argument("missing string field \"host_nqn\"");
  return it->get<std::string>();
}

}  // namespace

void add_export_routes(httplib::Server& s, Daemon& d) {
  s.Get("/v1/exports", [&d](const httplib::Request&, httplib::Response& res) {
    Json exports = Json::array();
    for (const auto& [name, hosts] : d.allow_list().all()) exports.push_back(Json{{"name", name}, {"hosts", hosts}});
    send(res, Json{{"exports", exports}});
  });
  s.Get("/v1/exports/([^/]+)", [&d](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto info = d.lookup(name);
    if (!info && d.allow_list().hosts(name).empty()) return send(res, info.status());
    send(res, entry(d.allow_list(), name));
  });
  s.Post("/v1/exports/([^/]+)/allow", [&d](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto host = host_nqn_field(req);
    if (!host) return send(res, host.status());
    auto info = d.lookup(name);  // only existing volumes and snapshots
    if (!info) return send(res, info.status());
    Status st = d.allow_list().allow(name, *host);
    if (!st.is_ok()) return send(res, st);
    send(res, entry(d.allow_list(), name));
  });
  s.Post("/v1/exports/([^/]+)/revoke", [&d](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto host = host_nqn_field(req);
    if (!host) return send(res, host.status());
    // No lookup: entries of a deleted volume can still be revoked.
    Status st = d.allow_list().revoke(name, *host);
    if (!st.is_ok()) return send(res, st);
    send(res, entry(d.allow_list(), name));
  });
}

}  // namespace arbor::daemon
