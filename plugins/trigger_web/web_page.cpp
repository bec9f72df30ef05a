#include "web_page.hpp"

#include <callback/json.hpp>
#include <callback/secret.hpp>

#include <boost/json.hpp>

#include <fstream>
#include <memory>
#include <sstream>
#include <tuple>

namespace callback::trigger_web {

namespace json = boost::json;

namespace {

std::string content_type_of(std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "json") return "application/json";
  return "application/octet-stream";
}

// A string field of the page's JSON, at most `max` bytes; absent is empty.
Result<std::string> text_field(const json::object& body, std::string_view key, std::size_t max) {
  const auto* v = body.if_contains(key);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string()) return Error{"invalid_type", "must be a string", std::string(key)};
  if (v->get_string().size() > max) {
    return Error{"too_long", "must be at most " + std::to_string(max) + " characters", std::string(key)};
  }
  return std::string(v->get_string());
}

}  // namespace

constexpr std::string_view component = "callback.trigger.web";
constexpr std::string_view events_prefix = "/v1/public/callbacks/";

WebPageTrigger::WebPageTrigger(Context& context, const NumberingPlan& plan, HttpRoutes* routes, WebOptions options)
    : context_(context),
      plan_(plan),
      options_(std::move(options)),
      per_number_(options_.per_number_per_hour, std::chrono::hours(1)),
      per_ip_(options_.per_ip_per_minute, std::chrono::minutes(1)),
      token_key_(options_.token_secret.empty() ? random_bytes(32) : options_.token_secret),
      keeper_(context, "web") {
  if (routes == nullptr) return;
  const std::pair<Status, std::string_view> added[] = {
      {routes->add("GET", "/", [this](const HttpRequest& r, HttpRespond respond) { on_file(r, respond); }, true), "/"},
      {routes->add("GET", "/v1/public/config",
                   [this](const HttpRequest&, HttpRespond respond) {
                     respond({.body = json::serialize(public_config())});
                   }),
       "/v1/public/config"},
      {routes->add("POST", "/v1/public/callbacks",
                   [this](const HttpRequest& r, HttpRespond respond) { on_callback(r, respond); }),
       "/v1/public/callbacks"},
      {routes->add("GET", std::string(events_prefix),
                   [this](const HttpRequest& r, HttpRespond respond) { on_events(r, respond); }, true),
       events_prefix},
  };
  for (const auto& [ok, path] : added) {
    if (!ok) throw std::runtime_error("the page's route " + std::string(path) + ": " + ok.error().message);
  }
}

void WebPageTrigger::start(TriggerSink& sink) {
  {
    std::lock_guard lock(mutex_);
    sink_ = &sink;
  }
  context_.log.info(component, std::string("page in ") + (options_.account_mode ? "account" : "campaign") + " mode" +
                                   (options_.assets_dir.empty() ? "" : ", files from " + options_.assets_dir.string()));
}

void WebPageTrigger::stop() {
  std::lock_guard lock(mutex_);
  sink_ = nullptr;
}

TriggerStatus WebPageTrigger::status() const {
  TriggerStatus status = keeper_.status();
  std::lock_guard lock(mutex_);
  status.healthy = sink_ != nullptr;
  return status;
}

std::string WebPageTrigger::token_for(const std::string& id) const {
  return hex_encode(hmac(Digest::sha256, token_key_, id)).substr(0, 32);
}

void WebPageTrigger::on_file(const HttpRequest& request, const HttpRespond& respond) const {
  auto file = asset(request.path);
  if (!file) {
    return respond(error_response(Error{"not_found", "no such page", "path"}.as(ErrorKind::not_found)));
  }
  respond({.content_type = std::move(file->content_type), .body = std::move(file->body)});
}

void WebPageTrigger::on_callback(const HttpRequest& request, const HttpRespond& respond) {
  if (auto type = request.header("Content-Type"); type && type->find("json") == std::string_view::npos) {
    return respond(error_response(
        Error{"unsupported_media_type", "the body must be JSON (Content-Type: application/json)", "body"}.as(
            ErrorKind::unsupported_media)));
  }
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec || !body.is_object()) {
    return respond(error_response(
        Error{"invalid_json", ec ? "the body is not valid JSON: " + ec.message() : "the body must be a JSON object",
              "body"}));
  }
  std::chrono::seconds retry_after{0};
  auto form = admit(body.as_object(), request.client_ip, context_.clock.now(), retry_after);
  Result<CallbackRequest> made = form ? make_request(*form, plan_) : Result<CallbackRequest>(form.error());
  if (!made) {
    keeper_.count(made.error().kind == ErrorKind::rate_limited ? "rate_limited" : "refused");
    HttpResponse answer = error_response(made.error());
    if (retry_after.count() > 0) answer.headers.emplace_back("Retry-After", std::to_string(retry_after.count()));
    return respond(std::move(answer));
  }
  std::unique_lock lock(mutex_);
  if (sink_ == nullptr) {
    lock.unlock();
    return respond(error_response(
        Error{"shutting_down", "the page takes no calls now; try again later", {}}.as(ErrorKind::unavailable)));
  }
  // The callback as the service told of it until it took it, for the answer (all on the
  // service thread).
  struct Answer {
    std::string callback;
    bool told = false;
  };
  auto answer = std::make_shared<Answer>();
  Tracking tracking;
  tracking.event = [answer](const CallEvent& event) {
    if (!answer->told) answer->callback = json::serialize(to_json(event));
  };
  tracking.accepted = [this, answer, respond](Result<std::shared_ptr<CallbackHandle>> handle) {
    answer->told = true;
    if (!handle) {
      keeper_.count("refused");
      return respond(error_response(handle.error()));
    }
    keeper_.count("accepted");
    const std::string& id = (*handle)->id();
    const std::string callback =
        answer->callback.empty() ? json::serialize(json::object{{"id", id}}) : answer->callback;
    const std::string events_url = std::string(events_prefix) + id + "/events?token=" + token_for(id);
    respond({.status = 202,
             .body = "{\"callback\":" + callback + ",\"events_url\":" + json::serialize(json::value(events_url)) +
                     "}"});
  };
  sink_->track(std::move(*made), std::move(tracking));
}

// GET /v1/public/callbacks/{id}/events?token=...: the stream of the one who asked for it.
void WebPageTrigger::on_events(const HttpRequest& request, const HttpRespond& respond) const {
  std::string_view rest = std::string_view(request.path).substr(events_prefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || rest.substr(slash) != "/events") {
    return respond(error_response(
        Error{"not_found", "no such endpoint: " + escape_control(request.path), "path"}.as(ErrorKind::not_found)));
  }
  const std::string id(rest.substr(0, slash));
  std::string_view token;
  for (const auto& [name, value] : request.query) {
    if (name == "token") token = value;
  }
  if (!equal_constant_time(token, token_for(id))) {
    return respond(error_response(
        Error{"forbidden", "wrong or missing token for this callback", "token"}.as(ErrorKind::forbidden)));
  }
  respond({.event_stream = id});
}

std::optional<WebAsset> WebPageTrigger::asset(std::string_view path) const {
  std::string_view name = path == "/" || path == "/index.html" ? std::string_view("index.html") : path;
  if (name.starts_with("/assets/")) name.remove_prefix(8);
  // Names only: no folders, no way out of the assets folder.
  if (name.empty() || name.find('/') != std::string_view::npos || name.find("..") != std::string_view::npos) {
    return std::nullopt;
  }
  if (!options_.assets_dir.empty()) {
    std::ifstream in(options_.assets_dir / std::string(name), std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return WebAsset{content_type_of(name), bytes.str()};
  }
  for (const auto& [file, bytes] : embedded_files()) {
    if (file == name) return WebAsset{content_type_of(name), std::string(bytes)};
  }
  return std::nullopt;
}

json::object WebPageTrigger::public_config() const {
  return {{"mode", options_.account_mode ? "account" : "campaign"},
          {"campaign", options_.account_mode ? json::value(nullptr) : json::value(options_.campaign)},
          {"limit_seconds", options_.account_mode ? json::value(nullptr) : json::value(options_.limit_seconds)},
          {"default_language", options_.default_language}};
}

Result<CallbackForm> WebPageTrigger::admit(const json::object& body, std::string_view client_ip, Timestamp now,
                                           std::chrono::seconds& retry_after) {
  retry_after = std::chrono::seconds{0};
  for (const auto& [key, value] : body) {
    const bool known = key == "caller" || key == "callee" || key == "account" || key == "pin" || key == "language";
    if (!known) {
      return Error{"unknown_field", "unknown field (known: caller, callee, account, pin, language)", std::string(key)};
    }
  }
  CallbackForm form;
  form.origin = Origin::web;
  for (auto [key, target, max] : {std::tuple<std::string_view, std::string*, std::size_t>{"caller", &form.caller, 40},
                                  {"callee", &form.callee, 40}}) {
    auto text = text_field(body, key, max);
    if (!text) return text.error();
    if (text->empty()) return Error{"missing_field", "is required", std::string(key)};
    *target = std::move(*text);
  }
  if (options_.account_mode) {
    auto account = text_field(body, "account", 64);
    if (!account) return account.error();
    if (account->empty()) return Error{"missing_field", "is required", "account"};
    auto pin = text_field(body, "pin", 128);
    if (!pin) return pin.error();
    if (pin->empty()) return Error{"missing_field", "is required", "pin"};
    form.payer = AccountId{std::move(*account)};
    form.secret = std::move(*pin);
  } else {
    if (body.contains("account") || body.contains("pin")) {
      return Error{"unexpected_field", "this page runs a free campaign; no account is needed", "account"};
    }
    form.payer = CampaignId{options_.campaign};
  }
  // The page's language ("zh", "en"): what the caller hears. make_request checks its form.
  auto language = text_field(body, "language", 64);
  if (!language) return language.error();
  form.language = std::move(*language);
  // Limits last, once the form is sound: a typo does not cost a try.
  if (auto wait = per_ip_.hit(std::string(client_ip), now); wait.count() > 0) {
    retry_after = wait;
    return Error{"rate_limited",
                 "too many requests from this address; try again in " + std::to_string(wait.count()) + " s", "client"}
        .as(ErrorKind::rate_limited);
  }
  // One number written five ways is one number: counted in E.164.
  auto caller = PhoneNumber::parse(form.caller, plan_);
  if (!caller) return caller.error().at("caller");
  if (auto wait = per_number_.hit(caller->digits(), now); wait.count() > 0) {
    retry_after = wait;
    return Error{"rate_limited",
                 "too many callbacks for this number; try again in " + std::to_string(wait.count()) + " s", "caller"}
        .as(ErrorKind::rate_limited);
  }
  return form;
}

}  // namespace callback::trigger_web
