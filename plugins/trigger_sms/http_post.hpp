#pragma once
// One POST of an outcome SMS to the gateway's HTTP API (libcurl; http and https only, 5 s
// to connect, 15 s in all). The trigger's Outbox (callback/outbox.hpp) queues and retries.
#include <string>
#include <vector>

namespace callback::trigger_sms {

struct HttpPost {
  std::string url;
  std::vector<std::string> headers;  // "Content-Type: application/json", ...
  std::string body;
  std::string userpwd;  // HTTP basic authentication ("sid:token"); empty: none
};

// Sent (a 2xx answer), or false and why not.
bool post_once(const HttpPost& message, std::string& why);

}  // namespace callback::trigger_sms
