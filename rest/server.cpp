#include "server.hpp"

#include "http_guard.hpp"

#include <callback/json.hpp>
#include <callback/operations.hpp>
#include <callback/options.hpp>
#include <callback/timestamp.hpp>
#include <callback/web.hpp>

#include <boost/json.hpp>
#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>

#include <atomic>
#include <charconv>
#include <functional>
#include <sstream>
#include <openssl/rand.h>

namespace callback::rest {

namespace json = boost::json;
using Pistache::Http::Code;
using Pistache::Http::Method;
using Pistache::Http::ResponseWriter;

const std::vector<std::pair<std::string_view, std::string_view>>& embedded_openapi();  // rest/openapi.json

namespace {

std::string random_secret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness");
  return std::string(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

Code status_for(const Error& e) {
  const std::string& c = e.code;
  if (c == "unauthorized") return Code::Unauthorized;
  if (c == "not_found" || c == "unknown_account") return Code::Not_Found;
  if (c == "method_not_allowed") return Code::Method_Not_Allowed;
  if (c == "already_final" || c == "account_exists" || c == "number_taken" || c == "email_taken") {
    return Code::Conflict;
  }
  if (c == "body_too_large") return Code::Request_Entity_Too_Large;
  if (c == "unsupported_media_type") return Code::Unsupported_Media_Type;
  if (c == "rate_limited") return Code::Too_Many_Requests;
  if (c == "denied.insufficient_balance") return Code::Payment_Required;
  if (c.starts_with("denied.") || c == "forbidden") return Code::Forbidden;
  if (c == "engine_unavailable" || c == "shutting_down" || c == "billing_unavailable" || c == "overloaded") {
    return Code::Service_Unavailable;
  }
  if (c == "store_failed" || c == "internal") return Code::Internal_Server_Error;
  return Code::Bad_Request;  // everything else is a mistake in the request
}

struct Reply {
  Code code = Code::Ok;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

Reply json_reply(Code code, const json::value& body) { return Reply{code, json::serialize(body)}; }
Reply error_reply(const Error& e) {
  Reply r = json_reply(status_for(e), error_body(e));
  if (e.code == "overloaded") r.headers.emplace_back("Retry-After", "1");
  return r;
}

// Any response header by name: Pistache 0.0.5 writes only typed headers (addRaw()'s are
// silently dropped from responses).
class NamedHeader final : public Pistache::Http::Header::Header {
 public:
  NamedHeader(std::string name, std::string value) : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }
  void write(std::ostream& out) const override { out << value_; }
  std::uint64_t hash() const override { return Pistache::Http::Header::detail::hash(name_.c_str()); }

 private:
  std::string name_, value_;
};

void send(ResponseWriter& response, Reply reply) {
  response.headers().add<Pistache::Http::Header::ContentType>(Pistache::Http::Mime::MediaType(reply.content_type));
  for (auto& [name, value] : reply.headers) {
    response.headers().add(std::make_shared<NamedHeader>(std::move(name), std::move(value)));
  }
  response.send(reply.code, reply.body);
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

std::optional<std::string> header(const Pistache::Http::Request& request, const std::string& name) {
  if (auto raw = request.headers().tryGetRaw(name)) return raw->value();
  return std::nullopt;
}

std::optional<std::string> query(const Pistache::Http::Request& request, const std::string& name) {
  return request.query().get(name);
}

Result<json::object> parse_body(const Pistache::Http::Request& request) {
  if (auto type = header(request, "Content-Type"); type && type->find("json") == std::string::npos) {
    return Error{"unsupported_media_type", "the body must be JSON (Content-Type: application/json)", "body"};
  }
  boost::system::error_code ec;
  json::value value = json::parse(request.body(), ec);
  if (ec) return Error{"invalid_json", "the body is not valid JSON: " + ec.message(), "body"};
  if (!value.is_object()) return Error{"invalid_json", "the body must be a JSON object", "body"};
  return std::move(value.get_object());
}

Result<std::string> string_field(const json::object& body, std::string_view key, bool required, std::size_t max = 200) {
  const auto* v = body.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required) return Error{"missing_field", "is required", std::string(key)};
    return std::string();
  }
  if (!v->is_string()) return Error{"invalid_type", "must be a string", std::string(key)};
  if (v->get_string().size() > max) {
    return Error{"too_long", "must be at most " + std::to_string(max) + " characters", std::string(key)};
  }
  return std::string(v->get_string());
}

Result<std::size_t> limit_param(const Pistache::Http::Request& request, std::size_t fallback) {
  auto text = query(request, "limit");
  if (!text) return fallback;
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc{} || end != text->data() + text->size() || n == 0 || n > 10'000) {
    return Error{"invalid_parameter", "limit must be a whole number from 1 to 10000", "limit"};
  }
  return n;
}

Result<std::optional<Timestamp>> time_param(const Pistache::Http::Request& request, const std::string& name) {
  auto text = query(request, name);
  if (!text || text->empty()) return std::optional<Timestamp>{};
  auto at = parse_timestamp(*text);
  if (!at) return Error{"invalid_parameter", "must be a time like 2026-11-26T09:00:00Z", name};
  return std::optional<Timestamp>{*at};
}

}  // namespace

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
      {.name = "keys_db", .type = T::string, .default_value = "",
       .description = "API keys' database (read by keys_database_path)"},
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

struct RestServer::State : std::enable_shared_from_this<RestServer::State> {
  Runtime& runtime;
  ServerOptions options;
  std::unique_ptr<ApiKeys> keys;
  CallRegistry registry;
  WebhookSender webhooks;
  WebPage* page = nullptr;
  std::string token_secret = random_secret();
  Counter& requests_ok;
  Counter& requests_client_error;
  Counter& requests_server_error;
  Histogram& handling;  // time in the handler (a POST's wait for the service is in `accepting`)
  Histogram& accepting;  // POST /v1/callbacks: request to 202 (validation, billing, originate)

  State(Runtime& r, ServerOptions o, std::unique_ptr<ApiKeys> k)
      : runtime(r),
        options(std::move(o)),
        keys(std::move(k)),
        webhooks(r.context().log, r.context().metrics,
                 [this](const std::string& owner) { return keys->webhook_secret(owner); }, options.webhooks),
        requests_ok(r.context().metrics.counter("callbackd_http_requests_total", "HTTP requests by status class",
                                                "class=\"2xx\"")),
        requests_client_error(r.context().metrics.counter("callbackd_http_requests_total",
                                                          "HTTP requests by status class", "class=\"4xx\"")),
        requests_server_error(r.context().metrics.counter("callbackd_http_requests_total",
                                                          "HTTP requests by status class", "class=\"5xx\"")),
        handling(r.context().metrics.histogram("callbackd_http_handler_seconds", "Time in the request handler")),
        accepting(r.context().metrics.histogram("callbackd_callback_accept_seconds",
                                                "POST of a callback to its answer (authorized and dialing, or refused)")) {
    registry.on_event = [this](const CallEvent& event, const Snapshot& snapshot) {
      // Replayed from the journal after a restart: the receiver was told before.
      if (snapshot.webhook_url.empty() || event.replayed) return;
      const auto name = WebhookSender::event_for(to_string(event.call.state()));
      if (name.empty()) return;
      webhooks.send({event.call.id(), snapshot.webhook_url, std::string(name), snapshot.json, snapshot.owner});
    };
  }

  TimerHandle ping_timer;  // on the service thread
  void arm_ping() {
    std::weak_ptr<State> weak = shared_from_this();
    ping_timer = runtime.context().clock.schedule(options.stream_ping, [weak] {
      if (auto self = weak.lock()) {
        self->registry.ping(": keep-alive\n\n");
        self->arm_ping();
      }
    });
  }

  std::string token_for(const std::string& id) const { return hmac_sha256_hex(token_secret, id).substr(0, 32); }

  Result<ApiKeyInfo> authenticate(const Pistache::Http::Request& request) {
    std::string key;
    if (auto auth = header(request, "Authorization")) {
      if (!auth->starts_with("Bearer ")) return Error{"unauthorized", "Authorization must be \"Bearer <key>\"", "api_key"};
      key = auth->substr(7);
    } else if (auto x = header(request, "X-API-Key")) {
      key = *x;
    }
    return keys->verify(key);
  }

  // --- callbacks ---------------------------------------------------------------------

  // Submits and answers once the service said yes or no (after authorization).
  // Hands the request to the service and answers 202 once it is authorized and dialing
  // (or the refusal): the API with the callback and its Location, the page with the
  // callback and the address of its event stream.
  void submit(CallbackRequest request, std::shared_ptr<ResponseWriter> response, bool public_page) {
    runtime.sink().submit(std::move(request), [this, response, public_page, started = std::chrono::steady_clock::now()](
                                                  Result<std::string> id) {
      accepting.observe(std::chrono::steady_clock::now() - started);
      if (!id) return reply(*response, error_reply(id.error()));
      auto snapshot = registry.find(*id);
      const std::string callback = snapshot ? snapshot->json : json::serialize(json::object{{"id", *id}});
      if (public_page) {
        const std::string events_url = "/v1/public/callbacks/" + *id + "/events?token=" + token_for(*id);
        return reply(*response, Reply{Code::Accepted, "{\"callback\":" + callback + ",\"events_url\":" +
                                                          json::serialize(json::value(events_url)) + "}"});
      }
      Reply r{Code::Accepted, callback};
      r.headers.emplace_back("Location", "/v1/callbacks/" + *id);
      reply(*response, std::move(r));
    });
  }

  void reply(ResponseWriter& response, Reply r) {
    const int code = static_cast<int>(r.code);
    (code >= 500 ? requests_server_error : code >= 400 ? requests_client_error : requests_ok).add();
    send(response, std::move(r));
  }

  void post_callback(const Pistache::Http::Request& request, std::shared_ptr<ResponseWriter> response,
                     const ApiKeyInfo& key) {
    auto body = parse_body(request);
    if (!body) return reply(*response, error_reply(body.error()));
    for (const auto& [k, v] : *body) {
      if (k != "caller" && k != "callee" && k != "account" && k != "campaign" && k != "limit_seconds" &&
          k != "status_callback" && k != "pin" && k != "language") {
        return reply(*response, error_reply(Error{"unknown_field",
                                                  "unknown field (known: caller, callee, account, campaign, "
                                                  "limit_seconds, status_callback, pin, language)",
                                                  std::string(k)}));
      }
    }
    CallbackForm form;
    form.origin = Origin::rest;
    auto caller = string_field(*body, "caller", true, 40);
    if (!caller) return reply(*response, error_reply(caller.error()));
    auto callee = string_field(*body, "callee", true, 40);
    if (!callee) return reply(*response, error_reply(callee.error()));
    auto account = string_field(*body, "account", false, 64);
    if (!account) return reply(*response, error_reply(account.error()));
    auto campaign = string_field(*body, "campaign", false, 64);
    if (!campaign) return reply(*response, error_reply(campaign.error()));
    auto pin = string_field(*body, "pin", false, 128);
    if (!pin) return reply(*response, error_reply(pin.error()));
    auto webhook = string_field(*body, "status_callback", false, 2000);
    if (!webhook) return reply(*response, error_reply(webhook.error()));
    auto language = string_field(*body, "language", false);  // make_request checks its form
    if (!language) return reply(*response, error_reply(language.error()));
    if (account->empty() == campaign->empty()) {
      return reply(*response, error_reply(Error{"missing_field", "give exactly one of \"account\" or \"campaign\"",
                                                account->empty() ? "account" : "campaign"}));
    }
    if (const auto* limit = body->if_contains("limit_seconds"); limit != nullptr && !limit->is_null()) {
      if (!limit->is_int64() || limit->get_int64() < 1 || limit->get_int64() > 86400) {
        return reply(*response,
                     error_reply(Error{"invalid_type", "must be a whole number of seconds from 1 to 86400",
                                       "limit_seconds"}));
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
        return reply(*response, error_reply(Error{"invalid_header", "must be 1 to 200 characters", "Idempotency-Key"}));
      }
      form.idempotency_key = *idempotency;
    }
    form.metadata["owner"] = key.id;
    if (!webhook->empty()) form.metadata["status_callback"] = *webhook;
    auto made = make_request(form, runtime.config().numbering);  // no control characters anywhere
    if (!made) return reply(*response, error_reply(made.error()));
    if (!webhook->empty()) {
      if (auto ok = check_webhook_url(*webhook); !ok) return reply(*response, error_reply(ok.error()));
    }
    // Keys of different clients never collide.
    if (!made->idempotency_key.empty()) made->idempotency_key = key.id + ":" + made->idempotency_key;
    submit(std::move(*made), std::move(response), false);
  }

  // --- tenancy: a callbacks key sees only its own callbacks (rest/api_keys.hpp) --------

  static Status need_scope(const ApiKeyInfo& key, KeyScope scope, std::string_view what) {
    if (key.scope == KeyScope::admin || key.scope == scope) return ok_status();
    return Error{"forbidden",
                 "this API key's scope (" + std::string(to_string(key.scope)) + ") does not cover " + std::string(what),
                 "api_key"};
  }
  // The callback `id` if `key` may see it; another key's is as unknown as a made-up id
  // (404, not 403), so ids are no oracle. No key: the public page's token was checked.
  std::optional<Snapshot> visible(const std::string& id, const ApiKeyInfo* key) const {
    auto snapshot = registry.find(id);
    if (snapshot && key != nullptr && key->scope != KeyScope::admin && snapshot->owner != key->id) return std::nullopt;
    return snapshot;
  }
  static Error no_callback(const std::string& id) { return Error{"not_found", "no callback \"" + id + "\"", "id"}; }

  void stream_events(const std::string& id, ResponseWriter& response, const ApiKeyInfo* key) {
    if (!visible(id, key)) return reply(response, error_reply(no_callback(id)));
    requests_ok.add();
    // Pistache 0.0.5's ResponseStream::flush() empties the transport's whole write queue
    // (every connection's) on the calling thread. From the service thread that races with
    // the reactor; on the reactor thread it still empties the queue of a connection whose
    // "writable" event epoll has already handed out, and that event then aborts callbackd
    // ("could not find write data": benchmarks/soak.py hit it within minutes). So nothing
    // here flushes: the head, like every frame, goes through Peer::send, which only queues,
    // and the frames are HTTP/1.1 chunks written by hand.
    std::weak_ptr<Pistache::Tcp::Peer> peer = response.peer();
    response.timeout().disarm();  // as ResponseStream::flush() did
    {
      const std::string head =
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
          "Transfer-Encoding: chunked\r\n\r\n";
      response.peer()->send(Pistache::RawBuffer(head, head.size()));
    }
    auto chunk = [](std::string_view data) {
      char size[20];
      auto [end, ec] = std::to_chars(size, size + sizeof size, data.size(), 16);
      (void)ec;
      std::string out(size, end);
      out += "\r\n";
      out += data;
      out += "\r\n";
      return out;
    };
    auto subscriber = std::make_shared<Subscriber>();
    subscriber->send = [peer, chunk](const std::string& frame) {
      auto alive = peer.lock();
      if (!alive) return false;  // the client went away
      const std::string bytes = chunk(frame);
      alive->send(Pistache::RawBuffer(bytes, bytes.size()));
      return true;
    };
    subscriber->close = [peer] {
      if (auto alive = peer.lock()) {
        alive->send(Pistache::RawBuffer(std::string("0\r\n\r\n"), 5));
        alive->setIdle(true);  // answered whole: the connection's next request may follow (http_guard.hpp)
      }
    };
    if (!registry.subscribe(id, subscriber)) subscriber->close();  // gone since the check above
  }

  // --- routing -----------------------------------------------------------------------

  // Rate decks are big; everything else is small.
  std::size_t body_limit(std::string_view method, std::string_view path) const {
    const auto parts = split_path(path);
    const bool deck_import = method == "POST" && parts.size() == 3 && parts[0] == "v1" && parts[1] == "rates";
    return deck_import ? options.max_import : options.max_body;
  }

  void handle(const Pistache::Http::Request& request, ResponseWriter response) {
    const auto started = std::chrono::steady_clock::now();
    try {
      route(request, std::move(response));
      handling.observe(std::chrono::steady_clock::now() - started);
    } catch (const std::exception& e) {
      runtime.context().log.error("callbackd", std::string("request failed: ") + e.what());
    }
  }

  // Hands a request to a plugin's route; its answer, from any thread, goes out once.
  void to_plugin(const Pistache::Http::Request& request, std::shared_ptr<ResponseWriter> response,
                 const HttpHandler& handler) {
    HttpRequest plain{.method = Pistache::Http::methodString(request.method()),
                      .path = request.resource(),
                      .body = request.body(),
                      .client_ip = request.address().host()};
    const auto& query = request.query();
    for (auto it = query.parameters_begin(); it != query.parameters_end(); ++it) plain.query.emplace_back(*it);
    for (const auto& typed : request.headers().list()) {
      std::ostringstream value;
      typed->write(value);
      plain.headers.emplace_back(typed->name(), value.str());
    }
    for (const auto& [name, raw] : request.headers().rawList()) plain.headers.emplace_back(raw.name(), raw.value());
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto self = shared_from_this();
    HttpRespond respond = [self, response, answered](HttpResponse answer) {
      if (answered->exchange(true)) return;  // a second answer: the first one went out
      if (answer.status < 100 || answer.status > 599) {
        self->runtime.context().log.error("callbackd", "a plugin's route answered status " +
                                                           std::to_string(answer.status) + "; sent 500");
        return self->reply(*response, error_reply(Error{"internal", "the handler gave no valid answer", {}}));
      }
      self->reply(*response, Reply{static_cast<Code>(answer.status), std::move(answer.body),
                                   std::move(answer.content_type), std::move(answer.headers)});
    };
    try {
      handler(plain, respond);
    } catch (const std::exception& e) {
      runtime.context().log.error("callbackd", std::string("a plugin's route failed: ") + escape_control(e.what()));
      respond(HttpResponse{.status = 500, .body = json::serialize(error_body(Error{"internal", "the handler failed", {}}))});
    }
  }

  void route(const Pistache::Http::Request& request, ResponseWriter response) {
    const std::string& path = request.resource();
    const auto parts = split_path(path);
    const Method method = request.method();
    auto method_not_allowed = [&](std::string_view allowed) {
      Reply r = error_reply(Error{"method_not_allowed", "use " + std::string(allowed), "method"});
      r.headers.emplace_back("Allow", std::string(allowed));
      reply(response, std::move(r));
    };
    if (const auto limit = body_limit(Pistache::Http::methodString(method), path); request.body().size() > limit) {
      return reply(response,
                   error_reply(Error{"body_too_large", "the body is over " + std::to_string(limit) + " bytes", "body"}));
    }
    // What triggers and front ends added (an SMS gateway's webhook): they check it themselves.
    if (auto plugin = runtime.http_routes().find(Pistache::Http::methodString(method), path);
        plugin.handler || !plugin.allowed.empty()) {
      if (!plugin.handler) return method_not_allowed(plugin.allowed);
      return to_plugin(request, std::make_shared<ResponseWriter>(std::move(response)), plugin.handler);
    }
    // Public: the page, health, metrics, the API description.
    if (parts.empty() || parts[0] == "assets" || parts[0] == "index.html") {
      if (method != Method::Get) return method_not_allowed("GET");
      auto file = page != nullptr ? page->asset(path) : std::nullopt;
      if (!file) return reply(response, error_reply(Error{"not_found", "no such page", "path"}));
      return reply(response, Reply{Code::Ok, std::move(file->body), std::move(file->content_type)});
    }
    if (parts.size() == 1 && parts[0] == "healthz") return healthz(response);
    if (parts.size() == 1 && parts[0] == "metrics") {
      return reply(response, Reply{Code::Ok, runtime.context().metrics.render_prometheus(),
                                   "text/plain; version=0.0.4"});
    }
    if (parts.size() < 2 || parts[0] != "v1") {
      return reply(response, error_reply(Error{"not_found", "no such endpoint: " + path, "path"}));
    }
    if (parts.size() == 2 && parts[1] == "openapi.json") return reply(response, Reply{Code::Ok, std::string(embedded_openapi().front().second)});
    if (parts[1] == "public") return route_public(request, std::move(response), parts);

    auto key = authenticate(request);
    if (!key) return reply(response, error_reply(key.error()));
    const std::string_view resource = parts[1];
    if (resource == "callbacks") {
      if (auto ok = need_scope(*key, KeyScope::callbacks, "callbacks"); !ok) return reply(response, error_reply(ok.error()));
      if (parts.size() == 2) {
        if (method == Method::Post) {
          return post_callback(request, std::make_shared<ResponseWriter>(std::move(response)), *key);
        }
        if (method == Method::Get) return list_callbacks(request, response, *key);
        return method_not_allowed("GET, POST");
      }
      const std::string id(parts[2]);
      if (parts.size() == 3) {
        if (method == Method::Get) {
          auto snapshot = visible(id, &*key);
          if (!snapshot) return reply(response, error_reply(no_callback(id)));
          return reply(response, Reply{Code::Ok, std::move(snapshot->json)});
        }
        if (method == Method::Delete) return cancel(id, std::make_shared<ResponseWriter>(std::move(response)), *key);
        return method_not_allowed("GET, DELETE");
      }
      if (parts.size() == 4 && parts[3] == "events") {
        if (method != Method::Get) return method_not_allowed("GET");
        return stream_events(id, response, &*key);
      }
    }
    const bool operator_resource = resource == "accounts" || resource == "cdrs" || resource == "stats" ||
                                   resource == "rates" || resource == "triggers";
    if (operator_resource) {
      if (auto ok = need_scope(*key, KeyScope::operator_, "accounts, rates, CDRs and statistics"); !ok) {
        return reply(response, error_reply(ok.error()));
      }
    }
    if (resource == "accounts" && method == Method::Post && (parts.size() == 2 || (parts.size() == 4 && parts[3] == "topup"))) {
      return operator_write(request, response, parts);
    }
    if (resource == "rates" && parts.size() == 3) {
      if (method != Method::Post) return method_not_allowed("POST");
      return operator_write(request, response, parts);
    }
    if (resource == "triggers" && parts.size() == 2) {
      if (method != Method::Get) return method_not_allowed("GET");
      return triggers(response);
    }
    if (operator_resource) {
      if (method != Method::Get) return method_not_allowed(resource == "accounts" && parts.size() == 2 ? "GET, POST" : "GET");
      return operator_read(request, response, parts);
    }
    if (resource == "policies" && parts.size() == 4 && (parts[2] == "account" || parts[2] == "campaign")) {
      if (method != Method::Get && method != Method::Put) return method_not_allowed("GET, PUT");
      return payer_policy(request, response, parts);
    }
    reply(response, error_reply(Error{"not_found", "no such endpoint: " + path, "path"}));
  }

  // GET / PUT /v1/policies/{account|campaign}/{id}: a payer's toll-fraud policy, replaced whole.
  void payer_policy(const Pistache::Http::Request& request, ResponseWriter& response,
                    const std::vector<std::string_view>& parts) {
    auto* admin = runtime.billing() != nullptr ? runtime.billing()->admin() : nullptr;
    if (admin == nullptr) {
      return reply(response, error_reply(Error{"not_found", "this billing backend keeps no policies", "path"}));
    }
    const Payer payer = parts[2] == "account" ? Payer{AccountId{std::string(parts[3])}}
                                              : Payer{CampaignId{std::string(parts[3])}};
    if (request.method() == Method::Get) {
      auto policy = admin->policy(payer);
      if (!policy) return reply(response, error_reply(policy.error()));
      return reply(response, json_reply(Code::Ok, to_json(*policy)));
    }
    auto body = parse_body(request);
    if (!body) return reply(response, error_reply(body.error()));
    PolicyForm form{.payer = payer};
    for (const auto& [k, v] : *body) {
      if (k == "allow_prefixes" || k == "deny_prefixes") {
        auto& target = k == "allow_prefixes" ? form.allow_prefixes : form.deny_prefixes;
        if (!v.is_array()) return reply(response, error_reply(Error{"invalid_type", "must be an array of strings", std::string(k)}));
        for (const auto& prefix : v.as_array()) {
          if (!prefix.is_string()) {
            return reply(response, error_reply(Error{"invalid_type", "must be an array of strings", std::string(k)}));
          }
          target.emplace_back(prefix.as_string());
        }
      } else if (k == "max_call_cost" || k == "daily_spend") {
        if (v.is_null()) continue;
        if (!v.is_string()) return reply(response, error_reply(Error{"invalid_type", "must be a decimal string or null", std::string(k)}));
        (k == "max_call_cost" ? form.max_call_cost : form.daily_spend) = std::string(v.as_string());
      } else if (k == "max_concurrent") {
        if (!v.is_int64() || v.as_int64() < 0 || v.as_int64() > 1'000'000) {
          return reply(response, error_reply(Error{"invalid_type", "must be a whole number from 0 (no limit)", "max_concurrent"}));
        }
        form.max_concurrent = static_cast<int>(v.as_int64());
      } else {
        return reply(response, error_reply(Error{"unknown_field",
                                                 "unknown field (known: allow_prefixes, deny_prefixes, max_call_cost, "
                                                 "daily_spend, max_concurrent)",
                                                 std::string(k)}));
      }
    }
    auto policy = make_policy(form);
    if (!policy) return reply(response, error_reply(policy.error()));
    if (auto ok = admin->put_policy(*policy); !ok) return reply(response, error_reply(ok.error()));
    reply(response, json_reply(Code::Ok, to_json(*policy)));
  }

  void route_public(const Pistache::Http::Request& request, ResponseWriter response,
                    const std::vector<std::string_view>& parts) {
    if (page == nullptr) {
      return reply(response, error_reply(Error{"not_found", "no web page is configured", "path"}));
    }
    const Method method = request.method();
    if (parts.size() == 3 && parts[2] == "config") return reply(response, json_reply(Code::Ok, page->public_config()));
    if (parts.size() == 3 && parts[2] == "callbacks") {
      if (method != Method::Post) {
        Reply r = error_reply(Error{"method_not_allowed", "use POST", "method"});
        r.headers.emplace_back("Allow", "POST");
        return reply(response, std::move(r));
      }
      auto body = parse_body(request);
      if (!body) return reply(response, error_reply(body.error()));
      std::chrono::seconds retry_after{0};
      auto form = page->admit(*body, request.address().host(), runtime.context().clock.now(),
                              runtime.config().numbering, retry_after);
      if (!form) {
        Reply r = error_reply(form.error());
        if (retry_after.count() > 0) r.headers.emplace_back("Retry-After", std::to_string(retry_after.count()));
        return reply(response, std::move(r));
      }
      auto made = make_request(*form, runtime.config().numbering);
      if (!made) return reply(response, error_reply(made.error()));
      return submit(std::move(*made), std::make_shared<ResponseWriter>(std::move(response)), true);
    }
    if (parts.size() == 5 && parts[2] == "callbacks" && parts[4] == "events") {
      const std::string id(parts[3]);
      const auto token = query(request, "token").value_or("");
      if (!equal_constant_time(token, token_for(id))) {
        return reply(response, error_reply(Error{"forbidden", "wrong or missing token for this callback", "token"}));
      }
      return stream_events(id, response, nullptr);
    }
    reply(response, error_reply(Error{"not_found", "no such endpoint: " + request.resource(), "path"}));
  }

  void list_callbacks(const Pistache::Http::Request& request, ResponseWriter& response, const ApiKeyInfo& key) {
    std::optional<CallState> state;
    if (auto text = query(request, "state"); text && !text->empty()) {
      state = call_state_from_string(*text);
      if (!state) return reply(response, error_reply(Error{"invalid_parameter", "unknown state \"" + *text + "\"", "state"}));
    }
    auto since = time_param(request, "since");
    if (!since) return reply(response, error_reply(since.error()));
    auto limit = limit_param(request, 100);
    if (!limit) return reply(response, error_reply(limit.error()));
    std::string body = "{\"callbacks\":[";
    bool first = true;
    const auto owner = key.scope == KeyScope::admin ? std::nullopt : std::optional<std::string>(key.id);
    for (const auto& s : registry.list(state, since->value_or(Timestamp{}), *limit, owner)) {
      if (!first) body += ',';
      first = false;
      body += s.json;
    }
    body += "]}";
    reply(response, Reply{Code::Ok, std::move(body)});
  }

  void cancel(const std::string& id, std::shared_ptr<ResponseWriter> response, const ApiKeyInfo& key) {
    auto snapshot = visible(id, &key);
    if (!snapshot) return reply(*response, error_reply(no_callback(id)));
    if (is_final(snapshot->state)) {
      return reply(*response, error_reply(Error{"already_final",
                                                "callback " + id + " already ended (" +
                                                    std::string(to_string(snapshot->state)) + ")",
                                                "id"}));
    }
    runtime.post([this, id, response] {
      auto ok = runtime.service().cancel(id);
      if (!ok) {  // it ended since the check above
        Error e = ok.error();
        e.code = "already_final";
        return reply(*response, error_reply(e));
      }
      auto now = registry.find(id);
      reply(*response, Reply{Code::Accepted, now ? now->json : "{\"id\":\"" + id + "\"}"});
    });
  }

  // GET /v1/triggers: each configured trigger and how it is doing.
  void triggers(ResponseWriter& response) {
    json::array list;
    for (const auto& [name, plugin, status] : runtime.trigger_status()) {
      const auto when = [](const std::optional<Timestamp>& t) -> json::value {
        return t ? json::value(format_rfc3339(*t)) : json::value(nullptr);
      };
      json::object counts;
      for (const auto& [outcome, n] : status.counts) counts[outcome] = n;
      list.push_back(json::object{{"name", name},
                                  {"plugin", plugin},
                                  {"healthy", status.healthy},
                                  {"last_poll", when(status.last_poll)},
                                  {"last_message", when(status.last_message)},
                                  {"last_error", status.last_error},
                                  {"last_error_at", when(status.last_error_at)},
                                  {"counts", std::move(counts)}});
    }
    reply(response, json_reply(Code::Ok, json::object{{"triggers", std::move(list)}}));
  }

  void healthz(ResponseWriter& response) {
    EngineStatus status;
    std::size_t in_flight = 0;
    try {
      runtime.run_on_service_thread([&] {
        status = runtime.engine().status();
        in_flight = runtime.service().in_flight();
      });
    } catch (const std::runtime_error&) {  // stopping: the service thread is gone
      return reply(response, error_reply(Error{"shutting_down", "the service is stopping", {}}));
    }
    std::size_t connected = 0;
    json::array servers;
    for (const auto& s : status.servers) {
      connected += s.connected;
      servers.push_back(to_json(s));
    }
    runtime.context().metrics.gauge("callback_engine_connections", "Asterisk servers logged in").set(
        static_cast<std::int64_t>(connected));
    const bool healthy = connected > 0 && runtime.accepting();
    json::object body{{"status", healthy ? "ok" : "degraded"},
                      {"accepting", runtime.accepting()},
                      {"engines", json::object{{"connected", connected},
                                               {"configured", status.servers.size()},
                                               {"servers", std::move(servers)}}},
                      {"in_flight", in_flight}};
    reply(response, json_reply(healthy ? Code::Ok : Code::Service_Unavailable, body));
  }

  // Creating accounts, topping them up, importing a rate deck, with the checks callbackctl
  // uses (callback/operations.hpp). On the HTTP thread: the store locks its connection and
  // billing runs its admin work on its own writer, so the event loop never waits for them.
  void operator_write(const Pistache::Http::Request& request, ResponseWriter& response,
                      const std::vector<std::string_view>& parts) {
    Reply result;
    if (parts[1] == "rates") {
      auto* admin = runtime.billing() != nullptr ? runtime.billing()->admin() : nullptr;
      if (admin == nullptr) {
        return reply(response, error_reply(Error{"not_found", "this billing backend keeps no rate decks", "path"}));
      }
      const std::string tariff(parts[2]);
      auto currency_text = query(request, "currency").value_or("CNY");
      auto currency = Currency::of(currency_text);
      if (!currency) return reply(response, error_reply(currency.error().at("currency")));
      std::invoke([&] {
        std::istringstream csv(request.body());
        auto report = admin->import_rates(tariff, csv, *currency);
        if (!report) return void(result = error_reply(report.error()));
        result = json_reply(Code::Ok, json::object{{"tariff", report->tariff},
                                                  {"rates", report->rates},
                                                  {"took_ms", report->took.count()}});
      });
      return reply(response, std::move(result));
    }
    auto body = parse_body(request);
    if (!body) return reply(response, error_reply(body.error()));
    if (parts.size() == 2) {
      AccountForm form;
      for (const auto& [k, v] : *body) {
        if (k == "numbers" || k == "emails") {
          auto& list = k == "numbers" ? form.numbers : form.emails;
          const std::string field(k);
          if (!v.is_array()) return reply(response, error_reply(Error{"invalid_type", "must be an array of strings", field}));
          for (const auto& n : v.as_array()) {
            if (!n.is_string()) return reply(response, error_reply(Error{"invalid_type", "must be an array of strings", field}));
            list.emplace_back(n.as_string());
          }
          continue;
        }
        std::string* target = k == "id" ? &form.id : k == "name" ? &form.name : k == "currency" ? &form.currency
                              : k == "balance" ? &form.balance : k == "credit_limit" ? &form.credit_limit
                              : k == "tariff" ? &form.tariff : k == "pin" ? &form.pin
                              : k == "language" ? &form.language : nullptr;
        if (target == nullptr) {
          return reply(response, error_reply(Error{"unknown_field",
                                                   "unknown field (known: id, name, currency, balance, credit_limit, "
                                                   "tariff, pin, numbers, emails, language)",
                                                   std::string(k)}));
        }
        if (!v.is_string()) return reply(response, error_reply(Error{"invalid_type", "must be a string", std::string(k)}));
        *target = std::string(v.as_string());
      }
      if (form.id.empty()) return reply(response, error_reply(Error{"missing_field", "is required", "id"}));
      std::invoke([&] {
        auto account = create_account(runtime.store(), form, runtime.config().numbering);
        if (!account) return void(result = error_reply(account.error()));
        result = json_reply(Code::Created, to_json(*account));
        result.headers.emplace_back("Location", "/v1/accounts/" + account->id);
      });
      return reply(response, std::move(result));
    }
    auto amount = string_field(*body, "amount", true, 40);
    if (!amount) return reply(response, error_reply(amount.error()));
    auto reference = string_field(*body, "reference", false, 200);
    if (!reference) return reply(response, error_reply(reference.error()));
    const std::string id(parts[2]);
    std::invoke([&] {
      auto entry = top_up(runtime.store(), id, *amount, *reference);
      if (!entry) return void(result = error_reply(entry.error()));
      auto account = runtime.store().accounts().find(id);
      if (!account || !*account) return void(result = error_reply(Error{"store_failed", "cannot read the account", "id"}));
      result = json_reply(Code::Ok, to_json(**account));
    });
    reply(response, std::move(result));
  }

  // Operator reads, on the HTTP thread too.
  void operator_read(const Pistache::Http::Request& request, ResponseWriter& response,
                     const std::vector<std::string_view>& parts) {
    const std::string_view resource = parts[1];
    Reply result;
    if (resource == "accounts") {
      std::invoke([&] {
        if (parts.size() == 2) {
          auto accounts = runtime.store().accounts().list();
          if (!accounts) return void(result = error_reply(accounts.error()));
          json::array list;
          for (const auto& a : *accounts) list.push_back(to_json(a));
          result = json_reply(Code::Ok, json::object{{"accounts", std::move(list)}});
        } else {
          auto account = runtime.store().accounts().find(std::string(parts[2]));
          if (!account) return void(result = error_reply(account.error()));
          if (!*account) {
            return void(result = error_reply(Error{"not_found", "no account \"" + std::string(parts[2]) + "\"", "id"}));
          }
          result = json_reply(Code::Ok, to_json(**account));
        }
      });
      return reply(response, std::move(result));
    }
    if (resource == "cdrs") {
      auto since = time_param(request, "since");
      if (!since) return reply(response, error_reply(since.error()));
      auto until = time_param(request, "until");
      if (!until) return reply(response, error_reply(until.error()));
      auto limit = limit_param(request, 100);
      if (!limit) return reply(response, error_reply(limit.error()));
      CdrQuery q{.since = *since, .until = *until, .account = query(request, "account").value_or(""),
                 .number = query(request, "number").value_or(""), .callback_id = query(request, "callback_id").value_or(""),
                 .limit = *limit};
      std::invoke([&] {
        json::array list;
        auto ok = runtime.store().cdrs().query(q, [&](const Cdr& c) {
          list.push_back(to_json(c));
          return true;
        });
        result = ok ? json_reply(Code::Ok, json::object{{"cdrs", std::move(list)}}) : error_reply(ok.error());
      });
      return reply(response, std::move(result));
    }
    auto* admin = runtime.billing() != nullptr ? runtime.billing()->admin() : nullptr;
    if (admin == nullptr) {
      return reply(response, error_reply(Error{"not_found", "this billing backend keeps no rates or statistics", "path"}));
    }
    if (resource == "stats") {
      auto limit = limit_param(request, 100);
      if (!limit) return reply(response, error_reply(limit.error()));
      std::string digits;
      if (auto text = query(request, "number"); text && !text->empty()) {
        auto number = PhoneNumber::parse(*text, runtime.config().numbering);
        if (!number) return reply(response, error_reply(number.error().at("number")));
        digits = number->digits();
      }
      std::invoke([&] {
        auto rows = admin->caller_stats(digits, *limit);
        if (!rows) return void(result = error_reply(rows.error()));
        json::array list;
        for (const auto& s : *rows) list.push_back(to_json(s));
        result = json_reply(Code::Ok, json::object{{"stats", std::move(list)}});
      });
      return reply(response, std::move(result));
    }
    // rates: ?tariff=&lookup=NUMBER (the one that applies), or the deck (?limit=).
    const std::string tariff = query(request, "tariff").value_or("default");
    if (auto lookup = query(request, "lookup")) {
      auto number = PhoneNumber::parse(*lookup, runtime.config().numbering);
      if (!number) return reply(response, error_reply(number.error().at("lookup")));
      auto rate = runtime.billing()->rater().rate(tariff, *number, runtime.context().clock.now());
      if (!rate) {
        return reply(response, error_reply(Error{"not_found", "no rate for " + number->digits() + " in tariff " + tariff,
                                                 "lookup"}));
      }
      return reply(response, json_reply(Code::Ok, json::object{{"tariff", tariff},
                                                              {"rates", json::array{to_json(*rate)}}}));
    }
    auto limit = limit_param(request, 100);
    if (!limit) return reply(response, error_reply(limit.error()));
    std::invoke([&] {
      auto rates = admin->rates(tariff, query(request, "prefix").value_or(""), *limit);
      if (!rates) return void(result = error_reply(rates.error()));
      json::array list;
      for (const auto& r : *rates) list.push_back(to_json(r));
      result = json_reply(Code::Ok, json::object{{"tariff", tariff}, {"rates", std::move(list)}});
    });
    reply(response, std::move(result));
  }
};

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
  for (const auto& frontend : runtime.frontends()) {
    if (auto* page = dynamic_cast<WebPage*>(frontend.get())) state_->page = page;
  }
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
