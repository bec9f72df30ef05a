#pragma once
// callback.trigger.web: the seed's callback page, its public policy and its routes. The
// page's files are served at / (and /assets/), its settings at GET /v1/public/config; a
// POST to /v1/public/callbacks asks for a callback (campaign or account mode, rate limited
// per caller number and per client address) and is answered once the service has taken
// or refused it, with the address of the callback's event stream, which only the one who
// asked can follow (a token).
#include <callback/context.hpp>
#include <callback/http.hpp>
#include <callback/rate_limiter.hpp>
#include <callback/trigger.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callback::trigger_web {

// The files of assets/, compiled in: (name, bytes).
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_files();

struct WebOptions {
  bool account_mode = false;         // else campaign mode: no login, the campaign pays
  std::string campaign = "free";     // campaign mode: who pays
  std::int64_t limit_seconds = 300;  // what the page tells people
  std::string default_language = "zh";
  std::filesystem::path assets_dir;  // empty: the files compiled in
  int per_number_per_hour = 5;       // requests for one caller number
  int per_ip_per_minute = 20;        // requests from one client address
  // Signs the event streams' tokens (HMAC-SHA256 of the callback id). Every node behind one
  // address needs the same one, so that a page can follow its call through any of them;
  // empty: a random key made at start (a page must come back to the node that served it).
  std::string token_secret;
};

struct WebAsset {
  std::string content_type;  // "text/html; charset=utf-8"
  std::string body;
};

class WebPageTrigger final : public Trigger {
 public:
  // Adds the page's routes to `routes` (none without an HTTP server).
  WebPageTrigger(Context& context, const NumberingPlan& plan, HttpRoutes* routes, WebOptions options);
  // Counts the page's limits in `counter` (a server database's, shared by every node).
  void share_limits(RateCounter* counter) {
    per_number_.share(counter, "web.per_number");
    per_ip_.share(counter, "web.per_ip");
  }
  void start(TriggerSink& sink) override;
  void stop() override;
  [[nodiscard]] TriggerStatus status() const override;

  // The file for a request path ("/" is the page itself), or nothing.
  [[nodiscard]] std::optional<WebAsset> asset(std::string_view path) const;
  // What the page needs to know: {"mode", "campaign", "limit_seconds", "default_language"}.
  [[nodiscard]] boost::json::object public_config() const;
  // The page's POSTed JSON as a request form, after the policy: fields of the mode, the
  // rate limits per caller number (as the number it is under the plan, however it was
  // written) and per client address. A rate-limited request is an Error of kind
  // rate_limited with `retry_after` set. Thread-safe.
  [[nodiscard]] Result<CallbackForm> admit(const boost::json::object& body, std::string_view client_ip,
                                           Timestamp now, std::chrono::seconds& retry_after);

 private:
  void on_file(const HttpRequest& request, const HttpRespond& respond) const;
  void on_callback(const HttpRequest& request, const HttpRespond& respond);
  void on_events(const HttpRequest& request, const HttpRespond& respond) const;
  [[nodiscard]] std::string token_for(const std::string& id) const;

  Context& context_;
  const NumberingPlan& plan_;
  WebOptions options_;
  RateLimiter per_number_;
  RateLimiter per_ip_;
  const std::string token_key_;  // the event streams' tokens: HMAC-SHA256 of the callback id
  TriggerStatusKeeper keeper_;
  mutable std::mutex mutex_;
  TriggerSink* sink_ = nullptr;  // between start() and stop()
};

}  // namespace callback::trigger_web
