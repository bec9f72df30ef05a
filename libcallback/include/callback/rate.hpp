#pragma once
// Rate: the price of calling a destination, as a line of a carrier's rate deck.
// Billing increments follow the carriers' notation: 60/60 bills whole minutes, 30/6 a
// first 30 s then 6 s steps, 1/1 per second. Costs are exact (Money, no floating point).
//
//   Rate rate{.prefix = "8610", .price_per_minute = Money::parse("0.10", cny, rate).value(),
//             .initial_increment = 30s, .subsequent_increment = 6s};
//   rate.charged_seconds(31s) == 36s;  rate.cost(31s) == 0.06 (36 s at 0.10/min)
#include <callback/export.hpp>
#include <callback/money.hpp>

#include <chrono>
#include <string>

namespace callback {

struct Rate {
  std::string prefix;       // E.164 digits, longest match wins: "8610"
  std::string description;  // "China Beijing"
  Money price_per_minute;
  std::chrono::seconds initial_increment{60};
  std::chrono::seconds subsequent_increment{60};
  Money connection_fee = Money::zero(price_per_minute.currency());
  std::chrono::seconds minimum_duration{0};

  // 0 s answered time is not charged at all (no connection fee either). Otherwise the
  // time is raised to the minimum duration, then to the initial increment, then up to
  // a whole number of subsequent increments.
  [[nodiscard]] CALLBACK_EXPORT std::chrono::seconds charged_seconds(std::chrono::seconds billsec) const;
  // charged seconds x price / 60 + connection fee, rounded up to the currency's minor unit.
  [[nodiscard]] CALLBACK_EXPORT Money cost(std::chrono::seconds billsec) const;
};

}  // namespace callback
