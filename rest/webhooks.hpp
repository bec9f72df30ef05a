#pragma once
// Status webhooks: POSTs of the callback object to the URL given with the request, on
// initiated (A is being dialed), ringing (B is being dialed), answered (bridged) and
// completed (any end) — the model Twilio's status callbacks made familiar. Each is signed:
//
//   X-Callback-Event: answered
//   X-Callback-Timestamp: 1796000000
//   X-Callback-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the API key's
//                         webhook secret>
//
// A delivery that fails (no connection, timeout, non-2xx) is retried after 1, 2, 4, 8, 16 s
// (attempts in all: 6); the events of one callback go out in order, each after the one
// before it was delivered or given up.
#include <callback/context.hpp>
#include <callback/error.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace callback::rest {

struct WebhookOptions {
  int attempts = 6;
  std::chrono::milliseconds first_retry{1000};  // doubles each time
  std::chrono::milliseconds timeout{5000};      // per attempt
};

struct Webhook {
  std::string callback_id;
  std::string url;
  std::string event;  // initiated, ringing, answered, completed
  std::string body;   // the callback object
  std::string owner;  // the API key whose webhook secret signs it
};

class WebhookSender {
 public:
  // `secret_for` gives an API key's webhook secret; it is called on the sender's thread.
  using SecretLookup = std::function<Result<std::string>(const std::string& owner)>;
  WebhookSender(Logger& log, Metrics& metrics, SecretLookup secret_for, WebhookOptions options = {});
  ~WebhookSender();  // stops; undelivered webhooks are dropped (and logged)
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void send(Webhook webhook);  // thread-safe, never blocks on the network
  // Waits until every webhook sent so far is delivered or given up, or `timeout` passes
  // (graceful shutdown: the "completed" webhooks of the last calls). True when all are.
  bool flush(std::chrono::milliseconds timeout);

  // The webhook event name for a callback state, or "" when none is sent for it.
  [[nodiscard]] static std::string_view event_for(std::string_view state) noexcept;

 private:
  struct Pending {
    Webhook webhook;
    int attempt = 0;
    std::chrono::steady_clock::time_point due;
  };
  void run();
  bool deliver(const Webhook& webhook);  // one attempt

  Logger& log_;
  SecretLookup secret_for_;
  WebhookOptions options_;
  Counter& delivered_;
  Counter& failed_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  // Per callback, its webhooks in order; the front one is the one being tried.
  std::unordered_map<std::string, std::deque<Pending>> queues_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace callback::rest
