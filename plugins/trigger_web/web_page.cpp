#include "web_page.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <tuple>
#include <sstream>

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

WebPageFrontEnd::WebPageFrontEnd(Context& context, WebOptions options)
    : context_(context),
      options_(std::move(options)),
      per_number_(options_.per_number_per_hour, std::chrono::hours(1)),
      per_ip_(options_.per_ip_per_minute, std::chrono::minutes(1)) {}

void WebPageFrontEnd::start(TriggerSink&) {
  context_.log.info("callback.trigger.web", std::string("page in ") + (options_.account_mode ? "account" : "campaign") +
                                                " mode" + (options_.assets_dir.empty() ? "" : ", files from " +
                                                                                                  options_.assets_dir.string()));
}

void WebPageFrontEnd::stop() {}

std::optional<WebAsset> WebPageFrontEnd::asset(std::string_view path) const {
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

json::object WebPageFrontEnd::public_config() const {
  return {{"mode", options_.account_mode ? "account" : "campaign"},
          {"campaign", options_.account_mode ? json::value(nullptr) : json::value(options_.campaign)},
          {"limit_seconds", options_.account_mode ? json::value(nullptr) : json::value(options_.limit_seconds)},
          {"default_language", options_.default_language}};
}

Result<CallbackForm> WebPageFrontEnd::admit(const json::object& body, std::string_view client_ip, Timestamp now,
                                            const NumberingPlan& plan, std::chrono::seconds& retry_after) {
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
                 "too many requests from this address; try again in " + std::to_string(wait.count()) + " s", "client"};
  }
  // One number written five ways is one number: counted in E.164.
  auto caller = PhoneNumber::parse(form.caller, plan);
  if (!caller) return caller.error().at("caller");
  if (auto wait = per_number_.hit(caller->digits(), now); wait.count() > 0) {
    retry_after = wait;
    return Error{"rate_limited",
                 "too many callbacks for this number; try again in " + std::to_string(wait.count()) + " s", "caller"};
  }
  return form;
}

}  // namespace callback::trigger_web
