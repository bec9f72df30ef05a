#pragma once
// WebPage: a front end that is a page people use to ask for a callback (the seed's "enter
// your number, call me now, your friend's number, Call"), served by callbackd. The page
// plugin owns the files and the public policy (campaign or account mode, rate limits);
// callbackd owns HTTP, the event stream and the service.
//
//   if (auto* page = dynamic_cast<WebPage*>(frontend.get())) {
//     if (auto file = page->asset("/")) reply(200, file->content_type, file->body);
//     std::chrono::seconds retry_after{0};
//     auto form = page->admit(body, client_ip, now, plan, retry_after);   // 429 when rate limited
//   }
#include <callback/callback_request.hpp>
#include <callback/call.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/trigger.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callback {

struct WebAsset {
  std::string content_type;  // "text/html; charset=utf-8"
  std::string body;
};

class CALLBACK_EXPORT WebPage : public FrontEnd {
 public:
  // The file for a request path ("/" is the page itself), or nothing.
  [[nodiscard]] virtual std::optional<WebAsset> asset(std::string_view path) const = 0;
  // What the page needs to know: {"mode", "campaign", "limit_seconds", "default_language"}.
  [[nodiscard]] virtual boost::json::object public_config() const = 0;
  // The page's POSTed JSON as a request form, after the policy: fields of the mode, the
  // rate limits per caller number and per client address. A number is counted as the
  // number it is under `plan` (E.164), however it was written. A rate-limited request is
  // an Error with code "rate_limited" and `retry_after` set. Thread-safe.
  [[nodiscard]] virtual Result<CallbackForm> admit(const boost::json::object& body, std::string_view client_ip,
                                                   Timestamp now, const NumberingPlan& plan,
                                                   std::chrono::seconds& retry_after) = 0;
};

}  // namespace callback
