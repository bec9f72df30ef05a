// Hangup causes, calls and their states, requests, CDR dispositions, rates.
#include <callback/call.hpp>
#include <callback/callback_request.hpp>
#include <callback/cdr.hpp>
#include <callback/hangup_cause.hpp>
#include <callback/rate.hpp>
#include <callback/timestamp.hpp>

#include <gtest/gtest.h>

using namespace callback;
using namespace std::chrono_literals;

namespace {

const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};
PhoneNumber number(std::string_view text) { return PhoneNumber::parse(text, plan).value(); }

TEST(HangupCause, GroupsQ850CausesIntoOutcomeClasses) {
  const std::pair<int, Outcome> expected[] = {
      {16, Outcome::normal},      {17, Outcome::busy},        {18, Outcome::no_answer},   {19, Outcome::no_answer},
      {21, Outcome::rejected},    {1, Outcome::unreachable},  {3, Outcome::unreachable},  {20, Outcome::unreachable},
      {27, Outcome::unreachable}, {28, Outcome::unreachable}, {38, Outcome::unreachable}, {34, Outcome::system_busy},
      {42, Outcome::system_busy}, {44, Outcome::system_busy}, {31, Outcome::failed},      {0, Outcome::failed},
      {127, Outcome::failed}};
  for (const auto& [code, outcome] : expected) {
    EXPECT_EQ(HangupCause{code}.outcome(), outcome) << code;
  }
  EXPECT_EQ(HangupCause::canceled().outcome(), Outcome::canceled);
  EXPECT_EQ(HangupCause::engine_lost().outcome(), Outcome::engine_lost);
}

TEST(HangupCause, HasAsteriskNamesBothWays) {
  EXPECT_EQ(HangupCause{17}.name(), "USER_BUSY");
  EXPECT_EQ(HangupCause{19}.description(), "User alerting, no answer");
  EXPECT_EQ(HangupCause{34}.name(), "NORMAL_CIRCUIT_CONGESTION");
  EXPECT_EQ(HangupCause{55}.name(), "UNKNOWN");
  EXPECT_EQ(HangupCause::from_name("no_answer"), HangupCause{19});
  EXPECT_EQ(HangupCause::from_name("AST_CAUSE_CALL_REJECTED"), HangupCause{21});
  EXPECT_EQ(HangupCause::from_name("ENGINE_LOST"), HangupCause::engine_lost());
  EXPECT_FALSE(HangupCause::from_name("SOMETHING_ELSE"));
  for (auto o : {Outcome::normal, Outcome::no_answer, Outcome::engine_lost, Outcome::failed}) {
    EXPECT_EQ(outcome_from_string(to_string(o)), o);
  }
}

TEST(Call, FollowsTheCallbackStateMachine) {
  const Timestamp t0{};
  Call call{"cb1", CallbackRequest{.caller = number("13800138000"), .callee = number("010 5555 6666"),
                                   .payer = AccountId{"123"}},
            t0};
  EXPECT_EQ(call.leg_a().number, number("13800138000"));
  EXPECT_EQ(call.leg_b().role, LegRole::b);
  for (auto next : {CallState::authorizing, CallState::dialing_a, CallState::a_answered, CallState::dialing_b,
                    CallState::bridged, CallState::completed}) {
    ASSERT_TRUE(call.transition(next, t0 + 1s)) << to_string(next);
  }
  EXPECT_EQ(call.state(), CallState::completed);
  EXPECT_EQ(call.updated_at(), t0 + 1s);
  // Final is final.
  auto again = call.transition(CallState::canceled, t0 + 2s);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "callback cb1 cannot go from completed to canceled");
}

TEST(Call, RefusesSkippingStates) {
  EXPECT_FALSE(is_allowed_transition(CallState::created, CallState::dialing_a));    // not authorized
  EXPECT_FALSE(is_allowed_transition(CallState::dialing_a, CallState::dialing_b));  // A has not answered
  EXPECT_FALSE(is_allowed_transition(CallState::dialing_a, CallState::completed));  // A never answered: failed
  EXPECT_FALSE(is_allowed_transition(CallState::bridged, CallState::failed));
  EXPECT_TRUE(is_allowed_transition(CallState::dialing_a, CallState::failed));
  EXPECT_TRUE(is_allowed_transition(CallState::dialing_b, CallState::completed));  // B busy
  for (auto s : {CallState::created, CallState::authorizing, CallState::dialing_a, CallState::a_answered,
                 CallState::dialing_b, CallState::bridged}) {
    EXPECT_TRUE(is_allowed_transition(s, CallState::canceled)) << to_string(s);
    EXPECT_FALSE(is_final(s));
  }
}

TEST(Leg, DurationAndBillsecAsAsterisk) {
  Leg leg;
  const Timestamp t0{};
  leg.started = t0;
  leg.answered = t0 + 7s;
  leg.ended = t0 + 67s;
  EXPECT_EQ(leg.duration(), 67s);
  EXPECT_EQ(leg.billsec(), 60s);
  leg.answered.reset();
  EXPECT_EQ(leg.billsec(), 0s);
}

TEST(CallbackRequest, ValidatesWhatEveryTriggerMustGetRight) {
  CallbackRequest request{.caller = number("13800138000"), .callee = number("010 5555 6666"),
                          .payer = CampaignId{"free-300"}};
  EXPECT_TRUE(request.validate());
  request.callee = request.caller;
  EXPECT_EQ(request.validate().error().field, "callee");
  request.callee = number("010 5555 6666");
  request.limit = 0s;
  EXPECT_EQ(request.validate().error().field, "limit");
  request.limit.reset();
  request.payer = AccountId{"12 3; DROP"};
  EXPECT_EQ(request.validate().error().field, "account");
  request.payer = AccountId{""};
  EXPECT_NE(request.validate().error().message.find("empty"), std::string::npos);
  EXPECT_EQ(origin_from_string("sms"), Origin::sms);
  EXPECT_EQ(to_string(Origin::did), "did");
}

TEST(CallbackRequest, MakeRequestNormalizesNumbersOrSaysWhichIsWrong) {
  auto ok = make_request({.caller = "138 0013 8000", .callee = "010-5555 6666", .payer = CampaignId{"free"}}, plan);
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ(ok->caller.digits(), "8613800138000");
  EXPECT_EQ(ok->callee->digits(), "861055556666");
  auto bad_callee = make_request({.caller = "13800138000", .callee = "010-5555 666x", .payer = CampaignId{"free"}}, plan);
  ASSERT_FALSE(bad_callee);
  EXPECT_EQ(bad_callee.error().field, "callee");
  EXPECT_NE(bad_callee.error().message.find("letter 'x'"), std::string::npos);
  auto empty_caller = make_request({.caller = "", .callee = "010 5555 6666", .payer = CampaignId{"free"}}, plan);
  ASSERT_FALSE(empty_caller);
  EXPECT_EQ(empty_caller.error().describe(), "caller: phone number is empty");
  auto bad_payer = make_request({.caller = "13800138000", .callee = "01055556666", .payer = AccountId{"a;b"}}, plan);
  EXPECT_EQ(bad_payer.error().field, "account");
}

TEST(CallbackRequest, TheLanguageIsCarriedOrRefusedNamingTheField) {
  auto zh = make_request({.caller = "13800138000", .callee = "01055556666", .payer = CampaignId{"free"},
                          .language = "zh"}, plan);
  ASSERT_TRUE(zh) << zh.error().describe();
  EXPECT_EQ(zh->language, "zh");
  auto none = make_request({.caller = "13800138000", .callee = "01055556666", .payer = CampaignId{"free"}}, plan);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->language, "");
  auto injected = make_request({.caller = "13800138000", .callee = "01055556666", .payer = CampaignId{"free"},
                                .language = "zh\r\nAction: Originate"}, plan);
  ASSERT_FALSE(injected);
  EXPECT_EQ(injected.error().code, "invalid_language");
  EXPECT_EQ(injected.error().field, "language");
  EXPECT_EQ(check_language("pt_BR").ok(), true);
  EXPECT_EQ(check_language("x").error().describe(), "language: a language is 2 to 16 characters (\"en\", \"zh\", \"pt_BR\")");
  EXPECT_EQ(check_language("\xe4\xb8\xad\xe6\x96\x87", "accounts[0].language").error().field, "accounts[0].language");
}

TEST(Cdr, DispositionLikeAsterisk) {
  EXPECT_EQ(disposition_for(HangupCause{16}, true), Disposition::answered);
  EXPECT_EQ(disposition_for(HangupCause{17}, false), Disposition::busy);
  EXPECT_EQ(disposition_for(HangupCause{19}, false), Disposition::no_answer);
  EXPECT_EQ(disposition_for(HangupCause{34}, false), Disposition::congestion);
  EXPECT_EQ(disposition_for(HangupCause{1}, false), Disposition::failed);
  EXPECT_EQ(to_string(Disposition::no_answer), "NO ANSWER");
  EXPECT_EQ(disposition_from_string("CONGESTION"), Disposition::congestion);
}

Rate rate(std::string_view price, std::chrono::seconds initial, std::chrono::seconds step,
          std::string_view fee = "0", std::chrono::seconds minimum = 0s) {
  const auto cny = Currency::of("CNY").value();
  return Rate{.prefix = "86",
              .price_per_minute = Money::parse(price, cny, Money::Precision::rate).value(),
              .initial_increment = initial,
              .subsequent_increment = step,
              .connection_fee = Money::parse(fee, cny, Money::Precision::rate).value(),
              .minimum_duration = minimum};
}

TEST(Rate, ChargedSecondsFollowIncrements) {
  const auto per_minute = rate("0.10", 60s, 60s);
  EXPECT_EQ(per_minute.charged_seconds(0s), 0s);
  EXPECT_EQ(per_minute.charged_seconds(1s), 60s);
  EXPECT_EQ(per_minute.charged_seconds(60s), 60s);
  EXPECT_EQ(per_minute.charged_seconds(61s), 120s);
  const auto thirty_six = rate("0.10", 30s, 6s);
  EXPECT_EQ(thirty_six.charged_seconds(1s), 30s);
  EXPECT_EQ(thirty_six.charged_seconds(30s), 30s);
  EXPECT_EQ(thirty_six.charged_seconds(31s), 36s);
  EXPECT_EQ(thirty_six.charged_seconds(36s), 36s);
  EXPECT_EQ(thirty_six.charged_seconds(37s), 42s);
  const auto per_second = rate("0.10", 1s, 1s, "0", 10s);
  EXPECT_EQ(per_second.charged_seconds(3s), 10s);  // minimum duration
  EXPECT_EQ(per_second.charged_seconds(11s), 11s);
}

TEST(Rate, CostIsExactAndRoundedUpToTheCent) {
  const auto cny = Currency::of("CNY").value();
  auto money = [&](std::string_view s) { return Money::parse(s, cny).value(); };
  EXPECT_EQ(rate("0.10", 60s, 60s).cost(0s), money("0"));
  EXPECT_EQ(rate("0.10", 60s, 60s).cost(61s), money("0.20"));
  EXPECT_EQ(rate("0.10", 30s, 6s).cost(31s), money("0.06"));
  EXPECT_EQ(rate("0.10", 1s, 1s).cost(1s), money("0.01"));     // 0.001667 rounds up
  EXPECT_EQ(rate("0.10", 60s, 60s, "0.05").cost(1s), money("0.15"));
  EXPECT_EQ(rate("0.10", 60s, 60s, "0.05").cost(0s), money("0"));  // no answer, no fee
  // The seed: 50 minutes at 0.10/min is the whole 5.00.
  EXPECT_EQ(rate("0.10", 60s, 60s).cost(50min), money("5.00"));
}

}  // namespace

TEST(CallState, NamesReadBackAndUnknownOnesAreNot) {
  for (auto s : {CallState::created, CallState::authorizing, CallState::dialing_a, CallState::a_answered,
                 CallState::dialing_b, CallState::bridged, CallState::completed, CallState::failed,
                 CallState::canceled}) {
    EXPECT_EQ(call_state_from_string(to_string(s)), s);
  }
  EXPECT_EQ(call_state_from_string("sleeping"), std::nullopt);
  EXPECT_EQ(call_state_from_string(""), std::nullopt);
}

TEST(Timestamp, ReadsWhatItPrintsInEveryForm) {
  const auto at = parse_timestamp("2026-11-26T09:13:17Z");
  ASSERT_TRUE(at);
  EXPECT_EQ(format_rfc3339(*at), "2026-11-26T09:13:17Z");
  EXPECT_EQ(parse_timestamp(format_timestamp(*at)), at);
  EXPECT_EQ(format_timestamp(*parse_timestamp("2028-02-29")), "2028-02-29 00:00:00");
}

// ARI stamps its events "2026-11-26T05:43:34.731+0000" (tests/fixtures/asterisk/ari-*.events.jsonl); RFC 3339
// writes the offset "+08:00".
TEST(Timestamp, ReadsFractionsAndOffsetsAsTheInstantTheyName) {
  using namespace std::chrono_literals;
  const auto utc = parse_timestamp("2026-11-26T05:43:34Z");
  ASSERT_TRUE(utc);
  EXPECT_EQ(parse_timestamp("2026-11-26T05:43:34.731+0000"), *utc + 731ms);
  EXPECT_EQ(parse_timestamp("2026-11-26T13:43:34.5+08:00"), *utc + 500ms);
  EXPECT_EQ(parse_timestamp("2026-11-26T00:13:34-0530"), *utc);
  EXPECT_EQ(parse_timestamp("2026-11-26T05:43:34.000000001Z"), *utc + 1ns);
  EXPECT_EQ(parse_timestamp("2026-11-26 05:43:34+00"), *utc);
  EXPECT_EQ(parse_timestamp("2026-11-27T00:43:34+19:00"), *utc);
  for (auto text : {"2026-11-26T05:43:34", "2026-11-26T05:43:34.Z", "2026-11-26T05:43:34.0000000001Z",
                    "2026-11-26T05:43:34+24:00", "2026-11-26T05:43:34+0060", "2026-11-26T05:43:34+0",
                    "2026-11-26T05:43:34+00:", "2026-11-26T05:43:34Zjunk", "2026-11-26T05:43:34 +0000",
                    "2026-11-26T5:43:34Z", "2026-11-26X05:43:34Z", "2026-11-26 ", "+026-11-26", "2026-11-26T24:00:00Z"}) {
    EXPECT_FALSE(parse_timestamp(text)) << text;
  }
}

// Found by tests/fuzz/fuzz_query (?since=2026-02-31 meant 3 March; a NUL ended the text) and fuzz_rate_deck (an
// effective_from in year 26 overflowed system_clock's nanoseconds: undefined behaviour).
TEST(Timestamp, RefusesDatesThatDoNotExistOrThatTheClockCannotHold) {
  for (auto text : {"2026-02-31", "2027-02-29", "2026-04-31T00:00:00Z", "2026-11-26 23:59:60", "0026-01-01",
                    "1677-01-01", "2263-01-01", "9999-12-31 23:59:59"}) {
    EXPECT_FALSE(parse_timestamp(text)) << text;
  }
  EXPECT_FALSE(parse_timestamp(std::string_view("2026-11-2\0state=bridged", 24)));  // read as a C string before
}

// Found by fuzz_query in CI: the span is of the instant meant, after the offset, so that every
// accepted time prints as one that reads back (1969-12-31T23:30:00Z would not).
TEST(Timestamp, RefusesAnOffsetThatTakesTheInstantOutOfTheSpan) {
  EXPECT_FALSE(parse_timestamp("1970-01-01T00:30:00+01:00"));
  EXPECT_FALSE(parse_timestamp("2199-12-31T23:30:00-01:00"));
  const auto first = parse_timestamp("1970-01-01T01:00:00+01:00");
  ASSERT_TRUE(first);
  EXPECT_EQ(format_rfc3339(*first), "1970-01-01T00:00:00Z");
  const auto last = parse_timestamp("2199-12-31T22:59:59.999-01:00");
  ASSERT_TRUE(last);
  EXPECT_EQ(format_rfc3339(*last), "2199-12-31T23:59:59Z");
  EXPECT_EQ(parse_timestamp(format_rfc3339(*last)), parse_timestamp("2199-12-31T23:59:59Z"));
}
