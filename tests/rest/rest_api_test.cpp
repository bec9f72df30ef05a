// callbackd's REST API end to end: a Runtime (SQLite store and billing, the AMI engine)
// against the Asterisk fake, the RestServer on a free port, and libcurl as the client.
#include "api_keys.hpp"
#include "fake_asterisk.hpp"
#include "postgres.hpp"
#include "raw_http.hpp"
#include "server.hpp"
#include "sqlite_store.hpp"
#include "temp_dir.hpp"

#include <callback/billing.hpp>
#include <callback_internal/runtime.hpp>
#include <callback/secret.hpp>

#include <boost/json.hpp>
#include <curl/curl.h>
#include "schema_rollback.hpp"

#include <gtest/gtest.h>

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <condition_variable>
#include <mutex>
#include <fstream>
#include <sstream>

namespace callback::rest {
namespace {

// The API keys of the SQLite store at `path` as another process (callbackctl) sees them: a
// connection of its own, a cache of its own.
std::unique_ptr<ApiKeys> sqlite_keys(const std::filesystem::path& path) {
  auto store = store_sqlite::SqliteStore::open({.path = path});
  if (!store) throw std::runtime_error(store.error().describe());
  auto* keys = (*store)->api_keys();
  return std::make_unique<ApiKeys>(*keys, std::chrono::seconds{1}, std::shared_ptr<void>(std::move(*store)));
}

namespace json = boost::json;

struct Response {
  long status = 0;
  bool cut = false;  // the server closed the connection mid-response (an event stream cut)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  json::value json() const { return json::parse(body); }
  std::string error_code() const { return json().at("error").at("code").as_string().c_str(); }
  std::string error_field() const { return json().at("error").at("field").as_string().c_str(); }
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::size_t collect_header(char* data, std::size_t size, std::size_t n, void* out) {
  std::string line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

// The API's own description (rest/openapi.json, as served): a response must have every
// property its schema requires, of the declared type (null only where nullable), and
// strings from the declared enums. Reports the JSON path of the first mismatch.
class Contract {
 public:
  explicit Contract(json::value document) : document_(std::move(document)) {}
  std::string mismatch(const json::value& value, const std::string& schema_name) const {
    return check(value, document_.at("components").at("schemas").at(schema_name), "$");
  }

 private:
  std::string check(const json::value& value, const json::value& schema_in, const std::string& path) const {
    const json::value* schema = &schema_in;
    if (const auto* ref = schema->as_object().if_contains("$ref")) {
      std::string name(ref->as_string());
      schema = &document_.at("components").at("schemas").at(name.substr(name.rfind('/') + 1));
    }
    const auto& s = schema->as_object();
    if (value.is_null()) {
      const auto* nullable = s.if_contains("nullable");
      return nullable && nullable->as_bool() ? "" : path + ": null where the schema allows none";
    }
    const std::string type = s.contains("type") ? std::string(s.at("type").as_string()) : "";
    if (type == "object") {
      if (!value.is_object()) return path + ": expected an object";
      if (const auto* required = s.if_contains("required")) {
        for (const auto& key : required->as_array()) {
          if (!value.as_object().contains(key.as_string())) return path + ": missing " + std::string(key.as_string());
        }
      }
      if (const auto* properties = s.if_contains("properties")) {
        for (const auto& [key, sub] : properties->as_object()) {
          if (const auto* v = value.as_object().if_contains(key)) {
            if (auto m = check(*v, sub, path + "." + std::string(key)); !m.empty()) return m;
          }
        }
      }
    } else if (type == "array") {
      if (!value.is_array()) return path + ": expected an array";
      for (std::size_t i = 0; i < value.as_array().size(); ++i) {
        if (auto m = check(value.as_array()[i], s.at("items"), path + "[" + std::to_string(i) + "]"); !m.empty()) return m;
      }
    } else if (type == "string") {
      if (!value.is_string()) return path + ": expected a string, got " + json::serialize(value);
      if (const auto* values = s.if_contains("enum")) {
        bool found = false;
        for (const auto& e : values->as_array()) found = found || e == value;
        if (!found) return path + ": " + json::serialize(value) + " is not in the enum";
      }
    } else if (type == "integer") {
      if (!value.is_int64() && !value.is_uint64()) return path + ": expected an integer, got " + json::serialize(value);
    } else if (type == "boolean") {
      if (!value.is_bool()) return path + ": expected a boolean";
    }
    return "";
  }
  json::value document_;
};

// The checker itself finds what is wrong (else the contract checks below prove nothing).
TEST(Contract, NamesTheFirstMismatch) {
  std::ifstream file(CALLBACK_SOURCE_DIR "/rest/openapi.json");
  std::stringstream text;
  text << file.rdbuf();
  const Contract contract(json::parse(text.str()));
  EXPECT_EQ(contract.mismatch(json::parse(R"({"error": {"code": "x", "message": "y", "field": ""}})"), "Error"), "");
  EXPECT_EQ(contract.mismatch(json::parse(R"({"error": {"code": "x"}})"), "Error"), "$.error: missing message");
  EXPECT_EQ(contract.mismatch(json::parse(R"({"error": {"code": 5, "message": "y"}})"), "Error"),
            "$.error.code: expected a string, got 5");
  EXPECT_EQ(contract.mismatch(json::parse(R"({"status": "fine", "engines": {"connected": 1, "configured": 1},
                                             "in_flight": 0})"), "Health"),
            "$.status: \"fine\" is not in the enum");
  EXPECT_EQ(contract.mismatch(json::parse(R"({"callbacks": [{"id": "cb-1"}]})"), "CallbackList"),
            "$.callbacks[0]: missing state");
}

TEST(ServerOptions, TheServerBlockIsCheckedWithItsPath) {
  auto defaults = parse_server_options(json::value(nullptr));
  ASSERT_TRUE(defaults);
  // The block's defaults and the struct's agree (two places name them).
  const ServerOptions plain;
  EXPECT_EQ(defaults->host, plain.host);
  EXPECT_EQ(defaults->port, plain.port);
  EXPECT_EQ(defaults->threads, plain.threads);
  EXPECT_EQ(defaults->max_body, plain.max_body);
  EXPECT_EQ(defaults->max_import, plain.max_import);
  EXPECT_EQ(defaults->shutdown_grace, plain.shutdown_grace);
  EXPECT_EQ(defaults->keepalive, plain.keepalive);
  EXPECT_EQ(defaults->stream_timeout, plain.stream_timeout);
  EXPECT_EQ(defaults->stream_ping, plain.stream_ping);
  EXPECT_EQ(defaults->webhooks.attempts, plain.webhooks.attempts);
  EXPECT_EQ(defaults->webhooks.first_retry, plain.webhooks.first_retry);
  EXPECT_EQ(defaults->webhooks.timeout, plain.webhooks.timeout);
  auto set = parse_server_options(json::parse(R"({"listen": "0.0.0.0:9000", "threads": 4, "webhook_attempts": 3})"));
  ASSERT_TRUE(set) << set.error().describe();
  EXPECT_EQ(set->host, "0.0.0.0");
  EXPECT_EQ(set->port, 9000);
  EXPECT_EQ(set->webhooks.attempts, 3);
  EXPECT_EQ(parse_server_options(json::parse(R"({"listen": "8080"})")).error().field, "server.listen");
  EXPECT_EQ(parse_server_options(json::parse(R"({"threads": 0})")).error().field, "server.threads");
  EXPECT_EQ(parse_server_options(json::parse(R"({"thread": 2})")).error().code, "config.unknown_key");
  // The keys are the store's now: an old config that names a file for them is told so.
  auto moved = parse_server_options(json::parse(R"({"keys_db": "/var/lib/callback/keys.db"})"));
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().field, "server.keys_db");
  EXPECT_NE(moved.error().message.find("kept by the store"), std::string::npos) << moved.error().message;
  EXPECT_EQ(parse_server_options(json::parse(R"({"listen": 80})")).error().field, "server.listen");
}

class RestApiTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  fake::FakeAsterisk asterisk{{.time_scale = 0.01}};
  // Declared before the runtime: its plugins' threads may log until it is destroyed.
  std::ostringstream log;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<RestServer> server;
  std::string key;
  std::string base;

  void SetUp() override {
    asterisk.start();
    start({});
    contract = std::make_unique<Contract>(request("GET", "/v1/openapi.json", {}, {}, false).json());
  }
  std::unique_ptr<Contract> contract;
  // The response matches the schema `name` of the API description.
  void conforms(const Response& r, const std::string& name) {
    EXPECT_EQ(contract->mismatch(r.json(), name), "") << name << ": " << r.body;
  }
  void TearDown() override {
    if (server) server->stop();
    if (runtime) runtime->stop(std::chrono::seconds{0});
  }

  std::unique_ptr<ApiKeys> other_keys() { return sqlite_keys(dir / "callback.db"); }

  // `tweak` edits the config before the runtime is built.
  void start(const std::function<void(ServiceConfig&)>& tweak) {
    const std::string db = (dir / "callback.db").string();
    auto config = parse_config(R"({
      "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
      "store": {"plugin": "callback.store.sqlite", "config": {"path": ")" + db + R"(", "synchronous": "normal"}},
      "billing": {"plugin": "callback.billing.sqlite", "config": {"path": ")" + db + R"(", "synchronous": "normal"}},
      "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:)" +
                                   std::to_string(asterisk.port()) + R"("], "secret": "callbacksecret"}}],
      "triggers": [{"plugin": "callback.trigger.web", "config": {"per_number_per_hour": 3, "per_ip_per_minute": 100}}],
      "service": {"campaigns": {"free": {"limit_seconds": 120}}},
      "server": {"listen": "127.0.0.1:0", "max_body_bytes": 2048, "webhook_first_retry_ms": 20,
                 "webhook_allow_networks": ["127.0.0.1/32"]},
      "log": {"level": "warning"}})");
    ASSERT_TRUE(config) << config.error().describe();
    if (tweak) tweak(*config);
    auto options = parse_server_options(config->server);
    ASSERT_TRUE(options);
    auto made = Runtime::open(std::move(*config), {.plugin_dirs = {CALLBACK_PLUGIN_DIR}, .log = &log});
    ASSERT_TRUE(made) << made.error().describe();
    runtime = std::move(*made);
    // The keys are the store's (as callbackd's); re-read at every check here.
    auto keys = ApiKeys::over(runtime->store(), std::chrono::milliseconds{0});
    ASSERT_TRUE(keys) << keys.error().describe();
    auto created = (*keys)->add("test", KeyScope::admin);
    ASSERT_TRUE(created);
    key = created->key;
    server = std::make_unique<RestServer>(*runtime, *options, std::move(*keys));
    ASSERT_TRUE(runtime->start());
    ASSERT_TRUE(runtime->wait_for_engine(std::chrono::seconds(10)));
    ASSERT_TRUE(server->start());
    // Billing's own record of the campaign (its policy), as `callbackctl campaigns add free`.
    runtime->run_on_service_thread(
        [&] { ASSERT_TRUE(runtime->billing()->admin()->put_campaign({.id = "free", .limit = std::chrono::seconds{120}})); });
    base = "http://127.0.0.1:" + std::to_string(server->port());
  }

  Response request(const std::string& method, const std::string& path, const std::string& body = {},
                   std::vector<std::string> headers = {}, bool with_key = true, bool accept_cut = false) {
    Response r;
    CURL* curl = curl_easy_init();
    curl_slist* list = nullptr;
    if (with_key) headers.push_back("Authorization: Bearer " + key);
    const bool typed = std::any_of(headers.begin(), headers.end(), [](const auto& h) { return h.starts_with("Content-Type"); });
    if (!body.empty() && !typed) headers.push_back("Content-Type: application/json");
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, (base + path).c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty() || method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    const CURLcode rc = curl_easy_perform(curl);
    r.cut = rc == CURLE_RECV_ERROR || rc == CURLE_PARTIAL_FILE;
    if (!(r.cut && accept_cut)) {
      EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc) << " " << method << " " << path;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return r;
  }

  // The event stream until the server closes it (after the final state): the states seen
  // and the last callback object.
  std::pair<std::vector<std::string>, json::object> events(const std::string& path, bool with_key = true) {
    auto r = request("GET", path, {}, {}, with_key, /*accept_cut=*/true);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["content-type"], "text/event-stream");
    std::vector<std::string> states;
    json::object last;
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("data: ")) continue;
      last = json::parse(line.substr(6)).as_object();
      states.emplace_back(last.at("state").as_string());
    }
    return {states, last};
  }

  std::string post_callback(const std::string& caller, const std::string& callee, const std::string& payer) {
    auto r = request("POST", "/v1/callbacks",
                     R"({"caller": ")" + caller + R"(", "callee": ")" + callee + R"(", )" + payer + "}");
    EXPECT_EQ(r.status, 202) << r.body;
    if (r.status != 202) return {};
    return std::string(r.json().at("id").as_string());
  }

  void add_account(const std::string& id, const std::string& balance) {
    runtime->run_on_service_thread([&] {
      const auto cny = Currency::of("CNY").value();
      ASSERT_TRUE(runtime->store().accounts().create(
          {.id = id, .currency = cny, .balance = Money::parse(balance, cny).value()}));
      std::istringstream deck("prefix;description;rate\n1;ones;0.60\n3;threes;0.60\n4;fours;0.60\n");
      ASSERT_TRUE(runtime->billing()->admin()->import_rates("default", deck, cny));
    });
  }

  // The SMS tests' customer: account "alice", 5.00 CNY, number 1001 registered; 3XXX rated.
  void add_sms_sender() {
    runtime->run_on_service_thread([&] {
      const auto cny = Currency::of("CNY").value();
      ASSERT_TRUE(runtime->store().accounts().create({.id = "alice", .currency = cny,
                                                      .balance = Money::parse("5.00", cny).value(),
                                                      .caller_numbers = {PhoneNumber::from_e164("1001").value()}}));
      std::istringstream deck("prefix;description;rate\n3;threes;0.60\n");
      ASSERT_TRUE(runtime->billing()->admin()->import_rates("default", deck, cny));
    });
  }

  std::size_t cdr_count() {
    std::size_t n = 0;
    runtime->run_on_service_thread([&] {
      ASSERT_TRUE(runtime->store().cdrs().query({}, [&](const Cdr&) {
        ++n;
        return true;
      }));
    });
    return n;
  }
};

// A client's webhook endpoint: records what arrives; answers 500 to the first request so
// the retry is exercised.
struct WebhookReceiver {
  struct Received {
    std::string event, signature, body, authorization, content_type;
  };
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<Received> received;
  int requests = 0;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint;

  class Handler final : public Pistache::Http::Handler {
   public:
    HTTP_PROTOTYPE(Handler)
    explicit Handler(WebhookReceiver* receiver) : receiver_(receiver) {}
    void onRequest(const Pistache::Http::Request& request, Pistache::Http::ResponseWriter response) override {
      auto header = [&](const char* name) {
        auto raw = request.headers().tryGetRaw(name);
        return raw ? raw->value() : std::string();
      };
      bool fail = false;
      {
        std::lock_guard lock(receiver_->mutex);
        fail = receiver_->requests++ == 0;
        if (!fail) {
          auto auth = request.headers().tryGet<Pistache::Http::Header::Authorization>();
          auto type = request.headers().tryGet<Pistache::Http::Header::ContentType>();
          receiver_->received.push_back({header("X-Callback-Event"), header("Callback-Signature"), request.body(),
                                         auth ? auth->value() : std::string(),
                                         type ? type->mime().toString() : std::string()});
        }
      }
      receiver_->arrived.notify_all();
      response.send(fail ? Pistache::Http::Code::Internal_Server_Error : Pistache::Http::Code::No_Content);
    }

   private:
    WebhookReceiver* receiver_;
  };

  std::string start() {
    endpoint = std::make_unique<Pistache::Http::Endpoint>(Pistache::Address("127.0.0.1", Pistache::Port(0)));
    endpoint->init(Pistache::Http::Endpoint::options().threads(1));
    endpoint->setHandler(Pistache::Http::make_handler<Handler>(this));
    endpoint->serveThreaded();
    return "http://127.0.0.1:" + std::to_string(static_cast<int>(endpoint->getPort())) + "/hooks/status";
  }
  ~WebhookReceiver() {
    if (endpoint) endpoint->shutdown();
  }
  // Waits until `n` requests have been received (answered 2xx), or 10 s.
  bool wait_for_count(std::size_t n) {
    std::unique_lock lock(mutex);
    return arrived.wait_for(lock, std::chrono::seconds(10), [&] { return received.size() >= n; });
  }
  // Waits until an event named `event` has arrived (or 10 s).
  bool wait_for(const std::string& event) {
    std::unique_lock lock(mutex);
    return arrived.wait_for(lock, std::chrono::seconds(10), [&] {
      return std::any_of(received.begin(), received.end(), [&](const Received& r) { return r.event == event; });
    });
  }
};

TEST_F(RestApiTest, StatusWebhooksAreSignedRetriedAndInOrder) {
  WebhookReceiver receiver;
  const std::string url = receiver.start();
  auto r = request("POST", "/v1/callbacks",
                   R"({"caller": "1001", "callee": "1002", "campaign": "free", "limit_seconds": 5, "status_callback": ")" +
                       url + R"("})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id(r.json().at("id").as_string());
  ASSERT_TRUE(receiver.wait_for("completed"));
  ASSERT_TRUE(server->flush_webhooks(std::chrono::seconds(10)));  // its answer reached callbackd too
  auto keys = other_keys();
  const std::string secret = keys->webhook_secret(key.substr(4, 8)).value();
  std::lock_guard lock(receiver.mutex);
  std::vector<std::string> events;
  for (const auto& got : receiver.received) {
    events.push_back(got.event);
    // Signed with this key's webhook secret, over the timestamp and the body exactly as sent.
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_TRUE(verify_webhook_signature(secret, got.signature, got.body, now)) << got.signature;
    EXPECT_FALSE(verify_webhook_signature("whsec_forged", got.signature, got.body, now));
    // Replayed an hour later, the same request is refused.
    EXPECT_EQ(verify_webhook_signature(secret, got.signature, got.body, now + 3600).error().code, "stale_signature");
    EXPECT_EQ(json::parse(got.body).at("id").as_string(), id);
  }
  // The first attempt failed (500) and was retried: nothing lost, order kept.
  EXPECT_EQ(events, (std::vector<std::string>{"initiated", "ringing", "answered", "completed"}));
  EXPECT_EQ(receiver.requests, 5);
  EXPECT_EQ(json::parse(receiver.received.back().body).at("outcome").as_string(), "time_up");
}

TEST_F(RestApiTest, ACallbackIsAcceptedFollowedAndListed) {
  auto r = request("POST", "/v1/callbacks", R"({"caller": "1001", "callee": "3001", "campaign": "free"})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id(r.json().at("id").as_string());
  conforms(r, "Callback");
  EXPECT_EQ(r.headers["location"], "/v1/callbacks/" + id);
  EXPECT_EQ(r.json().at("caller").as_string(), "1001");
  EXPECT_EQ(r.json().at("campaign").as_string(), "free");
  EXPECT_EQ(r.json().at("limit_seconds").as_int64(), 120);

  auto [states, last] = events("/v1/callbacks/" + id + "/events");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), "completed");
  EXPECT_EQ(last.at("outcome").as_string(), "partner_busy");
  EXPECT_EQ(last.at("legs").at("b").at("cause").as_int64(), 17);

  auto got = request("GET", "/v1/callbacks/" + id);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.json().at("state").as_string(), "completed");
  conforms(got, "Callback");
  auto listed = request("GET", "/v1/callbacks?state=completed&limit=10");
  ASSERT_EQ(listed.status, 200);
  conforms(listed, "CallbackList");
  ASSERT_EQ(listed.json().at("callbacks").as_array().size(), 1u);
  EXPECT_EQ(listed.json().at("callbacks").at(0).at("id").as_string(), id);
  EXPECT_EQ(request("GET", "/v1/callbacks?state=bridged").json().at("callbacks").as_array().size(), 0u);
  // Ended: canceling is a conflict, not a success.
  auto cancel = request("DELETE", "/v1/callbacks/" + id);
  EXPECT_EQ(cancel.status, 409);
  EXPECT_EQ(cancel.error_code(), "already_final");
  // Both legs have CDRs, visible to operators.
  auto cdrs = request("GET", "/v1/cdrs?limit=10");
  ASSERT_EQ(cdrs.status, 200);
  conforms(cdrs, "CdrList");
  EXPECT_EQ(cdrs.json().at("cdrs").as_array().size(), 2u);
}

TEST_F(RestApiTest, DeleteCancelsACallInFlight) {
  // B (4001) does not answer for a long time: cancel while it rings.
  auto r = request("POST", "/v1/callbacks", R"({"caller": "1001", "callee": "4001", "campaign": "free"})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id(r.json().at("id").as_string());
  auto cancel = request("DELETE", "/v1/callbacks/" + id);
  ASSERT_EQ(cancel.status, 202) << cancel.body;
  auto [states, last] = events("/v1/callbacks/" + id + "/events");
  EXPECT_EQ(states.back(), "canceled");
  EXPECT_EQ(last.at("outcome").as_string(), "canceled");
}

TEST_F(RestApiTest, OperatorEndpointsNeedAValidKey) {
  for (auto headers : std::vector<std::vector<std::string>>{
           {}, {"Authorization: Bearer nonsense"}, {"X-API-Key: cbk_00000000_" + std::string(64, '0')},
           {"Authorization: Basic dXNlcjpwYXNz"}}) {
    auto r = request("GET", "/v1/callbacks", {}, headers, false);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.error_code(), "unauthorized");
    EXPECT_EQ(r.error_field(), "api_key");
  }
  EXPECT_EQ(request("GET", "/v1/callbacks", {}, {"X-API-Key: " + key}, false).status, 200);
  // A key with one character changed is refused.
  std::string forged = key;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(request("GET", "/v1/callbacks", {}, {"X-API-Key: " + forged}, false).status, 401);
  // Revoked elsewhere (callbackctl): refused from then on.
  auto keys = other_keys();
  ASSERT_TRUE(keys->revoke(key.substr(4, 8)));
  auto revoked = request("GET", "/v1/callbacks");
  EXPECT_EQ(revoked.status, 401);
  EXPECT_NE(revoked.json().at("error").at("message").as_string().find("revoked"), std::string::npos);
  // The public parts need none.
  EXPECT_EQ(request("GET", "/healthz", {}, {}, false).status, 200);
  EXPECT_EQ(request("GET", "/v1/openapi.json", {}, {}, false).status, 200);
}

// Tenancy: a callbacks key sees, cancels and follows only its own callbacks; another's id
// answers exactly as a made-up one (404), so ids are no oracle. Operator keys get the
// operator resources and no callbacks; admin keys (the fixture's) see everything.
TEST_F(RestApiTest, ACallbacksKeySeesOnlyItsOwnCallbacks) {
  auto keys = other_keys();
  const std::string alice = keys->add("alice", KeyScope::callbacks).value().key;
  const std::string bob = keys->add("bob", KeyScope::callbacks).value().key;
  const std::string ops = keys->add("ops", KeyScope::operator_).value().key;
  auto as = [&](const std::string& who, const std::string& method, const std::string& path, const std::string& body = {}) {
    return request(method, path, body, {"Authorization: Bearer " + who}, false);
  };
  // B (4001) rings for a long time: the callback stays in flight.
  auto posted = as(alice, "POST", "/v1/callbacks", R"({"caller": "1001", "callee": "4001", "campaign": "free"})");
  ASSERT_EQ(posted.status, 202) << posted.body;
  const std::string id(posted.json().at("id").as_string());

  const auto unknown = as(bob, "GET", "/v1/callbacks/cb-made-up");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/callbacks/" + id}, {"DELETE", "/v1/callbacks/" + id}, {"GET", "/v1/callbacks/" + id + "/events"}}) {
    auto r = as(bob, method, path);
    EXPECT_EQ(r.status, 404) << method << " " << path << " -> " << r.body;
    EXPECT_EQ(r.error_code(), unknown.error_code());
    EXPECT_EQ(r.error_field(), unknown.error_field());
  }
  EXPECT_EQ(as(bob, "GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 0u);
  // Its owner and an admin see it.
  EXPECT_EQ(as(alice, "GET", "/v1/callbacks/" + id).status, 200);
  auto own = as(alice, "GET", "/v1/callbacks");
  ASSERT_EQ(own.json().at("callbacks").as_array().size(), 1u);
  EXPECT_EQ(own.json().at("callbacks").at(0).at("id").as_string(), id);
  EXPECT_EQ(request("GET", "/v1/callbacks/" + id).status, 200);
  EXPECT_EQ(request("GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 1u);
  // Bob's own callback is his; Alice's list does not grow.
  auto bobs = as(bob, "POST", "/v1/callbacks", R"({"caller": "1003", "callee": "4002", "campaign": "free"})");
  ASSERT_EQ(bobs.status, 202) << bobs.body;
  EXPECT_EQ(as(alice, "GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 1u);
  EXPECT_EQ(request("GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 2u);
  // Scopes: callbacks keys have no operator resources, operator keys no callbacks.
  for (const char* path : {"/v1/accounts", "/v1/cdrs", "/v1/stats", "/v1/rates", "/v1/triggers",
                           "/v1/policies/campaign/free"}) {
    auto r = as(alice, "GET", path);
    EXPECT_EQ(r.status, 403) << path << " -> " << r.body;
    EXPECT_EQ(r.error_code(), "forbidden");
    EXPECT_EQ(r.error_field(), "api_key");
    EXPECT_NE(as(ops, "GET", path).status, 403) << path;  // /v1/rates with no deck is 400: the scope let it through
  }
  EXPECT_EQ(as(alice, "POST", "/v1/accounts", R"({"id": "mine", "currency": "CNY"})").status, 403);
  // A toll-fraud policy is the operator's: a callbacks key cannot lift the one it is under.
  EXPECT_EQ(as(alice, "PUT", "/v1/policies/campaign/free", R"({"deny_prefixes": []})").status, 403);
  EXPECT_EQ(as(ops, "PUT", "/v1/policies/campaign/free", R"({"deny_prefixes": ["+1900"]})").status, 200);
  EXPECT_EQ(as(ops, "GET", "/v1/callbacks").status, 403);
  EXPECT_EQ(as(ops, "GET", "/v1/callbacks/" + id).status, 403);
  EXPECT_EQ(as(ops, "POST", "/v1/callbacks", R"({"caller": "1001", "callee": "1002", "campaign": "free"})").status, 403);
  // The owner cancels its own.
  EXPECT_EQ(as(alice, "DELETE", "/v1/callbacks/" + id).status, 202);
  EXPECT_EQ(request("DELETE", "/v1/callbacks/" + std::string(bobs.json().at("id").as_string())).status, 202);
}

// Keys made before scopes existed (schema 5) keep what they could do: admin.
TEST(ApiKeyScopes, KeysOfAnOldDatabaseBecomeAdminAndNewOnesKeepTheirScope) {
  test::TempDir dir;
  std::string old_id;
  {
    auto keys = sqlite_keys(dir / "keys.db");
    old_id = keys->add("old", KeyScope::callbacks).value().info.id;
  }
  {
    // Back to schema 5, as that release left it (SQLite >= 3.35 drops columns).
    SQLite::Database db((dir / "keys.db").string(), SQLite::OPEN_READWRITE);
    db.exec("ALTER TABLE api_key DROP COLUMN scope");
    // and without what migration 7 (toll-fraud policies) added
    test::undo_migration_7(db);
    db.exec("DELETE FROM schema_migrations WHERE version >= 6");
  }
  auto keys = sqlite_keys(dir / "keys.db");
  const std::string fresh = keys->add("new", KeyScope::operator_).value().info.id;
  std::map<std::string, KeyScope> scopes;
  for (const auto& k : keys->list().value()) scopes[k.id] = k.scope;
  EXPECT_EQ(scopes.at(old_id), KeyScope::admin);
  EXPECT_EQ(scopes.at(fresh), KeyScope::operator_);
  EXPECT_EQ(key_scope_from_string("operator"), KeyScope::operator_);
  EXPECT_EQ(to_string(KeyScope::callbacks), "callbacks");
  EXPECT_FALSE(key_scope_from_string("root"));
}

TEST_F(RestApiTest, BadRequestsGetAClearErrorAndCreateNothing) {
  struct Case {
    std::string body;
    long status;
    std::string code, field;
  };
  const std::vector<Case> cases = {
      {"{", 400, "invalid_json", "body"},
      {"[1, 2]", 400, "invalid_json", "body"},
      {R"({"caller": 1001, "callee": "1002", "campaign": "free"})", 400, "invalid_type", "caller"},
      {R"({"caller": "1001", "campaign": "free"})", 400, "missing_field", "callee"},
      {R"({"caller": "1001", "callee": "1002"})", 400, "missing_field", "account"},
      {R"({"caller": "1001", "callee": "1002", "account": "a", "campaign": "free"})", 400, "missing_field", "campaign"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "colour": "red"})", 400, "unknown_field", "colour"},
      {R"({"caller": "12ab", "callee": "1002", "campaign": "free"})", 400, "", "caller"},
      {R"({"caller": "1001", "callee": "1001", "campaign": "free"})", 400, "", ""},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "limit_seconds": 0})", 400, "invalid_type",
       "limit_seconds"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "status_callback": "ftp://x"})", 400, "invalid_url",
       "status_callback"},
      // CR/LF in any field would forge log lines (and headers): refused, naming the field.
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "status_callback": "http://x/\r\n2026 error forged"})",
       400, "invalid_request", "status_callback"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "status_callback": "http://x/\u0000"})", 400,
       "invalid_request", "status_callback"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "pin": "12\n34"})", 400, "invalid_request", "pin"},
      {R"({"caller": "1001\r\n", "callee": "1002", "campaign": "free"})", 400, "invalid_request", "caller"},
      // The language becomes CHANNEL(language) in an AMI action: no line breaks, no spaces, no paths.
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "language": "zh\r\nAction: Hangup"})", 400,
       "invalid_language", "language"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "language": "../en"})", 400, "invalid_language",
       "language"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "language": "z"})", 400, "invalid_language",
       "language"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "language": 7})", 400, "invalid_type", "language"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "nope"})", 403, "denied.campaign_limit", "campaign"},
      {R"({"caller": "1001", "callee": "1002", "account": "nobody"})", 403, "denied.unknown_account", "account"},
      {R"({"caller": "1001", "callee": "1002", "campaign": "free", "pad": ")" + std::string(4000, 'x') + "\"}", 413,
       "body_too_large", "body"},
  };
  for (const auto& c : cases) {
    auto r = request("POST", "/v1/callbacks", c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 100) << " -> " << r.body;
    ASSERT_NO_THROW((void)r.json()) << r.body;
    conforms(r, "Error");
    if (!c.code.empty()) {
      EXPECT_EQ(r.error_code(), c.code) << r.body;
    }
    if (!c.field.empty()) {
      EXPECT_EQ(r.error_field(), c.field) << r.body;
    }
    EXPECT_FALSE(r.json().at("error").at("message").as_string().empty());
  }
  auto wrong_type = request("POST", "/v1/callbacks", "caller=1001", {"Content-Type: text/plain"});
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_EQ(request("GET", "/v1/callbacks/cb-nope").status, 404);
  EXPECT_EQ(request("DELETE", "/v1/callbacks/cb-nope").status, 404);
  EXPECT_EQ(request("GET", "/v1/nothing").status, 404);
  auto method = request("PUT", "/v1/callbacks", R"({})");
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.headers["allow"], "GET, POST");
  EXPECT_EQ(request("GET", "/v1/callbacks?since=yesterday").status, 400);
  EXPECT_EQ(request("GET", "/v1/callbacks?state=sleeping").status, 400);
  EXPECT_EQ(request("GET", "/v1/callbacks?limit=0").status, 400);
  // Nothing was created: no callbacks, no CDRs.
  EXPECT_EQ(request("GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 0u);
  EXPECT_EQ(cdr_count(), 0u);
}

// --- hostile HTTP, over a raw socket (tests/support/raw_http.hpp) ----------------------

// The error an answer carries, or "" with what was wrong with the answer itself.
std::string error_of(const test::RawResponse& r, const std::string& want_field) {
  boost::system::error_code ec;
  auto body = json::parse(r.body, ec);
  if (ec || !body.is_object() || !body.as_object().contains("error")) return "not the API's error shape: " + r.body;
  const auto& error = body.at("error");
  if (error.at("field").as_string() != want_field) return "field " + std::string(error.at("field").as_string());
  return std::string(error.at("code").as_string());
}

TEST_F(RestApiTest, ABadContentLengthIsA400ThatLeaksNoExceptionText) {
  for (const std::string length : {"-1", "18446744073709551616", "12abc", "+5", "0x10", "", "5, 5"}) {
    const auto got = test::raw_http(server->port(), "POST /v1/callbacks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                                        key + "\r\nContent-Length: " + length + "\r\n\r\n{}",
                                    {.until_closed = true});
    ASSERT_EQ(got.responses.size(), 1u) << "Content-Length: " << length << " got " << got.bytes;
    const auto& r = got.responses[0];
    EXPECT_EQ(r.status, 400) << length << ": " << r.body;
    EXPECT_EQ(error_of(r, "Content-Length"), "invalid_content_length") << length;
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.body.find("stoull"), std::string::npos) << r.body;
    EXPECT_TRUE(got.closed) << length;
  }
}

TEST_F(RestApiTest, AHugeDeclaredBodyIs413BeforeAnyOfItArrives) {
  // max_body_bytes is 2048 here; the body never comes, so only an answer to the head passes.
  for (const std::string length : {"2049", "10000000", "1000000000000"}) {
    const auto got = test::raw_http(
        server->port(),
        "POST /v1/callbacks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + length +
            "\r\n\r\n{\"caller\": \"1001\"",
        {.until_closed = true});
    ASSERT_EQ(got.responses.size(), 1u) << "Content-Length: " << length << " got " << got.bytes;
    EXPECT_EQ(got.responses[0].status, 413) << got.responses[0].body;
    EXPECT_EQ(error_of(got.responses[0], "body"), "body_too_large");
    EXPECT_TRUE(got.closed);
  }
}

TEST_F(RestApiTest, PercentEncodedQueryValuesAreDecoded) {
  add_account("decoded", "1.00");
  auto get = [&](const std::string& target) {
    const auto got = test::raw_http(server->port(), "GET " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                                        key + "\r\n\r\n");
    EXPECT_EQ(got.responses.size(), 1u) << target << " got " << got.bytes;
    return got.responses.empty() ? test::RawResponse{} : got.responses[0];
  };
  auto since = get("/v1/callbacks?since=2026-11-30T09%3A00%3A00Z&limit=5");
  EXPECT_EQ(since.status, 200) << since.body;
  auto lookup = get("/v1/rates?lookup=%2B1001");
  ASSERT_EQ(lookup.status, 200) << lookup.body;
  EXPECT_EQ(json::parse(lookup.body).at("rates").at(0).at("prefix").as_string(), "1") << lookup.body;
  auto spaced = get("/v1/stats?number=%2B1+001");  // '+' is a space in a query, %2B a plus
  EXPECT_EQ(spaced.status, 200) << spaced.body;
  // Broken escapes name the parameter.
  auto bad_hex = get("/v1/callbacks?since=2026-11-30T09%G100%3A00Z");
  EXPECT_EQ(bad_hex.status, 400);
  EXPECT_EQ(error_of(bad_hex, "since"), "invalid_parameter");
  auto truncated = get("/v1/rates?tariff=default&lookup=%2B1001%4");
  EXPECT_EQ(truncated.status, 400);
  EXPECT_EQ(error_of(truncated, "lookup"), "invalid_parameter");
}

TEST_F(RestApiTest, MalformedRequestHeadsAreAnsweredAtOnceAndClosed) {
  struct Case {
    std::string bytes;
    int status;
    std::string code, field;
  };
  const std::vector<Case> cases = {
      {"GET /\r\n", 505, "unsupported_version", "version"},  // HTTP/0.9
      {"GET / HTTP/2.0\r\n\r\n", 505, "unsupported_version", "version"},
      {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "invalid_header", "headers"},
      {"GET / HTTP/1.1\nHost: x\n\n", 400, "invalid_line_ending", "request_line"},
      {"GET / HTTP/1.1\r\nHost: x\n\n", 400, "invalid_line_ending", "headers"},
      {"GET /healthz\r\nHost: x\r\n\r\n", 505, "unsupported_version", "version"},
      {"hello\r\n\r\n", 400, "invalid_request_line", "request_line"},
      {"BREW /pot HTTP/1.1\r\n\r\n", 501, "unknown_method", "method"},
      {"POST /v1/callbacks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "length_required",
       "Transfer-Encoding"},
  };
  for (const auto& c : cases) {
    const auto got = test::raw_http(server->port(), c.bytes, {.until_closed = true});
    ASSERT_EQ(got.responses.size(), 1u) << c.bytes << " got " << got.bytes;
    EXPECT_EQ(got.responses[0].status, c.status) << c.bytes << " -> " << got.responses[0].body;
    EXPECT_EQ(error_of(got.responses[0], c.field), c.code) << c.bytes;
    EXPECT_TRUE(got.closed) << c.bytes;
  }
  // The server still answers well-formed requests.
  EXPECT_EQ(request("GET", "/healthz", {}, {}, false).status, 200);
}

TEST_F(RestApiTest, PipelinedRequestsAreEachAnsweredInOrder) {
  const std::string auth = "Host: x\r\nAuthorization: Bearer " + key + "\r\n";
  const std::string post = R"({"caller": "1001", "callee": "1002", "campaign": "free"})";
  // The POST is answered from the service thread, after the GET before it and before the one after.
  const std::string three = "GET /v1/callbacks/cb-first HTTP/1.1\r\n" + auth + "\r\n" +
                            "POST /v1/callbacks HTTP/1.1\r\n" + auth +
                            "Content-Type: application/json\r\nContent-Length: " + std::to_string(post.size()) +
                            "\r\n\r\n" + post + "GET /v1/callbacks/cb-third HTTP/1.1\r\n" + auth + "\r\n";
  const auto got = test::raw_http(server->port(), three, {.responses = 3});
  ASSERT_EQ(got.responses.size(), 3u) << got.bytes;
  EXPECT_EQ(got.responses[0].status, 404);
  EXPECT_NE(got.responses[0].body.find("cb-first"), std::string::npos) << got.responses[0].body;
  EXPECT_EQ(got.responses[1].status, 202) << got.responses[1].body;
  EXPECT_EQ(got.responses[2].status, 404);
  EXPECT_NE(got.responses[2].body.find("cb-third"), std::string::npos) << got.responses[2].body;
  EXPECT_FALSE(got.closed);
}

TEST_F(RestApiTest, ASlowHeadIsStillCutAtTheRequestTimeout) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  start([](ServiceConfig& c) { c.server.as_object()["stream_timeout_seconds"] = 1; });
  // A valid head that never ends: the checks wait for it, Pistache's timeout ends it.
  const auto got = test::raw_http(server->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1",
                                  {.until_closed = true});
  ASSERT_EQ(got.responses.size(), 1u) << got.bytes;
  EXPECT_EQ(got.responses[0].status, 408);
  EXPECT_TRUE(got.closed);
}

TEST_F(RestApiTest, InsufficientBalanceIsPaymentRequiredAndChargesNothing) {
  add_account("poor", "0.00");
  auto r = request("POST", "/v1/callbacks", R"({"caller": "1001", "callee": "1002", "account": "poor"})");
  EXPECT_EQ(r.status, 402) << r.body;
  EXPECT_EQ(r.error_code(), "denied.insufficient_balance");
  auto account = request("GET", "/v1/accounts/poor");
  ASSERT_EQ(account.status, 200);
  EXPECT_EQ(account.json().at("balance").as_string(), "0.00");
  EXPECT_EQ(account.json().at("reserved").as_string(), "0.00");
  EXPECT_EQ(request("GET", "/v1/accounts/nobody").status, 404);
}

TEST_F(RestApiTest, AnAccountCallIsChargedAndTheRateIsVisible) {
  add_account("rich", "10.00");
  const std::string id = post_callback("1001", "1002", R"("account": "rich", "limit_seconds": 30)");
  ASSERT_FALSE(id.empty());
  auto [states, last] = events("/v1/callbacks/" + id + "/events");
  EXPECT_EQ(states.back(), "completed");
  EXPECT_EQ(last.at("outcome").as_string(), "time_up");
  ASSERT_TRUE(last.at("cost").is_object()) << json::serialize(last);
  EXPECT_EQ(last.at("cost").at("currency").as_string(), "CNY");
  auto rate = request("GET", "/v1/rates?lookup=1002");
  ASSERT_EQ(rate.status, 200) << rate.body;
  EXPECT_EQ(rate.json().at("rates").at(0).at("prefix").as_string(), "1");
  auto stats = request("GET", "/v1/stats?number=1001");
  ASSERT_EQ(stats.status, 200) << stats.body;
  conforms(stats, "CallerStatsList");
  EXPECT_EQ(stats.json().at("stats").at(0).at("attempts").as_int64(), 1);
}

// The same service on the PostgreSQL backend (one config block each for the store and
// billing): callbacks run, are charged once each, and their records, journal and keys are
// in the shared database.
TEST_F(RestApiTest, CallbacksRunOnThePostgresBackendAsOnTheEmbeddedOne) {
  test::PostgresDatabase database;
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  server.reset();
  runtime.reset();
  for (const char* file : {"callback.db", "callback.db-wal", "callback.db-shm"}) std::filesystem::remove(dir / file);
  start([&](ServiceConfig& config) {
    config.store = ComponentConfig{.plugin = "callback.store.postgres",
                                   .config = json::object{{"conninfo", database.conninfo()}}, .path = "store"};
    config.billing = ComponentConfig{.plugin = "callback.billing.postgres", .config = json::object{}, .path = "billing"};
  });
  add_account("rich", "10.00");
  std::vector<std::string> ids;
  for (const char* caller : {"1001", "1003", "1004", "1006"}) {  // at once
    ids.push_back(post_callback(caller, "1002", R"("account": "rich", "limit_seconds": 30)"));
    ASSERT_FALSE(ids.back().empty());
  }
  Money charged = Money::zero(Currency::of("CNY").value());
  for (const auto& id : ids) {
    auto [states, last] = events("/v1/callbacks/" + id + "/events");
    EXPECT_EQ(states.back(), "completed");
    ASSERT_TRUE(last.at("cost").is_object()) << json::serialize(last);
    charged += Money::parse(std::string(last.at("cost").at("amount").as_string()), charged.currency()).value();
  }
  EXPECT_FALSE(charged.is_zero());
  auto account = request("GET", "/v1/accounts/rich");
  ASSERT_EQ(account.status, 200) << account.body;
  EXPECT_EQ(account.json().at("balance").as_string(), (Money::parse("10.00", charged.currency()).value() - charged).format());
  EXPECT_EQ(account.json().at("reserved").as_string(), "0.00");
  auto health = request("GET", "/healthz", {}, {}, false);
  EXPECT_TRUE(health.json().at("database").at("ok").as_bool()) << health.body;
  pg::Connection conn(database.conninfo());
  EXPECT_EQ(conn.exec("SELECT count(*) FROM ledger WHERE account_id = 'rich' AND kind = 'call_charge'").integer(0, 0), 4);
  EXPECT_EQ(conn.exec("SELECT count(DISTINCT callback_id) FROM cdr").integer(0, 0), 4);
  EXPECT_EQ(conn.exec("SELECT count(*) FROM callback_journal WHERE final").integer(0, 0), 4);
  EXPECT_EQ(conn.exec("SELECT count(*) FROM api_key").integer(0, 0), 1) << "the test's key";
  EXPECT_FALSE(std::filesystem::exists(dir / "callback.db")) << "no SQLite file";
}

TEST_F(RestApiTest, OperatorsCreateAccountsTopThemUpAndImportDecks) {
  auto created = request("POST", "/v1/accounts",
                         R"({"id": "123", "name": "Zhang", "balance": "5.00", "pin": "1234", "numbers": ["13800138000"]})");
  ASSERT_EQ(created.status, 201) << created.body;
  conforms(created, "Account");
  EXPECT_EQ(created.headers["location"], "/v1/accounts/123");
  EXPECT_EQ(created.json().at("balance").as_string(), "5.00");
  EXPECT_TRUE(created.json().at("has_pin").as_bool());
  EXPECT_EQ(request("POST", "/v1/accounts", R"({"id": "123"})").status, 409);
  auto bad_amount = request("POST", "/v1/accounts", R"({"id": "124", "balance": "5.001"})");
  EXPECT_EQ(bad_amount.status, 400);
  EXPECT_EQ(bad_amount.error_field(), "balance");
  auto bad_id = request("POST", "/v1/accounts", R"({"id": "x'; DROP TABLE account; --"})");
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_EQ(request("POST", "/v1/accounts", R"({"id": "125", "colour": "red"})").error_field(), "colour");
  auto chinese = request("POST", "/v1/accounts", R"({"id": "zh1", "balance": "1.00", "language": "zh"})");
  ASSERT_EQ(chinese.status, 201) << chinese.body;
  conforms(chinese, "Account");
  EXPECT_EQ(chinese.json().at("language").as_string(), "zh");
  EXPECT_EQ(request("GET", "/v1/accounts/zh1").json().at("language").as_string(), "zh");
  EXPECT_EQ(created.json().at("language").as_string(), "");  // none given: Asterisk's default
  auto bad_language = request("POST", "/v1/accounts", R"({"id": "126", "language": "zh\nAction: Logoff"})");
  EXPECT_EQ(bad_language.status, 400);
  EXPECT_EQ(bad_language.error_field(), "language");
  EXPECT_EQ(request("GET", "/v1/accounts/126").status, 404);  // not created
  // One number in two spellings is refused, not silently kept once (found by fuzz_rest_body).
  auto twice = request("POST", "/v1/accounts", R"({"id": "127", "numbers": ["+8613800138000", "+86 138 0013 8000"]})");
  EXPECT_EQ(twice.status, 400) << twice.body;
  EXPECT_EQ(twice.error_field(), "numbers");
  EXPECT_NE(twice.body.find("given twice"), std::string::npos) << twice.body;
  EXPECT_EQ(request("GET", "/v1/accounts/127").status, 404);

  auto topped = request("POST", "/v1/accounts/123/topup", R"({"amount": "2.50", "reference": "receipt 9"})");
  ASSERT_EQ(topped.status, 200) << topped.body;
  EXPECT_EQ(topped.json().at("balance").as_string(), "7.50");
  auto negative = request("POST", "/v1/accounts/123/topup", R"({"amount": "-1.00"})");
  EXPECT_EQ(negative.status, 400);
  EXPECT_EQ(negative.error_field(), "amount");
  EXPECT_EQ(request("POST", "/v1/accounts/nobody/topup", R"({"amount": "1.00"})").status, 404);
  EXPECT_EQ(request("GET", "/v1/accounts/123").json().at("balance").as_string(), "7.50");
  auto accounts = request("GET", "/v1/accounts");
  conforms(accounts, "AccountList");
  EXPECT_EQ(accounts.json().at("accounts").as_array().size(), 2u);

  // A deck: all or nothing, the bad line named.
  auto imported = request("POST", "/v1/rates/gold", "prefix;description;rate\n86;China;0.10\n8610;Beijing;0.05\n",
                          {"Content-Type: text/csv"});
  ASSERT_EQ(imported.status, 200) << imported.body;
  conforms(imported, "RateImportReport");
  EXPECT_EQ(imported.json().at("rates").as_int64(), 2);
  auto broken = request("POST", "/v1/rates/gold", "prefix;description;rate\n86;China;0.10\n86x;Bad;0.05\n",
                        {"Content-Type: text/csv"});
  EXPECT_EQ(broken.status, 400);
  EXPECT_NE(broken.body.find("line 3"), std::string::npos) << broken.body;
  auto rate = request("GET", "/v1/rates?tariff=gold&lookup=861055556666");
  ASSERT_EQ(rate.status, 200) << rate.body;
  EXPECT_EQ(rate.json().at("rates").at(0).at("prefix").as_string(), "8610");  // the failed import changed nothing
  conforms(rate, "RateList");
  auto deck = request("GET", "/v1/rates?tariff=gold");
  ASSERT_EQ(deck.status, 200) << deck.body;
  conforms(deck, "RateList");
  EXPECT_EQ(deck.json().at("rates").as_array().size(), 2u);
}

TEST_F(RestApiTest, TheApiAndThePageTakeTheCallersLanguage) {
  auto api = request("POST", "/v1/callbacks", R"({"caller": "1001", "callee": "3001", "campaign": "free", "language": "zh"})");
  ASSERT_EQ(api.status, 202) << api.body;
  conforms(api, "Callback");
  auto page = request("POST", "/v1/public/callbacks", R"({"caller": "1007", "callee": "3001", "language": "en"})", {},
                      false);
  ASSERT_EQ(page.status, 202) << page.body;
  auto bad = request("POST", "/v1/public/callbacks", R"({"caller": "1008", "callee": "3001", "language": "en US"})", {},
                     false);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.error_field(), "language");
  EXPECT_EQ(request("GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 2u);  // the bad one made none
}

TEST_F(RestApiTest, TheSameIdempotencyKeyIsTheSameCallback) {
  const std::string body = R"({"caller": "1001", "callee": "4001", "campaign": "free"})";
  auto first = request("POST", "/v1/callbacks", body, {"Idempotency-Key: order-17"});
  auto second = request("POST", "/v1/callbacks", body, {"Idempotency-Key: order-17"});
  ASSERT_EQ(first.status, 202);
  ASSERT_EQ(second.status, 202);
  EXPECT_EQ(first.json().at("id"), second.json().at("id"));
  auto third = request("POST", "/v1/callbacks", body, {"Idempotency-Key: order-18"});
  EXPECT_NE(first.json().at("id"), third.json().at("id"));
}

TEST_F(RestApiTest, ThePagesPublicEndpoints) {
  auto page = request("GET", "/", {}, {}, false);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.headers["content-type"].find("text/html"), std::string::npos);
  EXPECT_EQ(request("GET", "/assets/app.js", {}, {}, false).status, 200);
  EXPECT_EQ(request("GET", "/assets/../rest/server.cpp", {}, {}, false).status, 404);
  auto config = request("GET", "/v1/public/config", {}, {}, false);
  EXPECT_EQ(config.json().at("mode").as_string(), "campaign");
  conforms(config, "PublicConfig");

  auto r = request("POST", "/v1/public/callbacks", R"({"caller": "1005", "callee": "3001"})", {}, false);
  ASSERT_EQ(r.status, 202) << r.body;
  conforms(r, "PublicCallbackCreated");
  const std::string events_url(r.json().at("events_url").as_string());
  const std::string id(r.json().at("callback").at("id").as_string());
  // Someone else's stream: the token is needed.
  auto no_token = request("GET", "/v1/public/callbacks/" + id + "/events?token=00", {}, {}, false);
  EXPECT_EQ(no_token.status, 403);
  auto [states, last] = events(events_url, false);
  EXPECT_EQ(last.at("outcome").as_string(), "partner_busy");
  // The page asks for no account in campaign mode.
  auto account = request("POST", "/v1/public/callbacks", R"({"caller": "1006", "callee": "3001", "account": "1"})", {},
                         false);
  EXPECT_EQ(account.status, 400);
  // Three per number an hour here: the fourth is refused, with when to try again.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(request("POST", "/v1/public/callbacks", R"({"caller": "1005", "callee": "3001"})", {}, false).status, 202);
  }
  auto limited = request("POST", "/v1/public/callbacks", R"({"caller": "1005", "callee": "3001"})", {}, false);
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.error_code(), "rate_limited");
  EXPECT_GT(std::stoi(limited.headers["retry-after"]), 0);
}

// callback.trigger.sms through callbackd: its routes, Twilio's signature over the URL
// configured at Twilio, the reply in TwiML, the callback it makes followed like any other;
// and what must call nobody (a forged, a repeated or a stranger's message).
TEST_F(RestApiTest, AnSmsThroughTwiliosWebhookCallsTheSenderBackAndNothingElseCallsAnyone) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  const std::string twilio_url = "https://cb.example.com/hooks/sms/twilio";
  WebhookReceiver gateway;  // the gateway's send API, for the outcome SMS (its first answer is a 500)
  const std::string outcome_url = gateway.start();
  start([&](ServiceConfig& c) {
    c.triggers.push_back({.plugin = "callback.trigger.sms",
                          .name = "sms",
                          .config = json::object{{"twilio_auth_token", "12345"},
                                                 {"twilio_url", twilio_url},
                                                 {"hmac_secret", "topsecret"},
                                                 {"outcome_url", outcome_url}},
                          .path = "triggers[0]"});
  });
  add_sms_sender();
  // As Twilio posts it: the fields form-encoded, signed over the configured URL.
  const auto twilio = [&](FormFields fields, std::string signature = {}) {
    std::string body, signed_text = twilio_url;
    auto sorted = fields;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [name, value] : sorted) {
      signed_text += name;
      signed_text += value;
    }
    for (const auto& [name, value] : fields) {
      if (!body.empty()) body += '&';
      body += name;
      body += '=';
      for (unsigned char c : value) {
        if (std::isalnum(c)) {
          body += static_cast<char>(c);
        } else {
          body += '%';
          body += hex_encode(std::string_view(reinterpret_cast<const char*>(&c), 1));
        }
      }
    }
    if (signature.empty()) signature = base64_encode(hmac(Digest::sha1, "12345", signed_text));
    return request("POST", "/hooks/sms/twilio", body,
                   {"Content-Type: application/x-www-form-urlencoded", "X-Twilio-Signature: " + signature}, false);
  };
  const FormFields sms{{"MessageSid", "SM0001"}, {"From", "+1001"}, {"To", "+10690000"}, {"Body", "3001"}};

  auto r = twilio(sms);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "text/xml; charset=utf-8");
  const auto open = r.body.find("(cb-"), close = r.body.find(')', open);
  ASSERT_NE(open, std::string::npos) << r.body;
  const std::string id = r.body.substr(open + 1, close - open - 1);
  EXPECT_EQ(r.body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Calling you at +1001 now, then +3001. (" +
                        id + ")</Message></Response>");
  auto [states, last] = events("/v1/callbacks/" + id + "/events");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), "completed");
  EXPECT_EQ(last.at("origin").as_string(), "sms");
  EXPECT_EQ(last.at("account").as_string(), "alice");
  EXPECT_EQ(last.at("caller").as_string(), "1001");

  // The outcome SMS, through the gateway's API once the call ended: signed, and tried
  // again after the gateway's 500.
  ASSERT_TRUE(gateway.wait_for("sms.outcome"));
  {
    std::lock_guard lock(gateway.mutex);
    EXPECT_EQ(gateway.requests, 2);
    const auto& outcome = gateway.received.at(0);
    const auto sent = json::parse(outcome.body);
    EXPECT_EQ(sent.at("to").as_string(), "+1001");
    EXPECT_EQ(sent.at("from").as_string(), "+10690000");
    EXPECT_EQ(sent.at("callback_id").as_string(), id);
    EXPECT_EQ(sent.at("outcome").as_string(), "partner_busy");
    EXPECT_EQ(sent.at("text").as_string(), "+3001 was busy. Try again later.");
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_TRUE(verify_webhook_signature("topsecret", outcome.signature, outcome.body, now)) << outcome.signature;
  }

  // Twilio's retry of the same message, a forged one, a stranger's: no call.
  auto again = twilio(sms);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>") << "no reply either";
  auto forged = twilio({{"MessageSid", "SM0002"}, {"From", "+1001"}, {"Body", "3002"}}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  EXPECT_EQ(forged.status, 403);
  EXPECT_EQ(forged.error_code(), "bad_signature");
  auto unsigned_one = request("POST", "/hooks/sms/twilio", "MessageSid=SM0003&From=%2B1001&Body=3003",
                              {"Content-Type: application/x-www-form-urlencoded"}, false);
  EXPECT_EQ(unsigned_one.status, 403);
  auto stranger = twilio({{"MessageSid", "SM0004"}, {"From", "+1009"}, {"Body", "3004"}});
  EXPECT_EQ(stranger.status, 200);
  EXPECT_EQ(stranger.body.find("<Message>"), std::string::npos) << stranger.body;
  auto garbled = request("POST", "/hooks/sms/twilio", "From=%ZZ", {"Content-Type: application/x-www-form-urlencoded"}, false);
  EXPECT_EQ(garbled.status, 400);
  auto get = request("GET", "/hooks/sms/twilio", {}, {}, false);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.headers["allow"], "POST");

  // The generic gateway's signed JSON.
  const std::string body = R"({"from": "+1001", "text": "3005", "id": "g-1"})";
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto generic = request("POST", "/hooks/sms", body,
                         {"Callback-Signature: " + webhook_signature("topsecret", now, body)}, false);
  ASSERT_EQ(generic.status, 200) << generic.body;
  EXPECT_EQ(generic.json().at("status").as_string(), "accepted");
  const std::string second(generic.json().at("callback_id").as_string());
  EXPECT_EQ(events("/v1/callbacks/" + second + "/events").first.back(), "completed");

  auto listed = request("GET", "/v1/callbacks?limit=100");
  EXPECT_EQ(listed.json().at("callbacks").as_array().size(), 2u) << "two calls, from the two real messages";
  const auto metrics = request("GET", "/metrics", {}, {}, false).body;
  EXPECT_NE(metrics.find("callback_trigger_requests_total{trigger=\"sms\",outcome=\"accepted\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("callback_trigger_requests_total{trigger=\"sms\",outcome=\"forged\"} 2"), std::string::npos);
  EXPECT_NE(metrics.find("callback_trigger_requests_total{trigger=\"sms\",outcome=\"ignored\"} 2"), std::string::npos);

  // What operators see of it.
  auto status = request("GET", "/v1/triggers");
  ASSERT_EQ(status.status, 200) << status.body;
  conforms(status, "TriggerList");
  const auto listed_triggers = status.json();
  // The page is the fixture's first trigger; the SMS gateway's was added after it.
  const auto& triggers_listed = listed_triggers.at("triggers").as_array();
  ASSERT_EQ(triggers_listed.size(), 2u) << status.body;
  EXPECT_EQ(triggers_listed.at(0).at("plugin").as_string(), "callback.trigger.web");
  const auto& sms_status = triggers_listed.at(1).as_object();
  EXPECT_EQ(sms_status.at("name").as_string(), "sms");
  EXPECT_EQ(sms_status.at("plugin").as_string(), "callback.trigger.sms");
  EXPECT_TRUE(sms_status.at("healthy").as_bool());
  EXPECT_TRUE(sms_status.at("last_message").is_string());
  EXPECT_TRUE(sms_status.at("last_poll").is_null()) << "it does not poll";
  EXPECT_NE(sms_status.at("last_error").as_string().find("without X-Twilio-Signature"), std::string::npos)
      << sms_status.at("last_error");
  EXPECT_EQ(sms_status.at("counts").at("accepted").as_int64(), 2);
  EXPECT_EQ(sms_status.at("counts").at("forged").as_int64(), 2);
  EXPECT_EQ(request("POST", "/v1/triggers", "{}").status, 405);
  EXPECT_EQ(request("GET", "/v1/triggers", {}, {}, false).status, 401);
}

// The outcome SMS in the form of Twilio's Messages API, with its basic authentication.
TEST_F(RestApiTest, TheOutcomeSmsCanGoThroughTwiliosMessagesApi) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  WebhookReceiver twilio_api;
  const std::string api_url = twilio_api.start();
  start([&](ServiceConfig& c) {
    c.triggers.push_back({.plugin = "callback.trigger.sms",
                          .name = "sms",
                          .config = json::object{{"hmac_secret", "topsecret"},
                                                 {"twilio_auth_token", "12345"},
                                                 {"twilio_url", "https://cb.example.com/t"},
                                                 {"twilio_account_sid", "AC0123"},
                                                 {"outcome_url", api_url},
                                                 {"outcome_format", "twilio"}},
                          .path = "triggers[0]"});
  });
  add_sms_sender();
  const std::string body = R"({"from": "+1001", "to": "+10690000", "text": "3001", "id": "g-7"})";
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto r = request("POST", "/hooks/sms", body, {"Callback-Signature: " + webhook_signature("topsecret", now, body)},
                   false);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(twilio_api.wait_for_count(1));
  std::lock_guard lock(twilio_api.mutex);
  const auto& sent = twilio_api.received.at(0);
  EXPECT_EQ(sent.authorization, "Basic " + base64_encode("AC0123:12345"));
  EXPECT_EQ(sent.content_type, "application/x-www-form-urlencoded");
  auto fields = decode_form(sent.body);
  ASSERT_TRUE(fields) << sent.body;
  EXPECT_EQ(*fields, (FormFields{{"To", "+1001"}, {"From", "+10690000"}, {"Body", "+3001 was busy. Try again later."}}));
}

TEST_F(RestApiTest, ThePagesRateLimitCountsANumberNotItsSpellings) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  // China's numbering plan, one callback per number an hour.
  start([](ServiceConfig& c) {
    c.numbering = NumberingPlan{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};
    c.triggers[0].config.as_object()["per_number_per_hour"] = 1;
  });
  const char* spellings[] = {"13800138000", "+8613800138000", "008613800138000", "013800138000",
                             "+86 (0) 138 0013 8000"};
  std::vector<long> statuses;
  for (const char* caller : spellings) {
    const std::string body = std::string(R"({"caller": ")") + caller + R"(", "callee": "13900139000"})";
    auto r = request("POST", "/v1/public/callbacks", body, {}, false);
    statuses.push_back(r.status);
    if (r.status == 429) {
      EXPECT_EQ(r.error_field(), "caller");
    }
  }
  EXPECT_EQ(statuses, (std::vector<long>{202, 429, 429, 429, 429}));
}

TEST_F(RestApiTest, ThePageNeverDialsBarredPremiumOrEmergencyNumbers) {
  // The deck of the demo: 0XXX is BLOCKED. The page's campaign is checked against it,
  // against billing's default deny list, and against the emergency numbers.
  runtime->run_on_service_thread([&] {
    std::istringstream deck("0;No such number;BLOCKED\n1;Phones;0.10\n");
    ASSERT_TRUE(runtime->billing()->admin()->import_rates("default", deck, Currency::of("CNY").value()));
  });
  struct Case {
    const char* callee;
    const char* code;
    const char* rule;
  };
  int caller = 1100;
  for (const Case& c : {Case{"0123", "denied.destination_blocked", "BLOCKED 0 in tariff default"},
                        Case{"+882 1234 5678", "denied.destination_blocked", "deny_prefix +882 (default)"},
                        Case{"+1 900 555 0100", "denied.destination_blocked", "deny_prefix +1900 (default)"},
                        Case{"112", "denied.emergency_number", "emergency 112"},
                        Case{"911", "denied.emergency_number", "emergency 911"},
                        Case{"110", "denied.emergency_number", "emergency 110"},
                        Case{"999", "denied.emergency_number", "emergency 999"}}) {
    const std::string body = R"({"caller": ")" + std::to_string(++caller) + R"(", "callee": ")" + c.callee + R"("})";
    auto r = request("POST", "/v1/public/callbacks", body, {}, false);
    EXPECT_EQ(r.status, 403) << c.callee << ": " << r.body;
    if (r.status != 403) continue;
    EXPECT_EQ(r.error_code(), c.code) << c.callee;
    EXPECT_EQ(r.error_field(), "callee") << c.callee;
    EXPECT_EQ(std::string(r.json().at("error").at("rule").as_string()), c.rule) << c.callee;
  }
}

TEST_F(RestApiTest, OperatorsSetAPayersPolicyAndItsRefusalsNameTheRule) {
  auto put = request("PUT", "/v1/policies/campaign/free", R"({"deny_prefixes": ["+100"], "max_concurrent": 5})");
  ASSERT_EQ(put.status, 200) << put.body;
  auto got = request("GET", "/v1/policies/campaign/free");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(json::serialize(got.json().at("deny_prefixes")), R"(["+100"])");
  EXPECT_EQ(got.json().at("max_concurrent").as_int64(), 5);
  auto refused = request("POST", "/v1/callbacks", R"({"caller": "2001", "callee": "1002", "campaign": "free"})");
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(refused.error_code(), "denied.destination_blocked");
  EXPECT_EQ(refused.error_field(), "callee");
  EXPECT_EQ(std::string(refused.json().at("error").at("rule").as_string()), "deny_prefix +100");
  auto bad = request("PUT", "/v1/policies/campaign/free", R"({"deny_prefixes": ["88x"]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.error_field(), "deny_prefixes");
  EXPECT_EQ(request("PUT", "/v1/policies/campaign/free", R"({"max_call_cost": "-1"})").error_field(), "max_call_cost");
}

TEST_F(RestApiTest, CutStreamsResumeWithTheCurrentState) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  // Streams cut after 1 s (Pistache's request timeout); a 500 s call lasts 5 s here.
  start([](ServiceConfig& c) {
    c.server.as_object()["stream_timeout_seconds"] = 1;
    c.service.campaigns["long"] = CampaignLimits{.limit = std::chrono::seconds(500)};
  });
  runtime->run_on_service_thread(
      [&] { ASSERT_TRUE(runtime->billing()->admin()->put_campaign({.id = "long", .limit = std::chrono::seconds{500}})); });
  const std::string id = post_callback("1001", "1002", R"("campaign": "long")");
  ASSERT_FALSE(id.empty());
  auto [first_states, first_last] = events("/v1/callbacks/" + id + "/events");
  ASSERT_FALSE(first_states.empty());
  EXPECT_EQ(first_last.at("state").as_string(), "bridged");  // cut while they talk
  // Reconnecting: the current state first, then on to the end.
  std::vector<std::string> states;
  json::object last;
  for (int attempt = 0; attempt < 10 && (states.empty() || states.back() != "completed"); ++attempt) {
    auto [more, tail] = events("/v1/callbacks/" + id + "/events");
    ASSERT_FALSE(more.empty());
    EXPECT_EQ(more.front(), attempt == 0 ? "bridged" : states.back());
    states.insert(states.end(), more.begin(), more.end());
    last = tail;
  }
  EXPECT_EQ(states.back(), "completed");
  EXPECT_EQ(last.at("outcome").as_string(), "time_up");
}

TEST_F(RestApiTest, ThePageInAccountModeNeedsTheAccountAndItsPin) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  start([](ServiceConfig& c) { c.triggers.at(0).config = json::object{{"mode", "account"}}; });
  auto config = request("GET", "/v1/public/config", {}, {}, false);
  EXPECT_EQ(config.json().at("mode").as_string(), "account");
  auto created = request("POST", "/v1/accounts", R"({"id": "123", "balance": "5.00", "pin": "2468"})");
  ASSERT_EQ(created.status, 201) << created.body;
  runtime->run_on_service_thread([&] {
    std::istringstream deck("prefix;description;rate\n1;ones;0.10\n3;threes;0.10\n");
    ASSERT_TRUE(runtime->billing()->admin()->import_rates("default", deck, Currency::of("CNY").value()));
  });
  auto no_account = request("POST", "/v1/public/callbacks", R"({"caller": "1001", "callee": "3001"})", {}, false);
  EXPECT_EQ(no_account.status, 400);
  EXPECT_EQ(no_account.error_field(), "account");
  auto wrong_pin = request("POST", "/v1/public/callbacks",
                           R"({"caller": "1001", "callee": "3001", "account": "123", "pin": "1111"})", {}, false);
  EXPECT_EQ(wrong_pin.status, 403) << wrong_pin.body;
  EXPECT_EQ(wrong_pin.error_code(), "denied.bad_secret");
  auto right = request("POST", "/v1/public/callbacks",
                       R"({"caller": "1001", "callee": "3001", "account": "123", "pin": "2468"})", {}, false);
  ASSERT_EQ(right.status, 202) << right.body;
  EXPECT_EQ(right.json().at("callback").at("account").as_string(), "123");
  // The busy partner costs nothing.
  auto [states, last] = events(std::string(right.json().at("events_url").as_string()), false);
  EXPECT_EQ(last.at("outcome").as_string(), "partner_busy");
  EXPECT_EQ(request("GET", "/v1/accounts/123").json().at("balance").as_string(), "5.00");
}

TEST_F(RestApiTest, BeyondItsLimitInFlightTheServiceSaysTryAgain) {
  server->stop();
  runtime->stop(std::chrono::seconds{0});
  start([](ServiceConfig& c) { c.service.max_in_flight = 2; });
  // 4001 does not answer for a long while: two calls stay in flight.
  (void)post_callback("1001", "4001", R"("campaign": "free")");
  (void)post_callback("1002", "4001", R"("campaign": "free")");
  auto third = request("POST", "/v1/callbacks", R"({"caller": "1003", "callee": "4001", "campaign": "free"})");
  EXPECT_EQ(third.status, 503) << third.body;
  EXPECT_EQ(third.error_code(), "overloaded");
  EXPECT_EQ(third.headers["retry-after"], "1");
  EXPECT_EQ(request("GET", "/v1/callbacks").json().at("callbacks").as_array().size(), 2u);
}

TEST_F(RestApiTest, HealthAndMetrics) {
  auto health = request("GET", "/healthz", {}, {}, false);
  ASSERT_EQ(health.status, 200) << health.body;
  // HTTP/1.1 keeps the connection unless asked not to.
  EXPECT_EQ(health.headers["connection"], "Keep-Alive");
  EXPECT_EQ(request("GET", "/healthz", {}, {"Connection: close"}, false).headers["connection"], "Close");
  EXPECT_EQ(health.json().at("engines").at("connected").as_int64(), 1);
  EXPECT_TRUE(health.json().at("database").at("ok").as_bool()) << "the embedded file is always there";
  conforms(health, "Health");
  const std::string id = post_callback("1001", "3001", R"("campaign": "free")");
  (void)events("/v1/callbacks/" + id + "/events");  // to its end
  auto metrics = request("GET", "/metrics", {}, {}, false);
  EXPECT_NE(metrics.body.find("callback_finished_total{state=\"completed\",outcome=\"partner_busy\"} 1\n"),
            std::string::npos)
      << metrics.body;
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("callbackd_http_requests_total{class=\"2xx\"}"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("callback_engine_connections 1"), std::string::npos) << metrics.body;
  // Latencies: the POST above, as a histogram with one observation.
  EXPECT_NE(metrics.body.find("# TYPE callbackd_callback_accept_seconds histogram"), std::string::npos);
  EXPECT_NE(metrics.body.find("callbackd_callback_accept_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("callbackd_callback_accept_seconds_count 1\n"), std::string::npos);
  auto openapi = request("GET", "/v1/openapi.json", {}, {}, false);
  EXPECT_EQ(openapi.json().at("openapi").as_string(), "3.0.3");
}

TEST_F(RestApiTest, DrainingRefusesNewCallsAndEndsTheOnesInFlight) {
  auto r = request("POST", "/v1/callbacks", R"({"caller": "1001", "callee": "4001", "campaign": "free"})");
  ASSERT_EQ(r.status, 202);
  const std::string id(r.json().at("id").as_string());
  runtime->drain(std::chrono::seconds{0});  // no grace: canceled at once, and waited for
  auto refused = request("POST", "/v1/callbacks", R"({"caller": "1002", "callee": "3001", "campaign": "free"})");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.error_code(), "shutting_down");
  auto ended = request("GET", "/v1/callbacks/" + id);
  EXPECT_EQ(ended.json().at("state").as_string(), "canceled");
  // Every leg that was placed is recorded (B only if it was dialed before the cancel).
  const bool b_dialed = ended.json().at("legs").at("b").at("state").as_string() != "idle";
  EXPECT_EQ(cdr_count(), b_dialed ? 2u : 1u);
  EXPECT_EQ(request("GET", "/healthz", {}, {}, false).status, 503);
}

TEST_F(RestApiTest, DrainingAfterAnEarlierCallEndedWaitsForTheCallsInFlight) {
  // The order of the report: one call ends first (which left a count of 0 behind), then
  // another is in flight when the drain begins. The drain must wait for it, not end it.
  const std::string first = post_callback("1001", "3001", R"("campaign": "free")");
  (void)events("/v1/callbacks/" + first + "/events");  // to its end
  const std::string second = post_callback("1002", "2001", R"("campaign": "free")");  // talks, then B hangs up
  runtime->drain(std::chrono::seconds{60});
  auto ended = request("GET", "/v1/callbacks/" + second).json();
  EXPECT_EQ(ended.at("state").as_string(), "completed") << ended;
  EXPECT_EQ(ended.at("outcome").as_string(), "partner_hangup") << ended;
  EXPECT_EQ(ended.at("legs").at("b").at("cause").as_int64(), 16) << ended;
}

}  // namespace
}  // namespace callback::rest
