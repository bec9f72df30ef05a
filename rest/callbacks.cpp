// /v1/callbacks: ask for one, list them, follow one, cancel it. A callbacks key sees only
// its own (rest/api_keys.hpp); an admin key sees all.
#include "state.hpp"

#include <callback/callback_request.hpp>

#include <boost/json.hpp>

namespace callback::rest {

namespace json = boost::json;

std::optional<Snapshot> RestServer::State::visible(const std::string& id, const ApiKeyInfo* key) const {
  auto snapshot = registry.find(id);
  if (snapshot && key != nullptr && key->scope != KeyScope::admin && snapshot->owner != key->id) return std::nullopt;
  return snapshot;
}

Error RestServer::State::no_callback(const std::string& id) {
  return Error{"not_found", "no callback \"" + id + "\"", "id"}.as(ErrorKind::not_found);
}

namespace {

using State = RestServer::State;

// The body of POST /v1/callbacks as a request form.
Result<CallbackForm> read_form(const Pistache::Http::Request& request, const ApiKeyInfo& key, std::string& webhook) {
  auto body = parse_body(request);
  if (!body) return body.error();
  for (const auto& [k, v] : *body) {
    if (k != "caller" && k != "callee" && k != "account" && k != "campaign" && k != "limit_seconds" &&
        k != "status_callback" && k != "pin" && k != "language") {
      return Error{"unknown_field",
                   "unknown field (known: caller, callee, account, campaign, limit_seconds, status_callback, pin, "
                   "language)",
                   std::string(k)};
    }
  }
  CallbackForm form;
  form.origin = Origin::rest;
  auto caller = string_field(*body, "caller", true, 40);
  if (!caller) return caller.error();
  auto callee = string_field(*body, "callee", true, 40);
  if (!callee) return callee.error();
  auto account = string_field(*body, "account", false, 64);
  if (!account) return account.error();
  auto campaign = string_field(*body, "campaign", false, 64);
  if (!campaign) return campaign.error();
  auto pin = string_field(*body, "pin", false, 128);
  if (!pin) return pin.error();
  auto status_callback = string_field(*body, "status_callback", false, 2000);
  if (!status_callback) return status_callback.error();
  auto language = string_field(*body, "language", false);  // make_request checks its form
  if (!language) return language.error();
  if (account->empty() == campaign->empty()) {
    return Error{"missing_field", "give exactly one of \"account\" or \"campaign\"",
                 account->empty() ? "account" : "campaign"};
  }
  if (const auto* limit = body->if_contains("limit_seconds"); limit != nullptr && !limit->is_null()) {
    if (!limit->is_int64() || limit->get_int64() < 1 || limit->get_int64() > 86400) {
      return Error{"invalid_type", "must be a whole number of seconds from 1 to 86400", "limit_seconds"};
    }
    form.limit = std::chrono::seconds(limit->get_int64());
  }
  form.caller = std::move(*caller);
  form.callee = std::move(*callee);
  if (!account->empty()) {
    form.payer = AccountId{std::move(*account)};
  } else {
    form.payer = CampaignId{std::move(*campaign)};
  }
  form.secret = std::move(*pin);
  form.language = std::move(*language);
  if (auto idempotency = header(request, "Idempotency-Key")) {
    if (idempotency->empty() || idempotency->size() > 200) {
      return Error{"invalid_header", "must be 1 to 200 characters", "Idempotency-Key"};
    }
    form.idempotency_key = *idempotency;
  }
  form.metadata["owner"] = key.id;
  webhook = std::move(*status_callback);
  if (!webhook.empty()) form.metadata["status_callback"] = webhook;
  return form;
}

// Hands the request to the service and answers 202 once it is authorized and dialing
// (with the callback and its Location), or the refusal.
void post_callback(State& s, Exchange& x) {
  std::string webhook;
  auto form = read_form(x.request, *x.key, webhook);
  if (!form) return s.fail(x, form.error());
  auto made = make_request(*form, s.runtime.config().numbering);  // no control characters anywhere
  if (!made) return s.fail(x, made.error());
  if (!webhook.empty()) {
    if (auto ok = check_webhook_url(webhook); !ok) return s.fail(x, ok.error());
  }
  // Keys of different clients never collide.
  if (!made->idempotency_key.empty()) made->idempotency_key = x.key->id + ":" + made->idempotency_key;
  s.runtime.sink().submit(std::move(*made), [&s, response = x.response, started = std::chrono::steady_clock::now()](
                                                Result<std::string> id) {
    s.accepting.observe(std::chrono::steady_clock::now() - started);
    if (!id) return s.reply(*response, error_reply(id.error()));
    auto snapshot = s.registry.find(*id);
    Reply r{Code::Accepted, snapshot ? snapshot->json : json::serialize(json::object{{"id", *id}})};
    r.headers.emplace_back("Location", "/v1/callbacks/" + *id);
    s.reply(*response, std::move(r));
  });
}

void list_callbacks(State& s, Exchange& x) {
  std::optional<CallState> state;
  if (auto text = query(x.request, "state"); text && !text->empty()) {
    state = call_state_from_string(*text);
    if (!state) return s.fail(x, Error{"invalid_parameter", "unknown state \"" + *text + "\"", "state"});
  }
  auto since = time_param(x.request, "since");
  if (!since) return s.fail(x, since.error());
  auto limit = limit_param(x.request, 100);
  if (!limit) return s.fail(x, limit.error());
  std::string body = "{\"callbacks\":[";
  bool first = true;
  const auto owner = x.key->scope == KeyScope::admin ? std::nullopt : std::optional<std::string>(x.key->id);
  for (const auto& snapshot : s.registry.list(state, since->value_or(Timestamp{}), *limit, owner)) {
    if (!first) body += ',';
    first = false;
    body += snapshot.json;
  }
  body += "]}";
  s.reply(x, Reply{Code::Ok, std::move(body)});
}

void get_callback(State& s, Exchange& x) {
  auto snapshot = s.visible(x.params[0], &*x.key);
  if (!snapshot) return s.fail(x, State::no_callback(x.params[0]));
  s.reply(x, Reply{Code::Ok, std::move(snapshot->json)});
}

void cancel_callback(State& s, Exchange& x) {
  const std::string& id = x.params[0];
  auto snapshot = s.visible(id, &*x.key);
  if (!snapshot) return s.fail(x, State::no_callback(id));
  if (is_final(snapshot->state)) {
    return s.fail(x, Error{"already_final",
                           "callback " + id + " already ended (" + std::string(to_string(snapshot->state)) + ")", "id"}
                         .as(ErrorKind::conflict));
  }
  s.runtime.post([&s, id, response = x.response] {
    if (auto ok = s.runtime.service().cancel(id); !ok) {  // it ended since the check above
      Error e = ok.error();
      e.code = "already_final";
      return s.reply(*response, error_reply(std::move(e).as(ErrorKind::conflict)));
    }
    auto now = s.registry.find(id);
    s.reply(*response, Reply{Code::Accepted, now ? now->json : "{\"id\":\"" + id + "\"}"});
  });
}

}  // namespace

void add_callback_routes(Router& router) {
  router.add(Method::Get, "/v1/callbacks", Access::callbacks, list_callbacks);
  router.add(Method::Post, "/v1/callbacks", Access::callbacks, post_callback);
  router.add(Method::Get, "/v1/callbacks/{id}", Access::callbacks, get_callback);
  router.add(Method::Delete, "/v1/callbacks/{id}", Access::callbacks, cancel_callback);
  router.add(Method::Get, "/v1/callbacks/{id}/events", Access::callbacks,
             [](State& s, Exchange& x) { s.stream_events(x.params[0], *x.response, &*x.key); });
}

}  // namespace callback::rest
