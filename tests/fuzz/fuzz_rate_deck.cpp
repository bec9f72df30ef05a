// Fuzzes the rate-deck CSV (what a carrier or an operator uploads) and the deck built from
// it. Invariants: the deck's lookups (single, batched) give exactly what a plain scan of
// the lines gives (longest prefix, first line in deck order in effect at that time);
// costs grow with time, are zero at 0 s, and charge at least the time talked.
#include "fuzz_check.hpp"

#include <callback/rate_deck.hpp>

#include <chrono>
#include <sstream>

using callback_fuzz::Input;
using namespace std::chrono_literals;

namespace {

// Lines in deck order: the first one in effect for the longest prefix, as the deck promises.
const callback::RateLine* scan(const callback::RateDeck& deck, std::string_view digits, callback::Timestamp at) {
  for (std::size_t length = digits.size() + 1; length-- > 0;) {
    for (const auto& line : deck.lines()) {
      if (line.rate.prefix == digits.substr(0, length) && line.applies_at(at)) return &line;
    }
  }
  return nullptr;
}

std::string describe(const callback::RateLine* line) {
  return line == nullptr ? std::string("none") : "line " + std::to_string(line->line) + " prefix " + line->rate.prefix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t selector = in.byte();
  static const callback::Currency currencies[] = {callback::Currency::of("CNY").value(),
                                                  callback::Currency::of("JPY").value(),
                                                  callback::Currency::of("KWD").value()};
  const auto& currency = currencies[selector % 3];
  const std::string text(in.rest());
  std::istringstream csv(text);
  auto lines = callback::parse_rate_csv(csv, currency, callback::RateDeckLimits{.max_rows = 2000});
  if (!lines) {
    FUZZ_CHECK(!lines.error().message.empty(), text);
    return 0;
  }
  for (const auto& line : *lines) {
    const auto& rate = line.rate;
    FUZZ_CHECK(!rate.prefix.empty(), text);
    for (char c : rate.prefix) FUZZ_CHECK(c >= '0' && c <= '9', text, rate.prefix);
    if (line.blocked) continue;
    FUZZ_CHECK(rate.price_per_minute.currency() == currency && !rate.price_per_minute.is_negative(), text);
    FUZZ_CHECK(rate.cost(0s).is_zero(), text, rate.prefix);
    callback::Money previous = rate.cost(0s);
    for (auto billsec : {1s, 2s, 29s, 30s, 31s, 59s, 60s, 61s, 3599s, 86400s}) {
      FUZZ_CHECK(rate.charged_seconds(billsec) >= billsec, text, rate.prefix);
      const callback::Money cost = rate.cost(billsec);
      FUZZ_CHECK(cost >= previous, text, rate.prefix, previous.format(), cost.format());
      previous = cost;
    }
  }

  const auto deck = callback::RateDeck::build(std::move(*lines));
  // Numbers to look up: every prefix, one digit longer, and the input's own digits.
  std::vector<std::string> numbers;
  for (const auto& line : deck->lines()) {
    numbers.push_back(line.rate.prefix);
    numbers.push_back(line.rate.prefix + "5");
    numbers.push_back(line.rate.prefix.substr(0, line.rate.prefix.size() / 2));
  }
  std::string digits;
  for (char c : text) {
    if (c >= '0' && c <= '9' && digits.size() < 15) digits.push_back(c);
  }
  numbers.push_back(digits);
  numbers.emplace_back("861055556666");
  // Times: a Monday morning, a Saturday night, the epoch, 2100.
  const callback::Timestamp times[] = {callback::Timestamp{} + 1'796'029'200s,  // 2026-11-30 09:00 UTC, Monday
                                       callback::Timestamp{} + 1'796'511'540s,  // 2026-12-05 22:59 UTC, Saturday
                                       callback::Timestamp{}, callback::Timestamp{} + 4'102'444'800s};
  std::vector<std::string_view> views(numbers.begin(), numbers.end());
  std::vector<const callback::RateLine*> batch(views.size());
  for (const auto at : times) {
    deck->lookup_batch(views, at, batch);
    for (std::size_t i = 0; i < views.size(); ++i) {
      const auto* expected = scan(*deck, views[i], at);
      const auto* found = deck->lookup(views[i], at);
      FUZZ_CHECK(found == expected, text, views[i], describe(expected), describe(found));
      FUZZ_CHECK(batch[i] == expected, text, views[i], describe(expected), describe(batch[i]));
    }
  }
  return 0;
}
