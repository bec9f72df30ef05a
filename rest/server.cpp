// callbackd's HTTP side: the "server" block, the route table and its dispatch (plugins'
// routes first, then callbackd's own, each resource's in its file: see exchange.hpp), and
// Pistache's endpoint.
#include "http_guard.hpp"
#include "state.hpp"

#include <callback/options.hpp>

#include <boost/json.hpp>
#include <pistache/endpoint.h>
#include <pistache/peer.h>

#include <atomic>
#include <charconv>

namespace callback::rest {

namespace json = boost::json;

// The "server" block, checked like a plugin's block (types, ranges, unknown keys).
const std::vector<OptionSpec>& server_option_specs() {
  using T = OptionType;
  static const std::vector<OptionSpec> specs{
      {.name = "listen", .type = T::string, .default_value = "127.0.0.1:8080", .description = "host:port"},
      {.name = "threads", .type = T::integer, .default_value = 2, .description = "HTTP threads", .min = 1, .max = 64},
      {.name = "max_body_bytes", .type = T::integer, .default_value = 16 * 1024, .description = "larger bodies: 413",
       .min = 1024, .max = 64 * 1024 * 1024},
      {.name = "max_import_bytes", .type = T::integer, .default_value = 64 * 1024 * 1024,
       .description = "a rate deck's CSV", .min = 1024, .max = 1024LL * 1024 * 1024},
      {.name = "shutdown_grace_seconds", .type = T::integer, .default_value = 30,
       .description = "calls in flight get this long to end at SIGTERM", .min = 0, .max = 86400},
      {.name = "keepalive_seconds", .type = T::integer, .default_value = 60, .description = "idle connections",
       .min = 1, .max = 86400},
      {.name = "stream_timeout_seconds", .type = T::integer, .default_value = 60,
       .description = "request timeout; event streams are cut after it", .min = 1, .max = 86400},
      {.name = "stream_ping_seconds", .type = T::integer, .default_value = 15,
       .description = "keep-alive comments on event streams", .min = 1, .max = 3600},
      {.name = "webhook_attempts", .type = T::integer, .default_value = 6, .description = "per webhook", .min = 1,
       .max = 100},
      {.name = "webhook_first_retry_ms", .type = T::integer, .default_value = 1000,
       .description = "doubles each time", .min = 1, .max = 3'600'000},
      {.name = "webhook_timeout_ms", .type = T::integer, .default_value = 5000, .description = "per attempt",
       .min = 100, .max = 600'000},
      {.name = "webhook_workers", .type = T::integer, .default_value = 4, .description = "webhook deliveries at once",
       .min = 1, .max = 256},
      {.name = "webhook_per_receiver", .type = T::integer, .default_value = 2,
       .description = "webhook deliveries at once to one scheme://host:port", .min = 1, .max = 256},
      {.name = "webhook_allow_networks", .type = T::string_list, .default_value = json::array{},
       .description = "CIDR networks webhooks may reach though loopback, private, link-local or metadata "
                      "(\"127.0.0.1/32\")"},
  };
  return specs;
}

Result<ServerOptions> parse_server_options(const json::value& block) {
  if (block.is_object() && block.get_object().contains("keys_db")) {
    return Error{"config.moved", "API keys are kept by the store now (the store's database); remove this option",
                 "server.keys_db"};
  }
  auto checked = validate_options(server_option_specs(), block, "server");
  if (!checked) return checked.error();
  const Options& o = *checked;
  ServerOptions options;
  const std::string listen = o.string("listen");
  const auto colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    auto [end, ec] = std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port);
    if (ec != std::errc{} || end != listen.data() + listen.size()) port = -1;
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    return Error{"config.value", "expected \"host:port\" such as \"127.0.0.1:8080\", got \"" + listen + "\"",
                 "server.listen"};
  }
  options.host = listen.substr(0, colon);
  options.port = static_cast<std::uint16_t>(port);
  options.threads = static_cast<int>(o.integer("threads"));
  options.max_body = static_cast<std::size_t>(o.integer("max_body_bytes"));
  options.max_import = static_cast<std::size_t>(o.integer("max_import_bytes"));
  options.shutdown_grace = std::chrono::seconds(o.integer("shutdown_grace_seconds"));
  options.keepalive = std::chrono::seconds(o.integer("keepalive_seconds"));
  options.stream_timeout = std::chrono::seconds(o.integer("stream_timeout_seconds"));
  options.stream_ping = std::chrono::seconds(o.integer("stream_ping_seconds"));
  options.webhooks.attempts = static_cast<int>(o.integer("webhook_attempts"));
  options.webhooks.first_retry = std::chrono::milliseconds(o.integer("webhook_first_retry_ms"));
  options.webhooks.timeout = std::chrono::milliseconds(o.integer("webhook_timeout_ms"));
  options.webhooks.workers = static_cast<int>(o.integer("webhook_workers"));
  options.webhooks.per_receiver = static_cast<int>(o.integer("webhook_per_receiver"));
  auto addresses = AddressPolicy::make(o.strings("webhook_allow_networks"));
  if (!addresses) return addresses.error();
  options.webhooks.addresses = std::move(*addresses);
  return options;
}

RestServer::State::State(Runtime& r, ServerOptions o, std::unique_ptr<ApiKeys> k)
    : runtime(r),
      options(std::move(o)),
      keys(std::move(k)),
      webhooks(
          r.context().log, r.context().metrics,
          [this](const std::string& owner) { return keys->webhook_secret(owner); }, options.webhooks),
      requests_ok(r.context().metrics.counter("callbackd_http_requests_total", "HTTP requests by status class",
                                              "class=\"2xx\"")),
      requests_client_error(r.context().metrics.counter("callbackd_http_requests_total",
                                                        "HTTP requests by status class", "class=\"4xx\"")),
      requests_server_error(r.context().metrics.counter("callbackd_http_requests_total",
                                                        "HTTP requests by status class", "class=\"5xx\"")),
      handling(r.context().metrics.histogram("callbackd_http_handler_seconds", "Time in the request handler")),
      accepting(
          r.context().metrics.histogram("callbackd_callback_accept_seconds",
                                        "POST of a callback to its answer (authorized and dialing, or refused)")) {
  registry.on_event = [this](const CallEvent& event, const Snapshot& snapshot) {
    // Replayed from the journal after a restart: the receiver was told before.
    if (snapshot.webhook_url.empty() || event.replayed) return;
    const auto name = WebhookSender::event_for(to_string(event.call.state()));
    if (name.empty()) return;
    webhooks.send({event.call.id(), snapshot.webhook_url, std::string(name), snapshot.json, snapshot.owner});
  };
  add_callback_routes(router);
  add_account_routes(router);
  add_rate_routes(router);
  add_record_routes(router);
  add_policy_routes(router);
  add_system_routes(router);
}

void RestServer::State::arm_ping() {
  std::weak_ptr<State> weak = shared_from_this();
  ping_timer = runtime.context().clock.schedule(options.stream_ping, [weak] {
    if (auto self = weak.lock()) {
      self->registry.ping(": keep-alive\n\n");
      self->arm_ping();
    }
  });
}

void RestServer::State::reply(ResponseWriter& response, Reply r) {
  const int code = static_cast<int>(r.code);
  (code >= 500 ? requests_server_error : code >= 400 ? requests_client_error : requests_ok).add();
  send(response, std::move(r));
}

// --- the route table ---------------------------------------------------------------------

void Router::add(Method method, std::string_view pattern, Access access, RouteHandler handler) {
  Route route{method, {}, access, std::move(handler)};
  for (auto part : split_path(pattern)) route.parts.emplace_back(part.starts_with('{') ? "{}" : part);
  routes_.push_back(std::move(route));
}

Router::Match Router::find(Method method, std::string_view path) const {
  const auto parts = split_path(path);
  Match match;
  for (const auto& route : routes_) {
    if (route.parts.size() != parts.size()) continue;
    std::vector<std::string> params;
    bool same = true;
    for (std::size_t i = 0; i < parts.size() && same; ++i) {
      if (route.parts[i] == "{}") {
        params.emplace_back(parts[i]);
      } else {
        same = route.parts[i] == parts[i];
      }
    }
    if (!same) continue;
    const std::string name = Pistache::Http::methodString(route.method);
    if (match.allowed.find(name) == std::string::npos) match.allowed += match.allowed.empty() ? name : ", " + name;
    match.access = route.access;
    if (route.method == method && match.route == nullptr) {
      match.route = &route;
      match.params = std::move(params);
    }
  }
  return match;
}

// --- dispatch ---------------------------------------------------------------------------------

Result<ApiKeyInfo> RestServer::State::authenticate(const Pistache::Http::Request& request) {
  std::string key;
  if (auto auth = header(request, "Authorization")) {
    if (!auth->starts_with("Bearer ")) {
      return Error{"unauthorized", "Authorization must be \"Bearer <key>\"", "api_key"}.as(ErrorKind::unauthorized);
    }
    key = auth->substr(7);
  } else if (auto x = header(request, "X-API-Key")) {
    key = *x;
  }
  return keys->verify(key);
}

// Tenancy (rest/api_keys.hpp): admin keys cover everything, the others their own resources.
Status RestServer::State::need_scope(const ApiKeyInfo& key, Access access) {
  const KeyScope scope = access == Access::callbacks ? KeyScope::callbacks : KeyScope::operator_;
  if (access == Access::open || key.scope == KeyScope::admin || key.scope == scope) return ok_status();
  const std::string what = access == Access::callbacks ? "callbacks"
                                                       : "accounts, rates, CDRs, statistics, policies and triggers";
  return Error{"forbidden", "this API key's scope (" + std::string(to_string(key.scope)) + ") does not cover " + what,
               "api_key"}
      .as(ErrorKind::forbidden);
}

std::size_t RestServer::State::body_limit(std::string_view method, std::string_view path) const {
  const auto parts = split_path(path);
  const bool deck_import = method == "POST" && parts.size() == 3 && parts[0] == "v1" && parts[1] == "rates";
  return deck_import ? options.max_import : options.max_body;
}

void RestServer::State::handle(const Pistache::Http::Request& request, ResponseWriter response) {
  const auto started = std::chrono::steady_clock::now();
  try {
    route(request, std::move(response));
    handling.observe(std::chrono::steady_clock::now() - started);
  } catch (const std::exception& e) {
    runtime.context().log.error("callbackd", std::string("request failed: ") + escape_control(e.what()));
  }
}

void RestServer::State::route(const Pistache::Http::Request& request, ResponseWriter response) {
  const std::string& path = request.resource();
  const std::string method = Pistache::Http::methodString(request.method());
  auto method_not_allowed = [&](std::string allowed) {
    Reply r = error_reply(Error{"method_not_allowed", "use " + allowed, "method"}.as(ErrorKind::method_not_allowed));
    r.headers.emplace_back("Allow", std::move(allowed));
    reply(response, std::move(r));
  };
  if (const auto limit = body_limit(method, path); request.body().size() > limit) {
    return reply(response, error_reply(Error{"body_too_large", "the body is over " + std::to_string(limit) + " bytes",
                                             "body"}
                                           .as(ErrorKind::too_large)));
  }
  // What triggers added (the web page, an SMS gateway's webhook): they check it themselves.
  if (auto plugin = runtime.http_routes().find(method, path); plugin.handler || !plugin.allowed.empty()) {
    if (!plugin.handler) return method_not_allowed(plugin.allowed);
    return to_plugin(request, std::make_shared<ResponseWriter>(std::move(response)), plugin.handler);
  }
  auto match = router.find(request.method(), path);
  const bool api = path.starts_with("/v1/") && !path.starts_with("/v1/public/");
  std::optional<ApiKeyInfo> key;
  // The API's paths ask for a key first: without one, whether a path exists is no answer.
  if (match.access != Access::open || (match.allowed.empty() && api)) {
    auto verified = authenticate(request);
    if (!verified) return reply(response, error_reply(verified.error()));
    if (auto ok = need_scope(*verified, match.access); !ok) return reply(response, error_reply(ok.error()));
    key = std::move(*verified);
  }
  if (match.allowed.empty()) {
    return reply(response,
                 error_reply(Error{"not_found", "no such endpoint: " + path, "path"}.as(ErrorKind::not_found)));
  }
  if (match.route == nullptr) return method_not_allowed(match.allowed);
  Exchange exchange{request, std::make_shared<ResponseWriter>(std::move(response)), std::move(match.params),
                    std::move(key)};
  match.route->handler(*this, exchange);
}

// Hands a request to a plugin's route; its answer, from any thread, goes out once.
void RestServer::State::to_plugin(const Pistache::Http::Request& request, std::shared_ptr<ResponseWriter> response,
                                  const HttpHandler& handler) {
  auto answered = std::make_shared<std::atomic<bool>>(false);
  auto self = shared_from_this();
  HttpRespond respond = [self, response, answered](HttpResponse answer) {
    if (answered->exchange(true)) return;  // a second answer: the first one went out
    if (!answer.event_stream.empty()) return self->stream_events(answer.event_stream, *response, nullptr);
    if (answer.status < 100 || answer.status > 599) {
      self->runtime.context().log.error("callbackd", "a plugin's route answered status " +
                                                         std::to_string(answer.status) + "; sent 500");
      return self->reply(
          *response, error_reply(Error{"internal", "the handler gave no valid answer", {}}.as(ErrorKind::internal)));
    }
    self->reply(*response, plugin_reply(std::move(answer)));
  };
  try {
    handler(plain_request(request), respond);
  } catch (const std::exception& e) {
    runtime.context().log.error("callbackd", std::string("a plugin's route failed: ") + escape_control(e.what()));
    respond(error_response(Error{"internal", "the handler failed", {}}.as(ErrorKind::internal)));
  }
}

namespace {

// HttpGuard checks the raw bytes first (http_guard.hpp).
class Handler final : public HttpGuard {
 public:
  HTTP_PROTOTYPE(Handler)
  explicit Handler(std::shared_ptr<RestServer::State> state)
      : HttpGuard([s = state.get()](std::string_view method, std::string_view path) { return s->body_limit(method, path); }),
        state_(std::move(state)) {}
  void onRequest(const Pistache::Http::Request& request, ResponseWriter response) override {
    // Pistache 0.0.5 answers "Connection: close" to an HTTP/1.1 request that does not
    // mention the connection, though keep-alive is HTTP/1.1's default (RFC 9112 9.3):
    // clients then open a connection per request. Say what HTTP/1.1 means.
    if (request.version() == Pistache::Http::Version::Http11 &&
        !request.headers().has<Pistache::Http::Header::Connection>()) {
      response.headers().remove<Pistache::Http::Header::Connection>();
      response.headers().add<Pistache::Http::Header::Connection>(Pistache::Http::ConnectionControl::KeepAlive);
    }
    state_->handle(request, std::move(response));
  }

 private:
  std::shared_ptr<RestServer::State> state_;
};

}  // namespace

RestServer::RestServer(Runtime& runtime, ServerOptions options, std::unique_ptr<ApiKeys> keys)
    : state_(std::make_shared<State>(runtime, std::move(options), std::move(keys))) {
  runtime.post([state = state_] { state->runtime.service().subscribe(state->registry); });
}

RestServer::~RestServer() { stop(); }

Status RestServer::start() {
  try {
    Pistache::Address address(state_->options.host, Pistache::Port(state_->options.port));
    endpoint_ = std::make_unique<Pistache::Http::Endpoint>(address);
    auto opts = Pistache::Http::Endpoint::options()
                    .threads(state_->options.threads)
                    .flags(Pistache::Tcp::Options::ReuseAddr)
                    .maxRequestSize(std::max(state_->options.max_body, state_->options.max_import) + max_request_head)
                    .keepaliveTimeout(state_->options.keepalive)
                    .headerTimeout(state_->options.stream_timeout)
                    .bodyTimeout(state_->options.stream_timeout);
    endpoint_->init(opts);
    endpoint_->setHandler(Pistache::Http::make_handler<Handler>(state_));
    endpoint_->serveThreaded();
    runtime_post_arm();
    if (CallJournal* journal = state_->shared_journal()) {
      state_->journal_notices = journal->watch([weak = std::weak_ptr<State>(state_)](const JournalNotice& notice) {
        if (auto state = weak.lock()) state->on_journal_notice(notice);
      });
    }
  } catch (const std::exception& e) {
    endpoint_.reset();
    return Error{"listen_failed",
                 "cannot listen on " + state_->options.host + ":" + std::to_string(state_->options.port) + ": " + e.what(),
                 "server.listen"};
  }
  return ok_status();
}

void RestServer::runtime_post_arm() {
  state_->runtime.post([weak = std::weak_ptr<State>(state_)] {
    if (auto state = weak.lock()) state->arm_ping();
  });
}

std::uint16_t RestServer::port() const { return endpoint_ ? static_cast<std::uint16_t>(endpoint_->getPort()) : 0; }

bool RestServer::flush_webhooks(std::chrono::milliseconds timeout) { return state_->webhooks.flush(timeout); }

void RestServer::stop() {
  state_->journal_notices.reset();
  if (endpoint_) {
    state_->runtime.post([weak = std::weak_ptr<State>(state_)] {
      if (auto state = weak.lock()) state->ping_timer.cancel();
    });
  }
  if (endpoint_) {
    endpoint_->shutdown();
    endpoint_.reset();
  }
}

}  // namespace callback::rest
