// /v1/cdrs and /v1/stats: the call records (Asterisk's columns) and the per-caller
// statistics of free campaigns.
#include "state.hpp"

#include <callback/json.hpp>

#include <boost/json.hpp>

namespace callback::rest {

namespace json = boost::json;

namespace {

using State = RestServer::State;

void cdrs(State& s, Exchange& x) {
  auto since = time_param(x.request, "since");
  if (!since) return s.fail(x, since.error());
  auto until = time_param(x.request, "until");
  if (!until) return s.fail(x, until.error());
  auto limit = limit_param(x.request, 100);
  if (!limit) return s.fail(x, limit.error());
  CdrQuery q{.since = *since,
             .until = *until,
             .account = query(x.request, "account").value_or(""),
             .number = query(x.request, "number").value_or(""),
             .callback_id = query(x.request, "callback_id").value_or(""),
             .limit = *limit};
  json::array out;
  auto ok = s.runtime.store().cdrs().query(q, [&](const Cdr& c) {
    out.push_back(to_json(c));
    return true;
  });
  if (!ok) return s.fail(x, ok.error());
  s.reply(x, json_reply(Code::Ok, json::object{{"cdrs", std::move(out)}}));
}

void stats(State& s, Exchange& x) {
  auto* admin = billing_admin(s, x, "rates or statistics");
  if (admin == nullptr) return;
  auto limit = limit_param(x.request, 100);
  if (!limit) return s.fail(x, limit.error());
  std::string digits;
  if (auto text = query(x.request, "number"); text && !text->empty()) {
    auto number = PhoneNumber::parse(*text, s.runtime.config().numbering);
    if (!number) return s.fail(x, number.error().at("number"));
    digits = number->digits();
  }
  auto rows = admin->caller_stats(digits, *limit);
  if (!rows) return s.fail(x, rows.error());
  json::array out;
  for (const auto& row : *rows) out.push_back(to_json(row));
  s.reply(x, json_reply(Code::Ok, json::object{{"stats", std::move(out)}}));
}

}  // namespace

void add_record_routes(Router& router) {
  router.add(Method::Get, "/v1/cdrs", Access::operator_, cdrs);
  router.add(Method::Get, "/v1/stats", Access::operator_, stats);
}

}  // namespace callback::rest
