#pragma once
// callbackctl as a client of callbackd's REST API (--server URL --api-key KEY).
#include <callback/error.hpp>

#include <boost/json/value.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace callback::cli {

struct Remote {
  std::string server;  // http://127.0.0.1:8080; empty: embedded
  std::string api_key;
};

struct Http {
  long status = 0;
  std::string body;
};

// One request. `on_data` sees the body as it arrives (event streams) and returns false to
// stop; without it the body is collected. A stream the server cuts is not an error.
[[nodiscard]] Result<Http> http(const Remote& remote, const std::string& method, const std::string& path,
                                const std::string& body, std::vector<std::string> headers = {},
                                std::function<bool(std::string_view)> on_data = nullptr);
// The API's {"error": ...} as an Error, or one made from the status.
[[nodiscard]] Error api_error(const Http& response);
// A JSON request: the parsed 2xx body, or the API's error. JSON bodies get their type.
[[nodiscard]] Result<boost::json::value> api(const Remote& remote, const std::string& method, const std::string& path,
                                             const std::string& body = {}, std::vector<std::string> headers = {});

}  // namespace callback::cli
