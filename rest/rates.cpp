// /v1/rates: import a tariff's rate deck (CSV), list a deck, or the rate that applies to
// a number (?lookup=).
#include "state.hpp"

#include <callback/json.hpp>

#include <boost/json.hpp>

#include <sstream>

namespace callback::rest {

namespace json = boost::json;

using State = RestServer::State;

BillingAdmin* billing_admin(State& s, Exchange& x, std::string_view what) {
  auto* admin = s.runtime.billing() != nullptr ? s.runtime.billing()->admin() : nullptr;
  if (admin == nullptr) {
    s.fail(x,
           Error{"not_found", "this billing backend keeps no " + std::string(what), "path"}.as(ErrorKind::not_found));
  }
  return admin;
}

namespace {

void import_deck(State& s, Exchange& x) {
  auto* admin = billing_admin(s, x, "rate decks");
  if (admin == nullptr) return;
  auto currency = Currency::of(query(x.request, "currency").value_or("CNY"));
  if (!currency) return s.fail(x, currency.error().at("currency"));
  std::istringstream csv(x.request.body());
  auto report = admin->import_rates(x.params[0], csv, *currency);
  if (!report) return s.fail(x, report.error());
  s.reply(x, json_reply(Code::Ok, json::object{{"tariff", report->tariff},
                                               {"rates", report->rates},
                                               {"took_ms", report->took.count()}}));
}

// ?tariff=&lookup=NUMBER (the one that applies), or the deck (?prefix=&limit=).
void rates(State& s, Exchange& x) {
  auto* admin = billing_admin(s, x, "rates or statistics");
  if (admin == nullptr) return;
  const std::string tariff = query(x.request, "tariff").value_or("default");
  if (auto lookup = query(x.request, "lookup")) {
    auto number = PhoneNumber::parse(*lookup, s.runtime.config().numbering);
    if (!number) return s.fail(x, number.error().at("lookup"));
    auto rate = s.runtime.billing()->rater().rate(tariff, *number, s.runtime.context().clock.now());
    if (!rate) {
      return s.fail(x, Error{"not_found", "no rate for " + number->digits() + " in tariff " + tariff, "lookup"}.as(
                           ErrorKind::not_found));
    }
    return s.reply(x, json_reply(Code::Ok, json::object{{"tariff", tariff}, {"rates", json::array{to_json(*rate)}}}));
  }
  auto limit = limit_param(x.request, 100);
  if (!limit) return s.fail(x, limit.error());
  auto deck = admin->rates(tariff, query(x.request, "prefix").value_or(""), *limit);
  if (!deck) return s.fail(x, deck.error());
  json::array out;
  for (const auto& r : *deck) out.push_back(to_json(r));
  s.reply(x, json_reply(Code::Ok, json::object{{"tariff", tariff}, {"rates", std::move(out)}}));
}

}  // namespace

void add_rate_routes(Router& router) {
  router.add(Method::Get, "/v1/rates", Access::operator_, rates);
  router.add(Method::Post, "/v1/rates/{tariff}", Access::operator_, import_deck);
}

}  // namespace callback::rest
