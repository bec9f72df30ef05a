#include <callback/callback_request.hpp>

#include "enum_names.hpp"

#include "identifier.hpp"

namespace callback {
namespace {
constexpr std::string_view origin_names[] = {"web", "rest", "sms", "email", "ani", "did", "cli", "api"};

// C0 controls and DEL: CR/LF in a value would forge log lines or headers downstream.
Status check_no_control(std::string_view text, const std::string& field) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      return Error{"invalid_request", "must not contain control characters (CR, LF, NUL, ...)", field};
    }
  }
  return ok_status();
}

}  // namespace

Status check_language(std::string_view language, const std::string& field) {
  constexpr std::string_view examples = " (\"en\", \"zh\", \"pt_BR\")";
  if (language.size() < 2 || language.size() > 16) {
    return Error{"invalid_language", "a language is 2 to 16 characters" + std::string(examples), field};
  }
  for (unsigned char c : language) {
    // ASCII only, whatever the locale: the tag goes into an AMI line and a folder name.
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!(letter || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return Error{"invalid_language", "a language may contain only letters, digits, '_' and '-'" + std::string(examples),
                   field};
    }
  }
  return ok_status();
}

std::string_view to_string(Origin origin) noexcept { return origin_names[static_cast<int>(origin)]; }

std::optional<Origin> origin_from_string(std::string_view name) noexcept {
  return detail::enum_from_name<Origin>(origin_names, name);
}

Result<CallbackRequest> make_request(const CallbackForm& form, const NumberingPlan& plan) {
  // Number parsing forgives spaces around a number; not CR/LF.
  if (auto ok = check_no_control(form.caller, "caller"); !ok) return ok.error();
  if (auto ok = check_no_control(form.callee, "callee"); !ok) return ok.error();
  auto caller = PhoneNumber::parse(form.caller, plan);
  if (!caller) return caller.error().at("caller");
  std::optional<PhoneNumber> callee;
  if (!form.ask_callee || !form.callee.empty()) {
    auto parsed = PhoneNumber::parse(form.callee, plan);
    if (!parsed) return parsed.error().at("callee");
    callee = std::move(*parsed);
  }
  CallbackRequest request{.caller = std::move(*caller),
                          .callee = std::move(callee),
                          .payer = form.payer,
                          .origin = form.origin,
                          .limit = form.limit,
                          .idempotency_key = form.idempotency_key,
                          .secret = form.secret,
                          .language = form.language,
                          .metadata = form.metadata};
  if (auto ok = request.validate(); !ok) return ok.error();
  // Emergency services and short codes are never dialled, as B nor as A (a callback dials A too).
  if (request.callee) {
    if (auto ok = check_dialable(*request.callee, plan, "callee"); !ok) return ok.error();
  }
  if (auto ok = check_dialable(request.caller, plan, "caller"); !ok) return ok.error();
  return request;
}

Status CallbackRequest::validate() const {
  if (const auto* account = std::get_if<AccountId>(&payer)) {
    if (auto ok = detail::check_identifier(account->value, "account", "account", "invalid_request"); !ok) return ok;
  } else {
    if (auto ok = detail::check_identifier(std::get<CampaignId>(payer).value, "campaign", "campaign", "invalid_request"); !ok) return ok;
  }
  if (callee && caller == *callee) {
    return Error{"invalid_request", "caller and callee are the same number (" + caller.e164() + ")", "callee"};
  }
  if (limit && limit->count() <= 0) {
    return Error{"invalid_request", "limit must be a positive number of seconds", "limit"};
  }
  if (idempotency_key.size() > 255) {
    return Error{"invalid_request", "idempotency key is longer than 255 characters", "idempotency_key"};
  }
  if (auto ok = check_no_control(idempotency_key, "idempotency_key"); !ok) return ok;
  if (auto ok = check_no_control(secret, "pin"); !ok) return ok;
  for (const auto& [name, value] : metadata) {
    if (auto ok = check_no_control(name, "metadata"); !ok) return ok;
    if (auto ok = check_no_control(value, name); !ok) return ok;
  }
  if (!language.empty()) {
    if (auto ok = check_language(language); !ok) return ok;
  }
  return ok_status();
}

}  // namespace callback
