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
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <compare>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

struct NumberingPlan {
  std::string country_code;                     // "86", "1"; empty: national numbers as dialed
  std::string trunk_prefix;                     // "0" (China, UK), "1" (NANP), "" (none)
  std::vector<std::string> international_prefixes{"00"};  // "00", "011"

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

}  // namespace callback
