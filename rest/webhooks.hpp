#pragma once
// Status webhooks: POSTs of the callback object to the URL given with the request, on
// initiated (A is being dialed), ringing (B is being dialed), answered (bridged) and
// completed (any end) — the model Twilio's status callbacks made familiar. Each is signed
// over its timestamp and body, as Stripe and Svix do, so a captured one cannot be replayed
// later (rest/API-CONTRACT.md shows a receiver's check, with a worked example):
//
//   X-Callback-Event: answered
//   Callback-Signature: t=1796000000,v1=<hex HMAC-SHA256 of "1796000000.<body>", keyed
//                       with the API key's webhook secret>
//
// Where they may go: http and https only, and never to loopback, private, link-local,
// metadata or unspecified addresses unless the operator allows the network
// ("server.webhook_allow_networks"). The check is made on the address each connection is
// opened to, after DNS (so "localhost", 2130706433, 0x7f.1 and DNS rebinding are caught).
// URLs are logged without their user:password.
//
// A delivery that fails (no connection, timeout, non-2xx) is retried after 1, 2, 4, 8, 16 s
// (attempts in all: 6); the events of one callback go out in order, each after the one
// before it was delivered or given up. Deliveries run on a few workers, and one receiver
// (scheme, host, port) has at most `per_receiver` of them, so a receiver that never answers
// delays only its own webhooks.
#include <callback/context.hpp>
#include <callback/error.hpp>
#include <callback/secret.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

struct sockaddr;

namespace callback::rest {

// Which destination addresses webhooks may reach. Refused by default: loopback
// (127/8, ::1), private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), link-local
// (169.254/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254), unspecified
// (0/8, ::), multicast, broadcast and reserved (240/4). IPv4-mapped and NAT64 IPv6 forms
// are judged by the IPv4 address inside. Networks in the allow list pass whatever they are.
class AddressPolicy {
 public:
  // `allow`: CIDR networks ("127.0.0.1/32", "10.0.0.0/8", "::1/128"; a bare address is /32
  // or /128). The Error's field is "server.webhook_allow_networks[i]".
  [[nodiscard]] static Result<AddressPolicy> make(const std::vector<std::string>& allow);
  AddressPolicy() = default;  // nothing allowed beyond public addresses

  // Why connecting to `address` is refused ("127.0.0.1 is a loopback address"), or "" when
  // it may be used. Only AF_INET and AF_INET6 can be allowed.
  [[nodiscard]] std::string refusal(const sockaddr& address) const;
  // The same for an address in text ("10.1.2.3", "::1"); "not an IP address" if it is none.
  [[nodiscard]] std::string refusal(std::string_view address) const;

 private:
  struct Network {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as ::ffff:a.b.c.d
    int prefix = 0;                         // over the 128 bits
  };
  [[nodiscard]] std::string refusal(const std::array<std::uint8_t, 16>& bytes, const std::string& text) const;
  std::vector<Network> allow_;
};

struct WebhookOptions {
  int attempts = 6;
  std::chrono::milliseconds first_retry{1000};  // doubles each time
  std::chrono::milliseconds timeout{5000};      // per attempt
  int workers = 4;                              // deliveries at once, in all
  int per_receiver = 2;                         // deliveries at once to one scheme://host:port
  AddressPolicy addresses;
};

struct Webhook {
  std::string callback_id;
  std::string url;
  std::string event;  // initiated, ringing, answered, completed
  std::string body;   // the callback object
  std::string owner;  // the API key whose webhook secret signs it
};

// A status_callback URL callbackd accepts: http or https, with a host, at most 2000
// characters, no control characters. The Error's field is `field`.
[[nodiscard]] Status check_webhook_url(std::string_view url, const std::string& field = "status_callback");
// `url` fit for a log line: without user:password (and unparseable ones replaced).
[[nodiscard]] std::string redact_url(const std::string& url);

// callback/secret.hpp's: the Callback-Signature header, made and checked.
using callback::verify_webhook_signature;
using callback::webhook_signature;

class WebhookSender {
 public:
  // `secret_for` gives an API key's webhook secret; it is called on the workers' threads.
  using SecretLookup = std::function<Result<std::string>(const std::string& owner)>;
  WebhookSender(Logger& log, Metrics& metrics, SecretLookup secret_for, WebhookOptions options = {});
  ~WebhookSender();  // stops; deliveries under way are aborted, undelivered webhooks dropped (and logged)
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void send(Webhook webhook);  // thread-safe, never blocks on the network
  // Waits until every webhook sent so far is delivered or given up, or `timeout` passes
  // (graceful shutdown: the "completed" webhooks of the last calls). True when all are.
  bool flush(std::chrono::milliseconds timeout);

  // The webhook event name for a callback state, or "" when none is sent for it.
  [[nodiscard]] static std::string_view event_for(std::string_view state) noexcept;

 private:
  // Scheduling is O(log n) in the webhooks waiting, whatever the backlog: a worker takes
  // the next receiver in `runnable_` (round robin), and from it the callback whose front
  // webhook has been due longest. An earlier version scanned every callback's queue for
  // each delivery, which made a backlog (a slow receiver, a starved CPU) cost more per
  // delivery the longer it grew, so it never drained (benchmarks/README.md, "Soak").
  using Clock = std::chrono::steady_clock;
  struct Pending {
    Webhook webhook;
    std::string receiver;  // scheme://host:port, lower case
    int attempt = 0;
    Clock::time_point due;
  };
  struct Receiver {
    int busy = 0;                    // deliveries under way
    std::deque<std::string> ready;   // callbacks whose front webhook is due, oldest first
    bool listed = false;             // in runnable_
  };
  enum class Delivery { delivered, failed, refused };
  void run();
  Delivery deliver(const Webhook& webhook);  // one attempt
  // With mutex_ held. A callback's front webhook is, at any time, in exactly one of: a
  // receiver's `ready`, `timers_` (not due yet), or being delivered.
  void schedule_front(const std::string& callback_id, Clock::time_point now);
  void list_if_runnable(const std::string& name, Receiver& receiver);

  Logger& log_;
  SecretLookup secret_for_;
  WebhookOptions options_;
  Counter& delivered_;
  Counter& failed_;
  Counter& refused_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  // Per callback, its webhooks in order; the front one is the next to try.
  std::unordered_map<std::string, std::deque<Pending>> queues_;
  std::unordered_map<std::string, Receiver> receivers_;  // those with webhooks due or under way
  std::deque<std::string> runnable_;  // receivers with a ready callback and a free slot
  using Timer = std::pair<Clock::time_point, std::string>;  // a front webhook's retry time, its callback
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  bool stopping_ = false;
  std::atomic<bool> abort_{false};  // read by transfers under way
  std::vector<std::thread> workers_;
};

}  // namespace callback::rest
