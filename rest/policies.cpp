// /v1/policies/{account|campaign}/{id}: a payer's toll-fraud policy, read or replaced whole.
#include "state.hpp"

#include <callback/json.hpp>
#include <callback/operations.hpp>

#include <boost/json.hpp>

namespace callback::rest {

namespace json = boost::json;

namespace {

using State = RestServer::State;

// The payer the path names; nothing (and a 404 sent) for another kind.
std::optional<Payer> payer_of(State& s, Exchange& x) {
  const std::string& kind = x.params[0];
  if (kind == "account") return Payer{AccountId{x.params[1]}};
  if (kind == "campaign") return Payer{CampaignId{x.params[1]}};
  s.fail(x, Error{"not_found", "no such endpoint: " + x.request.resource() + " (policies are of an account or a campaign)",
                  "path"}
                .as(ErrorKind::not_found));
  return std::nullopt;
}

Result<PolicyForm> read_policy(const json::object& body, Payer payer) {
  PolicyForm form{.payer = std::move(payer)};
  for (const auto& [k, v] : body) {
    if (k == "allow_prefixes" || k == "deny_prefixes") {
      auto list = string_list(v, k);
      if (!list) return list.error();
      (k == "allow_prefixes" ? form.allow_prefixes : form.deny_prefixes) = std::move(*list);
    } else if (k == "max_call_cost" || k == "daily_spend") {
      if (v.is_null()) continue;
      if (!v.is_string()) return Error{"invalid_type", "must be a decimal string or null", std::string(k)};
      (k == "max_call_cost" ? form.max_call_cost : form.daily_spend) = std::string(v.as_string());
    } else if (k == "max_concurrent") {
      if (!v.is_int64() || v.as_int64() < 0 || v.as_int64() > 1'000'000) {
        return Error{"invalid_type", "must be a whole number from 0 (no limit)", "max_concurrent"};
      }
      form.max_concurrent = static_cast<int>(v.as_int64());
    } else {
      return Error{"unknown_field",
                   "unknown field (known: allow_prefixes, deny_prefixes, max_call_cost, daily_spend, max_concurrent)",
                   std::string(k)};
    }
  }
  return form;
}

void get_policy(State& s, Exchange& x) {
  auto payer = payer_of(s, x);
  if (!payer) return;
  auto* admin = billing_admin(s, x, "policies");
  if (admin == nullptr) return;
  auto policy = admin->policy(*payer);
  if (!policy) return s.fail(x, policy.error());
  s.reply(x, json_reply(Code::Ok, to_json(*policy)));
}

void put_policy(State& s, Exchange& x) {
  auto payer = payer_of(s, x);
  if (!payer) return;
  auto* admin = billing_admin(s, x, "policies");
  if (admin == nullptr) return;
  auto body = parse_body(x.request);
  if (!body) return s.fail(x, body.error());
  auto form = read_policy(*body, std::move(*payer));
  if (!form) return s.fail(x, form.error());
  auto policy = make_policy(*form);
  if (!policy) return s.fail(x, policy.error());
  if (auto ok = admin->put_policy(*policy); !ok) return s.fail(x, ok.error());
  s.reply(x, json_reply(Code::Ok, to_json(*policy)));
}

}  // namespace

void add_policy_routes(Router& router) {
  router.add(Method::Get, "/v1/policies/{kind}/{id}", Access::operator_, get_policy);
  router.add(Method::Put, "/v1/policies/{kind}/{id}", Access::operator_, put_policy);
}

}  // namespace callback::rest
