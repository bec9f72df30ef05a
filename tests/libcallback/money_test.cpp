#include <callback/money.hpp>

#include <cstdint>

#include <gtest/gtest.h>

using callback::Currency;
using callback::Money;
using callback::Rounding;

namespace {

const Currency cny = Currency::of("CNY").value();
const Currency jpy = Currency::of("JPY").value();
const Currency kwd = Currency::of("KWD").value();

Money m(std::string_view text, Currency c = cny, Money::Precision p = Money::Precision::currency) {
  return Money::parse(text, c, p).value();
}

TEST(Currency, KnowsMinorUnits) {
  EXPECT_EQ(cny.minor_exponent(), 2);
  EXPECT_EQ(jpy.minor_exponent(), 0);
  EXPECT_EQ(kwd.minor_exponent(), 3);
  EXPECT_EQ(Currency::of("EUR")->code(), "EUR");
}

TEST(Currency, RejectsMalformedCodes) {
  for (auto code : {"", "cny", "CN", "CNYY", "C1Y", "'; --"}) {
    auto c = Currency::of(code);
    ASSERT_FALSE(c) << code;
    EXPECT_EQ(c.error().code, "invalid_currency");
  }
}

TEST(Money, ParsesAndFormatsExactly) {
  EXPECT_EQ(m("0.10").micros(), 100'000);
  EXPECT_EQ(m("0.10").format(), "0.10");
  EXPECT_EQ(m("5").format(), "5.00");
  EXPECT_EQ(m("5.5").format(), "5.50");
  EXPECT_EQ(m("-0.01").format(), "-0.01");
  EXPECT_EQ(m("+12.34").micros(), 12'340'000);
  EXPECT_EQ(m(".5").format(), "0.50");
  EXPECT_EQ(m("100", jpy).format(), "100");
  EXPECT_EQ(m("1.234", kwd).format(), "1.234");
  EXPECT_EQ(m("9223372036854.775807", cny, Money::Precision::rate).micros(), INT64_MAX);
}

TEST(Money, RatePrecisionKeepsSubCentAmounts) {
  const Money per_second = m("0.001667", cny, Money::Precision::rate);
  EXPECT_EQ(per_second.micros(), 1667);
  EXPECT_EQ(per_second.format(), "0.001667");
  EXPECT_FALSE(Money::parse("0.0000001", cny, Money::Precision::rate));
}

TEST(Money, RefusesMorePrecisionThanTheCurrencyAllows) {
  auto cents = Money::parse("5.001", cny);
  ASSERT_FALSE(cents);
  EXPECT_NE(cents.error().message.find("more decimal places than CNY allows (2)"), std::string::npos)
      << cents.error().message;
  EXPECT_FALSE(Money::parse("1.5", jpy));
  EXPECT_TRUE(Money::parse("5.000", cny));  // trailing zeros carry no precision
}

TEST(Money, RefusesMalformedAmountsSayingWhere) {
  for (auto text : {"", "abc", "1,50", "1.", "--1", "1e3", "0x10", "1.2.3", " 1", "NaN"}) {
    auto amount = Money::parse(text, cny);
    ASSERT_FALSE(amount) << text;
    EXPECT_EQ(amount.error().code, "invalid_amount");
  }
  EXPECT_NE(Money::parse("12a", cny).error().message.find("'a' at position 3"), std::string::npos);
  EXPECT_FALSE(Money::parse("99999999999999999999", cny));  // overflow, not wrap
}

// Found by tests/fuzz/fuzz_money: the largest whole part passed the overflow check, and
// adding its fraction overflowed (undefined behaviour; UBSan stopped on it). The smallest
// amount the store can hold printed as text that did not read back.
TEST(Money, ReadsEveryAmountItPrintsAndRefusesOneMicroBeyond) {
  for (auto micros : {INT64_MAX, INT64_MIN, INT64_MIN + 1, std::int64_t{0}}) {
    const Money amount = Money::from_micros(micros, cny);
    auto again = Money::parse(amount.format(), cny, Money::Precision::rate);
    ASSERT_TRUE(again) << amount.format();
    EXPECT_EQ(again->micros(), micros) << amount.format();
  }
  for (auto text : {"9223372036854.775808", "9223372036854.999999", "-9223372036854.775809"}) {
    auto amount = Money::parse(text, cny, Money::Precision::rate);
    ASSERT_FALSE(amount) << text;
    EXPECT_NE(amount.error().message.find("too large"), std::string::npos) << amount.error().message;
  }
}

TEST(Money, ArithmeticIsExact) {
  Money total = Money::zero(cny);
  for (int i = 0; i < 10; ++i) total += m("0.10");
  EXPECT_EQ(total, m("1.00"));  // 0.1 * 10 == 1 exactly, unlike double
  EXPECT_EQ(m("5.00") - m("0.20"), m("4.80"));
  EXPECT_EQ(m("0.10") * 50, m("5.00"));
  EXPECT_EQ(-m("1.00"), m("-1.00"));
  EXPECT_LT(m("0.09"), m("0.10"));
}

TEST(Money, MulDivRoundsAsAsked) {
  const Money price = m("0.10");  // per minute
  EXPECT_EQ(price.mul_div(61, 60, Rounding::down).micros(), 101'666);
  EXPECT_EQ(price.mul_div(61, 60, Rounding::up).micros(), 101'667);
  EXPECT_EQ(price.mul_div(30, 60, Rounding::up), m("0.05"));
  EXPECT_EQ(m("0.01").mul_div(1, 2, Rounding::half_even).micros(), 5'000);
  EXPECT_EQ(Money::from_micros(5, cny).mul_div(1, 2, Rounding::half_even).micros(), 2);  // 2.5 -> 2
  EXPECT_EQ(Money::from_micros(7, cny).mul_div(1, 2, Rounding::half_even).micros(), 4);  // 3.5 -> 4
  EXPECT_EQ(Money::from_micros(-7, cny).mul_div(1, 2, Rounding::down).micros(), -4);
  EXPECT_EQ(Money::from_micros(-7, cny).mul_div(1, 2, Rounding::up).micros(), -3);
}

TEST(Money, RoundsToTheMinorUnit) {
  const Money amount = Money::from_micros(101'667, cny);  // 0.101667
  EXPECT_EQ(amount.rounded(Rounding::up), m("0.11"));
  EXPECT_EQ(amount.rounded(Rounding::down), m("0.10"));
  EXPECT_EQ(amount.minor_units(Rounding::up), 11);
  EXPECT_EQ(Money::from_minor(1234, cny), m("12.34"));
}

TEST(Money, MixingCurrenciesIsABug) {
  EXPECT_THROW((void)(m("1.00") + m("1.000", kwd)), std::logic_error);
  EXPECT_THROW((void)(m("1.00") < m("1.000", kwd)), std::logic_error);
  EXPECT_FALSE(m("1.00") == m("1.000", kwd));
}

TEST(Money, OverflowThrowsInsteadOfWrapping) {
  const Money big = Money::from_micros(INT64_MAX, cny);
  EXPECT_THROW((void)(big + Money::from_micros(1, cny)), std::overflow_error);
  EXPECT_THROW((void)(big * 2), std::overflow_error);
  EXPECT_THROW((void)(-Money::from_micros(INT64_MIN, cny)), std::overflow_error);
}

}  // namespace
