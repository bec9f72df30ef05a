// The whole callback through the ARI engine against the ARI fake on loopback, in the step
// flow the service runs for it: every outcome the AMI flow tests check (flow_check.hpp,
// the same assertions on state, cause class, announcement, CDR rows and billing), the
// limit with its warnings, cancel at every stage, a lost WebSocket, a server that refuses
// us; inbound calls routed by the dialled number, answered or rejected, with digits.
#include "access_trigger.hpp"
#include "ari_engine.hpp"
#include "fake_ari.hpp"
#include "flow_check.hpp"
#include "node_journal.hpp"

#include <callback_internal/callback_service.hpp>

#include <gtest/gtest.h>

#include <sstream>

using namespace callback;
using namespace std::chrono_literals;
using callback::test::check;
using callback::test::Expected;
using callback::test::FlowObserver;

namespace {

using test::as_dialed;

bool rest_over_websocket() {
  const char* mode = std::getenv("CALLBACK_TEST_ARI_REST");
  return mode != nullptr && std::string_view(mode) == "websocket";
}

struct AriFlowTest : test::FlowBase<engine_ari::AriEngine> {
  // 1 s of the fake's phones is 10 ms here; tests of talk time and the limit (which this
  // engine times on our clock, as it must with ARI) run the fake in real time.
  explicit AriFlowTest(double scale = 0.01, std::int64_t stasis_start_delay_ms = 0, std::int64_t bridge_play_delay_ms = 0,
                       std::map<std::string, std::string> phone_dtmf = {})
      : ari({.time_scale = scale, .sound_seconds = {}, .default_sound_seconds = 0.2,
             .stasis_start_delay_ms = stasis_start_delay_ms, .bridge_play_delay_ms = bridge_play_delay_ms,
             .phone_dtmf = std::move(phone_dtmf)}) {}
  fake::FakeAri ari;

  void SetUp() override { ari.start(); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "engine log:\n" << log_text.str().substr(0, 200'000);
  }

  engine_ari::AriOptions engine_options() {
    engine_ari::AriOptions o;
    o.servers = {"127.0.0.1:" + std::to_string(ari.port())};
    o.password = "callbacksecret";
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    o.lost_call_grace = 2s;
    // CTest runs these tests twice: REST over HTTP, and with CALLBACK_TEST_ARI_REST=websocket
    // over the event WebSocket (the ari_flow_ws. tests).
    o.rest_over_websocket = rest_over_websocket();
    return o;
  }

  void connect(engine_ari::AriOptions options, ServiceOptions service_options = {}) {
    engine = std::make_unique<engine_ari::AriEngine>(context, std::move(options));
    service_options.a_ring_timeout = 8s;  // the fake's 80 ms
    service_options.b_ring_timeout = 8s;
    service_options.stage_grace = 5s;
    service_options.warning_before = 2s;  // a 3 s limit: warnings with 2 s and 1 s left
    service_options.warning_repeat = 1s;
    service = std::make_unique<CallbackService>(context, *engine, &billing, *store, service_options);
    service->subscribe(observer);
    engine->start();
    ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s)) << log_text.str();
    // Our side of the handshake may finish before the fake registered the app.
    ASSERT_TRUE(ari.wait_for_websockets(1, 5s));
    ASSERT_TRUE(service->step_flow());
  }
  void connect() { connect(engine_options()); }

  std::size_t requests(const std::string& what) {
    const auto stats = ari.stats();
    auto it = stats.requests.find(what);
    return it == stats.requests.end() ? 0 : it->second;
  }
  // Nothing left on the fake: every channel hung up, every bridge and playback gone.
  void nothing_left() {
    EXPECT_TRUE(run_until([&] {
      const auto st = ari.stats();
      return st.channels == 0 && st.bridges == 0 && st.playbacks == 0;
    }, 5s)) << ari.stats_json();
  }
};

struct AriRealTimeTest : AriFlowTest {
  AriRealTimeTest() : AriFlowTest(1.0) {}
};

TEST_F(AriRealTimeTest, BothAnswerTheLimitWarnsThenEndsItWithTimeUp) {
  connect();
  billing.max_duration = 3s;  // warnings with 2 s and 1 s left
  const auto id = start("9001", "9002", "zh");
  check(*this, id, {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
                    .announcement = Announcement::time_up, .a_disposition = Disposition::answered,
                    .b_disposition = Disposition::answered, .settled = 3s});
  EXPECT_EQ(observer.states(id), (std::vector<CallState>{CallState::authorizing, CallState::dialing_a,
                                                         CallState::a_answered, CallState::dialing_b,
                                                         CallState::bridged, CallState::completed}));
  // please wait, two warnings, time up: each a play on A's channel.
  EXPECT_EQ(requests("POST /ari/channels/{id}/play"), 4u) << ari.stats_json();
  EXPECT_EQ(metrics.counter("callback_warnings_total", "").value(), 2u);
  EXPECT_EQ(requests("POST /ari/bridges"), 1u);
  nothing_left();
}

// As Asterisk under load: StasisStart 300 ms after the answer events (a play before it is
// refused 409), and a play queued to a bridged channel dropped if the bridge goes first.
struct AriLoadedAsteriskTest : AriFlowTest {
  AriLoadedAsteriskTest() : AriFlowTest(1.0, 300, 300) {}
};

// outcomes.sh on the real Asterisk: "the welcome prompt: the prompt: Channel not in Stasis
// application", and A was put through to B without "please wait".
TEST_F(AriLoadedAsteriskTest, TheCallerCountsAsAnsweredOnlyOnceInStasisSoPleaseWaitIsPlayed) {
  connect();
  billing.max_duration = 300s;
  check(*this, start("9001", "2001"),
        {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
         .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
         .b_disposition = Disposition::answered, .settled = 5s});
  EXPECT_EQ(log_text.str().find("welcome prompt"), std::string::npos) << "please wait was refused";
  EXPECT_EQ(requests("POST /ari/channels/{id}/play"), 2u) << ari.stats_json();
  nothing_left();
}

// outcomes.sh on the real Asterisk: "time up" sent to A while the bridge was being destroyed
// never started (no PlaybackFinished), so A was never hung up: engine_lost 10 s later. And
// on a loaded one (callback_load --limit 2, 120 callbacks): sent after A's ChannelLeftBridge,
// it was still lost in 2 of them, each held 60 s. A now stays in the bridge, alone, for it.
TEST_F(AriLoadedAsteriskTest, TimeUpIsPlayedToTheCallerStillInTheBridgeAndEndsTheCall) {
  connect();
  billing.max_duration = 2s;
  const auto id = start("9001", "9002");
  check(*this, id, {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
                    .announcement = Announcement::time_up, .a_disposition = Disposition::answered,
                    .b_disposition = Disposition::answered, .settled = 2s});
  EXPECT_EQ(observer.final_event(id)->outcome, "time_up");
  EXPECT_EQ(ari.stats().events_sent.count("PlaybackFinished") ? ari.stats().events_sent.at("PlaybackFinished") : 0u, 2u)
      << "please wait, then time up: both played";
  nothing_left();
}

// The partner hangs up: the caller hears "partner hung up" in the bridge it is left alone in,
// and the bridge goes once the caller has gone too.
TEST_F(AriLoadedAsteriskTest, PartnerHungUpIsPlayedInTheBridgeWhichGoesWithTheCaller) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("9001", "2001");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  ASSERT_TRUE(run_until([&] { return requests("POST /ari/channels/{id}/play") == 2; }, 10s)) << "B hung up: the prompt";
  EXPECT_EQ(ari.stats().bridges, 1u) << "A is still in it";
  EXPECT_EQ(requests("DELETE /ari/bridges/{id}"), 0u);
  check(*this, id, {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
                    .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
                    .b_disposition = Disposition::answered, .settled = 5s});
  EXPECT_EQ(requests("DELETE /ari/bridges/{id}"), 1u);
  nothing_left();
}

TEST_F(AriRealTimeTest, PartnerHangsUpAndIsBilledForFiveSeconds) {
  connect();
  billing.max_duration = 300s;
  check(*this, start("9001", "2001"),
        {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
         .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
         .b_disposition = Disposition::answered, .settled = 5s});
  nothing_left();
}

TEST_F(AriFlowTest, PartnerFailuresPlayTheAnnouncementForTheCauseAndBillNothing) {
  connect();
  for (const auto& c : test::partner_failures) {
    SCOPED_TRACE(c.b);
    billing.settled.clear();
    const auto plays = requests("POST /ari/channels/{id}/play");
    check(*this, start("1001", c.b),
          {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = c.outcome,
           .announcement = c.announcement, .a_disposition = Disposition::answered, .b_disposition = c.disposition});
    EXPECT_EQ(requests("POST /ari/channels/{id}/play") - plays, 2u) << "please wait, then the cause's";
  }
  nothing_left();
}

// Once its WebSocket is up the engine sets the app's event filter (ari-event-filter): a
// callback then costs half the events, and runs the same.
TEST_F(AriFlowTest, RestCallsGoOverTheTransportConfigured) {
  connect();
  const auto id = start("9001", "9801");
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::completed);
  const auto stats = ari.stats();
  const std::string login = engine->status().servers.at(0).checks.at(0).detail;
  if (rest_over_websocket()) {
    EXPECT_NE(login.find("REST over the WebSocket"), std::string::npos) << login;
    EXPECT_GE(stats.rest_over_websocket, 5u) << "originate A, play, originate B, ... as RESTRequest frames";
    EXPECT_EQ(stats.events_sent.count("RESTResponse"), 1u) << "the replies, let through the engine's event filter";
  } else {
    EXPECT_EQ(login.find("REST over the WebSocket"), std::string::npos) << login;
    EXPECT_EQ(stats.rest_over_websocket, 0u);
  }
  nothing_left();
}

TEST_F(AriFlowTest, AsteriskSendsOnlyTheEventTypesTheEngineReads) {
  connect();
  ASSERT_TRUE(run_until([&] { return requests("PUT /ari/applications/{app}/eventFilter") == 1; }, 5s));
  check(*this, start("1001", "2001"),
        {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
         .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
         .b_disposition = Disposition::answered});
  const auto stats = ari.stats();
  for (const char* noise : {"ChannelVarset", "ChannelDialplan", "ChannelCallerId", "ChannelEnteredBridge", "ChannelLeftBridge"}) {
    EXPECT_EQ(stats.events_sent.count(noise), 0u) << noise;
    EXPECT_GT(stats.events_filtered.count(noise), 0u) << noise << " is made by the fake, and held back";
  }
  for (const char* read : {"StasisStart", "Dial", "ChannelDestroyed", "PlaybackFinished"}) {
    EXPECT_GT(stats.events_sent.count(read), 0u) << read;
  }
  nothing_left();
}

TEST_F(AriFlowTest, CallerFailuresAreRecordedAndChargedNothing) {
  connect();
  for (const auto& c : test::caller_failures) {
    SCOPED_TRACE(c.a);
    const auto id = start(c.a, "1002");
    check(*this, id, {.state = CallState::failed, .a_outcome = c.outcome, .a_disposition = c.disposition});
    EXPECT_FALSE(observer.reached(id, CallState::dialing_b));
  }
  EXPECT_EQ(requests("POST /ari/channels/{id}/play"), 0u) << "nobody answered to hear anything";
  nothing_left();
}

TEST_F(AriFlowTest, CancelWhileCallerRings) {
  connect();
  const auto id = start("4001", "1002");
  ASSERT_TRUE(run_until([&] { return service->find(id)->leg_a().state == LegState::ringing; }, 5s));
  ASSERT_TRUE(service->cancel(id));
  check(*this, id, {.state = CallState::canceled, .a_outcome = Outcome::canceled,
                    .a_disposition = Disposition::no_answer});
  nothing_left();
}

TEST_F(AriFlowTest, CancelRightAfterTheStartBeforeTheOriginateIsAnswered) {
  connect();
  const auto id = start("1001", "1002");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::dialing_a); }, 5s));
  ASSERT_TRUE(service->cancel(id));  // the originate's reply may not be in yet
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_TRUE(billing.settled.empty());
  nothing_left();
}

TEST_F(AriFlowTest, CancelWhilePartnerRings) {
  connect();
  const auto id = start("1001", "4001");
  ASSERT_TRUE(run_until([&] { return service->find(id)->leg_b().state == LegState::ringing; }, 5s));
  ASSERT_TRUE(service->cancel(id));
  check(*this, id, {.state = CallState::canceled, .a_outcome = Outcome::canceled, .b_outcome = Outcome::canceled,
                    .a_disposition = Disposition::answered, .b_disposition = Disposition::no_answer});
  nothing_left();
}

TEST_F(AriFlowTest, CancelWhileBridgedBillsTheTalkSoFar) {
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
  EXPECT_GE(requests("DELETE /ari/channels/{id}"), 2u);
  nothing_left();
}

// In real time: this engine measures talk time from the fake's event timestamps, which
// are wall-clock times.
TEST_F(AriRealTimeTest, ManyCallsAtOnceEachEndOnce) {
  connect();
  billing.max_duration = 300s;
  std::vector<std::string> ids;
  const char* partners[] = {"2002", "2003", "3002", "4002", "5002"};
  for (int i = 0; i < 50; ++i) ids.push_back(start("9001", partners[i % 5]));
  auto all_told = [&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return observer.final_event(id) != nullptr; });
  };
  ASSERT_TRUE(run_until([&] { return service->in_flight() == 0 && all_told(); }, 30s)) << service->in_flight();
  for (const auto& id : ids) {
    EXPECT_EQ(billing.endings("r-" + id), 1u) << id;
    EXPECT_EQ(cdrs(id).size(), 2u) << id;
  }
  EXPECT_EQ(billing.settled.size(), 20u);  // 2XXX talk; the rest fail
  nothing_left();
}

TEST_F(AriFlowTest, ALostWebSocketEndsCallsInFlightAsEngineLostAndBillsOnce) {
  auto options = engine_options();
  options.lost_call_grace = 300ms;
  options.reconnect_min = 5s;  // not back within the grace
  connect(options);
  billing.max_duration = 300s;
  const auto id = start("1001", "1003");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  ari.drop_websockets();  // closed in the middle of a frame
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.outcome, "engine_lost");
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_EQ(cdrs(id).size(), 2u);
}

TEST_F(AriFlowTest, ACallStillUpAfterTheReconnectIsFollowedToItsEnd) {
  // Over the WebSocket, a REST call in flight when it is lost fails (the bridging, here,
  // if the drop comes before its reply): AriWebSocketRest tests that case.
  if (rest_over_websocket()) GTEST_SKIP() << "REST calls over HTTP go on while the WebSocket is away; over it they fail";
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1003");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  ari.drop_websockets();
  ASSERT_TRUE(run_until([&] { return !engine->status().servers.at(0).connected; }, 5s));
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  EXPECT_GE(requests("GET /ari/channels"), 1u) << "reconciled";
  EXPECT_EQ(service->in_flight(), 1u) << "still up on Asterisk";
  ASSERT_TRUE(service->cancel(id));
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_EQ(end.call.leg_b().cause, HangupCause::canceled()) << "followed to its end, not lost";
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  nothing_left();
}

// A second WebSocket for our app (a second callbackd, or callbackctl beside callbackd) takes
// it over: ours gets ApplicationReplaced and then nothing, even once the other has gone
// (ari-app-replaced, recorded on Asterisk 23.4.1). The engine connects again to take it back.
TEST_F(AriFlowTest, AnotherClientTakingTheAppOverIsFollowedByAReconnectAndTheCallStillEnds) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1003");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  {
    bool opened = false;
    ari::Client other(io, {.host = "127.0.0.1", .port = ari.port(), .username = "callback",
                           .password = "callbacksecret", .app = "callback-app"},
                      {}, {.opened = [&] { opened = true; }, .event = [](const boost::json::object&) {},
                           .closed = [](const Error&) {}, .malformed = [](const Error&) {}});
    other.open();
    ASSERT_TRUE(run_until([&] { return opened; }, 5s));
  }  // the other client leaves: the app stays with nobody's WebSocket but a new one's
  ASSERT_TRUE(run_until([&] { return requests("GET /ari/events") == 3; }, 5s)) << "ours, the other's, ours again";
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).connected; }, 5s));
  ASSERT_TRUE(service->cancel(id));
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  // Hung up by us, not lost. (The takeover drops only our WebSocket: a bridge request in
  // flight goes on. It used to be cut with the rest, and the call ended by itself.)
  EXPECT_NE(end.call.leg_b().cause, HangupCause::engine_lost()) << "followed to its end, not lost";
  EXPECT_NE(log_text.str().find("took its events; reconnecting"), std::string::npos);
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  nothing_left();
}

TEST_F(AriFlowTest, NoReachableAsteriskFailsTheCallAtOnceAndSubmitSaysWhy) {
  auto options = engine_options();
  ari.stop();
  engine = std::make_unique<engine_ari::AriEngine>(context, options);
  expect_calls_fail_at_once_without_a_server();
}

TEST_F(AriFlowTest, AWrongPasswordIsNotConnectedAndSaysWhy) {
  auto options = engine_options();
  options.password = "wrong";
  engine = std::make_unique<engine_ari::AriEngine>(context, options);
  engine->start();
  ASSERT_TRUE(run_until([&] { return engine->status().servers.at(0).checked; }, 5s));
  const auto status = engine->status().servers.at(0);
  EXPECT_FALSE(status.connected);
  EXPECT_NE(status.detail.find("401"), std::string::npos) << status.detail;
}

TEST_F(AriFlowTest, CallsSpreadOverSeveralServers) {
  fake::FakeAri second({.time_scale = 0.01, .default_sound_seconds = 0.2});
  second.start();
  auto options = engine_options();
  options.servers.push_back("127.0.0.1:" + std::to_string(second.port()));
  engine = std::make_unique<engine_ari::AriEngine>(context, options);
  service = std::make_unique<CallbackService>(context, *engine, &billing, *store, ServiceOptions{});
  service->subscribe(observer);
  engine->start();
  ASSERT_TRUE(run_until([&] {
    const auto s = engine->status();
    return s.servers.at(0).connected && s.servers.at(1).connected;
  }, 5s));
  billing.max_duration = 300s;
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(start("9001", "2002"));
  // Final events follow the CDR write of their loop turn: wait for every one.
  ASSERT_TRUE(run_until([&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return observer.final_event(id) != nullptr; });
  }, 20s));
  for (const auto& id : ids) EXPECT_EQ(observer.final_event(id)->call.state(), CallState::completed) << id;
  EXPECT_GE(second.stats().requests["POST /ari/channels"], 4u);
  EXPECT_GE(requests("POST /ari/channels"), 4u);
}

// After a restart (the engine gone without hanging up anything), recover() takes up the
// service's calls by their channel ids: a leg still up is followed (its handle reported,
// so it can be hung up) and ends once; a leg that went meanwhile ends as not observed.
TEST_F(AriFlowTest, RecoverFollowsTheLegsStillUpAndEndsThoseThatWentAsUnobserved) {
  connect();
  billing.max_duration = 300s;
  const auto up = start("1001", "1003");    // both stay up
  const auto gone = start("1001", "2003");  // B hangs up 5 s (here 50 ms) after answering
  ASSERT_TRUE(run_until([&] { return observer.reached(up, CallState::bridged) && observer.reached(gone, CallState::bridged); }, 5s));
  const std::string server = "127.0.0.1:" + std::to_string(ari.port());
  // The crash: nothing is hung up. Without a service, gone's A stays up after its B went.
  service.reset();
  engine.reset();
  ASSERT_TRUE(run_until([&] { return ari.stats().websockets == 0; }, 5s)) << "the old connection is gone";
  // While nobody watches, gone's B hangs up: up's four channels and gone's A (two) are left.
  ASSERT_TRUE(run_until([&] { return ari.stats().channels == 6; }, 5s)) << ari.stats_json();
  std::vector<LegEvent> events;
  auto second = std::make_unique<engine_ari::AriEngine>(context, engine_options());
  auto subscription = second->subscribe([&](const LegEvent& e) { events.push_back(e); });
  second->recover({{.call_id = up, .server = server, .limit = 300s, .b_dialed = true},
                   {.call_id = gone, .server = "", .limit = 300s, .b_dialed = true}});
  second->start();
  const auto ended = [&](const std::string& id, LegRole leg) -> const LegEvent* {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && e.type == LegEventType::ended) return &e;
    }
    return nullptr;
  };
  const auto handle = [&](const std::string& id, LegRole leg) {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && !e.handle.empty()) return e.handle;
    }
    return Channel{};
  };
  ASSERT_TRUE(run_until([&] { return ended(gone, LegRole::b) != nullptr && !handle(up, LegRole::b).empty(); }, 5s));
  EXPECT_TRUE(ended(gone, LegRole::b)->unobserved);
  EXPECT_EQ(ended(up, LegRole::a), nullptr) << "still up: followed, not ended";
  EXPECT_EQ(ended(gone, LegRole::a), nullptr) << "gone's A is still up too";
  // The handles work: hang them up, each ends once.
  for (const auto& [id, leg] : {std::pair{up, LegRole::a}, std::pair{up, LegRole::b}, std::pair{gone, LegRole::a}}) {
    ASSERT_FALSE(handle(id, leg).empty()) << id;
    second->hangup(handle(id, leg), HangupCause::normal(), nullptr);
  }
  ASSERT_TRUE(run_until([&] { return ended(up, LegRole::a) && ended(up, LegRole::b) && ended(gone, LegRole::a); }, 5s));
  EXPECT_FALSE(ended(up, LegRole::b)->unobserved);
  std::size_t ends = 0;
  for (const auto& e : events) ends += e.type == LegEventType::ended ? 1 : 0;
  EXPECT_EQ(ends, 4u);
  nothing_left();
  second.reset();
}

// Several nodes on one journal: each node's engine runs its own Stasis application,
// <app>-<node>, as Asterisk gives an application's events to one WebSocket only. When node
// n1 dies, its channels stay in its application, whose events nobody gets
// (ari-takeover-move). Node n2, taking its calls over, moves each channel still in Stasis
// into its own application and follows it to its end, as seen, not guessed. A leg still
// ringing is not in Stasis yet and cannot be moved (Asterisk would hang it up when it
// answers): it is hung up, and ends lost.
TEST_F(AriRealTimeTest, ANodeTakingOverAnothersCallsMovesThemIntoItsOwnApplicationAndFollowsThemToTheirEnd) {
  test::NodeJournal n1_journal("n1"), n2_journal("n2");
  auto options = [&](CallJournal& journal) {
    auto o = engine_options();
    o.journal = &journal;
    return o;
  };
  connect(options(n1_journal));
  EXPECT_NE(engine->status().servers.at(0).checks.at(0).detail.find("events of callback-app-n1 "), std::string::npos)
      << engine->status().servers.at(0).checks.at(0).detail;
  billing.max_duration = 300s;
  const auto talking = start("1001", "1003");  // both stay up
  const auto ringing = start("4001", "1004");  // A rings until the originate's timeout (8 s)
  ASSERT_TRUE(run_until([&] {
    return observer.reached(talking, CallState::bridged) && observer.reached(ringing, CallState::dialing_a);
  }, 10s));
  const std::string server = "127.0.0.1:" + std::to_string(ari.port());
  // n1 dies: nothing is hung up.
  service.reset();
  engine.reset();
  ASSERT_TRUE(run_until([&] { return ari.stats().websockets == 0; }, 5s));
  ASSERT_EQ(ari.stats().channels, 6u) << ari.stats_json();
  std::vector<LegEvent> events;
  auto n2 = std::make_unique<engine_ari::AriEngine>(context, options(n2_journal));
  auto subscription = n2->subscribe([&](const LegEvent& e) { events.push_back(e); });
  n2->recover({{.call_id = talking, .server = server, .limit = 300s, .b_dialed = true, .taken_from = "n1"},
               {.call_id = ringing, .server = server, .limit = 300s, .b_dialed = false, .taken_from = "n1"}});
  n2->start();
  const auto ended = [&](const std::string& id, LegRole leg) -> const LegEvent* {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && e.type == LegEventType::ended) return &e;
    }
    return nullptr;
  };
  ASSERT_TRUE(run_until([&] { return requests("POST /ari/channels/{id}/move") == 3 && ended(ringing, LegRole::a); }, 5s))
      << ari.stats_json();
  EXPECT_EQ(ended(ringing, LegRole::a)->cause, HangupCause::engine_lost());
  EXPECT_NE(n2->status().servers.at(0).checks.at(0).detail.find("events of callback-app-n2 "), std::string::npos);
  // B hangs up: n2 sees it (n1's application would have dropped the events), and its cause.
  ASSERT_TRUE(ari.hang_up(talking + "-b", 16));
  ASSERT_TRUE(run_until([&] { return ended(talking, LegRole::b) != nullptr; }, 5s));
  EXPECT_FALSE(ended(talking, LegRole::b)->unobserved);
  EXPECT_TRUE(ended(talking, LegRole::b)->far_end_hung_up);
  EXPECT_EQ(ended(talking, LegRole::b)->cause, HangupCause::normal());
  EXPECT_EQ(ended(talking, LegRole::a), nullptr) << "A is still up, in the bridge n2 found";
  Channel a;
  for (const auto& e : events) {
    if (e.call_id == talking && e.leg == LegRole::a && !e.handle.empty()) a = e.handle;
  }
  ASSERT_FALSE(a.empty());
  n2->hangup(a, HangupCause::normal(), nullptr);
  ASSERT_TRUE(run_until([&] { return ended(talking, LegRole::a) != nullptr; }, 5s));
  EXPECT_FALSE(ended(talking, LegRole::a)->unobserved);
  nothing_left();
  n2.reset();
}

// The limit of a call taken up (after a restart, or from another node) runs on from B's
// answer as the service has it, not from when B's channel was made: under load that is
// seconds earlier, and the call would get less than its limit (seen on a real Asterisk: 17
// s of 20 after a takeover).
TEST_F(AriFlowTest, AnAdoptedCallsLimitRunsOnFromBsAnswerAsTheServiceHasIt) {
  connect();
  billing.max_duration = 300s;
  const auto id = start("1001", "1003");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::bridged); }, 5s));
  const std::string server = "127.0.0.1:" + std::to_string(ari.port());
  service.reset();
  engine.reset();
  ASSERT_TRUE(run_until([&] { return ari.stats().websockets == 0; }, 5s));
  std::vector<LegEvent> events;
  auto second = std::make_unique<engine_ari::AriEngine>(context, engine_options());
  auto subscription = second->subscribe([&](const LegEvent& e) { events.push_back(e); });
  // 300 s of talk, 299 of them gone: about one left.
  second->recover({{.call_id = id, .server = server, .limit = 300s, .b_dialed = true,
                    .b_answered = context.clock.now() - 299s}});
  second->start();
  const auto ended = [&](LegRole leg) -> const LegEvent* {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && e.type == LegEventType::ended) return &e;
    }
    return nullptr;
  };
  ASSERT_TRUE(run_until([&] { return ended(LegRole::a) && ended(LegRole::b); }, 10s)) << "time up";
  EXPECT_TRUE(ended(LegRole::b)->limit_reached);
  // Its talk time from that answer too: the limit's 300 s (a second more at most, for the
  // time-up prompt).
  ASSERT_TRUE(ended(LegRole::b)->billsec);
  EXPECT_GE(*ended(LegRole::b)->billsec, 299s);
  EXPECT_LE(*ended(LegRole::b)->billsec, 301s);
  nothing_left();
  second.reset();
}

// A B that hangs up while callbackd is away (a crash) leaves its end on Asterisk: the hangup
// handler of [callback-ari-leg-end] that each B gets (ari-leg-end-record). After the restart
// it ends unobserved, but with the talk time Asterisk measured, so the call is billed; the
// record goes (CB_FORGET) with the next B placed there once the service has the end on disk.
TEST_F(AriRealTimeTest, APartnerWhoHungUpWhileWeWereAwayIsBilledFromAsterisksRecord) {
  connect();
  billing.max_duration = 300s;
  const auto gone = start("9001", "2001");  // B answers after 1 s and hangs up 5 s later
  ASSERT_TRUE(run_until([&] { return observer.reached(gone, CallState::bridged); }, 5s));
  const Timestamp answered = context.clock.now();  // B answered just before the bridge
  const std::string server = "127.0.0.1:" + std::to_string(ari.port());
  const std::string record = "CB_END_" + gone;
  service.reset();  // the crash: nothing is hung up
  engine.reset();
  ASSERT_TRUE(run_until([&] { return ari.stats().websockets == 0; }, 5s));
  ASSERT_TRUE(run_until([&] { return ari.stats().globals.count(record) == 1; }, 10s)) << "B hangs up while nobody watches";
  std::vector<LegEvent> events;
  auto second = std::make_unique<engine_ari::AriEngine>(context, engine_options());
  auto subscription = second->subscribe([&](const LegEvent& e) { events.push_back(e); });
  second->recover({{.call_id = gone, .server = server, .limit = 300s, .b_dialed = true}});
  const Timestamp restarted = context.clock.now();  // after B's end was recorded
  second->start();
  const auto find = [&](const std::string& id, LegRole leg, LegEventType type) -> const LegEvent* {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && e.type == type) return &e;
    }
    return nullptr;
  };
  ASSERT_TRUE(run_until([&] { return find(gone, LegRole::b, LegEventType::ended) && find(gone, LegRole::a, LegEventType::dialing); }, 5s));
  const LegEvent& b_end = *find(gone, LegRole::b, LegEventType::ended);
  EXPECT_TRUE(b_end.unobserved);
  EXPECT_FALSE(b_end.billsec.has_value()) << "the service bills from B's answer in its journal to the recorded end";
  const auto talked = std::chrono::duration_cast<std::chrono::milliseconds>(b_end.at - answered);
  EXPECT_GT(talked, 4500ms) << "the end Asterisk recorded, 5 s after the answer";
  EXPECT_LT(b_end.at, restarted) << "not the restart's time";
  EXPECT_LT(talked, 7000ms);  // the fake's timers run late on a busy machine
  EXPECT_EQ(b_end.dial_status, "ANSWER");
  EXPECT_EQ(find(gone, LegRole::a, LegEventType::ended), nullptr) << "A is still up, alone in its bridge";
  second->hangup(find(gone, LegRole::a, LegEventType::dialing)->handle, HangupCause::normal(), nullptr);
  ASSERT_TRUE(run_until([&] { return find(gone, LegRole::a, LegEventType::ended) != nullptr; }, 5s));
  // The service has the end on disk: the record goes with the next B placed on that server.
  second->forget(gone);
  EXPECT_EQ(ari.stats().globals.count(record), 1u) << "nothing is sent for it by itself";
  second->originate({.call_id = "cb-next", .leg = LegRole::b, .number = PhoneNumber::parse("9002", test::as_dialed).value(),
                     .caller_id = PhoneNumber::parse("9001", test::as_dialed).value(), .caller_name = "Callback"},
                    nullptr);
  ASSERT_TRUE(run_until([&] { return find("cb-next", LegRole::b, LegEventType::answered) != nullptr; }, 5s));
  second->hangup(find("cb-next", LegRole::b, LegEventType::dialing)->handle, HangupCause::normal(), nullptr);
  ASSERT_TRUE(run_until([&] { return find("cb-next", LegRole::b, LegEventType::ended) != nullptr; }, 5s));
  const auto globals = ari.stats().globals;
  EXPECT_EQ(globals.count(record), 0u) << "deleted by the next B's hangup handler";
  EXPECT_EQ(globals.count("CB_END_cb-next"), 1u) << "that B's own record, until it is forgotten in turn";
  nothing_left();
  second.reset();
}

// --- inbound calls and digits (the ANI/DID triggers' primitives) ---------------------------

TEST_F(AriFlowTest, AnInboundCallGoesToTheRouteOfItsNumberIsAnsweredAndItsDigitsCollected) {
  connect();
  std::vector<InboundCall> other_calls, calls;
  auto any = engine->route_inbound({}, [&](const InboundCall& c) { other_calls.push_back(c); });
  auto mine = engine->route_inbound({.dialed = {"5000"}}, [&](const InboundCall& c) { calls.push_back(c); });
  // The same number from another access context is another route's.
  auto elsewhere = engine->route_inbound({.dialed = {"5000"}, .context = "callback-access-vip"},
                                         [&](const InboundCall& c) { other_calls.push_back(c); });
  ASSERT_FALSE(ari.inbound({.from = "1234", .to = "5000", .dtmf = "5551234#", .dtmf_delay_ms = 100,
                            .dtmf_interval_ms = 30}).empty());
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  EXPECT_TRUE(other_calls.empty()) << "the number's own route wins";
  EXPECT_EQ(calls[0].caller, "1234");
  EXPECT_EQ(calls[0].dialed, "5000");
  EXPECT_EQ(calls[0].context, "callback-access") << "the dialplan context, as the AMI engine reports it";
  std::optional<Status> answered;
  engine->answer(calls[0].channel, [&](Status s) { answered = s; });
  ASSERT_TRUE(run_until([&] { return answered.has_value(); }, 5s));
  ASSERT_TRUE(*answered) << answered->error().describe();
  std::optional<Result<Digits>> digits;
  engine->collect_digits(calls[0].channel,
                         {.max_digits = 15, .terminator = '#', .first_digit_timeout = 5s, .inter_digit_timeout = 3s,
                          .prompt = Prompt::announcement(Announcement::enter_number, "en")},
                         [&](Result<Digits> d) { digits = std::move(d); });
  ASSERT_TRUE(run_until([&] { return digits.has_value(); }, 10s));
  ASSERT_TRUE(*digits) << digits->error().describe();
  EXPECT_EQ((*digits)->digits, "5551234");
  EXPECT_EQ((*digits)->stop, Digits::Stop::terminator);
  std::vector<LegEvent> ends;
  auto events = engine->subscribe([&](const LegEvent& e) {
    if (e.type == LegEventType::ended && e.call_id.empty()) ends.push_back(e);
  });
  std::optional<Status> hung_up;
  engine->hangup(calls[0].channel, HangupCause::normal(), [&](Status s) { hung_up = s; });
  ASSERT_TRUE(run_until([&] { return !ends.empty() && hung_up.has_value(); }, 5s));
  EXPECT_TRUE(*hung_up);
  EXPECT_EQ(ends[0].handle, calls[0].channel);
  nothing_left();
}

TEST_F(AriFlowTest, DigitCollectionStopsAtMaxDigitsOrWhenTheCallerIsSilent) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({.dialed = {"5000", "5001"}}, [&](const InboundCall& c) { calls.push_back(c); });
  ari.inbound({.from = "1234", .to = "5000", .dtmf = "123456", .dtmf_delay_ms = 50, .dtmf_interval_ms = 20});
  ari.inbound({.from = "1235", .to = "5001", .dtmf = "", .dtmf_delay_ms = 50});
  test::expect_max_digits_and_first_digit_timeout(*this, calls);
  nothing_left();
}

TEST_F(AriFlowTest, AMissedCallIsRejectedBusyWithoutAnswerAndAnUnroutedOneWithCongestion) {
  connect();
  std::vector<InboundCall> calls;
  std::vector<LegEvent> ends;
  auto events = engine->subscribe([&](const LegEvent& e) {
    if (e.type == LegEventType::ended && e.call_id.empty()) ends.push_back(e);
  });
  auto route = engine->route_inbound({.dialed = {"5000"}}, [&](const InboundCall& c) { calls.push_back(c); });
  ari.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return !calls.empty(); }, 5s));
  std::optional<Status> rejected;
  engine->reject(calls[0].channel, HangupCause{17}, 100ms, [&](Status s) { rejected = s; });
  ASSERT_TRUE(run_until([&] { return rejected.has_value() && !ends.empty(); }, 5s));
  EXPECT_TRUE(*rejected);
  EXPECT_EQ(ends[0].cause, HangupCause{17});
  EXPECT_EQ(requests("POST /ari/channels/{id}/answer"), 0u) << "never answered: the caller pays nothing";
  EXPECT_EQ(requests("POST /ari/channels/{id}/ring"), 1u);
  // A number nobody routes is turned away, not left ringing.
  ari.inbound({.from = "1234", .to = "7777"});
  ASSERT_TRUE(run_until([&] { return ends.size() == 2; }, 5s));
  EXPECT_EQ(ends[1].cause, HangupCause{34});
  EXPECT_EQ(calls.size(), 1u);
  nothing_left();
}

TEST_F(AriFlowTest, OperationsOnAGoneChannelAnswerChannelGoneAndAnUnsubscribedRouteGetsNothing) {
  connect();
  std::vector<InboundCall> calls;
  auto route = engine->route_inbound({}, [&](const InboundCall& c) { calls.push_back(c); });
  route.reset();
  ari.inbound({.from = "1234", .to = "5000"});
  ASSERT_TRUE(run_until([&] { return requests("DELETE /ari/channels/{id}") == 1; }, 5s)) << "rejected: nobody takes it";
  nothing_left();
  EXPECT_TRUE(calls.empty());
  const Channel gone{"127.0.0.1:" + std::to_string(ari.port()), "no-such-channel"};
  std::vector<std::string> codes;
  engine->hangup(gone, HangupCause::normal(), [&](Status s) { codes.push_back(s ? "ok" : s.error().code); });
  engine->play(gone, Prompt::sound("callback-please-wait"), [&](Status s) { codes.push_back(s ? "ok" : s.error().code); });
  engine->answer(gone, [&](Status s) { codes.push_back(s ? "ok" : s.error().code); });
  engine->collect_digits(gone, {}, [&](Result<Digits> d) { codes.push_back(d ? "ok" : d.error().code); });
  ASSERT_TRUE(run_until([&] { return codes.size() == 4; }, 5s));
  for (const auto& code : codes) EXPECT_EQ(code, engine_errc::channel_gone);
}

}  // namespace

// The IVR: a request without a callee (an access number, an e-mail without "#B"). Once A
// answers, A hears "dial the number you want, then #"; the digits are read with the
// service's numbering plan, checked, authorized, and B is dialed as usual. The fake's
// phones key digits 1 s (10 ms here) after they answer (FakeAriOptions::phone_dtmf).
struct AriIvrTest : AriFlowTest {
  AriIvrTest()
      : AriFlowTest(0.01, 0, 0, test::ivr_phones()) {}
  void connect_ivr() {
    ServiceOptions options;
    options.ivr_first_digit_timeout = 300ms;  // a silent caller is given up on soon
    options.ivr_inter_digit_timeout = 300ms;
    connect(engine_options(), options);
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
};

TEST_F(AriIvrTest, TheCallerDialsTheNumberAfterAnsweringAndIsConnectedAndBilledForIt) {
  connect_ivr();
  billing.max_duration = 300s;
  const auto plays = requests("POST /ari/channels/{id}/play");
  const auto id = start_ivr("7002");  // keys 2002# as the real Asterisk's 7XXX phones do (ari-outbound-dtmf)
  EXPECT_TRUE(billing.authorized.empty()) << "nothing is reserved before B is known";
  check(*this, id,
        {.state = CallState::completed, .a_outcome = Outcome::normal, .b_outcome = Outcome::normal,
         .announcement = Announcement::partner_hangup, .a_disposition = Disposition::answered,
         .b_disposition = Disposition::answered});
  const CallEvent& end = finish(id);
  ASSERT_TRUE(end.call.request().callee.has_value());
  EXPECT_EQ(end.call.request().callee->digits(), "2002");
  EXPECT_EQ(end.outcome, "partner_hangup");
  ASSERT_EQ(billing.authorized.size(), 1u);
  EXPECT_EQ(billing.authorized[0].destination.digits(), "2002") << "B is authorized once A dialled it";
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  const auto rows = cdrs(id);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].dst, "2002");
  EXPECT_EQ(rows[0].src, "2002") << "A's record shows the number A was connected to";
  // "dial the number", "please wait", then "partner hung up".
  EXPECT_EQ(requests("POST /ari/channels/{id}/play") - plays, 3u);
  nothing_left();
}

TEST_F(AriIvrTest, AStarIsNotANumberSoTheCallerIsAskedOnceMore) {
  connect_ivr();
  const auto id = start_ivr("1102");
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::completed);
  ASSERT_TRUE(end.call.request().callee.has_value());
  EXPECT_EQ(end.call.request().callee->digits(), "2003");
  EXPECT_NE(log_text.str().find("only digits make a number (attempt 1 of 2)"), std::string::npos) << log_text.str();
  nothing_left();
}

TEST_F(AriIvrTest, NoUsableNumberAfterTwoTriesEndsWithCallFailedAndCostsNothing) {
  connect_ivr();
  for (const auto& c : test::ivr_give_ups) {
    SCOPED_TRACE(c.a);
    const auto plays = requests("POST /ari/channels/{id}/play");
    const auto id = start_ivr(c.a);
    test::check_ivr_gave_up(*this, id, c);
    const auto rows = cdrs(id);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].src, ServiceOptions{}.service_number.digits()) << "what A's phone showed";
    // Asked twice, then "call failed".
    EXPECT_EQ(requests("POST /ari/channels/{id}/play") - plays, 3u);
    if (c.a == "1107") {
      EXPECT_NE(log_text.str().find("A dialled more than 20 digits (attempt 1 of 2)"), std::string::npos) << log_text.str();
    }
  }
  nothing_left();
}

TEST_F(AriIvrTest, ANumberBillingRefusesIsNotDialedAndTheCallerHearsCallFailed) {
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
  nothing_left();
}

TEST_F(AriIvrTest, ACancelWhileTheCallerIsAskedEndsTheCall) {
  connect_ivr();
  const auto id = start_ivr("1103");
  ASSERT_TRUE(run_until([&] { return observer.reached(id, CallState::a_answered); }, 5s));
  ASSERT_TRUE(service->cancel(id));
  const CallEvent& end = finish(id);
  EXPECT_EQ(end.call.state(), CallState::canceled);
  EXPECT_TRUE(billing.authorized.empty());
  nothing_left();
}

// The access-number triggers (callback.trigger.ani, callback.trigger.did) on the ARI
// engine and its fake: the inbound call is rejected unanswered, then the caller is called
// back through the service (the IVR asks for B unless the number has a fixed one).
struct AccessTriggerTest : AriIvrTest {
  Currency cny = Currency::of("CNY").value();
  std::unique_ptr<trigger_access::AccessTrigger> trigger;
  std::vector<CallEvent> ends;
  struct Ends final : CallObserver {
    std::vector<CallEvent>* ends;
    void on_call_event(const CallEvent& e) override {
      if (is_final(e.call.state())) ends->push_back(e);
    }
  } ends_observer;

  void SetUp() override {
    AriIvrTest::SetUp();
    ends_observer.ends = &ends;
    auto add = [&](std::string id, std::string number, AccountStatus status, const char* balance) {
      ASSERT_TRUE(store->accounts().create({.id = std::move(id), .currency = cny,
                                            .balance = Money::parse(balance, cny).value(), .status = status,
                                            .caller_numbers = {PhoneNumber::parse(number, as_dialed).value()}}));
    };
    add("li", "1101", AccountStatus::active, "5.00");
    add("off", "1102", AccountStatus::disabled, "5.00");
    add("broke", "1103", AccountStatus::active, "0.00");
  }
  void TearDown() override {
    if (trigger) trigger->stop();
    io.poll();  // the stop runs on the engine's thread: its route goes before the engine
    AriIvrTest::TearDown();
  }
  void start_trigger(trigger_access::AccessOptions options) {
    connect_ivr();
    service->subscribe(ends_observer);
    options.ring = 100ms;
    options.callback_delay = 0ms;
    ASSERT_TRUE(trigger_access::validate(options, as_dialed)) << trigger_access::validate(options, as_dialed).error().describe();
    trigger = std::make_unique<trigger_access::AccessTrigger>(context, *engine, *store, as_dialed, std::move(options));
    trigger->start(*service);
  }
  trigger_access::AccessOptions ani(std::optional<Payer> anyone = std::nullopt) {
    trigger_access::AccessOptions o;
    o.numbers = {{.number = "5000", .mode = trigger_access::Mode::own, .payer = std::move(anyone)}};
    return o;
  }
  std::int64_t counted(const std::string& outcome) const {
    const auto counts = trigger->status().counts;
    auto it = counts.find(outcome);
    return it == counts.end() ? 0 : it->second;
  }
  // The inbound call from `from` to `to` rang, was rejected unanswered, and is gone.
  void ring(const std::string& from, const std::string& to) {
    const auto before = requests("POST /ari/channels/{id}/ring");
    ASSERT_FALSE(ari.inbound({.from = from, .to = to}).empty());
    ASSERT_TRUE(run_until([&] { return requests("POST /ari/channels/{id}/ring") > before; }, 5s));
  }
};

TEST_F(AccessTriggerTest, AMissedCallFromARegisteredCallerIsRejectedUnansweredThenCalledBackAndAskedForB) {
  start_trigger(ani());
  ring("1101", "5000");
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 10s)) << log_text.str();
  EXPECT_EQ(requests("POST /ari/channels/{id}/answer"), 0u) << "the caller pays nothing";
  const CallEvent& end = ends[0];
  EXPECT_EQ(end.call.state(), CallState::completed) << end.outcome;
  EXPECT_EQ(end.call.request().origin, Origin::ani);
  EXPECT_EQ(end.call.request().caller.digits(), "1101");
  ASSERT_TRUE(end.call.request().callee.has_value());
  EXPECT_EQ(end.call.request().callee->digits(), "2002") << "dialled after the callback answered";
  EXPECT_EQ(std::get<AccountId>(end.call.request().payer).value, "li");
  EXPECT_EQ(end.call.request().metadata.at("access_number"), "5000");
  EXPECT_EQ(end.outcome, "partner_hangup");
  EXPECT_EQ(counted("accepted"), 1);
  nothing_left();
}

TEST_F(AccessTriggerTest, CallersWhoMayNotBeCalledBackAreRejectedAndNotCalled) {
  start_trigger(ani());
  const auto originates = requests("POST /ari/channels");
  // Decided before the reject: once each call is rejected, nothing more is coming.
  for (const char* caller : {"1102", "1103", "1104"}) ring(caller, "5000");  // disabled, broke, unknown
  ASSERT_TRUE(run_until([&] { return counted("refused") == 3; }, 5s));
  ASSERT_FALSE(ari.inbound({.from = "", .to = "5000"}).empty());  // withheld
  ASSERT_TRUE(run_until([&] { return counted("refused") == 4; }, 5s));
  nothing_left();
  EXPECT_EQ(requests("POST /ari/channels") - originates, 0u) << "nobody was called";
  EXPECT_EQ(requests("POST /ari/channels/{id}/answer"), 0u);
  EXPECT_EQ(service->in_flight(), 0u);
  const std::string text = log_text.str();
  EXPECT_NE(text.find("account off of caller 1102 is disabled"), std::string::npos) << text;
  EXPECT_NE(text.find("account broke of caller 1103 has nothing to spend"), std::string::npos) << text;
  EXPECT_NE(text.find("caller 1104 is not registered to any account"), std::string::npos) << text;
  EXPECT_NE(text.find("a withheld caller: nobody to call back"), std::string::npos) << text;
}

TEST_F(AccessTriggerTest, ACampaignCallsBackAnyoneAndARingWhileBeingCalledBackIsIgnored) {
  start_trigger(ani(CampaignId{"free"}));
  ring("1105", "5000");  // no account: the campaign pays
  ASSERT_TRUE(run_until([&] { return service->in_flight() == 1; }, 5s));
  ring("1105", "5000");  // again, while the first callback runs
  ASSERT_TRUE(run_until([&] { return counted("ignored") == 1; }, 5s));
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 10s));
  EXPECT_EQ(ends.size(), 1u);
  EXPECT_EQ(std::get<CampaignId>(ends[0].call.request().payer).value, "free");
  EXPECT_EQ(ends[0].call.request().caller.digits(), "1105");
  EXPECT_EQ(ends[0].outcome, "no_number") << "1105 keys its own number: not a callee";
  EXPECT_NE(log_text.str().find("caller 1105 is already being called back"), std::string::npos);
  nothing_left();
}

TEST_F(AccessTriggerTest, ADidWithAFixedDestinationConnectsItWithoutAskingAndAnUnmappedOneIsRejected) {
  trigger_access::AccessOptions o;
  o.trigger = "did";
  o.origin = Origin::did;
  o.numbers = {{.number = "5001", .mode = trigger_access::Mode::fixed, .payer = AccountId{"li"}, .destination = "2006"}};
  start_trigger(std::move(o));
  ring("1104", "5001");  // anyone: the number's account pays
  ASSERT_TRUE(run_until([&] { return !ends.empty(); }, 10s)) << log_text.str();
  const CallEvent& end = ends[0];
  EXPECT_EQ(end.call.request().origin, Origin::did);
  EXPECT_EQ(end.call.request().callee->digits(), "2006");
  EXPECT_EQ(std::get<AccountId>(end.call.request().payer).value, "li");
  EXPECT_EQ(end.outcome, "partner_hangup");
  ASSERT_EQ(billing.authorized.size(), 1u);
  EXPECT_EQ(billing.authorized[0].destination.digits(), "2006");
  // A number with no mapping: the engine turns it away (congestion); nobody is called.
  const auto originates = requests("POST /ari/channels");
  const auto deletes = requests("DELETE /ari/channels/{id}");
  ASSERT_FALSE(ari.inbound({.from = "1101", .to = "5999"}).empty());
  ASSERT_TRUE(run_until([&] { return requests("DELETE /ari/channels/{id}") > deletes; }, 5s));
  nothing_left();
  EXPECT_EQ(requests("POST /ari/channels"), originates);
  EXPECT_EQ(counted("accepted"), 1);
}

TEST(AccessTriggerConfig, ABadTableIsRefusedNamingTheEntry) {
  const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0"};
  using trigger_access::AccessNumber;
  using trigger_access::Mode;
  struct Case {
    std::vector<AccessNumber> numbers;
    std::string field;
  };
  for (const Case& c : {
           Case{{}, "numbers"},
           Case{{{.number = "50a0"}}, "numbers.50a0"},
           Case{{{.number = "5000"}, {.number = "5000"}}, "numbers.5000"},
           Case{{{.number = "5000", .mode = Mode::ivr}}, "numbers.5000"},  // nobody pays
           Case{{{.number = "5000", .mode = Mode::fixed, .payer = CampaignId{"x"}, .destination = "110"}},
                "numbers.5000.destination"},  // an emergency number
           Case{{{.number = "5000", .mode = Mode::own, .payer = {}, .destination = "13900139000"}},
                "numbers.5000.destination"},
           Case{{{.number = "5000", .mode = Mode::own, .payer = {}, .destination = {}, .language = "../x"}},
                "numbers.5000.language"},
       }) {
    trigger_access::AccessOptions options;
    options.numbers = c.numbers;
    auto ok = trigger_access::validate(options, plan);
    ASSERT_FALSE(ok) << c.field;
    EXPECT_EQ(ok.error().field, c.field) << ok.error().message;
  }
}
