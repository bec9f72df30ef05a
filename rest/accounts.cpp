// /v1/accounts: create, list, read and top up prepaid accounts, with the checks
// callbackctl uses (callback/operations.hpp). On the HTTP thread: the store locks its
// connection, so the event loop never waits for it.
#include "state.hpp"

#include <callback/json.hpp>
#include <callback/operations.hpp>

#include <boost/json.hpp>

namespace callback::rest {

namespace json = boost::json;

namespace {

using State = RestServer::State;

Result<AccountForm> read_account(const json::object& body) {
  AccountForm form;
  for (const auto& [k, v] : body) {
    if (k == "numbers" || k == "emails") {
      auto list = string_list(v, k);
      if (!list) return list.error();
      (k == "numbers" ? form.numbers : form.emails) = std::move(*list);
      continue;
    }
    std::string* target = k == "id"             ? &form.id
                          : k == "name"         ? &form.name
                          : k == "currency"     ? &form.currency
                          : k == "balance"      ? &form.balance
                          : k == "credit_limit" ? &form.credit_limit
                          : k == "tariff"       ? &form.tariff
                          : k == "pin"          ? &form.pin
                          : k == "language"     ? &form.language
                                                : nullptr;
    if (target == nullptr) {
      return Error{"unknown_field",
                   "unknown field (known: id, name, currency, balance, credit_limit, tariff, pin, numbers, emails, "
                   "language)",
                   std::string(k)};
    }
    if (!v.is_string()) return Error{"invalid_type", "must be a string", std::string(k)};
    *target = std::string(v.as_string());
  }
  if (form.id.empty()) return Error{"missing_field", "is required", "id"};
  return form;
}

void create(State& s, Exchange& x) {
  auto body = parse_body(x.request);
  if (!body) return s.fail(x, body.error());
  auto form = read_account(*body);
  if (!form) return s.fail(x, form.error());
  auto account = create_account(s.runtime.store(), *form, s.runtime.config().numbering);
  if (!account) return s.fail(x, account.error());
  Reply r = json_reply(Code::Created, to_json(*account));
  r.headers.emplace_back("Location", "/v1/accounts/" + account->id);
  s.reply(x, std::move(r));
}

void list(State& s, Exchange& x) {
  auto accounts = s.runtime.store().accounts().list();
  if (!accounts) return s.fail(x, accounts.error());
  json::array out;
  for (const auto& a : *accounts) out.push_back(to_json(a));
  s.reply(x, json_reply(Code::Ok, json::object{{"accounts", std::move(out)}}));
}

Error no_account(const std::string& id) {
  return Error{"not_found", "no account \"" + id + "\"", "id"}.as(ErrorKind::not_found);
}

void read(State& s, Exchange& x) {
  auto account = s.runtime.store().accounts().find(x.params[0]);
  if (!account) return s.fail(x, account.error());
  if (!*account) return s.fail(x, no_account(x.params[0]));
  s.reply(x, json_reply(Code::Ok, to_json(**account)));
}

void top_up(State& s, Exchange& x) {
  auto body = parse_body(x.request);
  if (!body) return s.fail(x, body.error());
  auto amount = string_field(*body, "amount", true, 40);
  if (!amount) return s.fail(x, amount.error());
  auto reference = string_field(*body, "reference", false, 200);
  if (!reference) return s.fail(x, reference.error());
  const std::string& id = x.params[0];
  auto entry = callback::top_up(s.runtime.store(), id, *amount, *reference);
  if (!entry) return s.fail(x, entry.error());
  auto account = s.runtime.store().accounts().find(id);
  if (!account || !*account) {
    return s.fail(x, Error{"store_failed", "cannot read the account", "id"}.as(ErrorKind::internal));
  }
  s.reply(x, json_reply(Code::Ok, to_json(**account)));
}

}  // namespace

void add_account_routes(Router& router) {
  router.add(Method::Get, "/v1/accounts", Access::operator_, list);
  router.add(Method::Post, "/v1/accounts", Access::operator_, create);
  router.add(Method::Get, "/v1/accounts/{id}", Access::operator_, read);
  router.add(Method::Post, "/v1/accounts/{id}/topup", Access::operator_, top_up);
}

}  // namespace callback::rest
