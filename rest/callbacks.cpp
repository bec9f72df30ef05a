// /v1/callbacks: ask for one, list them, follow one, cancel it. A callbacks key sees only
// its own (rest/api_keys.hpp); an admin key sees all.
#include "state.hpp"

#include <callback/callback_request.hpp>
#include <callback/json.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <set>

namespace callback::rest {

namespace json = boost::json;

namespace {

// A journal entry as the registry shows a callback.
std::optional<Snapshot> snapshot_of(const JournalEntry& entry) {
  auto event = CallbackService::journaled_event(entry);
  if (!event) return std::nullopt;
  Snapshot snapshot{.id = entry.id,
                    .json = json::serialize(to_json(*event)),
                    .state = event->call.state(),
                    .created_at = event->call.created_at(),
                    .owner = entry.client,
                    .remote = true};
  const auto& metadata = event->call.request().metadata;
  if (auto m = metadata.find("status_callback"); m != metadata.end()) snapshot.webhook_url = m->second;
  return snapshot;
}

}  // namespace

CallJournal* RestServer::State::shared_journal() const {
  CallJournal* journal = runtime.store().journal();
  return journal != nullptr && journal->shared() ? journal : nullptr;
}

std::optional<Snapshot> RestServer::State::from_journal(const std::string& id) const {
  CallJournal* journal = shared_journal();
  if (journal == nullptr) return std::nullopt;
  auto entry = journal->entry(id);
  if (!entry || !*entry) return std::nullopt;
  return snapshot_of(**entry);
}

void RestServer::State::on_journal_notice(const JournalNotice& notice) {
  if (notice.kind == JournalNotice::Kind::cancel) return;  // the node's Cluster acts on those
  auto followed = registry.remote_ids();
  if (followed.empty()) return;
  if (notice.kind == JournalNotice::Kind::changed) {
    std::set<std::string> changed(notice.ids.begin(), notice.ids.end());
    std::erase_if(followed, [&](const std::string& id) { return !changed.contains(id); });
  }
  for (const auto& id : followed) {
    if (auto snapshot = from_journal(id)) registry.remote_changed(*snapshot);
  }
}

std::optional<Snapshot> RestServer::State::visible(const std::string& id, const ApiKeyInfo* key) const {
  auto snapshot = registry.find(id);
  if (!snapshot) snapshot = from_journal(id);  // another node's
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
    if (!snapshot) snapshot = s.from_journal(*id);  // an idempotency key another node had
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
  auto listed = s.registry.list(state, since->value_or(Timestamp{}), *limit, owner);
  if (CallJournal* journal = s.shared_journal()) {
    // Every node's, from the shared journal; this node's own as it knows them (fresher).
    auto entries = journal->list({.state = state ? std::string(to_string(*state)) : std::string(),
                                  .since = since->value_or(Timestamp{}),
                                  .client = owner.value_or(std::string()),
                                  .limit = *limit});
    if (!entries) return s.fail(x, entries.error());
    std::set<std::string> known;
    for (const auto& snapshot : listed) known.insert(snapshot.id);
    for (const auto& entry : *entries) {
      if (known.contains(entry.id)) continue;
      if (auto snapshot = snapshot_of(entry)) listed.push_back(std::move(*snapshot));
    }
    std::sort(listed.begin(), listed.end(), [](const Snapshot& a, const Snapshot& b) {
      return a.created_at != b.created_at ? a.created_at > b.created_at : a.id > b.id;
    });
    if (listed.size() > *limit) listed.resize(*limit);
  }
  for (const auto& snapshot : listed) {
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
  if (snapshot->remote) {
    // Another node runs it: the journal asks that node (LISTEN/NOTIFY), which cancels it.
    auto asked = s.shared_journal()->ask_cancel(id);
    if (!asked) return s.fail(x, asked.error());
    return s.reply(x, Reply{Code::Accepted, std::move(snapshot->json)});
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
