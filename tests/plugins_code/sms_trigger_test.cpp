// callback.trigger.sms without HTTP: the message formats, the two signatures (Twilio's
// documented example), and the policy of SmsTrigger::receive against a real SQLite store,
// with a sink that records what reached it.
#include "sms.hpp"
#include "sms_trigger.hpp"
#include "sqlite_store.hpp"
#include "recording_sink.hpp"
#include "temp_dir.hpp"
#include "test_context.hpp"

#include <callback/secret.hpp>
#include <callback_internal/callback_service.hpp>

#include <gtest/gtest.h>

namespace callback::trigger_sms {
namespace {

TEST(SmsCommand, TheSeedsThreeFormsWithSpacesCommasOrHashes) {
  auto full = parse_sms_command("alice s3cret 13800138000 13900139000");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->account, "alice");
  EXPECT_EQ(full->password, "s3cret");
  EXPECT_EQ(full->caller, "13800138000");
  EXPECT_EQ(full->callee, "13900139000");
  auto hashes = parse_sms_command("alice#s3cret#13800138000#13900139000#");
  ASSERT_TRUE(hashes);
  EXPECT_EQ(hashes->callee, "13900139000");
  auto pair = parse_sms_command(" 13800138000 ,, 13900139000\n");
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->account, "");
  EXPECT_EQ(pair->caller, "13800138000");
  EXPECT_EQ(pair->callee, "13900139000");
  auto callee_only = parse_sms_command("13900139000");
  ASSERT_TRUE(callee_only);
  EXPECT_EQ(callee_only->caller, "");
  EXPECT_EQ(callee_only->callee, "13900139000");
  for (const char* bad : {"", "  ,# ", "a b c", "a b c d e"}) {
    auto refused = parse_sms_command(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code, "invalid_sms");
    EXPECT_NE(refused.error().message.find("separated by spaces, commas or #"), std::string::npos);
  }
}

// twilio.com/docs/usage/security, "Validating requests": the worked example.
TEST(TwilioSignature, MatchesTheExampleInTwiliosDocumentation) {
  const std::string url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  // In the order they might come in the body: the signature sorts them.
  const FormFields fields{{"To", "+18005551212"},       {"CallSid", "CA1234567890ABCDE"}, {"Digits", "1234"},
                          {"From", "+12349013030"}, {"Caller", "+12349013030"}};
  EXPECT_EQ(twilio_signature("12345", url, fields), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  EXPECT_TRUE(twilio_signature_ok("12345", url, fields, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
  // The same fields as a form body, decoded as callbackd decodes them.
  auto decoded = decode_form("To=%2B18005551212&CallSid=CA1234567890ABCDE&Digits=1234&From=%2B12349013030"
                             "&Caller=%2B12349013030");
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(twilio_signature_ok("12345", url, *decoded, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));

  auto changed = fields;
  changed[2].second = "9999";
  EXPECT_FALSE(twilio_signature_ok("12345", url, changed, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
  EXPECT_FALSE(twilio_signature_ok("12345", "https://mycompany.com/myapp.php", fields, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
  EXPECT_FALSE(twilio_signature_ok("54321", url, fields, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
  EXPECT_FALSE(twilio_signature_ok("12345", url, fields, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"));
  EXPECT_FALSE(twilio_signature_ok("12345", url, fields, ""));
  EXPECT_FALSE(twilio_signature_ok("", url, fields, twilio_signature("", url, fields))) << "no token, no trust";
}

TEST(GatewaySignature, IsCallbackdsOwnWebhookSignatureWithAFreshTimestamp) {
  const Timestamp now{std::chrono::seconds{1'764'500'000}};
  const std::string body = R"({"from":"+8613800138000","text":"13900139000","id":"m1"})";
  HttpRequest request{.method = "POST", .path = "/hooks/sms", .body = body};
  request.headers = {{"callback-signature", webhook_signature("topsecret", 1'764'500'000, body)}};
  EXPECT_TRUE(check_gateway_signature("topsecret", request, now, std::chrono::seconds{300}));
  EXPECT_EQ(webhook_signature("k", 1, "b"), "t=1,v1=" + hex_encode(hmac(Digest::sha256, "k", "1.b")));

  const auto refused = [&](HttpRequest r, std::string_view code) {
    auto checked = check_gateway_signature("topsecret", r, now, std::chrono::seconds{300});
    ASSERT_FALSE(checked) << code;
    EXPECT_EQ(checked.error().code, code) << checked.error().message;
  };
  auto other_body = request;
  other_body.body += " ";
  refused(other_body, "invalid_signature");
  auto other_secret = request;
  other_secret.headers[0].second = webhook_signature("guess", 1'764'500'000, body);
  refused(other_secret, "invalid_signature");
  auto replayed = request;  // an old request, signed then
  replayed.headers[0].second = webhook_signature("topsecret", 1'764'499'000, body);
  refused(replayed, "stale_signature");
  auto unsigned_request = request;
  unsigned_request.headers.clear();
  refused(unsigned_request, "invalid_signature");
  auto garbled = request;
  garbled.headers[0].second = "t=soon,v1=00";
  refused(garbled, "invalid_signature");
}

TEST(OutcomeText, SaysHowTheCallEndedInWordsAndWhatItCost) {
  EXPECT_EQ(outcome_text("completed", "+8613900139000", std::chrono::seconds{125}, "0.30"),
            "Your call with +8613900139000 ended after 2 min 5 s. Charged: 0.30.");
  EXPECT_EQ(outcome_text("time_up", "+1", std::chrono::seconds{300}, ""),
            "Your call with +1 ended after 5 min 0 s (the time limit).");
  EXPECT_EQ(outcome_text("partner_busy", "+1", {}, ""), "+1 was busy. Try again later.");
  EXPECT_EQ(outcome_text("caller_unreachable", "+1", {}, ""), "We called you but could not reach you.");
  EXPECT_EQ(outcome_text("refused", "+1", {}, ""), "Your call to +1 could not be made.");
}

TEST(XmlEscape, LeavesNoMarkupAndNoControlCharacter) {
  EXPECT_EQ(xml_escape("<b>&\"'</b>\x01ok"), "&lt;b&gt;&amp;&quot;&apos;&lt;/b&gt;?ok");
}

using test::RecordingSink;

class SmsPolicyTest : public ::testing::Test {
 protected:
  test::TestContext ctx;
  test::TempDir dir;
  std::unique_ptr<store_sqlite::SqliteStore> store = store_sqlite::SqliteStore::open({.path = dir / "callback.db"}).value();
  NumberingPlan plan{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};
  RecordingSink sink;
  std::unique_ptr<SmsTrigger> trigger;

  void SetUp() override {
    const auto cny = Currency::of("CNY").value();
    Account alice{.id = "alice", .currency = cny, .balance = Money::parse("5.00", cny).value()};
    alice.caller_numbers.push_back(PhoneNumber::parse("13800138000", plan).value());
    alice.secret_hash = hash_secret("s3cret").value();
    ASSERT_TRUE(store->accounts().create(alice));
    ASSERT_TRUE(store->accounts().create({.id = "bob", .currency = cny, .status = AccountStatus::disabled,
                                          .caller_numbers = {PhoneNumber::parse("13700137000", plan).value()}}));
    trigger = std::make_unique<SmsTrigger>(ctx.context, *store, plan, nullptr,
                                           SmsOptions{.per_sender_per_hour = 4, .bad_passwords_per_hour = 2});
    trigger->start(sink);
  }

  SmsTrigger::Answer send(std::string from, std::string text, std::string id) {
    std::optional<SmsTrigger::Answer> got;
    trigger->receive({.from = std::move(from), .to = "10690000", .text = std::move(text), .id = std::move(id)},
                     [&](SmsTrigger::Answer answer) { got = std::move(answer); });
    EXPECT_TRUE(got) << "answered at once (the sink answers at once)";
    return got.value_or(SmsTrigger::Answer{});
  }
  std::int64_t counted(std::string_view outcome) {
    return ctx.metrics
        .counter("callback_trigger_requests_total", "Requests that triggers received, by trigger and outcome",
                 "trigger=\"sms\",outcome=\"" + std::string(outcome) + "\"")
        .value();
  }
};

using Kind = SmsTrigger::Answer::Kind;

TEST_F(SmsPolicyTest, ARegisteredSenderIsCalledBackAndItsAccountPays) {
  auto answer = send("+8613800138000", "13900139000", "SM1");
  ASSERT_EQ(answer.kind, Kind::accepted) << answer.reason;
  EXPECT_EQ(answer.callback_id, "cb-test-1");
  EXPECT_NE(answer.reply.find("+8613800138000"), std::string::npos) << answer.reply;
  ASSERT_EQ(sink.requests.size(), 1u);
  const auto& request = sink.requests[0];
  EXPECT_EQ(request.caller.digits(), "8613800138000") << "A is the sender";
  EXPECT_EQ(request.callee->digits(), "8613900139000");
  EXPECT_EQ(std::get<AccountId>(request.payer).value, "alice");
  EXPECT_EQ(request.origin, Origin::sms);
  EXPECT_EQ(request.idempotency_key, "sms:SM1") << "a retry after a restart is the same callback";
  EXPECT_EQ(request.secret, "");

  // "A B" from the registered number: A is the one given.
  ASSERT_EQ(send("013800138000", "010-5555-6666, 13900139000", "SM2").kind, Kind::accepted);
  EXPECT_EQ(sink.requests.at(1).caller.digits(), "861055556666");
  EXPECT_EQ(counted("accepted"), 2);
}

TEST_F(SmsPolicyTest, AccountAndPasswordWorkFromAnyNumberAndAWrongOneIsIgnoredThenBlocked) {
  auto answer = send("+8615000150000", "alice s3cret 13800138000 13900139000", "SM1");
  ASSERT_EQ(answer.kind, Kind::accepted) << answer.reason;
  EXPECT_EQ(sink.requests.at(0).secret, "s3cret") << "billing checks it again";

  // A wrong password: no call, no reply (the sender is nobody we know).
  for (const char* id : {"SM2", "SM3"}) {
    auto wrong = send("+8615100151000", std::string("alice guess 13800138000 13900139000"), id);
    EXPECT_EQ(wrong.kind, Kind::ignored);
    EXPECT_EQ(wrong.reply, "");
    EXPECT_EQ(wrong.reason, "wrong account or password");
  }
  EXPECT_EQ(send("+8615100151000", "nobody guess 13800138000 13900139000", "SM4").reason, "too many wrong passwords")
      << "two wrong ones an hour, then the sender is not even checked";
  // Even the right password, for the rest of the hour.
  EXPECT_EQ(send("+8615100151000", "alice s3cret 13800138000 13900139000", "SM5").kind, Kind::ignored);
  ctx.clock.advance(std::chrono::hours(1));
  EXPECT_EQ(send("+8615100151000", "alice s3cret 13800138000 13900139000", "SM6").kind, Kind::accepted);
  EXPECT_EQ(sink.requests.size(), 2u);
}

TEST_F(SmsPolicyTest, NothingIsCalledOrRepliedForWhatIsNotPlainlyACustomersRequest) {
  ASSERT_EQ(send("+8613800138000", "13900139000", "SM1").kind, Kind::accepted);
  const std::pair<SmsTrigger::Answer, std::string> cases[] = {
      {send("+8613800138000", "13900139000", "SM1"), "repeated message SM1"},
      {send("+8615200152000", "13900139000", "SM2"), "unknown sender"},
      {send("not a number", "13900139000", "SM3"), "the sender is not a phone number"},
      {send("+8613800138000", std::string(1601, '1'), "SM4"), "a message of 1601 bytes"},
  };
  for (const auto& [answer, reason] : cases) {
    EXPECT_EQ(answer.kind, Kind::ignored) << reason;
    EXPECT_EQ(answer.reply, "") << reason;
    EXPECT_EQ(answer.reason, reason);
  }
  EXPECT_EQ(sink.requests.size(), 1u);
  EXPECT_EQ(counted("ignored"), 4);
}

TEST_F(SmsPolicyTest, AKnownSenderIsToldWhyItsRequestWasRefused) {
  const std::tuple<std::string, std::string, std::string> cases[] = {
      {"+8613800138000", "1 2 3", "invalid_sms"},
      {"+8613800138000", "110", "denied.emergency_number"},
      {"+8613800138000", "13800138000", "invalid_request"},  // A = B
      {"+8613700137000", "13900139000", "denied.disabled"},
  };
  int n = 0;
  for (const auto& [from, text, code] : cases) {
    auto answer = send(from, text, "SM" + std::to_string(++n));
    EXPECT_EQ(answer.kind, Kind::refused) << text;
    EXPECT_EQ(answer.reason.substr(0, code.size()), code) << text << ": " << answer.reason;
    EXPECT_FALSE(answer.reply.empty()) << text;
  }
  EXPECT_TRUE(sink.requests.empty());
  // What the service refuses (billing's no), told the same way.
  sink.refuse = Error{"denied.insufficient_balance", "the balance is too low", "account"};
  auto answer = send("+8613800138000", "13900139000", "SM9");
  EXPECT_EQ(answer.kind, Kind::refused);
  EXPECT_EQ(answer.reason, "denied.insufficient_balance");
  EXPECT_NE(answer.reply.find("the balance is too low"), std::string::npos);
}

TEST_F(SmsPolicyTest, ASenderOverItsLimitIsIgnoredUntilTheHourPasses) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(send("+8613800138000", "13900139000", "SM" + std::to_string(i)).kind, Kind::accepted);
  }
  auto over = send("+8613800138000", "13900139000", "SM9");
  EXPECT_EQ(over.kind, Kind::ignored);
  EXPECT_EQ(over.reason, "over the sender's limit");
  ctx.clock.advance(std::chrono::hours(1));
  EXPECT_EQ(send("+8613800138000", "13900139000", "SM10").kind, Kind::accepted);
}

TEST_F(SmsPolicyTest, AStoppedTriggerAsksTheGatewayToComeBackLaterAndTakesTheRetry) {
  trigger->stop();
  EXPECT_EQ(send("+8613800138000", "13900139000", "SM1").kind, Kind::unavailable);
  EXPECT_TRUE(sink.requests.empty());
  trigger->start(sink);
  EXPECT_EQ(send("+8613800138000", "13900139000", "SM1").kind, Kind::accepted) << "the retry is no repeat";
  EXPECT_EQ(sink.requests.size(), 1u);
}

}  // namespace
}  // namespace callback::trigger_sms
