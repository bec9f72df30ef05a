#pragma once
// Money: an exact amount in a currency, as a signed integer count of micro-units
// (1e-6 of the major unit). Micro-units hold per-second and sub-cent rates exactly
// (0.000167/s); balances are kept to the currency's own minor unit. No floating point.
//
//   auto balance = Money::parse("5.00", Currency::of("CNY").value()).value();
//   auto rate    = Money::parse("0.10", balance.currency(), Money::Precision::rate).value();
//   balance / rate per minute -> 50 minutes; rate.format() == "0.10"
//
// Arithmetic between different currencies is a bug and throws std::logic_error;
// arithmetic that would overflow throws std::overflow_error.
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace callback {

class CALLBACK_EXPORT Currency {
 public:
  // ISO 4217's "XXX" (no currency): what a default-constructed Money carries.
  Currency() : code_{'X', 'X', 'X', 0}, exponent_(2) {}
  // ISO 4217 code, three uppercase letters. Known codes get their minor-unit exponent
  // (JPY 0, KWD 3, most others 2); unknown well-formed codes default to 2.
  [[nodiscard]] static Result<Currency> of(std::string_view code);
  [[nodiscard]] static Result<Currency> of(std::string_view code, int minor_exponent);

  [[nodiscard]] std::string_view code() const noexcept { return {code_.data(), 3}; }
  [[nodiscard]] int minor_exponent() const noexcept { return exponent_; }
  friend bool operator==(const Currency&, const Currency&) = default;

 private:
  Currency(std::array<char, 4> code, int exponent) : code_(code), exponent_(exponent) {}
  std::array<char, 4> code_;
  int exponent_;
};

enum class Rounding { down, up, half_even };

class CALLBACK_EXPORT Money {
 public:
  static constexpr int scale_digits = 6;
  static constexpr std::int64_t scale = 1'000'000;

  enum class Precision {
    currency,  // at most the currency's minor unit: "5.00" ok, "5.001" refused for CNY
    rate,      // up to 6 decimals: "0.000167"
  };

  Money() : micros_(0) {}  // zero, no currency ("XXX"); assign a real amount before use

  [[nodiscard]] static Result<Money> parse(std::string_view text, Currency currency,
                                           Precision precision = Precision::currency);
  [[nodiscard]] static Money from_micros(std::int64_t micros, Currency currency) { return {micros, currency}; }
  [[nodiscard]] static Money from_minor(std::int64_t minor_units, Currency currency);
  [[nodiscard]] static Money zero(Currency currency) { return {0, currency}; }

  [[nodiscard]] std::int64_t micros() const noexcept { return micros_; }
  [[nodiscard]] const Currency& currency() const noexcept { return currency_; }
  // Whole minor units (cents); exact only when the amount is a whole number of them.
  [[nodiscard]] std::int64_t minor_units(Rounding rounding = Rounding::down) const;
  [[nodiscard]] bool is_negative() const noexcept { return micros_ < 0; }
  [[nodiscard]] bool is_zero() const noexcept { return micros_ == 0; }

  // "5.00", "-0.10": the currency's decimals, more only if the amount needs them.
  [[nodiscard]] std::string format() const;

  // This amount to the currency's minor unit.
  [[nodiscard]] Money rounded(Rounding rounding) const;
  // amount * numerator / denominator, computed exactly, then rounded to micro-units.
  [[nodiscard]] Money mul_div(std::int64_t numerator, std::int64_t denominator, Rounding rounding) const;

  Money operator+(const Money& other) const;
  Money operator-(const Money& other) const;
  Money operator-() const;
  Money operator*(std::int64_t factor) const;
  Money& operator+=(const Money& other) { return *this = *this + other; }
  Money& operator-=(const Money& other) { return *this = *this - other; }

  bool operator==(const Money& other) const;
  std::strong_ordering operator<=>(const Money& other) const;

 private:
  Money(std::int64_t micros, Currency currency) : micros_(micros), currency_(currency) {}
  void require_same_currency(const Money& other) const;
  std::int64_t micros_;
  Currency currency_;
};

}  // namespace callback
