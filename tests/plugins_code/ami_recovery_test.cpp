// The AMI engine against the Asterisk fake when it loses sight of calls (issue 10, items 1
// and 3): a connection lost with a call bridged (ended meanwhile, still up, never back, no
// record), and a restart of this process (a second engine that recover()s the calls the
// first placed). The engine's leg events are checked as the service gets them; the
// tracker's waits run on a ManualClock, so "the grace ran out" is a step of the test and
// "talked 3 s" is exact, while the sockets and the fake run in real time.
#include "ami_engine.hpp"
#include "fake_asterisk.hpp"
#include "test_context.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <tuple>
#include <sstream>
#include <thread>

using namespace callback;
using namespace std::chrono_literals;

namespace {

const NumberingPlan as_dialed{.country_code = "", .trunk_prefix = "", .international_prefixes = {}};

struct Recorder {
  std::vector<LegEvent> events;
  Subscription subscription;
  void listen_to(Engine& engine) {
    subscription = engine.subscribe([this](const LegEvent& event) { events.push_back(event); });
  }
  // The leg's channel handle, from its first event that named one.
  [[nodiscard]] Channel handle(const std::string& id, LegRole leg) const {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && !e.handle.empty()) return e.handle;
    }
    return {};
  }

  [[nodiscard]] std::size_t count(const std::string& id, LegRole leg, LegEventType type) const {
    return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const LegEvent& e) {
      return e.call_id == id && e.leg == leg && e.type == type;
    }));
  }
  [[nodiscard]] const LegEvent* find(const std::string& id, LegRole leg, LegEventType type) const {
    for (const auto& e : events) {
      if (e.call_id == id && e.leg == leg && e.type == type) return &e;
    }
    return nullptr;
  }
  [[nodiscard]] bool ended(const std::string& id) const { return find(id, LegRole::a, LegEventType::ended) != nullptr; }
};

// The record's fields: DIALSTATUS|HANGUPCAUSE|ANSWEREDTIME|LimitReached|end (or ||h).
std::vector<std::string> fields(const std::string& record) {
  std::vector<std::string> out;
  std::stringstream in(record);
  for (std::string f; std::getline(in, f, '|');) out.push_back(f);
  return out;
}

struct RecoveryTest : ::testing::Test, test::TestContext {
  // 1 s of Asterisk time is 100 ms here: B 2XXX hangs up 0.5 s after it answers.
  fake::FakeAsterisk asterisk{{.time_scale = 0.1, .recordings = CALLBACK_ASTERISK_RECORDINGS}};
  Recorder observer;
  std::unique_ptr<engine_ami::AmiEngine> engine;

  void SetUp() override { asterisk.start(); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "engine log:\n" << log_text.str();
  }

  [[nodiscard]] std::string server() const { return "127.0.0.1:" + std::to_string(asterisk.port()); }

  engine_ami::AmiOptions options() const {
    engine_ami::AmiOptions o;
    o.servers = {server()};
    o.secret = "callbacksecret";
    o.reconnect_min = 20ms;
    o.reconnect_max = 100ms;
    o.tracking.lost_call_grace = 2s;  // on the ManualClock
    o.tracking.cdr_wait = 2s;
    o.tracking.record_wait = 2s;
    return o;
  }

  std::unique_ptr<engine_ami::AmiEngine> make_engine(Recorder& to) {
    auto e = std::make_unique<engine_ami::AmiEngine>(context, options());
    to.listen_to(*e);
    return e;
  }
  void start(engine_ami::AmiEngine& e) {
    e.start();
    ASSERT_TRUE(run_until([&] { return e.status().servers.at(0).connected; }, 5s)) << log_text.str();
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    return test::run_until(io, done, timeout);
  }

  void originate(engine_ami::AmiEngine& e, const std::string& id, std::string_view a, std::string_view b) {
    const auto pa = PhoneNumber::parse(a, as_dialed).value();
    const auto pb = PhoneNumber::parse(b, as_dialed).value();
    e.originate({.call_id = id, .leg = LegRole::a, .number = pa, .caller_id = pb, .ring_timeout = 30s,
                 .connect = Connect{.number = pb, .caller_id = pa, .limit = 300s}},
                [](Result<Channel>) {});
  }
  void until_bridged(const Recorder& r, const std::string& id) {
    ASSERT_TRUE(run_until([&] { return r.find(id, LegRole::b, LegEventType::connected) != nullptr; }, 10s));
  }
  // The AMI connection breaks (garbage), Asterisk keeps its calls and takes no new login.
  void lose_connection(engine_ami::AmiEngine& e) {
    asterisk.set_accepting(false);
    asterisk.send_raw_to_all("garbage\r\n\r\n");
    ASSERT_TRUE(run_until([&] { return !e.status().servers.at(0).connected; }, 5s));
  }
  // Asterisk takes logins again; the engine's reconnect backoff (on the test's Clock) ends.
  // A connect attempt already under way fails first; each round lets it, then ends the
  // next backoff (at most reconnect_max of the test's time a round).
  void back_again() {
    asterisk.set_accepting(true);
    const auto connected = [&] { return engine->status().servers.at(0).connected; };
    for (int round = 0; round < 10 && !connected(); ++round) {
      clock.advance(options().reconnect_max);
      (void)run_until(connected, 500ms);
    }
    ASSERT_TRUE(connected()) << log_text.str();
  }
  // Ended, each leg exactly once; B's end.
  const LegEvent& ends_once(const Recorder& r, const std::string& id, bool b_reported = true) {
    EXPECT_TRUE(run_until([&] { return r.ended(id); }, 10s)) << id << " did not end";
    EXPECT_EQ(r.count(id, LegRole::a, LegEventType::ended), 1u);
    EXPECT_EQ(r.count(id, LegRole::b, LegEventType::ended), b_reported ? 1u : 0u);
    static const LegEvent none{};
    const auto* b = r.find(id, LegRole::b, LegEventType::ended);
    return b != nullptr ? *b : none;
  }
  bool sent(std::string_view action) const {
    const auto all = asterisk.actions();
    return std::any_of(all.begin(), all.end(), [&](const std::string& a) { return a.find(action) != std::string::npos; });
  }
};

TEST_F(RecoveryTest, BridgedCallThatEndsDuringTheOutageIsBilledFromItsRecordOnceWeAreBack) {
  engine = make_engine(observer);
  ASSERT_NO_FATAL_FAILURE(start(*engine));
  originate(*engine, "cb-a", "1001", "2001");  // B hangs up 5 s after answering
  ASSERT_NO_FATAL_FAILURE(until_bridged(observer, "cb-a"));
  ASSERT_NO_FATAL_FAILURE(lose_connection(*engine));
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 10s));  // it ended on Asterisk meanwhile
  const auto record = asterisk.db_get("callback", "cb-a");
  ASSERT_TRUE(record) << "the dialplan's record";
  const auto f = fields(*record);
  ASSERT_EQ(f.size(), 5u) << *record;
  EXPECT_FALSE(observer.ended("cb-a"));
  ASSERT_NO_FATAL_FAILURE(back_again());
  const LegEvent& b = ends_once(observer, "cb-a");
  EXPECT_TRUE(sent("Action: DBGet\r\nActionID: dbget-cb-a\r\nFamily: callback\r\nKey: cb-a\r\n"));
  EXPECT_TRUE(b.unobserved);
  ASSERT_TRUE(observer.ended("cb-a"));
  EXPECT_TRUE(observer.find("cb-a", LegRole::a, LegEventType::ended)->unobserved);
  EXPECT_EQ(b.dial_status, f[0]);
  EXPECT_EQ(b.cause.code(), std::stoi(f[1]));
  EXPECT_EQ(b.billsec, std::chrono::seconds(std::stoi(f[2]))) << "the record's ANSWEREDTIME: " << *record;
  EXPECT_TRUE(b.far_end_hung_up);
  EXPECT_FALSE(b.limit_reached);
  // Read, so deleted once the service says it has the end on disk.
  EXPECT_TRUE(asterisk.db_get("callback", "cb-a")) << "kept until the service has the end on disk";
  engine->forget("cb-a");
  EXPECT_TRUE(run_until([&] { return !asterisk.db_get("callback", "cb-a"); }, 5s));
}

TEST_F(RecoveryTest, LostAndNeverBackIsBilledUpToTheLossNotTheGrace) {
  engine = make_engine(observer);
  ASSERT_NO_FATAL_FAILURE(start(*engine));
  originate(*engine, "cb-b", "1001", "1002");  // stays up
  ASSERT_NO_FATAL_FAILURE(until_bridged(observer, "cb-b"));
  clock.advance(3s);  // talking
  ASSERT_NO_FATAL_FAILURE(lose_connection(*engine));
  clock.advance(1999ms);
  EXPECT_FALSE(observer.ended("cb-b")) << "ended before lost_call_grace";
  clock.advance(1ms);
  const LegEvent& b = ends_once(observer, "cb-b");
  EXPECT_EQ(b.cause, HangupCause::engine_lost());
  EXPECT_TRUE(b.unobserved);
  EXPECT_EQ(b.billsec, std::optional(3s)) << "3 s of talk; the 2 s grace is not talk";
  ASSERT_TRUE(observer.ended("cb-b"));
  EXPECT_EQ(observer.find("cb-b", LegRole::a, LegEventType::ended)->billsec, std::optional(3s));
}

TEST_F(RecoveryTest, NoRecordAfterTheReconnectEndsAsEngineLostBilledUpToTheLoss) {
  engine = make_engine(observer);
  ASSERT_NO_FATAL_FAILURE(start(*engine));
  originate(*engine, "cb-c", "1001", "1003");
  ASSERT_NO_FATAL_FAILURE(until_bridged(observer, "cb-c"));
  clock.advance(2s);
  ASSERT_NO_FATAL_FAILURE(lose_connection(*engine));
  asterisk.close_all_connections();  // then Asterisk dies: the call goes with no record
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 5s));
  ASSERT_FALSE(asterisk.db_get("callback", "cb-c"));
  clock.advance(1s);  // the outage, within the grace
  ASSERT_NO_FATAL_FAILURE(back_again());
  const LegEvent& b = ends_once(observer, "cb-c");
  EXPECT_TRUE(sent("Action: DBGet\r\nActionID: dbget-cb-c\r\n"));
  EXPECT_EQ(b.cause, HangupCause::engine_lost());
  EXPECT_TRUE(b.unobserved);
  EXPECT_EQ(b.billsec, std::optional(2s)) << "up to the loss, not to the reconnect";
}

TEST_F(RecoveryTest, RecoverFollowsACallStillUpToItsEndAndBillsIt) {
  // The first engine places the call and goes away (a crash: no stop, no hangup); Asterisk
  // keeps the call. A second engine, as after a restart, is told of it.
  Recorder before;
  auto first = make_engine(before);
  ASSERT_NO_FATAL_FAILURE(start(*first));
  originate(*first, "cb-d", "1001", "1004");  // stays up
  ASSERT_NO_FATAL_FAILURE(until_bridged(before, "cb-d"));
  first.reset();
  ASSERT_EQ(asterisk.active_calls(), 1u);
  EXPECT_FALSE(before.ended("cb-d"));

  engine = make_engine(observer);
  engine->recover({{.call_id = "cb-d", .server = server(), .limit = 300s, .b_dialed = true}});
  EXPECT_FALSE(observer.ended("cb-d"));
  ASSERT_NO_FATAL_FAILURE(start(*engine));
  // The listing says A is up and B is in the bridge.
  ASSERT_NO_FATAL_FAILURE(until_bridged(observer, "cb-d"));
  EXPECT_EQ(observer.count("cb-d", LegRole::a, LegEventType::answered), 1u);
  const auto* connected = observer.find("cb-d", LegRole::b, LegEventType::connected);
  ASSERT_NE(connected, nullptr);
  EXPECT_TRUE(connected->channel.starts_with("Local/1004@phones-")) << connected->channel;
  EXPECT_FALSE(observer.ended("cb-d"));
  // Followed: a cancel reaches the call, and its end is seen, with Asterisk's billing.
  ASSERT_FALSE(observer.handle("cb-d", LegRole::a).empty());
  engine->hangup(observer.handle("cb-d", LegRole::a), HangupCause{16}, [](Status) {});
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 5s));
  const LegEvent& b = ends_once(observer, "cb-d");
  EXPECT_FALSE(b.unobserved);
  EXPECT_EQ(b.cause.code(), 16);
  EXPECT_EQ(b.dial_status, "ANSWER");
  ASSERT_TRUE(b.billsec);
  EXPECT_GT(*b.billsec, 0s) << "B's Cdr";
  EXPECT_TRUE(asterisk.db_get("callback", "cb-d")) << "kept until the service has the end on disk";
  engine->forget("cb-d");
  EXPECT_TRUE(run_until([&] { return !asterisk.db_get("callback", "cb-d"); }, 5s)) << "its record deleted";
}

TEST_F(RecoveryTest, RecoverOfACallThatEndedWithNoEngineEndsItFromItsRecordOnAnyServer) {
  Recorder before;
  auto first = make_engine(before);
  ASSERT_NO_FATAL_FAILURE(start(*first));
  originate(*first, "cb-e", "1001", "2001");  // B hangs up 5 s after answering
  ASSERT_NO_FATAL_FAILURE(until_bridged(before, "cb-e"));
  first.reset();
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 10s));  // ended with no engine there
  const auto record = asterisk.db_get("callback", "cb-e");
  ASSERT_TRUE(record);
  const auto f = fields(*record);
  ASSERT_EQ(f.size(), 5u) << *record;

  engine = make_engine(observer);
  // Where it was placed is not known, nor that B was dialed: the record says.
  engine->recover({{.call_id = "cb-e", .server = "", .limit = 300s, .b_dialed = false}});
  ASSERT_NO_FATAL_FAILURE(start(*engine));
  const LegEvent& b = ends_once(observer, "cb-e");
  EXPECT_TRUE(b.unobserved);
  ASSERT_TRUE(observer.ended("cb-e"));
  EXPECT_TRUE(observer.find("cb-e", LegRole::a, LegEventType::ended)->unobserved);
  EXPECT_EQ(b.server, server());
  EXPECT_EQ(b.dial_status, "ANSWER");
  EXPECT_EQ(b.billsec, std::chrono::seconds(std::stoi(f[2]))) << *record;
  EXPECT_TRUE(b.far_end_hung_up);
  EXPECT_TRUE(asterisk.db_get("callback", "cb-e")) << "kept until the service has the end on disk";
  engine->forget("cb-e");
  EXPECT_TRUE(run_until([&] { return !asterisk.db_get("callback", "cb-e"); }, 5s)) << "its record deleted";
}

TEST_F(RecoveryTest, RecoverOfACallNoServerKnowsEndsAsLostWithNoTalk) {
  engine = make_engine(observer);
  ASSERT_NO_FATAL_FAILURE(start(*engine));  // connected first: recover() lists the channels at once
  engine->recover({{.call_id = "cb-g1", .server = server(), .limit = 60s, .b_dialed = true},
                   {.call_id = "cb-g2", .server = "10.0.0.9:5038", .limit = 60s, .b_dialed = false}});
  for (const std::string id : {"cb-g1", "cb-g2"}) {
    SCOPED_TRACE(id);
    const bool b_dialed = id == "cb-g1";
    const LegEvent& b = ends_once(observer, id, b_dialed);
    const auto* a = observer.find(id, LegRole::a, LegEventType::ended);
    ASSERT_NE(a, nullptr);
    for (const auto* e : {a, b_dialed ? &b : a}) {
      EXPECT_EQ(e->cause, HangupCause::engine_lost());
      EXPECT_TRUE(e->unobserved);
      EXPECT_EQ(e->billsec, std::optional(0s));
    }
    EXPECT_TRUE(sent("Action: DBGet\r\nActionID: dbget-" + id + "\r\n"));
  }
  EXPECT_TRUE(sent("Action: CoreShowChannels\r\n"));
}

TEST_F(RecoveryTest, ANormalEndDeletesTheRecordAndItsAnswerIsIgnored) {
  engine = make_engine(observer);
  ASSERT_NO_FATAL_FAILURE(start(*engine));
  originate(*engine, "cb-f", "1001", "3001");  // B busy
  ASSERT_TRUE(run_until([&] { return asterisk.active_calls() == 0 && sent("Action: Originate"); }, 10s));
  if (!run_until([&] { return observer.ended("cb-f"); }, 1s)) clock.advance(2s);  // a Cdr late: cdr_wait
  const LegEvent& b = ends_once(observer, "cb-f");
  EXPECT_FALSE(b.unobserved);
  EXPECT_EQ(b.cause.code(), 17);
  EXPECT_FALSE(sent("Action: DBDel")) << "not before the service has the end on disk";
  engine->forget("cb-f");
  engine->forget("cb-f");  // twice, or for a call it does not know: nothing more
  engine->forget("cb-unknown");
  EXPECT_TRUE(run_until([&] { return sent("Action: DBDel\r\nActionID: dbdel-cb-f\r\nFamily: callback\r\nKey: cb-f\r\n"); },
                        5s));
  EXPECT_TRUE(run_until([&] { return !asterisk.db_get("callback", "cb-f"); }, 5s)) << "the record stays for ever";
  // Its "Key deleted successfully" changed nothing: the next call goes as usual.
  originate(*engine, "cb-f2", "1001", "3002");
  ASSERT_TRUE(run_until([&] { return asterisk.active_calls() == 0 && sent("ActionID: cb-f2\r\n"); }, 10s));
  if (!run_until([&] { return observer.ended("cb-f2"); }, 1s)) clock.advance(2s);
  EXPECT_EQ(ends_once(observer, "cb-f2").cause.code(), 17);
  EXPECT_TRUE(engine->status().servers.at(0).connected);
}

// By hand, against a real Asterisk with the project's dialplan (tests/README.md, "a lost AMI
// connection"): CALLBACK_REAL_AMI=127.0.0.1:5038 build/bin/ami_recovery_tests
// --gtest_filter=RealAsterisk.*  An engine places two callbacks and goes away with both
// bridged; while it is away one ends (B 2XXX hangs up 5 s after answering); a second engine
// recover()s both.
TEST(RealAsterisk, RecoverFollowsTheCallStillUpAndEndsTheOtherFromItsRecord) {
  const char* address = std::getenv("CALLBACK_REAL_AMI");
  if (address == nullptr) GTEST_SKIP() << "set CALLBACK_REAL_AMI=host:port to run against a real Asterisk";
  test::TestContext t;
  engine_ami::AmiOptions o;
  o.servers = {address};
  o.secret = "callbacksecret";
  auto run_until = [&](const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    return test::run_until(t.io, done, timeout);
  };
  const auto suffix = std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'000);
  const std::string up = "cb-real-up-" + suffix, gone = "cb-real-gone-" + suffix;
  Recorder before, after;
  auto first = std::make_unique<engine_ami::AmiEngine>(t.context, o);
  before.listen_to(*first);
  first->start();
  ASSERT_TRUE(run_until([&] { return first->status().servers.at(0).connected; }, 10s)) << t.log_text.str();
  for (const auto& [id, a, b] : {std::tuple{up, "9001", "1001"}, std::tuple{gone, "9002", "2002"}}) {
    const auto pa = PhoneNumber::parse(a, as_dialed).value();
    const auto pb = PhoneNumber::parse(b, as_dialed).value();
    first->originate({.call_id = id, .leg = LegRole::a, .number = pa, .caller_id = pb, .ring_timeout = 30s,
                      .connect = Connect{.number = pb, .caller_id = pa, .limit = 60s}, .language = "en"},
                     [](Result<Channel>) {});
  }
  ASSERT_TRUE(run_until([&] {
    return before.find(up, LegRole::b, LegEventType::connected) && before.find(gone, LegRole::b, LegEventType::connected);
  }, 20s)) << t.log_text.str();
  first.reset();  // the crash
  // The outage: B of `gone` hangs up 5 s after it answered. (No engine: nothing to run.)
  std::this_thread::sleep_for(8s);
  auto second = std::make_unique<engine_ami::AmiEngine>(t.context, o);
  after.listen_to(*second);
  second->recover({{.call_id = up, .server = address, .limit = 60s, .b_dialed = true},
                   {.call_id = gone, .server = "", .limit = 60s, .b_dialed = true}});
  second->start();
  ASSERT_TRUE(run_until([&] { return after.ended(gone) && after.find(up, LegRole::b, LegEventType::connected); }, 15s))
      << t.log_text.str();
  const auto* gone_b = after.find(gone, LegRole::b, LegEventType::ended);
  ASSERT_NE(gone_b, nullptr);
  EXPECT_TRUE(gone_b->unobserved);
  EXPECT_EQ(gone_b->dial_status, "ANSWER");
  EXPECT_TRUE(gone_b->far_end_hung_up);
  ASSERT_TRUE(gone_b->billsec);
  EXPECT_GE(*gone_b->billsec, 5s) << "ANSWEREDTIME: from A's answer";
  EXPECT_FALSE(after.ended(up));
  second->hangup(after.handle(up, LegRole::a), HangupCause{16}, [](Status) {});
  ASSERT_TRUE(run_until([&] { return after.ended(up); }, 20s)) << t.log_text.str();
  const auto* up_b = after.find(up, LegRole::b, LegEventType::ended);
  ASSERT_NE(up_b, nullptr);
  EXPECT_FALSE(up_b->unobserved);
  ASSERT_TRUE(up_b->billsec);
  EXPECT_GE(*up_b->billsec, 8s) << "B's Cdr: it talked through the 8 s outage";
  std::cout << "[ info ] " << gone << ": B billsec " << gone_b->billsec->count() << " s (record); " << up
            << ": B billsec " << up_b->billsec->count() << " s (Cdr)" << std::endl;
  second->stop();
  t.io.run_for(100ms);
}

}  // namespace
