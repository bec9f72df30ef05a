#include <callback/money.hpp>

#include <cctype>
#include <limits>

namespace callback {
namespace {

__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

constexpr std::int64_t pow10(int n) {
  std::int64_t v = 1;
  while (n-- > 0) v *= 10;
  return v;
}

// Exponents that differ from ISO 4217's usual 2.
int known_exponent(std::string_view code) {
  static constexpr std::pair<std::string_view, int> table[] = {
      {"BIF", 0}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"ISK", 0}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0},
      {"PYG", 0}, {"RWF", 0}, {"UGX", 0}, {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0},
      {"BHD", 3}, {"IQD", 3}, {"JOD", 3}, {"KWD", 3}, {"LYD", 3}, {"OMR", 3}, {"TND", 3}};
  for (const auto& [c, e] : table) {
    if (c == code) return e;
  }
  return 2;
}

std::int64_t checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw std::overflow_error("money amount overflow");
  return r;
}

// n / d rounded as asked, on 128-bit values.
std::int64_t divide(int128 n, int128 d, Rounding rounding) {
  if (d < 0) { n = -n; d = -d; }
  int128 q = n / d;
  int128 r = n % d;
  if (r != 0) {
    const bool negative = n < 0;
    switch (rounding) {
      case Rounding::down:  // toward negative infinity: never charge more than due
        if (negative) --q;
        break;
      case Rounding::up:
        if (!negative) ++q;
        break;
      case Rounding::half_even: {
        const int128 twice = (r < 0 ? -r : r) * 2;
        if (twice > d || (twice == d && (q % 2 != 0))) q += negative ? -1 : 1;
        break;
      }
    }
  }
  if (q > std::numeric_limits<std::int64_t>::max() || q < std::numeric_limits<std::int64_t>::min()) {
    throw std::overflow_error("money amount overflow");
  }
  return static_cast<std::int64_t>(q);
}

}  // namespace

Result<Currency> Currency::of(std::string_view code) {
  auto upper_alpha = [](char c) { return c >= 'A' && c <= 'Z'; };
  if (code.size() != 3 || !upper_alpha(code[0]) || !upper_alpha(code[1]) || !upper_alpha(code[2])) {
    return Error{"invalid_currency", "currency must be a three-letter ISO 4217 code such as CNY or USD, got \"" +
                                         std::string(code.substr(0, 16)) + "\"", {}};
  }
  return of(code, known_exponent(code));
}

Result<Currency> Currency::of(std::string_view code, int minor_exponent) {
  if (code.size() != 3) return of(code);
  if (minor_exponent < 0 || minor_exponent > Money::scale_digits) {
    return Error{"invalid_currency", "minor-unit exponent must be 0 to 6", {}};
  }
  return Currency({code[0], code[1], code[2], '\0'}, minor_exponent);
}

Result<Money> Money::parse(std::string_view text, Currency currency, Precision precision) {
  auto fail = [&](const std::string& why) {  // only on errors: the hot path builds no strings
    std::string message(1, '"');
    message.append(text.substr(0, 32)).append(text.size() > 32 ? "...\" " : "\" ").append(why);
    return Error{"invalid_amount", std::move(message), {}};
  };
  if (text.empty()) return Error{"invalid_amount", "amount is empty", {}};
  std::size_t i = 0;
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    i = 1;
  }
  int128 whole = 0;
  std::size_t whole_digits = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++whole_digits) {
    whole = whole * 10 + (text[i] - '0');
    if (whole > std::numeric_limits<std::int64_t>::max() / scale) return fail("is too large");
  }
  std::int64_t fraction = 0;
  int fraction_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      if (fraction_digits == scale_digits) {
        if (text[i] != '0') return fail("has more than 6 decimal places");
        continue;
      }
      fraction = fraction * 10 + (text[i] - '0');
      ++fraction_digits;
    }
    if (fraction_digits == 0) return fail("has no digits after the decimal point");
  }
  if (i != text.size()) {
    return fail("is not a decimal amount (unexpected '" + std::string(1, text[i]) + "' at position " +
                std::to_string(i + 1) + ")");
  }
  if (whole_digits == 0 && fraction_digits == 0) return fail("is not a decimal amount");
  const int allowed = precision == Precision::currency ? currency.minor_exponent() : scale_digits;
  // Trailing zeros beyond the allowed places are harmless ("5.000" CNY); real digits are not.
  std::int64_t significant = fraction;
  int significant_digits = fraction_digits;
  while (significant_digits > allowed && significant % 10 == 0) {
    significant /= 10;
    --significant_digits;
  }
  if (significant_digits > allowed) {
    return fail("has more decimal places than " + std::string(currency.code()) + " allows (" +
                std::to_string(allowed) + ")");
  }
  // In 128 bits: the whole part alone fits, but with the fraction it may not
  // ("9223372036854.9"), and the most negative amount has no positive twin.
  int128 micros = whole * scale + fraction * pow10(scale_digits - fraction_digits);
  if (negative) micros = -micros;
  if (micros > std::numeric_limits<std::int64_t>::max() || micros < std::numeric_limits<std::int64_t>::min()) {
    return fail("is too large");
  }
  return Money(static_cast<std::int64_t>(micros), currency);
}

Money Money::from_minor(std::int64_t minor_units, Currency currency) {
  std::int64_t micros = 0;
  if (__builtin_mul_overflow(minor_units, pow10(scale_digits - currency.minor_exponent()), &micros)) {
    throw std::overflow_error("money amount overflow");
  }
  return Money(micros, currency);
}

std::int64_t Money::minor_units(Rounding rounding) const {
  return divide(micros_, pow10(scale_digits - currency_.minor_exponent()), rounding);
}

Money Money::rounded(Rounding rounding) const { return from_minor(minor_units(rounding), currency_); }

Money Money::mul_div(std::int64_t numerator, std::int64_t denominator, Rounding rounding) const {
  if (denominator == 0) throw std::logic_error("Money::mul_div by zero");
  return Money(divide(static_cast<int128>(micros_) * numerator, denominator, rounding), currency_);
}

std::string Money::format() const {
  const bool negative = micros_ < 0;
  const uint128 abs = negative ? -static_cast<int128>(micros_) : micros_;
  const auto whole = static_cast<std::uint64_t>(abs / scale);
  auto fraction = static_cast<std::uint64_t>(abs % scale);
  std::string frac = std::to_string(fraction);
  frac.insert(0, static_cast<std::size_t>(scale_digits) - frac.size(), '0');
  std::size_t keep = static_cast<std::size_t>(currency_.minor_exponent());
  while (frac.size() > keep && frac.back() == '0') frac.pop_back();
  // Built by appending: g++ 12 -O2 warns falsely (-Wrestrict) on "literal" + std::string.
  std::string out;
  if (negative) out.push_back('-');
  out += std::to_string(whole);
  if (!frac.empty()) {
    out.push_back('.');
    out += frac;
  }
  return out;
}

void Money::require_same_currency(const Money& other) const {
  if (!(currency_ == other.currency_)) {
    throw std::logic_error("money arithmetic across currencies: " + std::string(currency_.code()) + " and " +
                           std::string(other.currency_.code()));
  }
}

Money Money::operator+(const Money& other) const {
  require_same_currency(other);
  return Money(checked_add(micros_, other.micros_), currency_);
}
Money Money::operator-(const Money& other) const {
  require_same_currency(other);
  std::int64_t r = 0;
  if (__builtin_sub_overflow(micros_, other.micros_, &r)) throw std::overflow_error("money amount overflow");
  return Money(r, currency_);
}
Money Money::operator-() const {
  if (micros_ == std::numeric_limits<std::int64_t>::min()) throw std::overflow_error("money amount overflow");
  return Money(-micros_, currency_);
}
Money Money::operator*(std::int64_t factor) const {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(micros_, factor, &r)) throw std::overflow_error("money amount overflow");
  return Money(r, currency_);
}
bool Money::operator==(const Money& other) const {
  return currency_ == other.currency_ && micros_ == other.micros_;
}
std::strong_ordering Money::operator<=>(const Money& other) const {
  require_same_currency(other);
  return micros_ <=> other.micros_;
}

}  // namespace callback
