#include <callback/json.hpp>
#include <callback/timestamp.hpp>

#include <boost/json.hpp>

namespace callback {

namespace json = boost::json;

namespace {

json::value time_or_null(const std::optional<Timestamp>& t) {
  return t ? json::value(format_rfc3339(*t)) : json::value(nullptr);
}

std::string time_text(Timestamp t) { return t == Timestamp{} ? std::string() : format_timestamp(t); }

json::object leg_json(const Leg& leg) {
  return {{"state", to_string(leg.state)},
          {"answered_at", time_or_null(leg.answered)},
          {"ended_at", time_or_null(leg.ended)},
          {"billsec", leg.billsec().count()},
          {"cause", leg.cause.code()},
          {"cause_text", leg.cause.description()}};
}

}  // namespace

json::object to_json(const Error& error) {
  json::object out{{"code", error.code}, {"message", error.message}, {"field", error.field}};
  if (!error.rule.empty()) out["rule"] = error.rule;
  return out;
}

json::object error_body(const Error& error) { return {{"error", to_json(error)}}; }

json::object to_json(const Account& a) {
  json::array numbers;
  for (const auto& n : a.caller_numbers) numbers.push_back(json::string(n.e164()));
  json::array emails;
  for (const auto& e : a.emails) emails.push_back(json::string(e));
  return {{"id", a.id},
          {"name", a.name},
          {"currency", a.currency.code()},
          {"balance", a.balance.format()},
          {"reserved", a.reserved.format()},
          {"credit_limit", a.credit_limit.format()},
          {"available", (a.balance - a.reserved + a.credit_limit).format()},
          {"status", to_string(a.status)},
          {"tariff", a.tariff},
          {"language", a.language},
          {"numbers", numbers},
          {"emails", emails},
          {"has_pin", !a.secret_hash.empty()}};
}

json::object to_json(const Cdr& c) {
  return {{"calldate", time_text(c.calldate)}, {"clid", c.clid}, {"src", c.src}, {"dst", c.dst},
          {"dcontext", c.dcontext}, {"channel", c.channel}, {"dstchannel", c.dstchannel}, {"lastapp", c.lastapp},
          {"lastdata", c.lastdata}, {"duration", c.duration}, {"billsec", c.billsec},
          {"disposition", to_string(c.disposition)}, {"amaflags", c.amaflags}, {"accountcode", c.accountcode},
          {"uniqueid", c.uniqueid}, {"userfield", c.userfield}, {"callback_id", c.callback_id},
          {"leg", to_string(c.leg)}, {"cost", c.cost ? json::value(c.cost->format()) : json::value(nullptr)},
          {"hangup_cause", c.hangup_cause.code()}};
}

json::object to_json(const CallerStats& s) {
  return {{"number", s.number},     {"attempts", s.attempts},         {"answered", s.answered},
          {"failures", s.failures}, {"talk_seconds", s.talk_seconds}, {"last_call", time_or_null(s.last_call)}};
}

json::object to_json(const Rate& r) {
  return {{"prefix", r.prefix},
          {"description", r.description},
          {"rate_per_minute", r.price_per_minute.format()},
          {"connection_fee", r.connection_fee.format()},
          {"initial_increment", r.initial_increment.count()},
          {"subsequent_increment", r.subsequent_increment.count()},
          {"minimum_duration", r.minimum_duration.count()}};
}

json::object to_json(const CallEvent& event) {
  const Call& call = event.call;
  const CallbackRequest& request = call.request();
  const auto* account = std::get_if<AccountId>(&request.payer);
  const auto* campaign = std::get_if<CampaignId>(&request.payer);
  json::object cost;
  if (event.cost) cost = {{"amount", event.cost->format()}, {"currency", event.cost->currency().code()}};
  return {{"id", call.id()},
          {"state", to_string(call.state())},
          {"caller", request.caller.digits()},
          {"callee", request.callee ? json::value(request.callee->digits()) : json::value(nullptr)},
          {"account", account ? json::value(account->value) : json::value(nullptr)},
          {"campaign", campaign ? json::value(campaign->value) : json::value(nullptr)},
          {"origin", to_string(request.origin)},
          {"created_at", format_rfc3339(call.created_at())},
          {"updated_at", format_rfc3339(call.updated_at())},
          {"limit_seconds", event.limit.count() > 0 ? json::value(event.limit.count()) : json::value(nullptr)},
          {"legs", json::object{{"a", leg_json(call.leg_a())}, {"b", leg_json(call.leg_b())}}},
          {"outcome", event.outcome.empty() ? json::value(nullptr) : json::value(event.outcome)},
          {"announcement", event.announcement ? json::value(to_string(*event.announcement)) : json::value(nullptr)},
          {"cost", event.cost ? json::value(std::move(cost)) : json::value(nullptr)},
          {"error", event.error ? json::value(to_json(*event.error)) : json::value(nullptr)}};
}

json::object to_json(const EngineStatus::Server& server) {
  json::array checks;
  for (const auto& c : server.checks) checks.push_back(json::object{{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
  return json::object{{"name", server.name},
                      {"connected", server.connected},
                      {"detail", server.detail},
                      {"checked", server.checked},
                      {"checks", std::move(checks)}};
}

}  // namespace callback
