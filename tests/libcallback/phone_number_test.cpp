#include <callback/callback_request.hpp>
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

// --- numbers a callback never dials (issue #10, item 4) ------------------------------------

std::string refusal(std::string_view text, const NumberingPlan& plan) {
  auto n = PhoneNumber::parse(text, plan);
  if (!n) return "parse error";
  auto ok = callback::check_dialable(*n, plan, "callee");
  return ok ? "ok" : ok.error().code + " " + ok.error().rule + " @" + ok.error().field;
}

TEST(Dialable, EmergencyNumbersOfTheCountryAreNeverDialled) {
  for (const char* n : {"110", "119", "120", "122", "112"}) {
    EXPECT_EQ(refusal(n, china), "denied.emergency_number emergency " + std::string(n) + " @callee") << n;
  }
  EXPECT_EQ(refusal("911", nanp), "denied.emergency_number emergency 911 @callee");
  EXPECT_EQ(refusal("411", nanp), "denied.emergency_number emergency N11 @callee");
  const NumberingPlan germany{.country_code = "49", .trunk_prefix = "0", .international_prefixes = {"00"}};
  EXPECT_EQ(refusal("112", germany), "denied.emergency_number emergency 112 @callee");
  EXPECT_EQ(refusal("116 000", germany), "denied.emergency_number emergency 116XXX @callee");
  EXPECT_EQ(refusal("11833", germany), "denied.emergency_number emergency 118XX @callee");
  // Another known country's, written in full.
  EXPECT_EQ(refusal("+1 911", china), "denied.emergency_number emergency 911 @callee");
  EXPECT_EQ(refusal("0044 999", china), "denied.emergency_number emergency 999 @callee");
  // Subscribers pass.
  EXPECT_EQ(refusal("13800138000", china), "ok");
  EXPECT_EQ(refusal("(928) 111-2222", nanp), "ok");
}

TEST(Dialable, ShortCodesAreNeverDialled) {
  EXPECT_EQ(refusal("10086", china), "denied.short_code short_code <6 digits @callee");
  EXPECT_EQ(refusal("95555", china), "denied.short_code short_code <6 digits @callee");
  // Private numbering (no country code) dials as typed: 4-digit extensions are fine, the
  // emergency numbers of every built-in country are not.
  const NumberingPlan as_dialed{.country_code = "", .trunk_prefix = "", .international_prefixes = {}};
  EXPECT_EQ(refusal("1001", as_dialed), "ok");
  for (const char* n : {"112", "911", "110", "999"}) {
    EXPECT_NE(refusal(n, as_dialed).find("denied.emergency_number"), std::string::npos) << n;
  }
}

TEST(Dialable, TheListAndTheShortCodeLengthAreConfigurable) {
  NumberingPlan plan = china;
  plan.emergency_numbers = std::vector<std::string>{"12345"};
  plan.min_subscriber_digits = 4;
  EXPECT_EQ(refusal("12345", plan), "denied.emergency_number emergency 12345 @callee");
  EXPECT_EQ(refusal("110", plan), "denied.short_code short_code <4 digits @callee");  // no longer on the list
  EXPECT_EQ(refusal("10086", plan), "ok");
  plan.emergency_numbers = std::vector<std::string>{"11a"};
  EXPECT_EQ(plan.validate().error().field, "emergency_numbers[0]");
}

TEST(Dialable, MakeRequestRefusesThemAsCalleeOrCaller) {
  callback::CallbackForm form{.caller = "13800138000", .callee = "110", .payer = callback::CampaignId{"free"}};
  auto made = callback::make_request(form, china);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, "denied.emergency_number");
  EXPECT_EQ(made.error().field, "callee");
  EXPECT_EQ(made.error().rule, "emergency 110");
  form.callee = "13900139000";
  form.caller = "112";
  EXPECT_EQ(callback::make_request(form, china).error().field, "caller");
}

}  // namespace
