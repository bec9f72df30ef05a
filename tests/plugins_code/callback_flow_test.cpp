// The whole callback through the real AMI engine against the Asterisk fake on loopback:
// every outcome of the fixtures' tables, cancel at every stage, lost and garbled
// connections. Each test asserts the final state, the cause class, the announcement,
// the CDR rows and the billing calls.
#include "ami_engine.hpp"
#include "fake_asterisk.hpp"
#include "flow_check.hpp"
#include "recording_billing.hpp"
#include "sqlite_billing.hpp"
#include "sqlite_store.hpp"
#include "temp_dir.hpp"
#include "test_context.hpp"

#include <callback_internal/callback_service.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <random>

#include <sstream>

using namespace callback;
using namespace std::chrono_literals;

using callback::test::Expected;
using callback::test::FlowObserver;
using callback::test::check;

namespace {

// 1 s of Asterisk time is 10 ms here.
constexpr double time_scale = 0.01;
using test::as_dialed;

// Every flow runs with the fake interleaving each call's events as a busy Asterisk does
// (each channel's own order kept): a new order every run, the seed in the test's output.
std::uint64_t interleave_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s = std::random_device{}();
    if (const char* fixed = std::getenv("CALLBACK_INTERLEAVE_SEED")) s = std::strtoull(fixed, nullptr, 10);
    std::cout << "fake Asterisk interleaving seed: " << s << " (CALLBACK_INTERLEAVE_SEED repeats it)" << std::endl;
    return s;
  }();
  return seed;
}

struct FlowTest : test::FlowBase<engine_ami::AmiEngine> {
  // `phone_dtmf`: what phones key once they answer into the IVR (FakeAsteriskOptions).
  explicit FlowTest(std::map<std::string, std::string> phone_dtmf = {})
      : asterisk({.time_scale = time_scale,
                  .recordings = CALLBACK_ASTERISK_RECORDINGS,
                  .interleave_window_ms = 1500,
                  .seed = interleave_seed(),
                  .write_classes = "system,call,command,originate,agi",
                  .phone_dtmf = std::move(phone_dtmf)}) {}
  fake::FakeAsterisk asterisk;

  void SetUp() override { asterisk.start(); }

  engine_ami::AmiOptions engine_options() {
    engine_ami::AmiOptions o;
    o.servers = {"127.0.0.1:" + std::to_string(asterisk.port())};
    o.secret = "callbacksecret";
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    o.tracking.cdr_grace = 300ms;
    o.tracking.cdr_wait = 2s;
    o.tracking.channel_grace = 300ms;
    o.tracking.lost_call_grace = 2s;
    return o;
  }

  void connect(engine_ami::AmiOptions options, ServiceOptions service_options = {}) {
    engine = std::make_unique<engine_ami::AmiEngine>(context, std::move(options));
    service_options.a_ring_timeout = 8s;  // 80 ms here
    service_options.b_ring_timeout = 8s;
    service_options.stage_grace = 5s;     // real seconds: only when the engine goes quiet
    service_options.campaigns["free"] = CampaignLimits{.limit = 300s};
    service = std::make_unique<CallbackService>(context, *engine, &billing, *store, service_options);
    service->subscribe(observer);
    engine->start();
    ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s)) << log_text.str();
  }
  void connect() { connect(engine_options()); }

};

TEST_F(FlowTest, BothAnswerAndTheLimitEndsItWithTimeUp) {
  connect();
  billing.max_duration = 10s;
  const auto id = start("1001", "1002");
  check(*this, id, {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
                    .announcement = Announcement::time_up, .a_disposition = Disposition::answered,
                    .b_disposition = Disposition::answered, .settled = 10s});
  EXPECT_EQ(observer.states(id), (std::vector<CallState>{CallState::authorizing, CallState::dialing_a,
                                                         CallState::a_answered, CallState::dialing_b,
                                                         CallState::bridged, CallState::completed}));
  // What the engine asked of Asterisk: A with B's number as caller ID, the limit in ms.
  bool originate_seen = false;
  for (const auto& action : asterisk.actions()) {
    if (action.find("Action: Originate") == std::string::npos) continue;
    originate_seen = true;
    EXPECT_NE(action.find("Channel: Local/1001@phones\r\n"), std::string::npos) << action;
    EXPECT_NE(action.find("Exten: 1002\r\n"), std::string::npos);
    EXPECT_NE(action.find("CallerID: \"Callback\" <1002>\r\n"), std::string::npos);
    EXPECT_NE(action.find("Variable: CB_LIMIT=10000\r\n"), std::string::npos);
    EXPECT_NE(action.find("ChannelId: " + id + "-A1\r\n"), std::string::npos);
    EXPECT_NE(action.find("Async: true\r\n"), std::string::npos);
  }
  EXPECT_TRUE(originate_seen);
}

// Without the agi and dtmf event classes the AMI engine cannot ask A for the number (its
// IVR, [callback-ivr-ami], runs in Async AGI). A request without a callee is refused at once,
// with the field and the way out, and nothing is dialed or reserved.
TEST_F(FlowTest, ARequestWithoutACalleeIsRefusedAtOnceByAnEngineThatCannotAskForIt) {
  auto options = engine_options();
  options.events = "call,user,cdr";
  connect(options);
  EXPECT_FALSE(engine->capabilities().dialplan_ivr);
  CallbackRequest request{.caller = PhoneNumber::parse("1001", as_dialed).value(),
                          .callee = std::nullopt,
                          .payer = AccountId{"123"},
                          .origin = Origin::ani};
  std::optional<Result<std::string>> answer;
  service->submit(request, [&](Result<std::string> id) { answer = std::move(id); });
  ASSERT_TRUE(answer.has_value()) << "refused before anything is asked of anyone";
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error().code, "unsupported");
  EXPECT_EQ(answer->error().field, "callee");
  EXPECT_NE(answer->error().message.find("give the callee in the request"), std::string::npos) << answer->error().message;
  EXPECT_EQ(service->in_flight(), 0u);
  EXPECT_TRUE(billing.authorized.empty());
}

// The IVR on the AMI engine (dialplan_ivr): A is placed into [callback-ivr-ami] and waits
// in Async AGI; the engine asks for B there ("dial the number, then #"), the service reads
// and checks it, billing authorizes it, and the engine hands it to the dialplan (SET
// VARIABLE, ASYNCAGI BREAK), which dials B as for every callback (ami-outbound-ivr). The
// same cases as AriIvrTest. The fake's phones key 1.2 s (12 ms here) after A's AGI starts.
struct AmiIvrTest : FlowTest {
  AmiIvrTest()
      : FlowTest(phones()) {}
  static std::map<std::string, std::string> phones() {
    auto keys = test::ivr_phones();
    // partner_failures' Bs (but 0002, which is no number)
    keys.insert({{"1201", "3001#"}, {"1202", "4001#"}, {"1203", "5001#"}, {"1204", "5501#"}, {"1205", "6001#"},
                 {"1206", "5801#"}});
    return keys;
  }
  void connect_ivr() {
    auto options = engine_options();
    options.events = "call,user,cdr,agi,dtmf";
    ServiceOptions service_options;
    service_options.ivr_first_digit_timeout = 300ms;  // a silent caller is given up on soon
    service_options.ivr_inter_digit_timeout = 300ms;
    connect(options, service_options);
    ASSERT_TRUE(engine->capabilities().dialplan_ivr);
    ASSERT_FALSE(service->step_flow());
  }
  std::string start_ivr(std::string_view a) {
    CallbackRequest request{.caller = PhoneNumber::parse(a, as_dialed).value(),
                            .callee = std::nullopt,
                            .payer = AccountId{"123"},
                            .origin = Origin::ani};
    auto id = service->start(request);
    EXPECT_TRUE(id) << id.error().describe();
    return id ? *id : std::string();
  }
  // The AGI commands the engine sent, in order.
  std::vector<std::string> agi_commands() {
    std::vector<std::string> out;
    for (const auto& action : asterisk.actions()) {
      if (action.find("Action: AGI\r\n") == std::string::npos) continue;
      const auto at = action.find("\r\nCommand: ") + 11;
      out.push_back(action.substr(at, action.find("\r\n", at) - at));
    }
    return out;
  }
  std::size_t count(const std::vector<std::string>& commands, std::string_view prefix) {
    return static_cast<std::size_t>(std::count_if(commands.begin(), commands.end(),
                                                   [&](const std::string& c) { return c.starts_with(prefix); }));
  }
  void nothing_left() { EXPECT_TRUE(asterisk.wait_for_active_calls(0, 5s)); }
};

TEST_F(AmiIvrTest, TheCallerDialsTheNumberAfterAnsweringAndIsConnectedAndBilledForIt) {
  connect_ivr();
  billing.max_duration = 300s;
  const auto id = start_ivr("7002");  // keys 2002# as the real Asterisk's 7XXX phones do (ami-outbound-ivr)
  EXPECT_TRUE(billing.authorized.empty()) << "nothing is reserved before B is known";
  check(*this, id,
        {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
         .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
         .b_disposition = Disposition::answered, .settled = 5s});
  const CallEvent& end = finish(id);
  ASSERT_TRUE(end.call.request().callee.has_value());
  EXPECT_EQ(end.call.request().callee->digits(), "2002");
  EXPECT_EQ(end.outcome, "partner_hangup");
  ASSERT_EQ(billing.authorized.size(), 1u);
  EXPECT_EQ(billing.authorized[0].destination.digits(), "2002") << "B is authorized once A dialled it";
  const auto rows = cdrs(id);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].dst, "2002");
  // A went into [callback-ivr-ami] with no B; the dialplan got B and the limit from the engine.
  bool originate_seen = false;
  for (const auto& action : asterisk.actions()) {
    if (action.find("Action: Originate") == std::string::npos) continue;
    originate_seen = true;
    EXPECT_NE(action.find("Context: callback-ivr-ami\r\nExten: s\r\n"), std::string::npos) << action;
    EXPECT_EQ(action.find("CB_DIAL"), std::string::npos) << action;
  }
  EXPECT_TRUE(originate_seen);
  const auto commands = agi_commands();
  EXPECT_EQ(count(commands, "STREAM FILE callback-enter-number "), 1u);
  EXPECT_EQ(count(commands, "SET VARIABLE CB_B \"2002\""), 1u);
  EXPECT_EQ(count(commands, "SET VARIABLE CB_DIAL \"Local/2002@phones\""), 1u);
  ASSERT_FALSE(commands.empty());
  EXPECT_EQ(commands.back(), "ASYNCAGI BREAK");
  nothing_left();
}

TEST_F(AmiIvrTest, AStarIsNotANumberSoTheCallerIsAskedOnceMore) {
  connect_ivr();
  const auto id = start_ivr("1102");
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::completed);
  ASSERT_TRUE(end.call.request().callee.has_value());
  EXPECT_EQ(end.call.request().callee->digits(), "2003");
  EXPECT_NE(log_text.str().find("only digits make a number (attempt 1 of 2)"), std::string::npos) << log_text.str();
  EXPECT_EQ(count(agi_commands(), "STREAM FILE callback-enter-number "), 2u);
  nothing_left();
}

TEST_F(AmiIvrTest, NoUsableNumberAfterTwoTriesEndsWithCallFailedAndCostsNothing) {
  connect_ivr();
  for (const auto& c : test::ivr_give_ups) {
    SCOPED_TRACE(c.a);
    const auto before = agi_commands();
    const auto id = start_ivr(c.a);
    test::check_ivr_gave_up(*this, id, c);
    // Asked twice, then "call failed"; the dialplan never got a B.
    const auto after = agi_commands();
    const std::vector<std::string> sent(after.begin() + static_cast<std::ptrdiff_t>(before.size()), after.end());
    EXPECT_EQ(count(sent, "STREAM FILE callback-enter-number "), 2u);
    EXPECT_EQ(count(sent, "STREAM FILE callback-call-failed "), 1u);
    EXPECT_EQ(count(sent, "ASYNCAGI BREAK"), 0u);
    EXPECT_TRUE(asterisk.wait_for_active_calls(0, 5s)) << "A was hung up in the IVR";
  }
}

TEST_F(AmiIvrTest, ANumberBillingRefusesIsNotDialedAndTheCallerHearsCallFailed) {
  connect_ivr();
  billing.deny = DenialReason::no_rate;
  billing.field = "callee";
  const auto id = start_ivr("1106");
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::completed);
  EXPECT_EQ(end.outcome, "refused");
  ASSERT_TRUE(end.error.has_value());
  EXPECT_EQ(end.error->code, "denied.no_rate");
  EXPECT_EQ(end.announcement, Announcement::call_failed);
  ASSERT_EQ(billing.authorized.size(), 1u);
  EXPECT_EQ(billing.authorized[0].destination.digits(), "2004");
  EXPECT_EQ(cdrs(id).size(), 1u) << "B was never dialed";
  EXPECT_EQ(count(agi_commands(), "ASYNCAGI BREAK"), 0u);
  nothing_left();
}

TEST_F(AmiIvrTest, ACancelWhileTheCallerIsAskedEndsTheCall) {
  connect_ivr();
  const auto id = start_ivr("1103");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::a_answered); }, 5s));
  ASSERT_TRUE(service->cancel(id));
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_TRUE(billing.authorized.empty());
  const auto rows = cdrs(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].disposition, Disposition::answered);
  nothing_left();
}

// B's failures after the IVR: the same announcements, causes and records as when B came
// with the request.
TEST_F(AmiIvrTest, PartnerFailuresAfterTheIvrPlayTheAnnouncementForTheCauseAndBillNothing) {
  connect_ivr();
  int phone = 1201;
  for (const auto& c : test::partner_failures) {
    if (std::string_view(c.b) == "0002") continue;  // not a number: the IVR asks again (NoUsableNumber...)
    SCOPED_TRACE(c.b);
    billing.settled.clear();
    const auto id = start_ivr(std::to_string(phone++));
    check(*this, id,
          {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = c.outcome,
           .announcement = c.announcement, .a_disposition = Disposition::answered, .b_disposition = c.disposition});
    EXPECT_EQ(finish(id).call.request().callee->digits(), c.b);
  }
  nothing_left();
}

TEST_F(FlowTest, PartnerHangsUpAndIsBilledForFiveSeconds) {
  connect();
  billing.max_duration = 300s;
  check(*this, start("1001", "2001"),
        {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
         .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
         .b_disposition = Disposition::answered, .settled = 5s});
}


TEST_F(FlowTest, PartnerFailuresPlayTheAnnouncementForTheCauseAndBillNothing) {
  connect();
  for (const auto& c : test::partner_failures) {
    SCOPED_TRACE(c.b);
    billing.settled.clear();
    check(*this, start("1001", c.b),
          {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = c.outcome,
           .announcement = c.announcement, .a_disposition = Disposition::answered, .b_disposition = c.disposition});
  }
}


TEST_F(FlowTest, CallerFailuresAreRecordedAndChargedNothing) {
  connect();
  for (const auto& c : test::caller_failures) {
    SCOPED_TRACE(c.a);
    const auto id = start(c.a, "1002");
    check(*this, id, {.state = CallState::failed, .a_outcome = c.outcome, .a_disposition = c.disposition});
    EXPECT_FALSE(observer.reached(id, CallState::dialing_b));
  }
}

TEST_F(FlowTest, CancelWhileCallerRings) {
  connect();
  const auto id = start("4001", "1002");
  ASSERT_TRUE(run_until([&] { return service->find(id)->leg_a().state == LegState::ringing; }, 5s));
  ASSERT_TRUE(service->cancel(id));
  check(*this, id, {.state = CallState::canceled, .a_outcome = Outcome::canceled,
                    .a_disposition = Disposition::no_answer});
}

TEST_F(FlowTest, CancelWhilePartnerRings) {
  connect();
  const auto id = start("1001", "4001");
  ASSERT_TRUE(run_until([&] { return service->find(id)->leg_b().state == LegState::ringing; }, 5s));
  ASSERT_TRUE(service->cancel(id));
  check(*this, id, {.state = CallState::canceled, .a_outcome = Outcome::canceled, .b_outcome = Outcome::canceled,
                    .a_disposition = Disposition::answered, .b_disposition = Disposition::no_answer});
}

TEST_F(FlowTest, CancelWhileBridgedBillsTheTalkSoFar) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1003");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  ASSERT_TRUE(service->cancel(id));
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_FALSE(end.announcement);
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  ASSERT_EQ(cdrs(id).size(), 2u);
  EXPECT_EQ(cdrs(id)[1].disposition, Disposition::answered);
  // The engine sent the Hangup for A's channel.
  bool hangup = false;
  for (const auto& a : asterisk.actions()) hangup = hangup || a.find("Action: Hangup") != std::string::npos;
  EXPECT_TRUE(hangup);
}

TEST_F(FlowTest, ManyCallsAtOnceEachEndOnce) {
  connect();
  billing.max_duration = 10s;
  std::vector<std::string> ids;
  const char* partners[] = {"1002", "2002", "3002", "4002", "5002"};
  for (int i = 0; i < 50; ++i) ids.push_back(start("1001", partners[i % 5]));
  // Done when every call has told its end (final events follow the CDR write of their
  // loop turn, so they may come a turn after the calls leave the books).
  auto all_told = [&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return observer.final_event(id) != nullptr; });
  };
  ASSERT_TRUE(run_until([&] { return service->in_flight() == 0 && all_told(); }, 20s)) << service->in_flight();
  for (const auto& id : ids) {
    ASSERT_NE(observer.final_event(id), nullptr) << id;
    EXPECT_EQ(billing.endings("r-" + id), 1u) << id;
    EXPECT_EQ(cdrs(id).size(), 2u) << id;
  }
  EXPECT_EQ(billing.settled.size(), 20u);  // 1002 and 2002 talk; the rest fail
}

TEST_F(FlowTest, RefusedRequestsPlaceNoCall) {
  connect();
  // Caller and callee the same: refused before billing or Asterisk hear of it.
  CallbackRequest same{.caller = PhoneNumber::parse("1001", as_dialed).value(),
                       .callee = PhoneNumber::parse("1001", as_dialed).value(), .payer = AccountId{"123"}};
  EXPECT_EQ(service->start(same).error().field, "callee");
  EXPECT_TRUE(billing.authorized.empty());
  // Billing says no: nothing is dialed.
  billing.deny = DenialReason::insufficient_balance;
  CallbackRequest broke{.caller = PhoneNumber::parse("1001", as_dialed).value(),
                        .callee = PhoneNumber::parse("1002", as_dialed).value(), .payer = AccountId{"123"}};
  std::optional<Result<std::string>> denied;
  service->submit(broke, [&](Result<std::string> r) { denied = std::move(r); });
  ASSERT_TRUE(run_until([&] { return denied.has_value(); }, 5s));
  ASSERT_FALSE(*denied);
  EXPECT_EQ(denied->error().code, "denied.insufficient_balance");
  io.run_for(50ms);
  for (const auto& a : asterisk.actions()) EXPECT_EQ(a.find("Action: Originate"), std::string::npos);
  EXPECT_EQ(service->in_flight(), 0u);
}

TEST_F(FlowTest, LostAsteriskEndsCallsInFlightAsEngineLostAndBillsOnce) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1004");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  asterisk.close_all_connections();  // Asterisk died: its calls are gone
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.leg_b().cause.outcome(), Outcome::engine_lost);
  EXPECT_EQ(end.call.state(), CallState::completed);
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_EQ(cdrs(id).size(), 2u);
  // The engine reconnects by itself and the next call works.
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  const auto next = start("1001", "3001");
  EXPECT_EQ(finish(next).call.leg_b().cause.outcome(), Outcome::busy);
}

TEST_F(FlowTest, GarbageFromThePeerDropsTheConnectionAndTheCallIsFoundAgainAfterReconnect) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1005");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  asterisk.send_raw_to_all("\x01\x02 not AMI at all\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return log_text.str().find("protocol error: malformed AMI line") != std::string::npos; },
                        5s));
  // Asterisk kept the call (it does not care that a manager client left); after the
  // reconnect CoreShowChannels lists it and the engine follows it again.
  ASSERT_TRUE(run_until([&] {
    for (const auto& a : asterisk.actions()) {
      if (a.find("Action: CoreShowChannels") != std::string::npos) return engine->status().servers.at(0).connected;
    }
    return false;
  }, 5s));
  io.run_for(50ms);  // let the listing arrive
  ASSERT_EQ(observer.final_event(id), nullptr) << "ended while disconnected";
  ASSERT_TRUE(service->cancel(id));
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_EQ(end.call.leg_b().cause, HangupCause::canceled());  // not "engine lost": it was followed
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_EQ(cdrs(id).size(), 2u);
}

TEST_F(FlowTest, CancelAskedWhileDisconnectedGoesOutAfterTheReconnect) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1007");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  asterisk.set_accepting(false);
  asterisk.send_raw_to_all("garbage\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return !engine->status().servers.at(0).connected; }, 5s));
  ASSERT_TRUE(service->cancel(id));  // nowhere to send it right now
  io.run_for(50ms);
  asterisk.set_accepting(true);
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_EQ(end.call.leg_b().cause, HangupCause::canceled());  // followed to its end, not lost
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_EQ(asterisk.active_calls(), 0u);
}

TEST_F(FlowTest, CallThatEndsWhileDisconnectedIsBilledFromItsAstDbRecordOnceWeAreBack) {
  connect();
  billing.max_duration = 10s;  // 100 ms here
  const auto id = start("1001", "1006");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  asterisk.set_accepting(false);
  asterisk.send_raw_to_all("garbage\r\n\r\n");
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 5s));  // it ended on Asterisk meanwhile
  const auto record = asterisk.db_get("callback", id);  // the dialplan's ANSWER|16|<answered>|1|end
  ASSERT_TRUE(record);
  const auto answered = std::stoll(record->substr(record->find('|', record->find('|') + 1) + 1));
  asterisk.set_accepting(true);
  finish(id);
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  ASSERT_EQ(billing.settled.size(), 1u);
  EXPECT_EQ(billing.settled[0].second.count(), answered) << *record;
  EXPECT_EQ(cdrs(id).size(), 2u);
}

TEST_F(FlowTest, OversizedHeaderOrAFrameCutByACloseDropsTheConnectionNotTheProcess) {
  connect();
  asterisk.send_raw_to_all("Event: Newchannel\r\nChannel: " + std::string(100'000, 'x'));
  ASSERT_TRUE(run_until([&] { return log_text.str().find("header line longer than") != std::string::npos; }, 5s))
      << log_text.str();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  asterisk.send_raw_to_all("Event: Hangup\r\nUniqueid: 17");  // half a frame, then Asterisk dies
  asterisk.close_all_connections();
  ASSERT_TRUE(run_until([&] { return !engine->status().servers.at(0).connected; }, 5s));
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  const auto id = start("1001", "3001");
  EXPECT_EQ(finish(id).call.leg_b().cause.outcome(), Outcome::busy);
}

TEST_F(FlowTest, NoReachableAsteriskFailsTheCallAtOnce) {
  auto options = engine_options();
  asterisk.stop();
  engine = std::make_unique<engine_ami::AmiEngine>(context, options);
  expect_calls_fail_at_once_without_a_server();
}

TEST_F(FlowTest, MissingDialplanIsReportedAndTheServerIsNotUsed) {
  fake::FakeAsterisk without{{.time_scale = time_scale, .recordings = CALLBACK_ASTERISK_RECORDINGS,
                              .callback_dialplan_loaded = false}};
  without.start();
  auto options = engine_options();
  options.servers = {"127.0.0.1:" + std::to_string(without.port())};
  engine = std::make_unique<engine_ami::AmiEngine>(context, options);
  engine->start();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).detail == "dialplan missing"; }, 5s))
      << log_text.str();
  EXPECT_FALSE(engine->status().servers.at(0).connected);
  EXPECT_NE(log_text.str().find("the dialplan context 'callback' is not loaded"), std::string::npos);
}

TEST_F(FlowTest, WrongSecretSaysLoginFailed) {
  auto options = engine_options();
  options.secret = "wrong";
  engine = std::make_unique<engine_ami::AmiEngine>(context, options);
  engine->start();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).detail.find("login failed") == 0; }, 5s))
      << engine->status().servers.at(0).detail;
  EXPECT_NE(log_text.str().find("login as callback failed: Authentication failed"), std::string::npos);
}

TEST_F(FlowTest, PlainTextLoginWorksToo) {
  auto options = engine_options();
  options.md5_auth = false;
  connect(options);
  bool plain = false;
  for (const auto& a : asterisk.actions()) plain = plain || a.find("Secret: callbacksecret") != std::string::npos;
  EXPECT_TRUE(plain);
}

TEST_F(FlowTest, TheSeedsAccountIsChargedForWhatItTalkedThroughRealBilling) {
  // The whole product: service, AMI engine, fake Asterisk, SQLite billing and store.
  auto sqlite_billing =
      billing_sqlite::open_billing({.path = dir / "callback.db", .synchronous = "normal"}, {}).value();
  const auto cny = Currency::of("CNY").value();
  std::istringstream deck("prefix;description;rate\n2;Phones 2XXX;0.10\n");
  ASSERT_TRUE(sqlite_billing->import_rates("default", deck, cny));
  ASSERT_TRUE(store->accounts().create({.id = "123", .currency = cny, .balance = Money::parse("5.00", cny).value()}));
  engine = std::make_unique<engine_ami::AmiEngine>(context, engine_options());
  service = std::make_unique<CallbackService>(context, *engine, sqlite_billing.get(), *store, ServiceOptions{});
  service->subscribe(observer);
  engine->start();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  const auto id = start("1001", "2001");  // B talks 5 s, then hangs up
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::completed);
  EXPECT_EQ(end.announcement, Announcement::partner_hangup);
  ASSERT_TRUE(end.cost);
  EXPECT_EQ(*end.cost, Money::parse("0.10", cny).value());  // 5 s at 60/60: one minute
  auto account = store->accounts().find("123").value();
  EXPECT_EQ(account->balance, Money::parse("4.90", cny).value());
  EXPECT_TRUE(account->reserved.is_zero());
  EXPECT_EQ(cdrs(id).at(1).cost, end.cost);
  // Billing answered on its own thread; everything above happened on ours.
  service.reset();
  engine.reset();
}

// Issue 10, item 6, through the whole service: 1,000 callbacks asked for at once on one
// 10.00 account, each held in 60 s slices of 0.60. Billing grants what the balance covers;
// the rest are refused; the ones placed talk and are charged. Whatever the order, the total
// charged never passes the balance, nothing stays reserved, and the balance is exactly
// 10.00 less the charges told.
TEST_F(FlowTest, AThousandCallbacksAtOnceOnOneAccountNeverSpendMoreThanItHas) {
  auto sqlite_billing =
      billing_sqlite::open_billing({.path = dir / "callback.db", .synchronous = "normal"}, {}).value();
  const auto cny = Currency::of("CNY").value();
  std::istringstream deck("prefix;description;rate;increment\n1;Phones 1XXX;0.60;60/60\n");
  ASSERT_TRUE(sqlite_billing->import_rates("default", deck, cny));
  ASSERT_TRUE(store->accounts().create({.id = "123", .currency = cny, .balance = Money::parse("10.00", cny).value()}));
  engine = std::make_unique<engine_ami::AmiEngine>(context, engine_options());
  ServiceOptions options;
  options.max_in_flight = 0;  // no cap: billing alone decides
  service = std::make_unique<CallbackService>(context, *engine, sqlite_billing.get(), *store, options);
  service->subscribe(observer);
  engine->start();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  std::vector<std::string> ids;
  std::size_t refused_at_once = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string digits = std::to_string(1000 + i % 1000).substr(1);  // 000-999
    CallbackRequest request{.caller = PhoneNumber::parse(std::string("9").append(digits), as_dialed).value(),
                            .callee = PhoneNumber::parse(std::string("1").append(digits), as_dialed).value(),
                            .payer = AccountId{"123"},
                            .origin = Origin::rest,
                            .limit = 90s};  // two slices when it gets them
    auto id = service->start(request);
    if (id) {
      ids.push_back(*id);
    } else {
      ++refused_at_once;
    }
  }
  auto all_told = [&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return observer.final_event(id) != nullptr; });
  };
  ASSERT_TRUE(run_until([&] { return service->in_flight() == 0 && all_told(); }, 120s)) << service->in_flight();
  Money charged = Money::from_micros(0, cny);
  std::size_t talked = 0, refused = refused_at_once;
  for (const auto& id : ids) {
    const CallEvent* end = observer.final_event(id);
    if (end->cost) {
      charged += *end->cost;
      ++talked;
    } else if (end->outcome == "refused") {
      ++refused;
    }
  }
  EXPECT_GT(talked, 0u);
  EXPECT_LE(talked, 16u);  // a first slice each (0.60): 10.00 covers 16 at a time, and none ended before all asked
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(talked + refused, 1000u);
  EXPECT_LE(charged, Money::parse("10.00", cny).value()) << charged.format();
  auto account = store->accounts().find("123").value();
  EXPECT_FALSE(account->balance.is_negative());
  EXPECT_TRUE(account->reserved.is_zero()) << account->reserved.format();
  EXPECT_EQ(account->balance + charged, Money::parse("10.00", cny).value());
  service.reset();
  engine.reset();
}

// Liveness: an Asterisk that says nothing for a whole Ping interval is given up on; one
// that is only slow to answer the Ping (behind a flood of events) is not.
TEST_F(FlowTest, ASilentAsteriskIsLostAButABusyOneIsNot) {
  auto options = engine_options();
  options.ping_interval = 100ms;
  connect(options);
  asterisk.set_answering_pings(false);
  // Busy: events keep coming for four intervals, the Pong never does.
  for (int i = 0; i < 16; ++i) {
    asterisk.send_raw_to_all("Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: Local/9000@phones-1;1\r\n\r\n");
    io.run_for(25ms);
  }
  EXPECT_TRUE(engine->status().servers.at(0).connected) << engine->status().servers.at(0).detail;
  EXPECT_EQ(log_text.str().find("no answer to Ping"), std::string::npos) << log_text.str();
  // Silent: lost within two intervals.
  ASSERT_TRUE(run_until([&] { return !engine->status().servers.at(0).connected; }, 2s));
  EXPECT_NE(log_text.str().find("no answer to Ping"), std::string::npos) << log_text.str();
  // Answering again: back.
  asterisk.set_answering_pings(true);
  EXPECT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
}

TEST_F(FlowTest, CallsSpreadOverSeveralServers) {
  fake::FakeAsterisk second{{.time_scale = time_scale, .recordings = CALLBACK_ASTERISK_RECORDINGS}};
  second.start();
  auto options = engine_options();
  options.servers.push_back("127.0.0.1:" + std::to_string(second.port()));
  connect(options);
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(1).connected; }, 5s));
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(start("1001", "3001"));
  ASSERT_TRUE(run_until([&] { return service->in_flight() == 0; }, 10s));
  auto originates = [](const fake::FakeAsterisk& f) {
    int n = 0;
    for (const auto& a : f.actions()) n += a.find("Action: Originate") != std::string::npos;
    return n;
  };
  EXPECT_EQ(originates(asterisk) + originates(second), 10);
  EXPECT_GE(originates(asterisk), 3);
  EXPECT_GE(originates(second), 3);
}

}  // namespace
