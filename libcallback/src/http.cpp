#include <callback/http.hpp>
#include <callback/json.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>

namespace callback {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}
}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (text.size() - i < 3) return std::nullopt;
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += c == '+' && plus_is_space ? ' ' : c;
    }
  }
  return out;
}

Result<FormFields> decode_form(std::string_view query) {
  FormFields parameters;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2"
    const auto equals = pair.find('=');
    const std::string_view raw_name = pair.substr(0, equals);
    auto name = percent_decode(raw_name, true);
    if (!name) {
      return Error{"invalid_parameter", "the name has a malformed %-escape (a '%' must be followed by two hex digits)",
                   std::string(raw_name)};
    }
    auto value = percent_decode(equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1), true);
    if (!value) {
      return Error{"invalid_parameter", "malformed %-escape (a '%' must be followed by two hex digits; write '%' as %25)",
                   *name};
    }
    auto control = [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
    if (std::any_of(name->begin(), name->end(), control) || std::any_of(value->begin(), value->end(), control)) {
      return Error{"invalid_parameter", "control characters are not allowed", *name};
    }
    parameters.emplace_back(std::move(*name), std::move(*value));
  }
  return parameters;
}

int http_status(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid: return 400;
    case ErrorKind::unauthorized: return 401;
    case ErrorKind::payment_required: return 402;
    case ErrorKind::forbidden: return 403;
    case ErrorKind::not_found: return 404;
    case ErrorKind::method_not_allowed: return 405;
    case ErrorKind::conflict: return 409;
    case ErrorKind::too_large: return 413;
    case ErrorKind::unsupported_media: return 415;
    case ErrorKind::rate_limited: return 429;
    case ErrorKind::internal: return 500;
    case ErrorKind::unavailable: return 503;
  }
  return 500;
}

ErrorKind error_kind_for_status(int status) noexcept {
  switch (status) {
    case 401: return ErrorKind::unauthorized;
    case 402: return ErrorKind::payment_required;
    case 403: return ErrorKind::forbidden;
    case 404: return ErrorKind::not_found;
    case 405: return ErrorKind::method_not_allowed;
    case 409: return ErrorKind::conflict;
    case 413: return ErrorKind::too_large;
    case 415: return ErrorKind::unsupported_media;
    case 429: return ErrorKind::rate_limited;
    case 503: return ErrorKind::unavailable;
    default: return status >= 500 ? ErrorKind::internal : ErrorKind::invalid;
  }
}

HttpResponse error_response(const Error& error) {
  return {.status = http_status(error.kind), .body = boost::json::serialize(error_body(error))};
}

HttpRoutes::~HttpRoutes() = default;

Status HttpRouteTable::add(std::string_view method, std::string path, HttpHandler handler, bool prefix) {
  if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE") {
    return Error{"invalid_route", "a route's method is GET, POST, PUT or DELETE, not \"" + std::string(method) + "\"",
                 "method"};
  }
  if (path.empty() || path.front() != '/' || path.find_first_of("?# \r\n\t") != std::string::npos) {
    return Error{"invalid_route", "a route's path begins with / and has no query, space or fragment: \"" + path + "\"",
                 "path"};
  }
  if (!handler) return Error{"invalid_route", "a route needs a handler", "handler"};
  if (reserved(path)) {
    return Error{"route_reserved", path + " is callbackd's own (/v1/ but /v1/public/, /healthz, /metrics)", "path"};
  }
  std::lock_guard lock(mutex_);
  for (const auto& route : routes_) {
    if (route.method == method && route.path == path && route.prefix == prefix) {
      return Error{"route_taken", std::string(method) + " " + path + (prefix ? "*" : "") + " has a handler already",
                   "path"};
    }
  }
  routes_.push_back({std::string(method), std::move(path), prefix, std::move(handler)});
  return ok_status();
}

bool HttpRouteTable::reserved(std::string_view path) {
  if (path.starts_with("/v1/public/")) return false;  // the web page's
  return path.starts_with("/v1/") || path == "/v1" || path.starts_with("/healthz") || path.starts_with("/metrics");
}

HttpRouteTable::Match HttpRouteTable::find(std::string_view method, std::string_view path) const {
  if (reserved(path)) return {};  // a prefix route ("/") does not cover callbackd's own
  std::lock_guard lock(mutex_);
  // The exact routes of the path, else those of its longest matching prefix.
  const Route* best = nullptr;
  std::size_t best_length = 0;
  bool best_exact = false;
  for (const auto& route : routes_) {
    const bool exact = !route.prefix && route.path == path;
    const bool under = route.prefix && path.starts_with(route.path);
    if (!exact && !under) continue;
    if (best == nullptr || (exact && !best_exact) || (!best_exact && !exact && route.path.size() > best_length)) {
      best = &route;
      best_length = route.path.size();
      best_exact = exact;
    }
  }
  Match match;
  if (best == nullptr) return match;
  for (const auto& route : routes_) {
    if (route.path != best->path || route.prefix != best->prefix) continue;
    if (route.method == method) match.handler = route.handler;
    if (match.allowed.find(route.method) == std::string::npos) {
      match.allowed += match.allowed.empty() ? route.method : ", " + route.method;
    }
  }
  return match;
}

bool HttpRouteTable::empty() const {
  std::lock_guard lock(mutex_);
  return routes_.empty();
}

}  // namespace callback
