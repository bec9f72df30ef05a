#pragma once
// Billing: a Rater prices destinations; an Authorizer decides whether a callback may run
// and for how long, and holds a reservation on the payer's funds while it runs, so that
// concurrent calls can never spend the same balance twice. Every authorization ends
// exactly once: settled with the real duration (ledger entry + balance update, one
// transaction) or released (nothing charged).
//
// The seed's example: account 123 has 5.00 and calls 861234567 at 0.10/min:
//
//   auto decision = billing->authorizer().authorize({.payer = AccountId{"123"},
//                                                    .destination = b, .call_id = id});
//   if (!decision->allowed) reject(decision->reason);        // "insufficient_balance", ...
//   limit = decision->max_duration;                            // 50 min
//   ... call ends after 61 s of talk ...
//   billing->authorizer().settle(decision->reservation, 61s);  // debits 0.20 at 60/60
//
// The blocking calls may wait for a database; the service uses the *_async ones, so its
// event loop never waits for a disk.
#include <callback/call.hpp>
#include <callback/callback_request.hpp>
#include <callback/component.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/money.hpp>
#include <callback/phone_number.hpp>
#include <callback/rate.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <vector>
#include <optional>
#include <string>

namespace callback {

class CALLBACK_EXPORT Rater {
 public:
  virtual ~Rater();
  // Longest-prefix match in the tariff's deck, for a call placed at `at`
  // (decks may have effective dates and time-of-day periods). Empty: no rate.
  [[nodiscard]] virtual std::optional<Rate> rate(const std::string& tariff, const PhoneNumber& destination,
                                                 Timestamp at) const = 0;
};

enum class DenialReason {
  unknown_account,
  disabled,
  bad_secret,
  no_rate,
  insufficient_balance,
  destination_blocked,
  campaign_limit,  // campaign policy: used too often, daily budget spent
  unavailable,     // the billing backend itself failed
};
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(DenialReason reason) noexcept;

struct AuthorizationRequest {
  Payer payer;
  PhoneNumber caller;
  PhoneNumber destination;  // the leg billed (leg B by default, as in the seed)
  std::string call_id;
  std::string secret;  // account mode password/PIN, checked against the stored KDF hash
};

struct Authorization {
  bool allowed = false;
  std::optional<DenialReason> reason;  // when not allowed
  std::string message;                 // for people: "balance 0.05 is below one minute at 0.10/min"
  std::chrono::seconds max_duration{0};
  std::string reservation;  // id to settle or release; empty when not allowed
  std::optional<Rate> rate;
  std::string language;  // the paying account's announcement language, read with its row; empty: none
};

class CALLBACK_EXPORT Authorizer {
 public:
  virtual ~Authorizer();
  [[nodiscard]] virtual Result<Authorization> authorize(const AuthorizationRequest& request) = 0;
  // Charges `billsec` of talk at the reserved rate and ends the reservation.
  [[nodiscard]] virtual Result<Money> settle(const std::string& reservation, std::chrono::seconds billsec) = 0;
  // Ends the reservation without charging (the call never connected).
  virtual Status release(const std::string& reservation) = 0;

  // The same without waiting: `done` runs once the result is durable, on the backend's
  // own thread (post it back to your executor). Many calls in flight share commits.
  // The defaults call the blocking versions.
  virtual void authorize_async(const AuthorizationRequest& request, std::function<void(Result<Authorization>)> done) {
    done(authorize(request));
  }
  virtual void settle_async(const std::string& reservation, std::chrono::seconds billsec,
                            std::function<void(Result<Money>)> done) {
    done(settle(reservation, billsec));
  }
  virtual void release_async(const std::string& reservation, std::function<void(Status)> done) {
    done(release(reservation));
  }
};

// A rate deck as stored: a named tariff accounts are assigned to.
struct TariffInfo {
  std::string name;
  Currency currency;
  std::size_t rates = 0;
  Timestamp imported_at{};
};

struct ImportReport {
  std::string tariff;
  std::size_t rates = 0;
  std::chrono::milliseconds took{0};
};

// A free or promotional campaign (the seed's "free 5 minutes" promotion) and its rules,
// checked at authorization against each caller number's history.
struct Campaign {
  std::string id;
  std::chrono::seconds limit{300};        // per call
  int uses_per_day = 0;                   // per caller number; 0: no limit
  bool once_ever = false;                 // one call per caller number, ever
  int min_hours_between = 0;              // between two calls of one caller number
  std::chrono::seconds daily_budget{0};   // talk time for the whole campaign a day; 0: no limit
  bool active = true;
};

// Per caller number, from the CDRs as calls end (the seed's monitor program).
struct CallerStats {
  std::string number;
  std::int64_t attempts = 0;
  std::int64_t answered = 0;
  std::int64_t failures = 0;
  std::int64_t talk_seconds = 0;
  std::optional<Timestamp> first_call, last_call;
};

// Operator's side of billing: rate decks, campaigns, statistics.
class CALLBACK_EXPORT BillingAdmin {
 public:
  virtual ~BillingAdmin();
  // Replaces the tariff's deck with the CSV's, all or nothing (Error names the line);
  // calls in flight keep the rate they were authorized with, new ones see the new deck.
  [[nodiscard]] virtual Result<ImportReport> import_rates(const std::string& tariff, std::istream& csv,
                                                          const Currency& currency) = 0;
  [[nodiscard]] virtual Result<std::vector<TariffInfo>> tariffs() = 0;
  // Rates of a tariff whose prefix starts with `prefix` ("" for all), at most `limit`.
  [[nodiscard]] virtual Result<std::vector<Rate>> rates(const std::string& tariff, const std::string& prefix,
                                                        std::size_t limit) = 0;
  virtual Status put_campaign(const Campaign& campaign) = 0;
  [[nodiscard]] virtual Result<std::vector<Campaign>> campaigns() = 0;
  // One number's statistics, or all (number empty), busiest first.
  [[nodiscard]] virtual Result<std::vector<CallerStats>> caller_stats(const std::string& number,
                                                                      std::size_t limit) = 0;
};

// What a billing plugin creates: one backend giving both roles over the same data.
class CALLBACK_EXPORT Billing : public Component {
 public:
  virtual Rater& rater() = 0;
  virtual Authorizer& authorizer() = 0;
  virtual BillingAdmin* admin() { return nullptr; }  // when the backend manages its own data
};

}  // namespace callback
