#pragma once
// RestServer: callbackd's HTTP side (Pistache): the REST API /v1 (rest/openapi.json),
// the web page's public endpoints, Server-Sent Events, /healthz and /metrics, over a
// Runtime. Requests that need the service are posted to its thread; reads of callbacks
// come from the CallRegistry and never wait for it.
#include "api_keys.hpp"
#include "registry.hpp"
#include "webhooks.hpp"

#include <callback_internal/runtime.hpp>

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace Pistache::Http {
class Endpoint;
}

namespace callback::rest {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port (tests)
  int threads = 2;
  std::size_t max_body = 16 * 1024;          // bytes; larger requests get 413
  std::size_t max_import = 64 * 1024 * 1024;  // a rate deck's CSV (POST /v1/rates/{tariff})
  std::chrono::seconds shutdown_grace{30};
  std::chrono::seconds keepalive{60};
  // Pistache 0.0.5 closes a connection whose request started this long ago unless its
  // response was sent whole, so event streams last at most this long; clients reconnect
  // (the first event is always the current state). Also the slow-client limit.
  std::chrono::seconds stream_timeout{60};
  std::chrono::seconds stream_ping{15};  // ": keep-alive" comments on idle streams
  WebhookOptions webhooks;
};

// The config file's "server" block ({"listen": "127.0.0.1:8080", "threads": 2, ...}).
[[nodiscard]] Result<ServerOptions> parse_server_options(const boost::json::value& block);

class RestServer {
 public:
  RestServer(Runtime& runtime, ServerOptions options, std::unique_ptr<ApiKeys> keys);
  ~RestServer();
  // Binds and serves on its own threads.
  [[nodiscard]] Status start();
  [[nodiscard]] std::uint16_t port() const;
  // Waits (at most `timeout`) for the status webhooks sent so far to be delivered.
  bool flush_webhooks(std::chrono::milliseconds timeout);
  // Stops taking connections (open event streams end).
  void stop();
  struct State;

 private:
  void runtime_post_arm();
  std::shared_ptr<State> state_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
};

}  // namespace callback::rest
