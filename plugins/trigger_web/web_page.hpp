#pragma once
// callback.trigger.web: the seed's callback page and its public policy.
#include <callback/context.hpp>
#include <callback/rate_limiter.hpp>
#include <callback/web.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
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
};

class WebPageFrontEnd final : public WebPage {
 public:
  WebPageFrontEnd(Context& context, WebOptions options);
  void start(TriggerSink& sink) override;
  void stop() override;
  [[nodiscard]] std::optional<WebAsset> asset(std::string_view path) const override;
  [[nodiscard]] boost::json::object public_config() const override;
  [[nodiscard]] Result<CallbackForm> admit(const boost::json::object& body, std::string_view client_ip, Timestamp now,
                                           const NumberingPlan& plan, std::chrono::seconds& retry_after) override;

 private:
  Context& context_;
  WebOptions options_;
  RateLimiter per_number_;
  RateLimiter per_ip_;
};

}  // namespace callback::trigger_web
