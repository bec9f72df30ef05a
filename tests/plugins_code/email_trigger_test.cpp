// callback.trigger.email: headers (GMime: RFC 2047 in UTF-8 and GB2312), subjects (full-
// width forms), the IMAP responses, and the poller against a real dovecot with a sink that
// records what reached the service.
#include "dovecot.hpp"
#include "email_trigger.hpp"
#include "imap.hpp"
#include "mail.hpp"
#include "sqlite_store.hpp"
#include "recording_sink.hpp"
#include "temp_dir.hpp"
#include "test_context.hpp"

#include <callback/service.hpp>

#include <gtest/gtest.h>

#include <set>

namespace callback::trigger_email {
namespace {

TEST(MailHeader, ReadsTheSenderAndDecodesTheSubjectInAnyCharset) {
  auto utf8 = parse_mail_header(
      "From: =?UTF-8?B?5p2O6Zu3?= <Li.Lei@Example.com>\r\n"
      "Subject: =?UTF-8?B?77yV77yV77yV77yR77yS77yT77yU77yD77yR77yT77yZ77yQ77yQ77yR77yT77yZ77yQ77yQ77yQ?=\r\n"
      "Message-ID: <abc@example.com>\r\n");
  ASSERT_TRUE(utf8) << utf8.error().describe();
  EXPECT_EQ(utf8->from, "Li.Lei@Example.com");
  EXPECT_EQ(utf8->subject, "５５５１２３４＃１３９００１３９０００");
  EXPECT_EQ(utf8->message_id, "abc@example.com");
  // A Chinese mail client's reply, in GB2312: "回复：5551234#13900139000".
  auto gb = parse_mail_header("From: han@example.com\r\nSubject: =?GB2312?B?u9i4tKO6NTU1MTIzNCMxMzkwMDEzOTAwMA==?=\r\n");
  ASSERT_TRUE(gb) << gb.error().describe();
  EXPECT_EQ(gb->subject, "回复：5551234#13900139000");
  EXPECT_EQ(gb->message_id, "");
  auto nobody = parse_mail_header("Subject: 5551234\r\n");
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().code, "invalid_mail");
  auto garbage = parse_mail_header(std::string("\xff\xfe\x00\x01 From x", 12));
  EXPECT_FALSE(garbage);
}

TEST(Subject, TheAccessNumbersLastSevenDigitsAndOptionallyTheNumberToCall) {
  const std::pair<const char*, EmailCommand> good[] = {
      {"5551234#13900139000", {"5551234", "13900139000"}},
      {"５５５１２３４＃１３９００１３９０００", {"5551234", "13900139000"}},
      {"Re: Fwd: 5551234 # +86 139 0013 9000 ", {"5551234", "+86 139 0013 9000"}},
      {"回复：5551234#13900139000", {"5551234", "13900139000"}},
      {"  5551234  ", {"5551234", ""}},
      {"5551234\xE3\x80\x80＃\xE3\x80\x80" "13900139000", {"5551234", "13900139000"}},
  };
  for (const auto& [subject, want] : good) {
    auto got = parse_subject(subject);
    ASSERT_TRUE(got) << subject << ": " << got.error().message;
    EXPECT_EQ(got->access_suffix, want.access_suffix) << subject;
    EXPECT_EQ(got->callee, want.callee) << subject;
  }
  const std::pair<const char*, const char*> bad[] = {
      {"", "no access number"},          {"hello", "no access number"},
      {"555123#1", "has 6 digits"},      {"55512345#1", "has 8 digits"},
      {"5551234 13900139000", "comes #"}, {"5551234#", "nothing after #"},
  };
  for (const auto& [subject, says] : bad) {
    auto got = parse_subject(subject);
    ASSERT_FALSE(got) << subject;
    EXPECT_EQ(got.error().code, "invalid_subject");
    EXPECT_NE(got.error().message.find(says), std::string::npos) << subject << ": " << got.error().message;
  }
}

TEST(ImapResponses, Search) {
  EXPECT_EQ(parse_search("* FLAGS (\\Seen)\r\n* SEARCH 3 5 18\r\n"), (std::vector<std::uint32_t>{3, 5, 18}));
  EXPECT_TRUE(parse_search("* SEARCH\r\n").empty());
}

using test::RecordingSink;

std::string mail(const std::string& from, const std::string& subject, const std::string& id) {
  return "From: " + from + "\r\nTo: callback@example.com\r\nSubject: " + subject +
         (id.empty() ? "" : "\r\nMessage-ID: <" + id + ">") + "\r\nDate: Tue, 01 Dec 2026 22:00:00 +0000\r\n\r\nbody\r\n";
}

class EmailPollTest : public ::testing::Test {
 protected:
  test::TestContext ctx;
  test::TempDir dir;
  test::Dovecot dovecot{dir / "dovecot"};
  std::unique_ptr<store_sqlite::SqliteStore> store = store_sqlite::SqliteStore::open({.path = dir / "callback.db"}).value();
  NumberingPlan plan{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};
  RecordingSink sink;

  void SetUp() override {
    const auto cny = Currency::of("CNY").value();
    Account li{.id = "li", .currency = cny, .caller_numbers = {PhoneNumber::parse("13800138000", plan).value()}};
    li.emails = {"li.lei@example.com"};
    ASSERT_TRUE(store->accounts().create(li));
  }
  std::unique_ptr<EmailTrigger> trigger() {
    EmailOptions options{.imap = {.url = dovecot.url(), .username = test::Dovecot::user, .password = test::Dovecot::password},
                         .poll_interval = std::chrono::milliseconds{0},  // polled by the test
                         .access_numbers = {"861055551234"}};
    return std::make_unique<EmailTrigger>(ctx.context, *store, plan, options);
  }
  std::int64_t counted(const std::string& outcome) {
    return ctx.metrics
        .counter("callback_trigger_requests_total", "Requests that triggers received, by trigger and outcome",
                 "trigger=\"email\",outcome=\"" + outcome + "\"")
        .value();
  }
};

TEST_F(EmailPollTest, ARegisteredSenderIsCalledBackAndEveryMailIsFlaggedOnce) {
  dovecot.deliver(mail("=?UTF-8?B?5p2O6Zu3?= <Li.Lei@Example.com>", "5551234#13900139000", "m1@example.com"));
  dovecot.deliver(mail("stranger@example.com", "5551234#13900139000", "m2@example.com"));
  dovecot.deliver(mail("li.lei@example.com", "5551234#13900139000", "m1@example.com"));  // a copy of the first
  dovecot.deliver(mail("li.lei@example.com", "hello", "m3@example.com"));
  dovecot.deliver(mail("li.lei@example.com", "5551234", "m4@example.com"));          // no B: A is asked (the IVR)
  dovecot.deliver(mail("li.lei@example.com", "9999999#13900139000", "m5@example.com"));  // no such access number
  dovecot.deliver(mail("li.lei@example.com", "5551234#110", "m6@example.com"));      // emergency
  dovecot.deliver("From: li.lei@example.com\r\nSubject: " + std::string(20'000, '5') + "\r\n\r\nx\r\n");
  auto first = trigger();
  first->start(sink);
  auto polled = first->poll_once();
  ASSERT_TRUE(polled) << polled.error().describe();
  EXPECT_EQ(*polled, 8u) << "each mail once";

  ASSERT_EQ(sink.requests.size(), 2u);
  const auto& request = sink.requests[0];
  EXPECT_EQ(request.caller.digits(), "8613800138000") << "A: the account's registered number";
  EXPECT_EQ(request.callee->digits(), "8613900139000");
  EXPECT_EQ(std::get<AccountId>(request.payer).value, "li");
  EXPECT_EQ(request.origin, Origin::email);
  EXPECT_EQ(request.idempotency_key, "email:m1@example.com");
  // Without "#B" the account's number is called and asked for B once it answers.
  EXPECT_EQ(sink.requests[1].caller.digits(), "8613800138000");
  EXPECT_FALSE(sink.requests[1].callee.has_value());
  EXPECT_EQ(sink.requests[1].idempotency_key, "email:m4@example.com");
  EXPECT_EQ(counted("accepted"), 2);
  EXPECT_EQ(counted("refused"), 3);  // bad subject, unknown access number, emergency number
  EXPECT_EQ(counted("ignored"), 3);  // stranger, copy, oversized header
  const std::string log = ctx.log_text.str();
  EXPECT_NE(log.find("unknown sender stranger@example.com"), std::string::npos) << log;
  EXPECT_NE(log.find("repeated Message-ID m1@example.com"), std::string::npos) << log;
  EXPECT_NE(log.find("header is over 16384 bytes"), std::string::npos) << log;

  // A restart (a new trigger, its memory empty) finds every mail flagged: no call twice.
  auto second = trigger();
  second->start(sink);
  auto again = second->poll_once();
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(*again, 0u);
  EXPECT_EQ(sink.requests.size(), 2u);
  // New mail is still taken.
  dovecot.deliver(mail("li.lei@example.com", "５５５１２３４＃１３９００１３９０００", "m7@example.com"));
  EXPECT_EQ(second->poll_once().value(), 1u);
  EXPECT_EQ(sink.requests.size(), 3u);
  EXPECT_FALSE(second->status().last_message == std::nullopt);
  // One the service refuses (an engine without the IVR) counts as refused, not accepted.
  sink.refuse = Error{"unsupported", "this engine cannot ask the caller for the number to call", "callee"};
  dovecot.deliver(mail("li.lei@example.com", "5551234", "m8@example.com"));
  EXPECT_EQ(second->poll_once().value(), 1u);
  EXPECT_EQ(counted("accepted"), 3);
  EXPECT_EQ(counted("refused"), 4);
  EXPECT_NE(ctx.log_text.str().find("the service refused it: this engine cannot ask"), std::string::npos);
}

// More mails than a search window (200 UIDs) and a batch (500): a poll still takes each
// once (libcurl's limit on a command's answer is why they are split; imap.cpp).
TEST_F(EmailPollTest, AFullMailboxIsTakenInWindowsAndBatchesEachMailOnce) {
  constexpr int n = 650;
  for (int i = 0; i < n; ++i) {
    dovecot.deliver(mail("li.lei@example.com", "5551234#139" + std::to_string(10'000'000 + i), "bulk" + std::to_string(i)));
  }
  auto poller = trigger();
  poller->start(sink);
  auto polled = poller->poll_once();
  ASSERT_TRUE(polled) << polled.error().describe();
  EXPECT_EQ(*polled, static_cast<std::size_t>(n));
  ASSERT_EQ(sink.requests.size(), static_cast<std::size_t>(n));
  std::set<std::string> callees;
  for (const auto& r : sink.requests) callees.insert(r.callee->digits());
  EXPECT_EQ(callees.size(), static_cast<std::size_t>(n)) << "no mail twice, none left out";
  EXPECT_EQ(poller->poll_once().value(), 0u);
}

TEST_F(EmailPollTest, AMailboxThatRefusesTheLoginMakesThePollerUnhealthyAndSaysWhy) {
  EmailOptions options{.imap = {.url = dovecot.url(), .username = test::Dovecot::user, .password = "wrong"},
                       .poll_interval = std::chrono::hours(1),
                       .access_numbers = {"861055551234"}};
  EmailTrigger trigger(ctx.context, *store, plan, options);
  auto polled = trigger.poll_once();
  ASSERT_FALSE(polled);
  EXPECT_EQ(polled.error().code, "imap.unavailable");
  EXPECT_NE(polled.error().message.find(dovecot.url()), std::string::npos) << polled.error().message;

  // The poller polls at once, then every hour; its status says what went wrong, and a stop
  // does not wait the hour out.
  trigger.start(sink);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!trigger.status().last_poll && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // between two looks at its status
  }
  const auto status = trigger.status();
  ASSERT_TRUE(status.last_poll) << "the poller did not poll in 20 s";
  EXPECT_FALSE(status.healthy);
  EXPECT_NE(status.last_error.find("answered no"), std::string::npos) << status.last_error;
  const auto stopping = std::chrono::steady_clock::now();
  trigger.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(10));
}

}  // namespace
}  // namespace callback::trigger_email
