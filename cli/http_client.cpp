#include "http_client.hpp"

#include <callback/http.hpp>

#include <boost/json.hpp>
#include <curl/curl.h>

#include <algorithm>

namespace callback::cli {

namespace json = boost::json;

Result<Http> http(const Remote& remote, const std::string& method, const std::string& path, const std::string& body,
                  std::vector<std::string> headers, std::function<bool(std::string_view)> on_data) {
  struct Sink {
    Http* response;
    std::function<bool(std::string_view)>* on_data;
  };
  Http response;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Error{"http", "cannot start an HTTP client", {}};
  headers.push_back("Authorization: Bearer " + remote.api_key);
  const bool typed = std::any_of(headers.begin(), headers.end(), [](const std::string& h) {
    return h.starts_with("Content-Type:");
  });
  if (!body.empty() && !typed) headers.push_back("Content-Type: application/json");
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  std::string url = remote.server;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  Sink sink{&response, &on_data};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t n, void* user) {
    auto* s = static_cast<Sink*>(user);
    const std::string_view chunk(data, size * n);
    if (*s->on_data && !(*s->on_data)(chunk)) return std::size_t{0};
    if (!*s->on_data) s->response->body.append(chunk);
    return size * n;
  });
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  // A stream the server cut (it does, at its request timeout) is not a failure: the
  // caller reconnects.
  const bool stream_cut = on_data && response.status == 200 && (rc == CURLE_RECV_ERROR || rc == CURLE_PARTIAL_FILE);
  if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR && !stream_cut) {
    return Error{"http", "cannot reach " + remote.server + ": " + curl_easy_strerror(rc), "server"}.as(
        ErrorKind::unavailable);
  }
  return response;
}

// The API's error, or one made from the status.
Error api_error(const Http& r) {
  boost::system::error_code ec;
  auto value = json::parse(r.body, ec);
  if (!ec && value.is_object() && value.as_object().contains("error")) {
    const auto& e = value.at("error");
    const auto* rule = e.as_object().if_contains("rule");
    return Error{std::string(e.at("code").as_string()), std::string(e.at("message").as_string()),
                 std::string(e.at("field").as_string()),
                 rule != nullptr && rule->is_string() ? std::string(rule->as_string()) : std::string(),
                 error_kind_for_status(static_cast<int>(r.status))};
  }
  return Error{"http", "callbackd answered HTTP " + std::to_string(r.status), {}, {},
               error_kind_for_status(static_cast<int>(r.status))};
}


Result<json::value> api(const Remote& remote, const std::string& method, const std::string& path,
                        const std::string& body, std::vector<std::string> headers) {
  auto r = http(remote, method, path, body, std::move(headers));
  if (!r) return r.error();
  if (r->status < 200 || r->status >= 300) return api_error(*r);
  boost::system::error_code ec;
  auto value = json::parse(r->body, ec);
  if (ec) return Error{"http", "callbackd answered something that is not JSON", {}};
  return value;
}

}  // namespace callback::cli
