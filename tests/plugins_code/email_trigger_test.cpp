// callback.trigger.email: headers (GMime: RFC 2047 in UTF-8 and GB2312), subjects (full-
// width forms), the IMAP responses, and the poller against a real dovecot with a sink that
// records what reached the service.
#include "dovecot.hpp"
#include "email_trigger.hpp"
#include "imap.hpp"
#include "mail.hpp"
#include "recording_sink.hpp"
#include "smtp.hpp"
#include "smtp_server.hpp"
#include "sqlite_store.hpp"
#include "temp_dir.hpp"
#include "test_context.hpp"

#include <callback_internal/callback_service.hpp>

#include <gtest/gtest.h>

#include <set>
#include <sstream>

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

// Base64 (RFC 4648) back to bytes; line breaks skipped.
std::string from_base64(std::string_view text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (const char c : text) {
    const auto at = alphabet.find(c);
    if (at == std::string::npos) continue;  // '=', CR, LF
    bits = (bits << 6) | static_cast<unsigned>(at);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

// The body of a stored mail (after the blank line), decoded from base64.
std::string body_of(const std::string& mail) {
  auto blank = mail.find("\r\n\r\n");
  const std::size_t skip = blank == std::string::npos ? 2 : 4;
  if (blank == std::string::npos) blank = mail.find("\n\n");
  return blank == std::string::npos ? std::string() : from_base64(mail.substr(blank + skip));
}

// The reply's header is ours alone: a subject or Message-ID that tries to end its line
// adds no header, a UTF-8 subject is RFC 2047 (read back as sent), the body is base64.
TEST(ReplyMail, EveryHeaderIsOursAndTheTextSurvivesAnyCharacters) {
  const Timestamp at = parse_timestamp("2026-12-02T04:10:00Z").value();
  const std::string sent = format_mail({.to = "li.lei@example.com",
                                        .subject = "您的回拨\r\nBcc: victim@example.org",
                                        .body = "第一行\n" + std::string(200, 'x') + "\n",
                                        .in_reply_to = "m1@example.com"},
                                       "callback@example.com", at, "0123abcd@example.com");
  EXPECT_EQ(sent.find("\r\nBcc:"), std::string::npos) << sent;
  EXPECT_NE(sent.find("Date: Wed, 02 Dec 2026 04:10:00 +0000\r\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("\r\nIn-Reply-To: <m1@example.com>\r\nReferences: <m1@example.com>\r\n"), std::string::npos);
  EXPECT_NE(sent.find("\r\nAuto-Submitted: auto-replied\r\n"), std::string::npos);
  auto header = parse_mail_header(sent.substr(0, sent.find("\r\n\r\n") + 2));
  ASSERT_TRUE(header) << header.error().describe();
  EXPECT_EQ(header->from, "callback@example.com");
  EXPECT_EQ(header->subject, "您的回拨  Bcc: victim@example.org") << "on one line, as text";
  EXPECT_EQ(header->message_id, "0123abcd@example.com");
  EXPECT_EQ(body_of(sent), "第一行\n" + std::string(200, 'x') + "\n");
  std::istringstream body(sent.substr(sent.find("\r\n\r\n") + 4));
  for (std::string line; std::getline(body, line);) EXPECT_LE(line.size(), 77u) << "base64 lines of 76, then CR";

  // A request's Message-ID is copied only when it is a plain id.
  for (const char* hostile : {"a@b>\r\nBcc: victim@example.org", "no-at-sign", "two@at@signs", "sp ace@x", ""}) {
    const std::string reply = format_mail({.to = "li.lei@example.com", .subject = "s", .body = "b", .in_reply_to = hostile},
                                          "callback@example.com", at, "x@example.com");
    EXPECT_EQ(reply.find("In-Reply-To"), std::string::npos) << hostile;
    EXPECT_EQ(reply.find("Bcc:"), std::string::npos) << hostile;
  }
  EXPECT_TRUE(plain_message_id("CAF=x+y.z@mail.gmail.com"));
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
  std::unique_ptr<EmailTrigger> trigger(SmtpOptions smtp = {}, int replies_per_hour = 10) {
    EmailOptions options{.imap = {.url = dovecot.url(), .username = test::Dovecot::user, .password = test::Dovecot::password},
                         .poll_interval = std::chrono::milliseconds{0},  // polled by the test
                         .access_numbers = {"861055551234"},
                         .smtp = std::move(smtp),
                         .replies_per_hour = replies_per_hour};
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

// The reply mail, through a real SMTP server: a customer hears why a mail was refused, or
// how the call went once it ended, in a reply to that mail; a stranger hears nothing; and
// one address gets at most replies_per_hour. The Outbox sends in order, one at a time, so
// a reply that arrives after another proves nothing was sent in between.
TEST_F(EmailPollTest, ACustomerGetsAReplyWithTheOutcomeAStrangerNone) {
  test::SmtpServer smtp(dir / "smtp");
  const auto cny = Currency::of("CNY").value();
  Account han{.id = "han", .currency = cny, .caller_numbers = {PhoneNumber::parse("13700137000", plan).value()}};
  han.emails = {"han@example.com"};
  ASSERT_TRUE(store->accounts().create(han));
  auto poller = trigger({.url = smtp.url(), .from = "callback@example.com"}, /*replies_per_hour=*/3);
  poller->start(sink);

  dovecot.deliver(mail("stranger@example.com", "hello", "s1@example.com"));
  dovecot.deliver(mail("li.lei@example.com", "hello", "r1@example.com"));
  dovecot.deliver(mail("li.lei@example.com", "5551234#13900139000", "ok@example.com"));
  dovecot.deliver(mail("li.lei@example.com", "9999999#13900139000", "r2@example.com"));
  ASSERT_EQ(poller->poll_once().value(), 4u);
  ASSERT_EQ(sink.requests.size(), 1u);
  sink.end(0, "partner_busy", Money::parse("0.10", cny).value());
  ASSERT_TRUE(smtp.wait_for(3));
  // Over li's share: no reply; han's comes after it.
  dovecot.deliver(mail("li.lei@example.com", "hello again", "r3@example.com"));
  dovecot.deliver(mail("han@example.com", "hi", "h1@example.com"));
  ASSERT_EQ(poller->poll_once().value(), 2u);
  // Refused by the service (an engine without the IVR, say): the reply says why.
  sink.refuse = Error{"unsupported", "this engine cannot ask the caller for the number to call", "callee"};
  dovecot.deliver(mail("han@example.com", "5551234", "h2@example.com"));
  ASSERT_EQ(poller->poll_once().value(), 1u);
  ASSERT_TRUE(smtp.wait_for(5));
  poller.reset();  // the Outbox is empty: nothing more comes

  const auto replies = smtp.mails();
  ASSERT_EQ(replies.size(), 5u);
  struct Want {
    std::string to, in_reply_to, subject, says;
  };
  const Want want[] = {
      {"li.lei@example.com", "r1@example.com", "Your callback request was not taken", "no access number"},
      {"li.lei@example.com", "r2@example.com", "Your callback request was not taken", "no access number ends in 9999999"},
      {"li.lei@example.com", "ok@example.com", "Your callback to +8613900139000",
       "+8613900139000 was busy. Try again later. Charged: 0.10."},
      {"han@example.com", "h1@example.com", "Your callback request was not taken", "no access number"},
      {"han@example.com", "h2@example.com", "Your callback request was not taken",
       "this engine cannot ask the caller for the number to call"},
  };
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const std::string& got = replies[i];
    EXPECT_NE(got.find("X-RcptTo: " + want[i].to), std::string::npos) << got;
    EXPECT_NE(got.find("X-MailFrom: callback@example.com"), std::string::npos) << got;
    EXPECT_NE(got.find("In-Reply-To: <" + want[i].in_reply_to + ">"), std::string::npos) << got;
    auto header = parse_mail_header(got);
    ASSERT_TRUE(header) << got;
    EXPECT_EQ(header->subject, want[i].subject);
    EXPECT_NE(body_of(got).find(want[i].says), std::string::npos) << body_of(got);
  }
  EXPECT_NE(ctx.log_text.str().find("no reply to li.lei@example.com: 3 this hour already"), std::string::npos);
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
