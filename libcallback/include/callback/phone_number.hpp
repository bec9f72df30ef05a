#pragma once
// PhoneNumber: a number in E.164 form (country code + national number, digits only, at
// most 15), made from what people type. A NumberingPlan says how to read numbers written
// without a '+': the default country code, the national trunk prefix and the international
// prefixes of the place the service runs in.
//
//   NumberingPlan china{.country_code = "86", .trunk_prefix = "0",
//                       .international_prefixes = {"00"}};
//   PhoneNumber::parse("010-5555 6666", china)      -> 861055556666
//   PhoneNumber::parse("+86 10 5555 6666", china)   -> 861055556666
//   PhoneNumber::parse("0086-10-55556666", china)   -> 861055556666
//   PhoneNumber::parse("555x", china)               -> Error "letter 'x' at position 4 ..."
//
// A plan with an empty country code takes national numbers as dialed (private numbering,
// test phones such as 1001); numbers with '+' or an international prefix are still E.164.
//
// Some numbers are never dialled by a callback, as A or B: emergency services and short
// codes (check_dialable). The plan says which; by default those of its country:
//
//   check_dialable(PhoneNumber::parse("110", china).value(), china, "callee")
//       -> Error "denied.emergency_number", field "callee", rule "emergency 110"
//   check_dialable(PhoneNumber::parse("10086", china).value(), china, "callee")
//       -> Error "denied.short_code" (a national number of 5 digits: a service code)
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

struct NumberingPlan {
  std::string country_code;                     // "86", "1"; empty: national numbers as dialed
  std::string trunk_prefix;                     // "0" (China, UK), "1" (NANP), "" (none)
  std::vector<std::string> international_prefixes{"00"};  // "00", "011"
  // Emergency and service numbers never dialled, as Asterisk-style patterns of a national
  // number: digits, X (any digit), N (2-9), Z (1-9); "116XXX" is 116000-116999. Absent:
  // the defaults of the plan's country (default_emergency_numbers); given, it replaces them.
  std::optional<std::vector<std::string>> emergency_numbers;
  // A national number with fewer digits is a short code (10086, 95555), never dialled.
  // Absent: 6 with a country code, 0 (no check) without one (private numbering).
  std::optional<std::size_t> min_subscriber_digits;

  // Checks the plan itself (digits only, country code 1-3 digits not starting with 0).
  [[nodiscard]] CALLBACK_EXPORT Status validate() const;
};

class CALLBACK_EXPORT PhoneNumber {
 public:
  static constexpr std::size_t max_digits = 15;  // ITU-T E.164
  static constexpr std::size_t min_digits = 3;

  // Normalizes what a person typed. Spaces, '-', '.', '/', '(' and ')' are separators.
  [[nodiscard]] static Result<PhoneNumber> parse(std::string_view text, const NumberingPlan& plan);
  // Digits already in canonical form (from our own store); still validated.
  [[nodiscard]] static Result<PhoneNumber> from_e164(std::string_view digits);

  [[nodiscard]] const std::string& digits() const noexcept { return digits_; }  // "861055556666"
  [[nodiscard]] std::string e164() const { return "+" + digits_; }              // "+861055556666"

  friend auto operator<=>(const PhoneNumber&, const PhoneNumber&) = default;

 private:
  explicit PhoneNumber(std::string digits) : digits_(std::move(digits)) {}
  std::string digits_;
};

// The built-in emergency and service numbers of a country code: CN (86) 110 119 120 122
// 112; US/NANP (1) 911 and the N11 codes; Europe (the EU's codes, UK, ...) 112, 116XXX,
// 118XX, 999. Another country code, or none: all of them together.
[[nodiscard]] CALLBACK_EXPORT std::vector<std::string> default_emergency_numbers(std::string_view country_code);

// Whether a callback may dial `number`: not an emergency or service number of the plan's
// country (or of CN, NANP, Europe for numbers there), not a short code. The Error is
// "denied.emergency_number" or "denied.short_code", with `field` and the rule that matched.
[[nodiscard]] CALLBACK_EXPORT Status check_dialable(const PhoneNumber& number, const NumberingPlan& plan,
                                                   const std::string& field);

}  // namespace callback
