#pragma once
// The REST server's inside, shared by its files (server.cpp dispatches; callbacks.cpp,
// accounts.cpp, rates.cpp, records.cpp, policies.cpp and system.cpp answer; sse.cpp
// streams; errors.cpp turns Errors into answers).
//
// A request becomes an Exchange: the Pistache request, the writer of its one answer (any
// thread may answer), the {...} parts of its route's pattern, and the API key that
// authenticated it. Routes are added to the Router by resource:
//
//   router.add(Method::Get, "/v1/callbacks/{id}", Access::callbacks, [](State& s, Exchange& x) {
//     auto snapshot = s.visible(x.params[0], &*x.key);
//     ...
//     s.reply(x, Reply{Code::Ok, std::move(snapshot->json)});
//   });
#include "server.hpp"

#include <callback/error.hpp>
#include <callback/http.hpp>
#include <callback/timestamp.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <pistache/http.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callback::rest {

using Pistache::Http::Code;
using Pistache::Http::Method;
using Pistache::Http::ResponseWriter;

// --- answers (errors.cpp) --------------------------------------------------------------

struct Reply {
  Code code = Code::Ok;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};
[[nodiscard]] Reply json_reply(Code code, const boost::json::value& body);
// The status of the error's kind (callback/http.hpp's http_status) and its JSON body.
[[nodiscard]] Reply error_reply(const Error& e);
// A plugin's route's answer.
[[nodiscard]] Reply plugin_reply(HttpResponse answer);
// Writes it out (Pistache's typed headers; see NamedHeader in errors.cpp).
void send(ResponseWriter& response, Reply reply);

// --- reading requests (errors.cpp) -------------------------------------------------------

[[nodiscard]] std::vector<std::string_view> split_path(std::string_view path);
[[nodiscard]] std::optional<std::string> header(const Pistache::Http::Request& request, const std::string& name);
[[nodiscard]] std::optional<std::string> query(const Pistache::Http::Request& request, const std::string& name);
// A JSON object body (Content-Type JSON or none).
[[nodiscard]] Result<boost::json::object> parse_body(const Pistache::Http::Request& request);
// An optional (or `required`) string field of at most `max` characters; absent is "".
[[nodiscard]] Result<std::string> string_field(const boost::json::object& body, std::string_view key, bool required,
                                               std::size_t max = 200);
// An optional list of strings.
[[nodiscard]] Result<std::vector<std::string>> string_list(const boost::json::value& value, std::string_view key);
[[nodiscard]] Result<std::size_t> limit_param(const Pistache::Http::Request& request, std::size_t fallback);
[[nodiscard]] Result<std::optional<Timestamp>> time_param(const Pistache::Http::Request& request,
                                                         const std::string& name);
// The request as a plugin's route sees it.
[[nodiscard]] HttpRequest plain_request(const Pistache::Http::Request& request);

// --- routes (server.cpp) -------------------------------------------------------------------

struct Exchange {
  const Pistache::Http::Request& request;
  std::shared_ptr<ResponseWriter> response;
  std::vector<std::string> params;  // the pattern's {...} parts, in order
  std::optional<ApiKeyInfo> key;    // set for routes that need one
};

// Who may use a route: anyone, or an API key whose scope covers it (admin covers all).
enum class Access { open, callbacks, operator_ };

using RouteHandler = std::function<void(RestServer::State&, Exchange&)>;

class Router {
 public:
  // `pattern`: "/v1/callbacks/{id}/events"; a {...} part matches one path segment.
  void add(Method method, std::string_view pattern, Access access, RouteHandler handler);

  struct Route {
    Method method;
    std::vector<std::string> parts;  // "{}" for a parameter
    Access access;
    RouteHandler handler;
  };
  struct Match {
    const Route* route = nullptr;  // for the method; nullptr: none (see `allowed`)
    Access access = Access::open;  // of the path's routes
    std::vector<std::string> params;
    std::string allowed;           // the path's methods ("GET, POST"); empty: no route has the path
  };
  [[nodiscard]] Match find(Method method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

// Each resource's routes.
void add_callback_routes(Router& router);  // callbacks.cpp
void add_account_routes(Router& router);   // accounts.cpp
void add_rate_routes(Router& router);      // rates.cpp
void add_record_routes(Router& router);    // records.cpp: CDRs and caller statistics
void add_policy_routes(Router& router);    // policies.cpp
void add_system_routes(Router& router);    // system.cpp: health, metrics, the API description, triggers

}  // namespace callback::rest
