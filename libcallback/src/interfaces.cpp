// Key functions of the interfaces (so their type information lives here, once) and the
// names of their enums.
#include <callback/billing.hpp>
#include <callback/component.hpp>
#include <callback/context.hpp>
#include <callback/engine.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>
#include <callback/version.hpp>

#include <algorithm>
#include <charconv>
#include <functional>

namespace callback {

const char* version() noexcept { return CALLBACK_VERSION_STRING; }

Component::~Component() = default;
CdrStore::~CdrStore() = default;

void CdrStore::append_async(std::vector<Cdr> cdrs, AppendDone done) {
  Status stored = append(std::span<Cdr>(cdrs));
  done(std::move(stored), std::move(cdrs));
}

Result<std::vector<CallerStats>> CdrStore::caller_stats(const std::string&, std::size_t) {
  return Error{"not_supported", "this store keeps no caller statistics", {}};
}
AccountStore::~AccountStore() = default;

namespace {
// The one account `matches`, nothing, or an Error when it is several (a registration the
// store should have refused).
Result<std::optional<Account>> only_account(AccountStore& store, const std::string& what,
                                            const std::function<bool(const Account&)>& matches) {
  auto all = store.list();
  if (!all) return all.error();
  std::optional<Account> found;
  for (auto& account : *all) {
    if (!matches(account)) continue;
    if (found) {
      return Error{"ambiguous_registration", what + " is registered to accounts " + found->id + " and " + account.id,
                   "account"};
    }
    found = std::move(account);
  }
  return found;
}
}  // namespace

Result<std::optional<Account>> AccountStore::find_by_number(const PhoneNumber& number) {
  return only_account(*this, "+" + number.digits(), [&](const Account& account) {
    return std::find(account.caller_numbers.begin(), account.caller_numbers.end(), number) !=
           account.caller_numbers.end();
  });
}

Result<std::optional<Account>> AccountStore::find_by_email(std::string_view email) {
  return only_account(*this, std::string(email), [&](const Account& account) {
    return std::find(account.emails.begin(), account.emails.end(), email) != account.emails.end();
  });
}
LedgerStore::~LedgerStore() = default;
CallJournal::~CallJournal() = default;
RateCounter::~RateCounter() = default;

Result<std::string> CallJournal::ask_cancel(const std::string& id) {
  return Error{"not_found", "no callback \"" + id + "\" in flight here", "id"}.as(ErrorKind::not_found);
}

Result<std::vector<JournalEntry>> CallJournal::list(const JournalQuery&) {
  return Error{"not_supported", "this journal is not listed across nodes", {}};
}
ApiKeyStore::~ApiKeyStore() = default;
Rater::~Rater() = default;
Authorizer::~Authorizer() = default;
BillingAdmin::~BillingAdmin() = default;

Result<std::chrono::seconds> Authorizer::extend(const std::string& reservation, std::chrono::seconds) {
  return Error{"not_supported", "this billing backend reserves whole calls; reservation " + reservation +
                                    " has nothing to extend", "reservation"};
}
TriggerSink::~TriggerSink() = default;
CallbackHandle::~CallbackHandle() = default;
TriggerStatus Trigger::status() const { return {}; }

TriggerStatusKeeper::TriggerStatusKeeper(Context& context, std::string trigger)
    : context_(context), trigger_(std::move(trigger)) {}

void TriggerStatusKeeper::count(std::string_view outcome, bool message) {
  {
    std::lock_guard lock(mutex_);
    ++status_.counts[std::string(outcome)];
    if (message) status_.last_message = context_.clock.now();
  }
  context_.metrics
      .counter("callback_trigger_requests_total", "Requests that triggers received, by trigger and outcome",
               "trigger=\"" + trigger_ + "\",outcome=\"" + std::string(outcome) + "\"")
      .add();
}

void TriggerStatusKeeper::received() {
  std::lock_guard lock(mutex_);
  status_.last_message = context_.clock.now();
}

void TriggerStatusKeeper::error(std::string what) {
  std::lock_guard lock(mutex_);
  status_.last_error = std::move(what);
  status_.last_error_at = context_.clock.now();
}

void TriggerStatusKeeper::polled() {
  std::lock_guard lock(mutex_);
  status_.last_poll = context_.clock.now();
}

void TriggerStatusKeeper::healthy(bool healthy) {
  std::lock_guard lock(mutex_);
  status_.healthy = healthy;
}

TriggerStatus TriggerStatusKeeper::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

std::string outcome_text(std::string_view outcome, std::string_view callee, std::chrono::seconds talked,
                         std::string_view cost) {
  const std::string b(callee);
  std::string text;
  if (outcome == "completed" || outcome == "partner_hangup" || outcome == "time_up") {
    const auto minutes = talked.count() / 60, seconds = talked.count() % 60;
    text = "Your call with " + b + " ended after " + std::to_string(minutes) + " min " + std::to_string(seconds) + " s" +
           (outcome == "time_up" ? " (the time limit)." : ".");
  } else if (outcome == "partner_busy") {
    text = b + " was busy. Try again later.";
  } else if (outcome == "partner_away") {
    text = b + " did not answer.";
  } else if (outcome == "system_busy") {
    text = "The network could not reach " + b + ". Try again later.";
  } else if (outcome == "caller_unreachable") {
    text = "We called you but could not reach you.";
  } else if (outcome == "canceled") {
    text = "Your call to " + b + " was canceled.";
  } else {
    text = "Your call to " + b + " could not be made.";
  }
  if (!cost.empty()) text += " Charged: " + std::string(cost) + ".";
  return text;
}

void Engine::connect_b(const Channel&, const Connect&, StatusCompletion done) {
  if (done) done(engine_error(engine_errc::unsupported, "this engine has no IVR in its dialplan (capabilities())"));
}

std::string_view to_string(DenialReason reason) noexcept {
  constexpr std::string_view names[] = {"unknown_account",      "disabled",            "bad_secret",
                                        "no_rate",              "insufficient_balance", "destination_blocked",
                                        "campaign_limit",       "unavailable",          "too_many_calls",
                                        "spend_limit"};
  return names[static_cast<int>(reason)];
}

std::string_view to_string(Announcement a) noexcept {
  constexpr std::string_view names[] = {"welcome",      "time_warning", "time_up",     "partner_hangup", "partner_busy",
                                        "partner_away", "system_busy",  "call_failed", "enter_number"};
  return names[static_cast<int>(a)];
}

Status validate_servers(const std::vector<std::string>& servers) {
  if (servers.empty()) return Error{"config.value", "at least one server is needed", "servers"};
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const auto& s = servers[i];
    const auto colon = s.rfind(':');
    int port = 0;
    if (colon != std::string::npos) {
      const std::string_view digits = std::string_view(s).substr(colon + 1);
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (ec != std::errc{} || ptr != digits.data() + digits.size()) port = 0;
    }
    if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
      return Error{"config.value", "server must be host:port, got \"" + escape_control(s) + "\"",
                   "servers[" + std::to_string(i) + "]"};
    }
  }
  return ok_status();
}

Status validate_dial_string(const std::string& dial_string) {
  if (dial_string.find("{number}") == std::string::npos) {
    return Error{"config.value", "dial string must contain {number}, got \"" + escape_control(dial_string) + "\"",
                 "dial_string"};
  }
  return ok_status();
}

std::string expand_dial_string(const std::string& pattern, const std::string& number) {
  std::string out = pattern;
  for (auto at = out.find("{number}"); at != std::string::npos; at = out.find("{number}", at + number.size())) {
    out.replace(at, 8, number);
  }
  return out;
}

std::string_view sound_name(Announcement a) noexcept {
  constexpr std::string_view names[] = {"callback-please-wait",    "vm-youhave",           "callback-time-up",
                                        "callback-partner-hangup", "callback-partner-busy", "callback-partner-away",
                                        "callback-system-busy",    "callback-call-failed",  "callback-enter-number"};
  return names[static_cast<int>(a)];
}

std::string_view to_string(Digits::Stop stop) noexcept {
  constexpr std::string_view names[] = {"max_digits", "terminator", "first_digit_timeout", "inter_digit_timeout"};
  return names[static_cast<int>(stop)];
}

std::string_view to_string(LegEventType t) noexcept {
  constexpr std::string_view names[] = {"dialing", "ringing", "answered", "connected", "warning", "digits", "ended"};
  return names[static_cast<int>(t)];
}

}  // namespace callback
