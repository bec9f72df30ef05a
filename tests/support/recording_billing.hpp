#pragma once
// A Billing test double that records every call made to it, so tests can assert that a
// callback authorized once and then settled or released exactly once. Prices 0.10/min
// at 60/60; allows `max_duration` unless told to deny.
#include <callback/billing.hpp>

#include <map>
#include <string>
#include <vector>

namespace callback::test {

class RecordingBilling final : public Billing, Rater, Authorizer {
 public:
  std::chrono::seconds max_duration{10};
  // Slices: the first reservation covers this much (0: all of max_duration), and extend()
  // grows it up to `money_for` of talk in all.
  std::chrono::seconds reserved_for{0};
  std::chrono::seconds money_for{0};
  std::vector<std::pair<std::string, std::chrono::seconds>> extended;  // reservation, wanted
  std::optional<DenialReason> deny;
  std::string field, rule;  // of a denial
  std::string language;  // the paying account's, as a backend reads it with the account
  std::vector<AuthorizationRequest> authorized;
  std::vector<std::pair<std::string, std::chrono::seconds>> settled;
  std::vector<std::string> released;
  // Settles and releases fail (the database busy) while this is above 0; each failure counts down.
  int failures_left = 0;

  Rater& rater() override { return *this; }
  Authorizer& authorizer() override { return *this; }

  std::optional<Rate> rate(const std::string&, const PhoneNumber&, Timestamp) const override { return price(); }

  Result<Authorization> authorize(const AuthorizationRequest& request) override {
    authorized.push_back(request);
    if (deny) {
      return Authorization{.allowed = false, .reason = deny, .message = "denied by the test", .field = field,
                           .rule = rule};
    }
    return Authorization{.allowed = true, .max_duration = max_duration, .reserved_for = reserved_for,
                         .reservation = "r-" + request.call_id, .rate = price(), .language = language};
  }
  Result<std::chrono::seconds> extend(const std::string& reservation, std::chrono::seconds wanted) override {
    extended.emplace_back(reservation, wanted);
    return std::min(wanted, money_for);
  }
  Result<Money> settle(const std::string& reservation, std::chrono::seconds billsec) override {
    if (failures_left > 0 && failures_left--) return Error{"billing_unavailable", "database is locked", {}};
    settled.emplace_back(reservation, billsec);
    return price().cost(billsec);
  }
  Status release(const std::string& reservation) override {
    if (failures_left > 0 && failures_left--) return Error{"billing_unavailable", "database is locked", {}};
    released.push_back(reservation);
    return ok_status();
  }
  // How many times this reservation was ended (must be exactly 1).
  [[nodiscard]] std::size_t endings(const std::string& reservation) const {
    std::size_t n = 0;
    for (const auto& [r, s] : settled) n += r == reservation;
    for (const auto& r : released) n += r == reservation;
    return n;
  }

 private:
  static Rate price() {
    const auto cny = Currency::of("CNY").value();
    return Rate{.prefix = "", .price_per_minute = Money::parse("0.10", cny).value()};
  }
};

}  // namespace callback::test
