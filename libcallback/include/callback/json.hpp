#pragma once
// The JSON forms of the library's records, one definition for every front end (REST,
// callbackctl --json, the web page's event stream, webhooks), so they cannot drift apart.
//
//   boost::json::object body = callback::to_json(event);   // the callback object
//   response.send(202, boost::json::serialize(body));
//   reply(400, callback::error_body(Error{"invalid_json", "expected an object", "body"}));
#include <callback/account.hpp>
#include <callback/billing.hpp>
#include <callback/cdr.hpp>
#include <callback/engine.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/rate.hpp>
#include <callback/service.hpp>

#include <boost/json/object.hpp>

namespace callback {

// {"code", "message", "field"}
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const Error& error);
// {"error": {"code", "message", "field"}}: every API error body.
[[nodiscard]] CALLBACK_EXPORT boost::json::object error_body(const Error& error);
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const Account& account);
// Asterisk's CDR columns plus ours (callback_id, leg, cost, hangup_cause).
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const Cdr& cdr);
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const CallerStats& stats);
// prefix, description, rate_per_minute, connection_fee, increments, minimum_duration.
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const Rate& rate);
// The callback object of the REST API (rest/openapi.json, "Callback"): the call after
// this event, its legs, limit, outcome, announcement, cost and refusal.
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const CallEvent& event);
// One Asterisk server as an engine sees it: {"name", "connected", "detail", "checked",
// "checks": [{"name", "ok", "detail"}]} (/healthz, callbackctl asterisk check --json).
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const EngineStatus::Server& server);

}  // namespace callback
