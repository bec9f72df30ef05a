// Inbound calls and digits through the AMI engine against the Asterisk fake on loopback
// (Async AGI, as the ami-inbound-* recordings show it): the same behaviour as the ARI
// engine's inbound tests (ari_flow_test.cpp): routed by the dialled number (a route naming
// it beats one taking any), answered, digits collected after a prompt up to a terminator,
// at most N, a first-digit timeout, digits typed ahead kept for the next collection;
// rejected busy without answering (the caller gets 17 and is never answered), unrouted
// calls turned away with congestion, operations on a gone channel, an unsubscribed route;
// prompts by language and "time left"; bad AGI replies and events for unknown channels.
#include "access_trigger.hpp"
#include "ami_engine.hpp"
#include "fake_asterisk.hpp"
#include "flow_check.hpp"
#include "node_journal.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

using namespace callback;
using namespace std::chrono_literals;

namespace {

// FlowBase: the context on a real clock, run_until, `engine` (no service here).
struct AmiInboundTest : test::FlowBase<engine_ami::AmiEngine> {
  // 1 s of Asterisk time is 10 ms here: a prompt plays 10 ms, the caller's keys start 10 ms
  // after the answer.
  // 1235 keys 2003# once called back into the IVR (FakeAsteriskOptions::phone_dtmf).
  fake::FakeAsterisk asterisk{{.time_scale = 0.01,
                               .recordings = CALLBACK_ASTERISK_RECORDINGS,
                               .write_classes = "system,call,command,originate,agi",
                               .phone_dtmf = {{"1235", "2003#"}}}};
  std::vector<LegEvent> ends;  // inbound channels' `ended` events
  Subscription events;

  void SetUp() override { asterisk.start(); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "engine log:\n" << log_text.str().substr(0, 100'000);
    engine.reset();
  }

  void connect(std::string events_classes = "call,user,cdr,agi,dtmf") {
    engine_ami::AmiOptions o;
    o.servers = {"127.0.0.1:" + std::to_string(asterisk.port())};
    o.secret = "callbacksecret";
    o.events = std::move(events_classes);
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    engine = std::make_unique<engine_ami::AmiEngine>(context, std::move(o));
    events = engine->subscribe([this](const LegEvent& e) {
      if (e.type == LegEventType::ended && e.call_id.empty()) ends.push_back(e);
    });
    engine->start();
    ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s)) << log_text.str();
  }

  Status answer(const Channel& channel) {
    std::optional<Status> answered;
    engine->answer(channel, [&](Status s) { answered = s; });
    EXPECT_TRUE(run_until([&] { return answered.has_value(); }, 5s));
    return answered.value_or(Status(engine_error(engine_errc::timeout, "no answer")));
  }

  Result<Digits> collect(const Channel& channel, const DigitRequest& request) {
    std::optional<Result<Digits>> digits;
    engine->collect_digits(channel, request, [&](Result<Digits> d) { digits = std::move(d); });
    EXPECT_TRUE(run_until([&] { return digits.has_value(); }, 10s));
    return digits.value_or(Result<Digits>(engine_error(engine_errc::timeout, "no digits")));
  }

  // How the caller's side of an inbound call ended, once it has (the engine runs meanwhile).
  std::optional<fake::InboundEnd> caller_end(const std::string& channel) {
    run_until([&] { return asterisk.inbound_end(channel).has_value(); }, 5s);
    return asterisk.inbound_end(channel);
  }

  // The AGI commands the engine sent for `channel`, in order.
  std::vector<std::string> commands(const std::string& channel) {
    std::vector<std::string> out;
    for (const auto& action : asterisk.actions()) {
      if (action.find("Action: AGI\r\n") == std::string::npos ||
          action.find("\r\nChannel: " + channel + "\r\n") == std::string::npos) {
        continue;
      }
      const auto at = action.find("\r\nCommand: ") + 11;
      out.push_back(action.substr(at, action.find("\r\n", at) - at));
    }
    return out;
  }
};

TEST_F(AmiInboundTest, AnInboundCallGoesToTheRouteOfItsNumberIsAnsweredAndItsDigitsCollected) {
  connect();
  std::vector<InboundCall> other_calls, calls;
  auto any = engine->route_inbound({}, [&](const InboundCall& c) { other_calls.push_back(c); });
  auto mine = engine->route_inbound({.dialed = {"5000"}}, [&](const InboundCall& c) { calls.push_back(c); });
  // The first key 200 ms after the answer: the collection (and its prompt) starts first.
  const auto channel = asterisk.inbound({.from = "1234", .to = "5000", .dtmf = "5551234#", .dtmf_delay_ms = 20'000});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  EXPECT_TRUE(other_calls.empty()) << "the number's own route wins";
  EXPECT_EQ(calls[0].caller, "1234");
  EXPECT_EQ(calls[0].dialed, "5000") << "agi_extension, not agi_dnid (unknown on Local channels)";
  EXPECT_EQ(calls[0].context, "callback-access-ami");
  EXPECT_EQ(calls[0].name, channel);
  ASSERT_TRUE(answer(calls[0].channel));
  const auto digits = collect(calls[0].channel, {.max_digits = 15, .terminator = '#', .first_digit_timeout = 5s,
                                                 .inter_digit_timeout = 3s,
                                                 .prompt = Prompt::announcement(Announcement::enter_number, "en")});
  ASSERT_TRUE(digits) << digits.error().describe();
  EXPECT_EQ(digits->digits, "5551234");
  EXPECT_EQ(digits->stop, Digits::Stop::terminator);
  // A key stops the prompt: STREAM FILE with every key as an escape digit. The channel is
  // in English already: no SET VARIABLE.
  EXPECT_EQ(commands(channel), (std::vector<std::string>{"ANSWER", "STREAM FILE callback-enter-number \"0123456789*#\""}));
  std::optional<Status> hung_up;
  engine->hangup(calls[0].channel, HangupCause::normal(), [&](Status s) { hung_up = s; });
  ASSERT_TRUE(run_until([&] { return !ends.empty() && hung_up.has_value(); }, 5s));
  EXPECT_TRUE(*hung_up);
  EXPECT_EQ(ends[0].handle, calls[0].channel);
  EXPECT_EQ(ends[0].cause, HangupCause::normal());
  EXPECT_FALSE(ends[0].far_end_hung_up);
  const auto end = caller_end(channel);
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->answered);
  EXPECT_EQ(end->cause, 16);
}

TEST_F(AmiInboundTest, DigitCollectionStopsAtMaxDigitsOrWhenTheCallerIsSilent) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({.dialed = {"5000", "5001"}}, [&](const InboundCall& c) { calls.push_back(c); });
  asterisk.inbound({.from = "1234", .to = "5000", .dtmf = "123456"});
  asterisk.inbound({.from = "1235", .to = "5001", .dtmf = ""});
  test::expect_max_digits_and_first_digit_timeout(*this, calls);
  ASSERT_TRUE(run_until([&] { return ends.size() == 2; }, 5s));
}

TEST_F(AmiInboundTest, DigitsPressedAfterACollectionEndedAreKeptForTheNext) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  asterisk.inbound({.from = "1234", .to = "5000", .dtmf = "12#34#"});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  ASSERT_TRUE(answer(calls[0].channel));
  const DigitRequest request{.max_digits = 10, .terminator = '#', .first_digit_timeout = 2s,
                             .inter_digit_timeout = 2s};
  const auto first = collect(calls[0].channel, request);
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ(first->digits, "12");
  // The caller sends no key after its second '#': without type-ahead this one would time out.
  const auto second = collect(calls[0].channel, request);
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_EQ(second->digits, "34");
  EXPECT_EQ(second->stop, Digits::Stop::terminator);
  engine->hangup(calls[0].channel, HangupCause::normal(), nullptr);
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 5s));
}

TEST_F(AmiInboundTest, AMissedCallIsRejectedBusyWithoutAnswerAndAnUnroutedOneWithCongestion) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({.dialed = {"5000"}}, [&](const InboundCall& c) { calls.push_back(c); });
  const auto missed = asterisk.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  std::optional<Status> rejected;
  engine->reject(calls[0].channel, HangupCause{17}, 100ms, [&](Status s) { rejected = s; });
  ASSERT_TRUE(run_until([&] { return rejected.has_value() && !ends.empty(); }, 5s));
  EXPECT_TRUE(*rejected) << rejected->error().describe();
  EXPECT_EQ(ends[0].cause, HangupCause{17});
  EXPECT_EQ(ends[0].handle, calls[0].channel);
  EXPECT_TRUE(commands(missed).empty()) << "never answered: the caller pays nothing";
  const auto missed_end = caller_end(missed);
  ASSERT_TRUE(missed_end);
  EXPECT_FALSE(missed_end->answered);
  EXPECT_EQ(missed_end->cause, 17);
  bool hangup_with_cause = false;
  for (const auto& action : asterisk.actions()) {
    if (action.find("Action: Hangup\r\n") != std::string::npos && action.find("Channel: " + missed + "\r\n") != std::string::npos) {
      hangup_with_cause = action.find("\r\nCause: 17\r\n") != std::string::npos;
    }
  }
  EXPECT_TRUE(hangup_with_cause);
  // A number nobody routes is turned away, not left ringing.
  const auto unrouted = asterisk.inbound({.from = "1234", .to = "7777"});
  ASSERT_TRUE(run_until([&] { return ends.size() == 2; }, 5s));
  EXPECT_EQ(ends[1].cause, HangupCause{34});
  EXPECT_EQ(calls.size(), 1u);
  const auto unrouted_end = caller_end(unrouted);
  ASSERT_TRUE(unrouted_end);
  EXPECT_FALSE(unrouted_end->answered);
  EXPECT_EQ(unrouted_end->cause, 34);
}

TEST_F(AmiInboundTest, OperationsOnAGoneChannelAnswerChannelGoneAndAnUnsubscribedRouteGetsNothing) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  route.reset();
  const auto channel = asterisk.inbound({.from = "1234", .to = "5000"});
  const auto end = caller_end(channel);
  ASSERT_TRUE(end) << "rejected: nobody takes it";
  EXPECT_EQ(end->cause, 34);
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 5s));
  EXPECT_TRUE(calls.empty());
  // The channel that was just hung up, and one that never was.
  for (const Channel& gone : {Channel{"127.0.0.1:" + std::to_string(asterisk.port()), channel},
                              Channel{"127.0.0.1:" + std::to_string(asterisk.port()), "no-such-channel"}}) {
    std::vector<std::string> codes;
    auto code_of = [&](Status s) { codes.push_back(s ? "ok" : s.error().code); };
    engine->hangup(gone, HangupCause::normal(), code_of);
    engine->play(gone, Prompt::sound("callback-please-wait"), code_of);
    engine->answer(gone, code_of);
    engine->reject(gone, HangupCause{17}, 0ms, code_of);
    engine->collect_digits(gone, {}, [&](Result<Digits> d) { codes.push_back(d ? "ok" : d.error().code); });
    ASSERT_TRUE(run_until([&] { return codes.size() == 5; }, 5s));
    for (const auto& code : codes) EXPECT_EQ(code, engine_errc::channel_gone) << gone.id;
  }
}

TEST_F(AmiInboundTest, PromptsPlayInTheirLanguageAndTimeLeftIsSaidAsANumber) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  const auto channel = asterisk.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  ASSERT_TRUE(answer(calls[0].channel));
  std::vector<Status> played;
  engine->play(calls[0].channel, Prompt::announcement(Announcement::welcome, "zh"), [&](Status s) { played.push_back(s); });
  engine->play(calls[0].channel, Prompt::seconds_left(20s, "en"), [&](Status s) { played.push_back(s); });
  engine->play(calls[0].channel, Prompt::sound("no-such-prompt"), [&](Status s) { played.push_back(s); });
  engine->play(calls[0].channel, Prompt::sound("bad\r\nAction: Originate"), [&](Status s) { played.push_back(s); });
  ASSERT_TRUE(run_until([&] { return played.size() == 4; }, 5s));
  // The bad name is refused at once; the others in order.
  EXPECT_EQ(played[0].error().code, engine_errc::invalid);
  EXPECT_TRUE(played[1]) << played[1].error().describe();
  EXPECT_TRUE(played[2]) << played[2].error().describe();
  ASSERT_FALSE(played[3]) << "played";
  EXPECT_EQ(played[3].error().code, engine_errc::not_found) << "STREAM FILE of a missing sound says result=-1";
  EXPECT_EQ(commands(channel), (std::vector<std::string>{"ANSWER", "SET VARIABLE CHANNEL(language) zh",
                                                         "STREAM FILE callback-please-wait \"\"",
                                                         "SET VARIABLE CHANNEL(language) en",
                                                         "STREAM FILE vm-youhave \"\"", "SAY NUMBER 20 \"\"",
                                                         "STREAM FILE queue-seconds \"\"",
                                                         "STREAM FILE no-such-prompt \"\""}));
  // On Asterisk 23 a missing sound also ends the Async AGI, and the access dialplan hangs up
  // (ami-inbound-missing-prompt): the call ends without a hangup from us.
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 5s));
  EXPECT_EQ(ends[0].handle, calls[0].channel);
  EXPECT_EQ(ends[0].cause, HangupCause::normal());
  std::optional<Status> hung_up;
  engine->hangup(calls[0].channel, HangupCause::normal(), [&](Status s) { hung_up = s; });
  ASSERT_TRUE(run_until([&] { return hung_up.has_value(); }, 5s));
  EXPECT_EQ(hung_up->error().code, engine_errc::channel_gone);
}

TEST_F(AmiInboundTest, ABadAgiResultFailsItsOperationAndEventsForUnknownChannelsAreIgnored) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  const auto channel = asterisk.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  // Events of a channel nobody follows, and a second AsyncAGIStart of the same one.
  const std::string foreign = "Local/9@elsewhere-00000001;2";
  asterisk.send_raw_to_all("Event: AsyncAGIExec\r\nChannel: " + foreign + "\r\nResult: 200%20result%3D0%0A\r\n"
                           "CommandId: agi-1\r\n\r\nEvent: DTMFEnd\r\nChannel: " + foreign + "\r\nDigit: 1\r\n"
                           "Direction: Received\r\n\r\nEvent: Hangup\r\nChannel: " + foreign + "\r\nCause: 16\r\n\r\n"
                           "Event: AsyncAGIStart\r\nChannel: " + channel + "\r\nEnv: agi_extension%3A%205001%0A\r\n\r\n");
  ASSERT_TRUE(answer(calls[0].channel));
  EXPECT_EQ(calls.size(), 1u) << "a repeated AsyncAGIStart is not a second call";
  EXPECT_TRUE(ends.empty());
  // The answer was agi-1; the next command is agi-2: its result arrives garbled, before
  // the fake's own (which is then ignored).
  std::optional<Status> played;
  engine->play(calls[0].channel, Prompt::sound("callback-please-wait"), [&](Status s) { played = s; });
  asterisk.send_raw_to_all("Event: AsyncAGIExec\r\nChannel: " + channel + "\r\nResult: garbage\r\nCommandId: agi-2\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return played.has_value(); }, 5s));
  ASSERT_FALSE(*played);
  EXPECT_EQ(played->error().code, engine_errc::refused);
  // The channel still works.
  std::optional<Status> again;
  engine->play(calls[0].channel, Prompt::sound("callback-please-wait"), [&](Status s) { again = s; });
  ASSERT_TRUE(run_until([&] { return again.has_value(); }, 5s));
  EXPECT_TRUE(*again) << again->error().describe();
  engine->hangup(calls[0].channel, HangupCause::normal(), nullptr);
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 5s));
  EXPECT_EQ(ends.size(), 1u);
}

TEST_F(AmiInboundTest, ACallerWhoHangsUpEndsTheCollectionAsChannelGoneAndTheCallAsTheirs) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  asterisk.inbound({.from = "1234", .to = "5000", .dtmf = "12", .hangup_after_ms = 500});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  ASSERT_TRUE(answer(calls[0].channel));
  const auto digits = collect(calls[0].channel, {.max_digits = 10, .terminator = '#', .first_digit_timeout = 5s,
                                                 .inter_digit_timeout = 5s});
  ASSERT_FALSE(digits);
  EXPECT_EQ(digits.error().code, engine_errc::channel_gone);
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 5s));
  EXPECT_EQ(ends[0].cause, HangupCause::normal());
  EXPECT_TRUE(ends[0].far_end_hung_up);
  EXPECT_FALSE(ends[0].unobserved);
}

TEST_F(AmiInboundTest, ALostConnectionEndsInboundCallsUnobservedAndStopHangsThemUp) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  asterisk.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return calls.size() == 1; }, 5s));
  std::optional<Result<Digits>> digits;
  engine->collect_digits(calls[0].channel, {.first_digit_timeout = 60s}, [&](Result<Digits> d) { digits = std::move(d); });
  asterisk.close_all_connections();
  ASSERT_TRUE(run_until([&] { return !ends.empty() && digits.has_value(); }, 5s));
  EXPECT_TRUE(ends[0].unobserved);
  EXPECT_EQ(ends[0].cause, HangupCause::engine_lost());
  ASSERT_FALSE(*digits);
  EXPECT_EQ(digits->error().code, engine_errc::unavailable);
  // Back again: a new call, then the engine stops. It hangs the call up and ends it.
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  const auto channel = asterisk.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return calls.size() == 2; }, 5s));
  engine->stop();
  ASSERT_TRUE(run_until([&] { return ends.size() == 2; }, 5s));
  EXPECT_EQ(ends[1].handle, calls[1].channel);
  EXPECT_EQ(ends[1].cause, HangupCause::engine_lost());
  EXPECT_FALSE(ends[1].unobserved);
  const auto end = caller_end(channel);
  ASSERT_TRUE(end) << "the stop hung it up on Asterisk";
  EXPECT_FALSE(end->answered);
}

TEST_F(AmiInboundTest, WithoutTheAgiEventClassTheEngineOffersNoInboundCalls) {
  connect("call,user,cdr");
  EXPECT_FALSE(engine->capabilities().inbound_calls);
  EXPECT_FALSE(engine->capabilities().collect_digits);
  EXPECT_FALSE(engine->capabilities().dialplan_ivr);
  EXPECT_TRUE(engine->capabilities().dialplan_flow);
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  EXPECT_FALSE(route.active());
  std::optional<Result<Digits>> digits;
  engine->collect_digits({"x", "y"}, {}, [&](Result<Digits> d) { digits = std::move(d); });
  ASSERT_TRUE(run_until([&] { return digits.has_value(); }, 5s));
  ASSERT_FALSE(*digits);
  EXPECT_EQ(digits->error().code, engine_errc::unsupported);
}

TEST_F(AmiInboundTest, WithAgiAndDtmfTheEngineOffersInboundCallsDigitsAndItsIvrButNotTheStepFlow) {
  connect();
  const auto caps = engine->capabilities();
  EXPECT_TRUE(caps.inbound_calls);
  EXPECT_TRUE(caps.collect_digits);
  EXPECT_TRUE(caps.dialplan_flow);
  EXPECT_TRUE(caps.dialplan_ivr) << "A asked for B in [callback-ivr-ami]";
  EXPECT_FALSE(caps.step_flow);
}

}  // namespace

// By hand, against the real Asterisk 23.4.1 with the project's dialplan and the test callers
// (tests/README.md, "AMI inbound calls on the real Asterisk"):
//   CALLBACK_REAL_AMI=127.0.0.1:5038 build/bin/ami_inbound_tests --gtest_filter='RealAsterisk*'
// A test caller (tests/real_asterisk/testcallers.conf) rings the access number 5000 through
// [callback-access-ami]: one is answered, hears the "enter the number" prompt and keys
// 5551234#; another is rejected busy after 1 s of ringing and is never answered.
namespace real {

// Places a test caller with its own AMI connection, as record_ari.py does; returns the
// OriginateResponse's Response ("Success": the engine answered; "Failure": it was rejected)
// through `poll`, which the test calls while its engine runs.
class TestCaller {
 public:
  TestCaller(const std::string& address, const std::string& exten, const std::string& action_id)
      : socket_(io_), action_id_(action_id) {
    const auto colon = address.rfind(':');
    socket_.connect({boost::asio::ip::make_address(address.substr(0, colon)),
                     static_cast<unsigned short>(std::stoi(address.substr(colon + 1)))});
    send("Action: Login\r\nUsername: callback\r\nSecret: callbacksecret\r\nEvents: call\r\n\r\n");
    send("Action: Originate\r\nActionID: " + action_id + "\r\nChannel: Local/5000@callback-access-ami\r\n"
         "Context: testcallers\r\nExten: " + exten + "\r\nPriority: 1\r\nCallerID: \"Test caller\" <1234>\r\n"
         "Timeout: 20000\r\nAsync: true\r\n\r\n");
    socket_.non_blocking(true);
  }
  // The OriginateResponse's Response header, once it has come.
  std::optional<std::string> poll() {
    char chunk[4096];
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(boost::asio::buffer(chunk), ec);
    if (!ec) text_.append(chunk, n);
    const auto at = text_.find("Event: OriginateResponse\r\n");
    if (at == std::string::npos) return std::nullopt;
    const auto end = text_.find("\r\n\r\n", at);
    if (end == std::string::npos) return std::nullopt;
    const std::string message = text_.substr(at, end - at);
    if (message.find("ActionID: " + action_id_ + "\r\n") == std::string::npos) {
      text_.erase(0, end + 4);
      return poll();
    }
    const auto response = message.find("\r\nResponse: ") + 12;
    return message.substr(response, message.find("\r\n", response) - response);
  }

 private:
  void send(const std::string& text) { boost::asio::write(socket_, boost::asio::buffer(text)); }
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::string action_id_;
  std::string text_;
};

struct RealAsteriskAmiInbound : test::FlowBase<engine_ami::AmiEngine> {
  std::string address;
  std::vector<LegEvent> ends;
  Subscription events;

  void SetUp() override {
    const char* real = std::getenv("CALLBACK_REAL_AMI");
    if (real == nullptr) GTEST_SKIP() << "set CALLBACK_REAL_AMI=host:port to run against a real Asterisk";
    address = real;
    engine_ami::AmiOptions o;
    o.servers = {address};
    o.secret = "callbacksecret";
    o.events = "call,user,cdr,agi,dtmf";
    engine = std::make_unique<engine_ami::AmiEngine>(context, std::move(o));
    events = engine->subscribe([this](const LegEvent& e) {
      if (e.type == LegEventType::ended && e.call_id.empty()) ends.push_back(e);
    });
    engine->start();
    ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 10s)) << log_text.str();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "engine log:\n" << log_text.str().substr(0, 100'000);
    engine.reset();
  }
  std::optional<std::string> outcome(TestCaller& caller) {
    std::optional<std::string> got;
    run_until([&] { return (got = caller.poll()).has_value(); }, 30s);
    return got;
  }
};

TEST_F(RealAsteriskAmiInbound, ACallerIsAnsweredHearsThePromptAndItsDigitsAreCollected) {
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({.dialed = {"5000"}}, [&](const InboundCall& c) { calls.push_back(c); });
  TestCaller caller(address, "dtmf", "real-inbound-dtmf");
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 15s)) << log_text.str();
  EXPECT_EQ(calls[0].caller, "1234");
  EXPECT_EQ(calls[0].dialed, "5000");
  EXPECT_EQ(calls[0].context, "callback-access-ami");
  std::optional<Status> answered;
  engine->answer(calls[0].channel, [&](Status s) { answered = s; });
  ASSERT_TRUE(run_until([&] { return answered.has_value(); }, 10s));
  ASSERT_TRUE(*answered) << answered->error().describe();
  std::optional<Result<Digits>> digits;
  engine->collect_digits(calls[0].channel,
                         {.max_digits = 15, .terminator = '#', .first_digit_timeout = 10s, .inter_digit_timeout = 3s,
                          .prompt = Prompt::announcement(Announcement::enter_number, "en")},
                         [&](Result<Digits> d) { digits = std::move(d); });
  ASSERT_TRUE(run_until([&] { return digits.has_value(); }, 20s)) << log_text.str();
  ASSERT_TRUE(*digits) << digits->error().describe();
  EXPECT_EQ((*digits)->digits, "5551234");
  EXPECT_EQ((*digits)->stop, Digits::Stop::terminator);
  EXPECT_EQ(outcome(caller), "Success") << "the caller was answered";
  std::optional<Status> hung_up;
  engine->hangup(calls[0].channel, HangupCause::normal(), [&](Status s) { hung_up = s; });
  ASSERT_TRUE(run_until([&] { return !ends.empty() && hung_up.has_value(); }, 10s)) << log_text.str();
  EXPECT_TRUE(*hung_up);
  EXPECT_EQ(ends[0].handle, calls[0].channel);
  EXPECT_EQ(ends[0].cause, HangupCause::normal());
}

TEST_F(RealAsteriskAmiInbound, ARejectedCallerRingsThenGetsBusyAndIsNeverAnswered) {
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({.dialed = {"5000"}}, [&](const InboundCall& c) { calls.push_back(c); });
  TestCaller caller(address, "quiet", "real-inbound-busy");
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 15s)) << log_text.str();
  std::optional<Status> rejected;
  const auto asked = std::chrono::steady_clock::now();
  engine->reject(calls[0].channel, HangupCause{17}, 1000ms, [&](Status s) { rejected = s; });
  ASSERT_TRUE(run_until([&] { return rejected.has_value() && !ends.empty(); }, 15s)) << log_text.str();
  EXPECT_TRUE(*rejected);
  EXPECT_GE(std::chrono::steady_clock::now() - asked, 1000ms) << "it rang first";
  EXPECT_EQ(ends[0].cause, HangupCause{17});
  EXPECT_EQ(outcome(caller), "Failure") << "never answered: the caller pays nothing";
}

}  // namespace real

// The DID trigger of these tests: 5001 calls back to 2001 (answers, hangs up 5 s later),
// 5002 asks the called-back caller for B in the IVR; both on the free campaign.
static trigger_access::AccessOptions did_options() {
  trigger_access::AccessOptions o;
  o.trigger = "did";
  o.origin = Origin::did;
  o.ring = 100ms;
  o.callback_delay = 0ms;
  o.numbers = {{.number = "5001", .mode = trigger_access::Mode::fixed, .payer = CampaignId{"free"}, .destination = "2001"},
               {.number = "5002", .mode = trigger_access::Mode::ivr, .payer = CampaignId{"free"}}};
  return o;
}

// The access-number triggers on the AMI engine: the missed call is rejected unanswered (busy)
// and the caller called back with the dialplan's flow, B being the number's destination; in
// the IVR mode the called-back caller keys B in [callback-ivr-ami] (Async AGI), and the
// dialplan dials it.
TEST_F(AmiInboundTest, ADidWithAFixedDestinationOrTheIvrCallsTheCallerBackUnchargedForTheMissedCall) {
  connect();
  ServiceOptions options;
  options.a_ring_timeout = 8s;
  options.b_ring_timeout = 8s;
  service = std::make_unique<CallbackService>(context, *engine, &billing, *store, options);
  struct Finals final : CallObserver {
    std::vector<CallEvent> ends;
    void on_call_event(const CallEvent& e) override {
      if (is_final(e.call.state())) ends.push_back(e);
    }
  } finals;
  service->subscribe(finals);
  auto o = did_options();
  ASSERT_TRUE(trigger_access::validate(o, test::as_dialed));
  trigger_access::AccessTrigger trigger(context, *engine, *store, test::as_dialed, std::move(o));
  trigger.start(*service);
  const auto missed = asterisk.inbound({.from = "1234", .to = "5001"});
  const auto end = caller_end(missed);
  ASSERT_TRUE(end);
  EXPECT_FALSE(end->answered) << "the caller pays nothing";
  EXPECT_EQ(end->cause, 17);
  ASSERT_TRUE(run_until([&] { return finals.ends.size() == 1; }, 10s)) << log_text.str();
  const CallEvent& done = finals.ends[0];
  EXPECT_EQ(done.call.state(), CallState::completed) << done.outcome;
  EXPECT_EQ(done.call.request().caller.digits(), "1234");
  EXPECT_EQ(done.call.request().callee->digits(), "2001");
  EXPECT_EQ(done.call.request().origin, Origin::did);
  EXPECT_EQ(done.outcome, "partner_hangup");

  const auto ivr = asterisk.inbound({.from = "1235", .to = "5002"});
  const auto ivr_end = caller_end(ivr);
  ASSERT_TRUE(ivr_end);
  EXPECT_FALSE(ivr_end->answered) << "the caller pays nothing";
  EXPECT_EQ(ivr_end->cause, 17);
  ASSERT_TRUE(run_until([&] { return finals.ends.size() == 2; }, 10s)) << log_text.str();
  const CallEvent& asked = finals.ends[1];
  EXPECT_EQ(asked.call.state(), CallState::completed) << asked.outcome;
  EXPECT_EQ(asked.call.request().caller.digits(), "1235");
  ASSERT_TRUE(asked.call.request().callee.has_value());
  EXPECT_EQ(asked.call.request().callee->digits(), "2003") << "what the caller keyed";
  EXPECT_EQ(asked.outcome, "partner_hangup");
  bool into_ivr = false;
  for (const auto& action : asterisk.actions()) {
    into_ivr = into_ivr || (action.find("Channel: Local/1235@phones\r\n") != std::string::npos &&
                            action.find("Context: callback-ivr-ami\r\n") != std::string::npos);
  }
  EXPECT_TRUE(into_ivr);
  EXPECT_EQ(trigger.status().counts.count("refused"), 0u);
  EXPECT_TRUE(asterisk.wait_for_active_calls(0, 5s));
  EXPECT_EQ(service->in_flight(), 0u);
  trigger.stop();
  io.poll();
}

// Several nodes on one journal: a journal that tells two engines in this process which of
// them claimed an inbound call first (as PostgresStore::claim_inbound does), or fails to.
// Claims are asked on each engine's own thread for them: what they share is locked.
std::mutex claims_mutex;
struct ClaimingJournal final : test::NodeJournal {
  std::set<std::string>* claimed;
  bool reachable = true;
  int lose_next = 0;  // the next claims find another node's row first
  int asked = 0;
  std::shared_future<void> gate;  // when set, a claim waits for it (a slow database)
  explicit ClaimingJournal(std::set<std::string>& c) : claimed(&c) {}
  // How many claims it was asked for (read from the test's thread).
  int asked_so_far() const {
    std::lock_guard lock(claims_mutex);
    return asked;
  }
  Result<bool> claim_inbound(const std::string& server, const std::string& uniqueid) override {
    std::shared_future<void> waiting;
    {
      std::lock_guard lock(claims_mutex);
      waiting = gate;
    }
    if (waiting.valid()) waiting.wait();
    std::lock_guard lock(claims_mutex);
    ++asked;
    if (!reachable) return Error{"store_failed", "cannot connect to PostgreSQL: connection refused", {}};
    if (lose_next > 0) {
      --lose_next;
      return false;
    }
    return claimed->insert(server + '\n' + uniqueid).second;
  }
};

TEST_F(AmiInboundTest, OnSeveralNodesEachInboundCallIsTakenByTheNodeThatClaimsItAndIvrLegsStayTheirNodes) {
  std::set<std::string> claimed;
  ClaimingJournal first_journal(claimed);
  ClaimingJournal second_journal(claimed);
  auto options = [&](ClaimingJournal& journal) {
    engine_ami::AmiOptions o;
    o.servers = {"127.0.0.1:" + std::to_string(asterisk.port())};
    o.secret = "callbacksecret";
    o.events = "call,user,cdr,agi,dtmf";
    o.journal = &journal;
    return o;
  };
  engine = std::make_unique<engine_ami::AmiEngine>(context, options(first_journal));
  auto second = std::make_unique<engine_ami::AmiEngine>(context, options(second_journal));
  engine->start();
  second->start();
  ASSERT_TRUE(run_until(
      [&] { return engine->status().servers.at(0).connected && second->status().servers.at(0).connected; }, 5s));
  // Node 1 runs the DID trigger (a fixed destination and the IVR); node 2 takes any number
  // and turns its callers away busy, as a node with the same trigger would.
  ServiceOptions service_options;
  service_options.a_ring_timeout = 8s;
  service_options.b_ring_timeout = 8s;
  service = std::make_unique<CallbackService>(context, *engine, &billing, *store, service_options);
  service->subscribe(observer);
  auto o = did_options();
  ASSERT_TRUE(trigger_access::validate(o, test::as_dialed));
  trigger_access::AccessTrigger trigger(context, *engine, *store, test::as_dialed, std::move(o));
  trigger.start(*service);
  std::vector<InboundCall> on_second;
  auto route = second->route_inbound({}, [&](const InboundCall& call) {
    on_second.push_back(call);
    second->reject(call.channel, HangupCause{17}, 0ms, nullptr);
  });
  const auto finals = [&] {
    std::vector<const CallEvent*> out;
    for (const auto& e : observer.events) {
      if (is_final(e.call.state())) out.push_back(&e);
    }
    return out;
  };

  // Node 1 wins the call into the IVR. The AsyncAGIStart of the callback's A, waiting in
  // node 1's IVR, reaches node 2 too: no inbound call, nothing to claim, left alone.
  second_journal.lose_next = 1;
  const auto ivr = asterisk.inbound({.from = "1235", .to = "5002"});
  const auto ivr_end = caller_end(ivr);
  ASSERT_TRUE(ivr_end);
  EXPECT_EQ(ivr_end->cause, 17);
  ASSERT_TRUE(run_until([&] { return finals().size() == 1; }, 10s)) << log_text.str().substr(0, 100'000);
  EXPECT_EQ(finals()[0]->call.state(), CallState::completed) << finals()[0]->outcome;
  ASSERT_TRUE(finals()[0]->call.request().callee.has_value());
  EXPECT_EQ(finals()[0]->call.request().callee->digits(), "2003") << "what the caller keyed in node 1's IVR";
  EXPECT_EQ(finals()[0]->outcome, "partner_hangup");
  EXPECT_TRUE(on_second.empty());
  // (Each node's claims run on a thread of its own: the loser's may come after the call ended.)
  EXPECT_TRUE(run_until([&] { return second_journal.asked_so_far() >= 1; }, 5s));
  EXPECT_EQ(second_journal.asked_so_far(), 1) << "node 2 asked about the inbound call only";
  EXPECT_EQ(claimed.size(), 1u);

  // Calls at once: whichever node claims one takes it; the other never touches it.
  std::vector<std::string> inbound;
  for (int i = 0; i < 8; ++i) inbound.push_back(asterisk.inbound({.from = std::to_string(1240 + i), .to = "5001"}));
  for (const auto& channel : inbound) {
    const auto end = caller_end(channel);
    ASSERT_TRUE(end) << channel;
    EXPECT_FALSE(end->answered) << channel << ": the caller pays nothing";
    EXPECT_EQ(end->cause, 17) << channel << ": rejected busy by one node, not turned away by the other";
  }
  EXPECT_EQ(claimed.size(), 1 + inbound.size());
  const int asked = 1 + static_cast<int>(inbound.size());
  EXPECT_TRUE(run_until([&] { return first_journal.asked_so_far() >= asked && second_journal.asked_so_far() >= asked; },
                        5s));
  EXPECT_EQ(first_journal.asked_so_far(), asked);
  EXPECT_EQ(second_journal.asked_so_far(), asked);
  const auto by_first = 1 + inbound.size() - on_second.size();
  ASSERT_TRUE(run_until([&] { return finals().size() == by_first; }, 20s)) << log_text.str().substr(0, 100'000);
  for (const auto* e : finals()) EXPECT_EQ(e->call.state(), CallState::completed) << e->outcome;
  for (const auto& call : on_second) EXPECT_EQ(call.dialed, "5001");
  EXPECT_TRUE(asterisk.wait_for_active_calls(0, 5s));

  // A node that cannot ask the database leaves the call alone, for the other one.
  first_journal.reachable = false;
  const auto routed_before = on_second.size();
  const auto left = asterisk.inbound({.from = "1260", .to = "5001"});
  const auto left_end = caller_end(left);
  ASSERT_TRUE(left_end);
  EXPECT_EQ(left_end->cause, 17);
  EXPECT_EQ(on_second.size(), routed_before + 1);
  EXPECT_TRUE(run_until([&] { return metrics.counter("callback_inbound_unclaimed_total", "").value() >= 1; }, 5s));
  EXPECT_EQ(metrics.counter("callback_inbound_unclaimed_total", "").value(), 1);
  EXPECT_EQ(finals().size(), by_first);
  trigger.stop();
  route = {};
  second.reset();
  io.poll();
}

// The database answers a claim slowly: the engine goes on meanwhile (here it even loses
// its connection and logs in again), and the call, once this node's, is routed and then
// ends as the lost connection said. Nothing of it is left behind.
TEST_F(AmiInboundTest, AClaimTheDatabaseIsSlowToAnswerHoldsUpNothingAndACallGoneMeanwhileStillReachesItsRoute) {
  std::set<std::string> claimed;
  ClaimingJournal journal(claimed);
  std::promise<void> database_answers;
  journal.gate = database_answers.get_future().share();
  engine_ami::AmiOptions o;
  o.servers = {"127.0.0.1:" + std::to_string(asterisk.port())};
  o.secret = "callbacksecret";
  o.events = "call,user,cdr,agi,dtmf";
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  o.journal = &journal;
  engine = std::make_unique<engine_ami::AmiEngine>(context, std::move(o));
  events = engine->subscribe([this](const LegEvent& e) {
    if (e.type == LegEventType::ended && e.call_id.empty()) ends.push_back(e);
  });
  engine->start();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  const auto channel = asterisk.inbound({.from = "1234", .to = "5000"});
  // While the claim waits, the engine follows its connection: it goes, and comes back.
  ASSERT_TRUE(run_until([&] { return asterisk.connections() == 1; }, 5s));
  asterisk.close_all_connections();
  ASSERT_TRUE(run_until([&] { return !engine->status().servers.at(0).connected; }, 5s));
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  EXPECT_TRUE(calls.empty()) << "not routed before it is this node's";
  database_answers.set_value();
  ASSERT_TRUE(run_until([&] { return !calls.empty() && !ends.empty(); }, 5s));
  EXPECT_EQ(calls.at(0).channel.id, channel);
  EXPECT_EQ(ends.at(0).cause, HangupCause::engine_lost()) << "its connection went while it waited";
  // Ended: not a line the engine still holds (an answer would be sent for it).
  std::optional<Status> answered;
  engine->answer(calls[0].channel, [&](Status s) { answered = s; });
  ASSERT_TRUE(run_until([&] { return answered.has_value(); }, 5s));
  ASSERT_FALSE(*answered);
  EXPECT_EQ(answered->error().code, engine_errc::channel_gone);
  EXPECT_EQ(claimed.size(), 1u);
}
