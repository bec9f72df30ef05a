#pragma once
// HTTP routes that plugins add to callbackd: an SMS gateway's webhook, the web page. The
// plugin registers its paths when it is made (CreateArgs::routes); callbackd checks the
// request first (HttpGuard: sizes, headers) and hands it over as an HttpRequest. The
// plugin answers once, from any thread.
//
//   args.routes->add("POST", "/hooks/sms/twilio", [this](const HttpRequest& request, HttpRespond respond) {
//     if (!signature_ok(request)) return respond({.status = 403, .body = R"({"error":...})"});
//     respond({.status = 200, .content_type = "text/xml", .body = "<Response/>"});
//   });
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callback {

// RFC 3986 percent-decoding. `plus_is_space`: '+' stands for a space, as in
// application/x-www-form-urlencoded text (a query string). nullopt for a malformed escape
// ("%G1", a truncated "%4").
[[nodiscard]] CALLBACK_EXPORT std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

using FormFields = std::vector<std::pair<std::string, std::string>>;

// A query string or an application/x-www-form-urlencoded body
// ("since=2026-11-30T09%3A00%3A00Z&limit=10", without the '?') as decoded names and
// values, in order. A malformed escape or a decoded control character is an
// "invalid_parameter" error whose field is the parameter's name.
[[nodiscard]] CALLBACK_EXPORT Result<FormFields> decode_form(std::string_view text);

struct HttpRequest {
  std::string method;  // "POST"
  std::string path;    // "/hooks/sms/twilio", without the query
  std::vector<std::pair<std::string, std::string>> query;    // the query's parameters, decoded; order not kept
  std::vector<std::pair<std::string, std::string>> headers;  // name and value of each
  std::string body;
  std::string client_ip;
  // The first header of that name (case-insensitive), or nothing.
  [[nodiscard]] CALLBACK_EXPORT std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more headers ("Retry-After")
  // Instead of the above: callbackd answers with the Server-Sent Events of this callback
  // (GET /v1/callbacks/{id}/events's stream). The route has checked that the client may
  // follow it (the web page's token).
  std::string event_stream;
};

// The HTTP status for an error of this kind (ErrorKind::not_found: 404), and the kind a
// client reads back from a status.
[[nodiscard]] CALLBACK_EXPORT int http_status(ErrorKind kind) noexcept;
[[nodiscard]] CALLBACK_EXPORT ErrorKind error_kind_for_status(int status) noexcept;
// An Error as every route of callbackd answers it: the status of its kind and the body
// {"error": {"code", "message", "field", "rule"}} (callback/json.hpp's error_body).
[[nodiscard]] CALLBACK_EXPORT HttpResponse error_response(const Error& error);

using HttpRespond = std::function<void(HttpResponse)>;  // exactly once, any thread
using HttpHandler = std::function<void(const HttpRequest&, HttpRespond)>;

class CALLBACK_EXPORT HttpRoutes {
 public:
  virtual ~HttpRoutes();
  // `path` is matched exactly; with `prefix`, every path that begins with it, except
  // callbackd's own (/v1/ but /v1/public/, /healthz, /metrics), which no route covers. Errors:
  // "route_taken" (that method and path are someone's already), "route_reserved" (a path
  // of callbackd's own), "invalid_route" (not "/..." or a method other than GET, POST,
  // PUT, DELETE).
  virtual Status add(std::string_view method, std::string path, HttpHandler handler, bool prefix = false) = 0;
};

// The routes of a process, as callbackd dispatches them. Thread-safe.
class CALLBACK_EXPORT HttpRouteTable final : public HttpRoutes {
 public:
  Status add(std::string_view method, std::string path, HttpHandler handler, bool prefix = false) override;

  struct Match {
    HttpHandler handler;      // empty when nothing matched for this method
    std::string allowed;      // the methods that path has, when it has some ("GET, POST")
  };
  // The handler of an exact route first, then of the longest prefix route.
  [[nodiscard]] Match find(std::string_view method, std::string_view path) const;
  [[nodiscard]] bool empty() const;

 private:
  static bool reserved(std::string_view path);
  struct Route {
    std::string method, path;
    bool prefix = false;
    HttpHandler handler;
  };
  mutable std::mutex mutex_;
  std::vector<Route> routes_;
};

}  // namespace callback
