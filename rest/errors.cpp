// Answers and the reading of requests: an Error becomes the status of its kind
// (callback/http.hpp) and {"error": {...}}; bodies, fields and query parameters that are
// wrong become Errors that name the field.
#include "exchange.hpp"

#include <callback/json.hpp>

#include <boost/json.hpp>

#include <charconv>
#include <sstream>

namespace callback::rest {

namespace json = boost::json;

Reply json_reply(Code code, const json::value& body) { return Reply{code, json::serialize(body)}; }

Reply error_reply(const Error& e) {
  Reply r = json_reply(static_cast<Code>(http_status(e.kind)), error_body(e));
  if (e.code == "overloaded") r.headers.emplace_back("Retry-After", "1");  // a second frees a slot
  return r;
}

Reply plugin_reply(HttpResponse answer) {
  return Reply{static_cast<Code>(answer.status), std::move(answer.body), std::move(answer.content_type),
               std::move(answer.headers)};
}

namespace {

// Any response header by name: Pistache 0.0.5 writes only typed headers (addRaw()'s are
// silently dropped from responses).
class NamedHeader final : public Pistache::Http::Header::Header {
 public:
  NamedHeader(std::string name, std::string value) : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }
  void write(std::ostream& out) const override { out << value_; }
  std::uint64_t hash() const override { return Pistache::Http::Header::detail::hash(name_.c_str()); }

 private:
  std::string name_, value_;
};

}  // namespace

void send(ResponseWriter& response, Reply reply) {
  response.headers().add<Pistache::Http::Header::ContentType>(Pistache::Http::Mime::MediaType(reply.content_type));
  for (auto& [name, value] : reply.headers) {
    response.headers().add(std::make_shared<NamedHeader>(std::move(name), std::move(value)));
  }
  response.send(reply.code, reply.body);
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

std::optional<std::string> header(const Pistache::Http::Request& request, const std::string& name) {
  if (auto raw = request.headers().tryGetRaw(name)) return raw->value();
  return std::nullopt;
}

std::optional<std::string> query(const Pistache::Http::Request& request, const std::string& name) {
  return request.query().get(name);
}

Result<json::object> parse_body(const Pistache::Http::Request& request) {
  if (auto type = header(request, "Content-Type"); type && type->find("json") == std::string::npos) {
    return Error{"unsupported_media_type", "the body must be JSON (Content-Type: application/json)", "body"}.as(
        ErrorKind::unsupported_media);
  }
  boost::system::error_code ec;
  json::value value = json::parse(request.body(), ec);
  if (ec) return Error{"invalid_json", "the body is not valid JSON: " + ec.message(), "body"};
  if (!value.is_object()) return Error{"invalid_json", "the body must be a JSON object", "body"};
  return std::move(value.get_object());
}

Result<std::string> string_field(const json::object& body, std::string_view key, bool required, std::size_t max) {
  const auto* v = body.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required) return Error{"missing_field", "is required", std::string(key)};
    return std::string();
  }
  if (!v->is_string()) return Error{"invalid_type", "must be a string", std::string(key)};
  if (v->get_string().size() > max) {
    return Error{"too_long", "must be at most " + std::to_string(max) + " characters", std::string(key)};
  }
  return std::string(v->get_string());
}

Result<std::vector<std::string>> string_list(const json::value& value, std::string_view key) {
  const Error wrong{"invalid_type", "must be an array of strings", std::string(key)};
  if (!value.is_array()) return wrong;
  std::vector<std::string> list;
  for (const auto& item : value.as_array()) {
    if (!item.is_string()) return wrong;
    list.emplace_back(item.as_string());
  }
  return list;
}

Result<std::size_t> limit_param(const Pistache::Http::Request& request, std::size_t fallback) {
  auto text = query(request, "limit");
  if (!text) return fallback;
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc{} || end != text->data() + text->size() || n == 0 || n > 10'000) {
    return Error{"invalid_parameter", "limit must be a whole number from 1 to 10000", "limit"};
  }
  return n;
}

Result<std::optional<Timestamp>> time_param(const Pistache::Http::Request& request, const std::string& name) {
  auto text = query(request, name);
  if (!text || text->empty()) return std::optional<Timestamp>{};
  auto at = parse_timestamp(*text);
  if (!at) return Error{"invalid_parameter", "must be a time like 2026-11-26T09:00:00Z", name};
  return std::optional<Timestamp>{*at};
}

HttpRequest plain_request(const Pistache::Http::Request& request) {
  HttpRequest plain{.method = Pistache::Http::methodString(request.method()),
                    .path = request.resource(),
                    .body = request.body(),
                    .client_ip = request.address().host()};
  const auto& parameters = request.query();
  for (auto it = parameters.parameters_begin(); it != parameters.parameters_end(); ++it) plain.query.emplace_back(*it);
  for (const auto& typed : request.headers().list()) {
    std::ostringstream value;
    typed->write(value);
    plain.headers.emplace_back(typed->name(), value.str());
  }
  for (const auto& [name, raw] : request.headers().rawList()) plain.headers.emplace_back(raw.name(), raw.value());
  return plain;
}

}  // namespace callback::rest
