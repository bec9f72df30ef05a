#include <callback/phone_number.hpp>

#include <gtest/gtest.h>

using callback::NumberingPlan;
using callback::PhoneNumber;

namespace {

const NumberingPlan china{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00", "011"}};
const NumberingPlan nanp{.country_code = "1", .trunk_prefix = "1", .international_prefixes = {"011"}};

std::string normalized(std::string_view text, const NumberingPlan& plan) {
  auto n = PhoneNumber::parse(text, plan);
  if (!n) return "error: " + n.error().message;
  return n->digits();
}

TEST(PhoneNumber, NormalizesWhatPeopleTypeToE164) {
  EXPECT_EQ(normalized("+86 10 5555 6666", china), "861055556666");
  EXPECT_EQ(normalized("0086-10-55556666", china), "861055556666");
  EXPECT_EQ(normalized("011 86 10 5555 6666", china), "861055556666");
  EXPECT_EQ(normalized("010-5555 6666", china), "861055556666");
  EXPECT_EQ(normalized("(928) 111-2222", nanp), "19281112222");
  EXPECT_EQ(normalized("1 928 111 2222", nanp), "19281112222");
  EXPECT_EQ(normalized("011-86-10-55556666", nanp), "861055556666");
  EXPECT_EQ(normalized("  +44 (0)20 7946 0018 ", china), "442079460018");  // "(0)" dropped
  EXPECT_EQ(normalized("13800138000", china), "8613800138000");  // mobile, no trunk prefix
}

TEST(PhoneNumber, LongestInternationalPrefixWins) {
  const NumberingPlan plan{.country_code = "1", .trunk_prefix = "", .international_prefixes = {"0", "011"}};
  EXPECT_EQ(normalized("011 44 20 7946 0018", plan), "442079460018");
}

TEST(PhoneNumber, PlanWithoutCountryCodeKeepsNationalNumbersAsDialed) {
  const NumberingPlan plan{.country_code = "", .trunk_prefix = "", .international_prefixes = {"00"}};
  EXPECT_EQ(normalized("1001", plan), "1001");
  EXPECT_EQ(normalized("0086 10 5555 6666", plan), "861055556666");
}

// Found by tests/fuzz/fuzz_phone: under a private plan "0101" is a number as dialed, and
// its printed form "+0101" was refused ("a country code never starts with 0").
TEST(PhoneNumber, PrivatePlanNumberStartingWithZeroReadsBackFromItsPrintedForm) {
  const NumberingPlan plan{.country_code = "", .trunk_prefix = "", .international_prefixes = {"00"}};
  auto dialed = PhoneNumber::parse("0101", plan);
  ASSERT_TRUE(dialed);
  EXPECT_EQ(dialed->e164(), "+0101");
  EXPECT_EQ(normalized(dialed->e164(), plan), "0101");
  EXPECT_FALSE(PhoneNumber::parse("+0101", china));  // a real plan still refuses it
}

TEST(PhoneNumber, FormatsAsE164WithPlus) {
  EXPECT_EQ(PhoneNumber::parse("010 5555 6666", china)->e164(), "+861055556666");
}

TEST(PhoneNumber, RejectsEmptyInputSayingSo) {
  for (auto text : {"", "   "}) {
    auto n = PhoneNumber::parse(text, china);
    ASSERT_FALSE(n) << text;
    EXPECT_EQ(n.error().code, "invalid_phone_number");
    EXPECT_NE(n.error().message.find("empty"), std::string::npos) << n.error().message;
  }
  EXPECT_NE(PhoneNumber::parse("- ( )", china).error().message.find("no digits"), std::string::npos);
}

TEST(PhoneNumber, RejectsLettersNamingTheLetterAndPosition) {
  auto n = PhoneNumber::parse("010-5555 666x", china);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("letter 'x' at position 13"), std::string::npos) << n.error().message;
  EXPECT_FALSE(PhoneNumber::parse("CALL-ME-NOW", china));
}

TEST(PhoneNumber, RejectsMoreThanFifteenDigits) {
  auto n = PhoneNumber::parse("+86 1055556666 12345", china);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("has 17 digits"), std::string::npos) << n.error().message;
  EXPECT_NE(n.error().message.find("at most 15"), std::string::npos);
  EXPECT_TRUE(PhoneNumber::parse("+123456789012345", china));  // exactly 15
  // A national number that becomes 16 digits with the country code is refused too.
  EXPECT_FALSE(PhoneNumber::parse("0 1234 5678 901234", china));
}

TEST(PhoneNumber, RejectsOtherMalformedInput) {
  EXPECT_FALSE(PhoneNumber::parse("86+1055556666", china));     // '+' in the middle
  EXPECT_FALSE(PhoneNumber::parse("++861055556666", china));    // two '+'
  EXPECT_FALSE(PhoneNumber::parse("+0861055556666", china));    // country code 0
  EXPECT_FALSE(PhoneNumber::parse("00 0 1055556666", china));   // after intl prefix, 0
  EXPECT_FALSE(PhoneNumber::parse("010;55556666", china));      // ';' is not a separator
  EXPECT_FALSE(PhoneNumber::parse("+8", china));                // too short
  EXPECT_FALSE(PhoneNumber::parse("1055\xe2\x80\x8b" "556666", china));  // zero-width space
  auto quote = PhoneNumber::parse("1055'; DROP TABLE cdr;--", china);
  ASSERT_FALSE(quote);
  EXPECT_NE(quote.error().message.find("character '''"), std::string::npos) << quote.error().message;
}

TEST(PhoneNumber, FromE164ValidatesStoredDigits) {
  EXPECT_TRUE(PhoneNumber::from_e164("861055556666"));
  EXPECT_FALSE(PhoneNumber::from_e164("+861055556666"));
  EXPECT_FALSE(PhoneNumber::from_e164("1234567890123456"));
  EXPECT_FALSE(PhoneNumber::from_e164(""));
}

TEST(PhoneNumber, NumberingPlanValidation) {
  EXPECT_TRUE(china.validate());
  EXPECT_EQ(NumberingPlan{.country_code = "086"}.validate().error().field, "country_code");
  EXPECT_EQ(NumberingPlan{.country_code = "8a"}.validate().error().field, "country_code");
  EXPECT_EQ((NumberingPlan{.country_code = "86", .trunk_prefix = "x"}.validate().error().field), "trunk_prefix");
  EXPECT_EQ((NumberingPlan{.country_code = "86", .international_prefixes = {"00", ""}}.validate().error().field),
            "international_prefixes[1]");
}

TEST(PhoneNumber, ComparesByDigits) {
  EXPECT_EQ(*PhoneNumber::parse("+86 10 5555 6666", china), *PhoneNumber::parse("010-55556666", china));
  EXPECT_LT(*PhoneNumber::parse("+1 928 111 2222", china), *PhoneNumber::parse("+86 10 5555 6666", china));
}

}  // namespace
