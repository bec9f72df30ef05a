// What needs no API key: /healthz, /metrics and the API description; and /v1/triggers,
// each configured trigger and how it is doing.
#include "state.hpp"

#include <callback/json.hpp>

#include <boost/json.hpp>

namespace callback::rest {

namespace json = boost::json;

const std::vector<std::pair<std::string_view, std::string_view>>& embedded_openapi();  // rest/openapi.json

namespace {

using State = RestServer::State;

void healthz(State& s, Exchange& x) {
  EngineStatus status;
  std::size_t in_flight = 0;
  try {
    s.runtime.run_on_service_thread([&] {
      status = s.runtime.engine().status();
      in_flight = s.runtime.service().in_flight();
    });
  } catch (const std::runtime_error&) {  // stopping: the service thread is gone
    return s.fail(x, Error{"shutting_down", "the service is stopping", {}}.as(ErrorKind::unavailable));
  }
  std::size_t connected = 0;
  json::array servers;
  for (const auto& server : status.servers) {
    connected += server.connected;
    servers.push_back(to_json(server));
  }
  s.runtime.context()
      .metrics.gauge("callback_engine_connections", "Asterisk servers logged in")
      .set(static_cast<std::int64_t>(connected));
  // The database: a server (PostgreSQL) may be away while calls go on; they settle when it
  // is back (the service retries with the same references).
  const Status database = s.runtime.store().health();
  json::object db{{"ok", database.ok()}};
  if (!database) db["detail"] = database.error().message;
  const bool healthy = connected > 0 && s.runtime.accepting() && database.ok();
  json::object body{{"status", healthy ? "ok" : "degraded"},
                    {"database", std::move(db)},
                    {"accepting", s.runtime.accepting()},
                    {"engines", json::object{{"connected", connected},
                                             {"configured", status.servers.size()},
                                             {"servers", std::move(servers)}}},
                    {"in_flight", in_flight}};
  s.reply(x, json_reply(healthy ? Code::Ok : Code::Service_Unavailable, body));
}

void metrics(State& s, Exchange& x) {
  s.reply(x, Reply{Code::Ok, s.runtime.context().metrics.render_prometheus(), "text/plain; version=0.0.4"});
}

void openapi(State& s, Exchange& x) { s.reply(x, Reply{Code::Ok, std::string(embedded_openapi().front().second)}); }

void triggers(State& s, Exchange& x) {
  json::array list;
  for (const auto& [name, plugin, status] : s.runtime.trigger_status()) {
    const auto when = [](const std::optional<Timestamp>& t) -> json::value {
      return t ? json::value(format_rfc3339(*t)) : json::value(nullptr);
    };
    json::object counts;
    for (const auto& [outcome, n] : status.counts) counts[outcome] = n;
    list.push_back(json::object{{"name", name},
                                {"plugin", plugin},
                                {"healthy", status.healthy},
                                {"last_poll", when(status.last_poll)},
                                {"last_message", when(status.last_message)},
                                {"last_error", status.last_error},
                                {"last_error_at", when(status.last_error_at)},
                                {"counts", std::move(counts)}});
  }
  s.reply(x, json_reply(Code::Ok, json::object{{"triggers", std::move(list)}}));
}

}  // namespace

void add_system_routes(Router& router) {
  router.add(Method::Get, "/healthz", Access::open, healthz);
  router.add(Method::Get, "/metrics", Access::open, metrics);
  router.add(Method::Get, "/v1/openapi.json", Access::open, openapi);
  router.add(Method::Get, "/v1/triggers", Access::operator_, triggers);
}

}  // namespace callback::rest
