// Fuzzes Money::parse, the amounts of top-ups, balances and rate decks. Invariants: a
// parsed amount formats to text that parses back to the same amount; any micro-unit
// amount formats to text that parses back (at rate precision); rounding brackets the
// amount.
#include "fuzz_check.hpp"

#include <callback/money.hpp>

#include <cstring>
#include <stdexcept>

using callback::Currency;
using callback::Money;
using callback_fuzz::Input;

namespace {

const Currency& currency_for(std::uint8_t selector) {
  static const Currency currencies[] = {Currency::of("CNY").value(), Currency::of("JPY").value(),
                                        Currency::of("KWD").value(), Currency::of("USD").value(),
                                        Currency::of("XTS", 6).value()};
  return currencies[selector % std::size(currencies)];
}

void check_round_trip(const Money& amount, Money::Precision precision) {
  const std::string text = amount.format();
  auto again = Money::parse(text, amount.currency(), precision);
  FUZZ_CHECK(again.ok(), text, again.ok() ? "" : again.error().message);
  FUZZ_CHECK(again->micros() == amount.micros(), text, std::to_string(amount.micros()),
             std::to_string(again->micros()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t selector = in.byte();
  const Currency& currency = currency_for(selector & 0x0f);
  const auto precision = (selector & 0x10) != 0 ? Money::Precision::rate : Money::Precision::currency;
  const std::string_view text = in.rest();

  auto parsed = Money::parse(text, currency, precision);
  if (parsed) {
    check_round_trip(*parsed, precision);
    // Rounding to the minor unit brackets the amount (or says it overflows).
    try {
      const Money down = parsed->rounded(callback::Rounding::down);
      const Money up = parsed->rounded(callback::Rounding::up);
      FUZZ_CHECK(down <= *parsed && *parsed <= up, std::string(text), down.format(), up.format());
    } catch (const std::overflow_error&) {
    }
  } else {
    FUZZ_CHECK(!parsed.error().message.empty(), text);
  }

  // The same bytes as a raw amount: whatever the store holds must print and read back.
  if (size >= 9) {
    std::int64_t micros = 0;
    std::memcpy(&micros, data + 1, sizeof micros);
    check_round_trip(Money::from_micros(micros, currency), Money::Precision::rate);
  }
  return 0;
}
