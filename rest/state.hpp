#pragma once
// What the REST server's files share: the runtime, API keys, the callback registry, the
// webhook sender, the routes and the HTTP metrics (see exchange.hpp).
#include "exchange.hpp"

#include <callback/context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace callback::rest {

struct RestServer::State : std::enable_shared_from_this<RestServer::State> {
  Runtime& runtime;
  ServerOptions options;
  std::unique_ptr<ApiKeys> keys;
  CallRegistry registry;
  WebhookSender webhooks;
  Router router;
  Counter& requests_ok;
  Counter& requests_client_error;
  Counter& requests_server_error;
  Histogram& handling;   // time in the handler (a POST's wait for the service is in `accepting`)
  Histogram& accepting;  // POST /v1/callbacks: request to 202 (validation, billing, originate)
  TimerHandle ping_timer;  // on the service thread
  Subscription journal_notices;  // several nodes: the shared journal's changes, for remote streams

  State(Runtime& r, ServerOptions o, std::unique_ptr<ApiKeys> k);

  void arm_ping();
  // Counts it by status class and sends it.
  void reply(ResponseWriter& response, Reply r);
  void reply(Exchange& x, Reply r) { reply(*x.response, std::move(r)); }
  void fail(Exchange& x, const Error& e) { reply(*x.response, error_reply(e)); }

  // --- server.cpp: dispatch ---
  // Rate decks are big; everything else is small.
  [[nodiscard]] std::size_t body_limit(std::string_view method, std::string_view path) const;
  void handle(const Pistache::Http::Request& request, ResponseWriter response);
  [[nodiscard]] Result<ApiKeyInfo> authenticate(const Pistache::Http::Request& request);
  [[nodiscard]] static Status need_scope(const ApiKeyInfo& key, Access access);

  // --- callbacks.cpp: tenancy (rest/api_keys.hpp) ---
  // The callback `id` if `key` may see it; another key's is as unknown as a made-up id
  // (404, not 403), so ids are no oracle. No key: a plugin's route checked the client.
  [[nodiscard]] std::optional<Snapshot> visible(const std::string& id, const ApiKeyInfo* key) const;
  [[nodiscard]] static Error no_callback(const std::string& id);
  // Several nodes: the shared journal, when this node is one of several; else nullptr.
  [[nodiscard]] CallJournal* shared_journal() const;
  // A callback as the shared journal has it (another node's), when this node is one of several.
  [[nodiscard]] std::optional<Snapshot> from_journal(const std::string& id) const;
  void on_journal_notice(const JournalNotice& notice);

  // --- sse.cpp ---
  // Answers with the callback's Server-Sent Events until its final state.
  void stream_events(const std::string& id, ResponseWriter& response, const ApiKeyInfo* key);

 private:
  void route(const Pistache::Http::Request& request, ResponseWriter response);
  void to_plugin(const Pistache::Http::Request& request, std::shared_ptr<ResponseWriter> response,
                 const HttpHandler& handler);
};

// The billing backend's administration; for a backend that keeps none, nullptr, and the
// exchange is answered 404 ("this billing backend keeps no <what>"). rates.cpp.
BillingAdmin* billing_admin(RestServer::State& s, Exchange& x, std::string_view what);

}  // namespace callback::rest
