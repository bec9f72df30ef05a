// Fuzzes PhoneNumber::parse with the numbering plans the service is run with. Invariants:
// a parsed number is 3-15 digits; its E.164 form parses back to itself under every plan;
// from_e164 accepts its digits; parsing is a function of the text (same result twice).
#include "fuzz_check.hpp"

#include <callback/phone_number.hpp>

using callback::NumberingPlan;
using callback::PhoneNumber;
using callback_fuzz::Input;

namespace {

const std::vector<NumberingPlan>& plans() {
  static const std::vector<NumberingPlan> all = {
      {.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}},   // China
      {.country_code = "1", .trunk_prefix = "1", .international_prefixes = {"011"}},   // NANP
      {.country_code = "44", .trunk_prefix = "0", .international_prefixes = {"00"}},   // UK
      {.country_code = "", .trunk_prefix = "", .international_prefixes = {"00"}},      // private (test phones)
      {.country_code = "49", .trunk_prefix = "0", .international_prefixes = {"00", "011"}},
      {.country_code = "7", .trunk_prefix = "8", .international_prefixes = {"810"}},  // Russia
  };
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const auto& plan = plans()[in.byte() % plans().size()];
  const std::string_view text = in.rest();

  auto parsed = PhoneNumber::parse(text, plan);
  auto twice = PhoneNumber::parse(text, plan);
  FUZZ_CHECK(parsed.ok() == twice.ok(), text);
  if (!parsed) {
    FUZZ_CHECK(!parsed.error().message.empty(), text);
    return 0;
  }
  FUZZ_CHECK(*parsed == *twice, text);
  const std::string& digits = parsed->digits();
  FUZZ_CHECK(digits.size() >= PhoneNumber::min_digits && digits.size() <= PhoneNumber::max_digits, text, digits);
  for (char c : digits) FUZZ_CHECK(c >= '0' && c <= '9', text, digits);

  auto canonical = PhoneNumber::from_e164(digits);
  FUZZ_CHECK(canonical.ok() && *canonical == *parsed, text, digits,
             canonical.ok() ? canonical->digits() : canonical.error().message);
  // The normalized form means the same number whatever plan reads it.
  // (Only a private plan, whose numbers are as dialed, makes one that starts with 0.)
  for (const auto& other : plans()) {
    if (digits.front() == '0' && !other.country_code.empty()) continue;
    auto again = PhoneNumber::parse(parsed->e164(), other);
    FUZZ_CHECK(again.ok() && *again == *parsed, text, parsed->e164(),
               again.ok() ? again->digits() : again.error().message);
  }
  return 0;
}
