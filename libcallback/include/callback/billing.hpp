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
// A reservation may cover the call in slices (a debit interval, as CGRateS does): then
// `reserved_for` is less than `max_duration`, and the service extends the reservation
// while the call lasts; when extend() gives no more time, the money ran out:
//
//   auto more = billing->authorizer().extend(decision->reservation, covered + 60s);
//   if (*more <= covered) hang_up_at(answered + covered);   // "time up"
//
// The payer's policy (PayerPolicy: allowed and denied prefixes, cost per call, spend per
// day, calls at once) and the deck's BLOCKED lines are checked at every authorization; a
// denial names the field and the rule that matched.
//
// The blocking calls may wait for a database; the service uses the *_async ones, so its
// event loop never waits for a disk.
#include <callback/call.hpp>
#include <callback/callback_request.hpp>
#include <callback/cdr.hpp>
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
  too_many_calls,  // the payer's policy: calls in flight at once
  spend_limit,     // the payer's policy: cost of one call, spend per day
};
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(DenialReason reason) noexcept;

struct AuthorizationRequest {
  Payer payer;
  PhoneNumber caller;
  PhoneNumber destination;  // the leg billed (leg B by default, as in the seed)
  std::string call_id;
  std::string secret;  // account mode password/PIN, checked against the stored KDF hash
  // The longest the call may last anyway (the request's, the campaign's, the service's
  // limit): no more than this is reserved. Empty: as long as the money lasts.
  std::optional<std::chrono::seconds> max_duration;
};

struct Authorization {
  bool allowed = false;
  std::optional<DenialReason> reason;  // when not allowed
  std::string message;                 // for people: "balance 0.05 is below one minute at 0.10/min"
  std::string field;                   // when not allowed: the input refused ("callee", "caller", "payer")
  std::string rule;                    // when not allowed by a policy: the rule that matched ("deny_prefix +882")
  std::chrono::seconds max_duration{0};
  // Talk time the reservation covers now: max_duration, or one debit interval when it
  // comes in slices (then extend it before this runs out). 0: the same as max_duration.
  std::chrono::seconds reserved_for{0};
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
  // Grows an open reservation to cover `wanted` seconds of talk in all, as far as the
  // money and the payer's policy allow (never past the authorized max_duration). The
  // answer is the talk time covered now: no more than before means the money ran out.
  // The default (a backend that reserves whole calls) has nothing to extend.
  [[nodiscard]] virtual Result<std::chrono::seconds> extend(const std::string& reservation, std::chrono::seconds wanted);

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
  virtual void extend_async(const std::string& reservation, std::chrono::seconds wanted,
                            std::function<void(Result<std::chrono::seconds>)> done) {
    done(extend(reservation, wanted));
  }

  // After a crash: the reservation a call holds, whatever state it is in ("open",
  // "settled", "released"), with what was charged; empty when the call has none (it never
  // got one, or this backend keeps none). Settling a settled reservation again gives its
  // first charge back and charges nothing (settle is idempotent).
  struct Held {
    std::string reservation;
    std::string call_id;
    std::string status;
    std::optional<Money> cost;  // when settled
    std::chrono::seconds covered{0};  // when open: the talk time it covers (money held in slices)
  };
  [[nodiscard]] virtual Result<std::optional<Held>> reservation_of(const std::string& call_id) {
    (void)call_id;
    return std::optional<Held>{};
  }
  // Every reservation still open (status "open"), for the sweep after a restart.
  [[nodiscard]] virtual Result<std::vector<Held>> open_reservations() { return std::vector<Held>{}; }
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
  // The rate deck its calls are checked against (BLOCKED lines, no rate) and priced with
  // for its policy's cost limits; empty: the backend's default tariff.
  std::string tariff;
};

// Toll-fraud controls of one payer, an account or a campaign, checked at every
// authorization together with the deck's BLOCKED lines (always) and the backend's own
// default deny list. Amounts are in the payer's currency (the account's, or the
// campaign's deck's); prefixes are E.164 digits ("882", "1900").
struct PayerPolicy {
  Payer payer;
  std::vector<std::string> allow_prefixes;  // empty: any destination the deck rates
  std::vector<std::string> deny_prefixes;
  std::optional<Money> max_call_cost;       // one call's time is cut to cost at most this
  std::optional<Money> daily_spend;         // all its calls of one day (UTC), reserved or charged
  int max_concurrent = 0;                   // calls in flight at once; 0: no limit
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
  // A payer's toll-fraud policy: replaced whole; the default (none set) has no limits of its own.
  virtual Status put_policy(const PayerPolicy& policy) = 0;
  [[nodiscard]] virtual Result<PayerPolicy> policy(const Payer& payer) = 0;
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
