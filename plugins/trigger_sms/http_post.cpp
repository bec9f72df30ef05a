#include "http_post.hpp"

#include <curl/curl.h>

namespace callback::trigger_sms {

namespace {
std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }
}  // namespace

bool post_once(const HttpPost& message, std::string& why) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    why = "libcurl could not start";
    return false;
  }
  curl_slist* headers = nullptr;
  for (const auto& h : message.headers) headers = curl_slist_append(headers, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, message.url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, message.body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(message.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!message.userpwd.empty()) curl_easy_setopt(curl, CURLOPT_USERPWD, message.userpwd.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5'000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15'000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    why = curl_easy_strerror(rc);
    return false;
  }
  if (status < 200 || status > 299) {
    why = "the gateway answered " + std::to_string(status);
    return false;
  }
  return true;
}

}  // namespace callback::trigger_sms
