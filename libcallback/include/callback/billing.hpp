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
// Both may block on a database: the service calls them off its event loop.
#include <callback/call.hpp>
#include <callback/callback_request.hpp>
#include <callback/component.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/money.hpp>
#include <callback/phone_number.hpp>
#include <callback/rate.hpp>

#include <chrono>
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
};

class CALLBACK_EXPORT Authorizer {
 public:
  virtual ~Authorizer();
  [[nodiscard]] virtual Result<Authorization> authorize(const AuthorizationRequest& request) = 0;
  // Charges `billsec` of talk at the reserved rate and ends the reservation.
  [[nodiscard]] virtual Result<Money> settle(const std::string& reservation, std::chrono::seconds billsec) = 0;
  // Ends the reservation without charging (the call never connected).
  virtual Status release(const std::string& reservation) = 0;
};

// What a billing plugin creates: one backend giving both roles over the same data.
class CALLBACK_EXPORT Billing : public Component {
 public:
  virtual Rater& rater() = 0;
  virtual Authorizer& authorizer() = 0;
};

}  // namespace callback
