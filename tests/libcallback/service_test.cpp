// CallbackService on its own, with a scripted engine and a clock the test moves.
#include "recording_billing.hpp"
#include "test_context.hpp"

#include <callback/json.hpp>

#include <boost/asio/post.hpp>
#include <callback_internal/callback_service.hpp>

#include <gtest/gtest.h>

#include <sstream>

using namespace callback;
using namespace std::chrono_literals;

namespace {

const NumberingPlan plan{.country_code = "", .trunk_prefix = "", .international_prefixes = {}};

// Records what the service asks and answers each operation ok (through the io_context,
// as real engines do); the test plays the engine's part for leg events by calling
// service.on_leg_event itself. With `steps` it offers only the step flow.
class ScriptedEngine final : public Engine {
 public:
  bool steps = false;
  std::vector<OriginateRequest> originated;
  std::vector<std::pair<std::string, LegRole>> hung_up;
  std::vector<std::string> operations;  // "play A callback-please-wait zh", "bridge", "limit 60000/20000/20000"
  std::optional<Error> fail_bridge;
  boost::asio::io_context* io = nullptr;

  static Channel channel(const std::string& id, LegRole leg) {
    return {"scripted", id + (leg == LegRole::a ? "/a" : "/b")};
  }
  Capabilities capabilities() const override {
    return steps ? Capabilities{.step_flow = true} : Capabilities{.dialplan_flow = true};
  }
  Subscription subscribe(std::function<void(const LegEvent&)> on_event) override {
    return subscribers.add(std::move(on_event));
  }
  Subscription route_inbound(InboundRoute, std::function<void(const InboundCall&)>) override { return {}; }
  void start() override {}
  void stop() override {}
  EngineStatus status() const override { return {}; }
  void originate(const OriginateRequest& request, Completion<Channel> placed) override {
    originated.push_back(request);
    later([placed, c = channel(request.call_id, request.leg)] { placed(c); });
  }
  void hangup(const Channel& c, HangupCause, StatusCompletion done) override {
    const auto slash = c.id.rfind('/');
    hung_up.emplace_back(c.id.substr(0, slash), c.id.substr(slash + 1) == "a" ? LegRole::a : LegRole::b);
    operations.push_back("hangup " + leg_name(c));
    later([done] { done(ok_status()); });
  }
  void answer(const Channel&, StatusCompletion done) override { later([done] { done(ok_status()); }); }
  void reject(const Channel&, HangupCause, std::chrono::milliseconds, StatusCompletion done) override {
    later([done] { done(ok_status()); });
  }
  void play(const Channel& c, const Prompt& prompt, StatusCompletion done) override {
    operations.push_back("play " + leg_name(c) + " " + prompt.name + " " + prompt.language);
    later([done] { done(ok_status()); });
  }
  void bridge(const Channel& a, const Channel& b, StatusCompletion done) override {
    operations.push_back("bridge " + leg_name(a) + " " + leg_name(b));
    later([done, fail = fail_bridge]() { fail ? done(*fail) : done(ok_status()); });
  }
  void set_time_limit(const Channel& warn, const Channel&, const TimeLimit& l, StatusCompletion done) override {
    operations.push_back("limit " + leg_name(warn) + " " + std::to_string(l.limit.count()) + "/" +
                         std::to_string(l.warning_before.count()) + "/" + std::to_string(l.warning_repeat.count()));
    later([done] { done(ok_status()); });
  }
  void collect_digits(const Channel&, const DigitRequest&, Completion<Digits> done) override {
    later([done] { done(Digits{}); });
  }

 private:
  static std::string leg_name(const Channel& c) { return c.id.ends_with("/a") ? "A" : c.id.ends_with("/b") ? "B" : c.id; }
  void later(std::function<void()> f) { boost::asio::post(*io, std::move(f)); }
  Subscribers<std::function<void(const LegEvent&)>> subscribers;
};

// A store that keeps CDRs in memory (the SQLite one is tested on its own).
class MemoryStore final : public Store, CdrStore, AccountStore, LedgerStore {
 public:
  std::vector<Cdr> rows;
  int failures_left = 0;  // the next appends fail (a locked or full disk)
  CdrStore& cdrs() override { return *this; }
  AccountStore& accounts() override { return *this; }
  LedgerStore& ledger() override { return *this; }
  int schema_version() const override { return 0; }
  Status append(std::span<Cdr> cdrs) override {
    if (failures_left > 0) {
      --failures_left;
      return Error{"store_failed", "database is locked", {}};
    }
    rows.insert(rows.end(), cdrs.begin(), cdrs.end());
    return ok_status();
  }
  using CdrStore::append;
  Status query(const CdrQuery&, const std::function<bool(const Cdr&)>&) override { return ok_status(); }
  Status create(const Account&) override { return ok_status(); }
  Result<std::optional<Account>> find(const std::string&) override { return std::optional<Account>{}; }
  Result<std::vector<Account>> list() override { return std::vector<Account>{}; }
  Status set_status(const std::string&, AccountStatus) override { return ok_status(); }
  Result<LedgerEntry> post(const LedgerEntry& e) override { return e; }
  Result<std::vector<LedgerEntry>> entries(const std::string&, std::size_t) override {
    return std::vector<LedgerEntry>{};
  }
};

class Events final : public CallObserver {
 public:
  std::vector<CallEvent> seen;
  void on_call_event(const CallEvent& e) override { seen.push_back(e); }
};

struct ServiceTest : ::testing::Test, test::TestContext {
  ScriptedEngine engine;
  MemoryStore store;
  test::RecordingBilling billing;
  Events events;
  std::unique_ptr<CallbackService> service;

  void make(ServiceOptions options = {}, Billing* with_billing = nullptr) {
    engine.io = &io;
    service = std::make_unique<CallbackService>(context, engine, with_billing, store, std::move(options));
    service->subscribe(events);
  }
  CallbackRequest request(Payer payer = AccountId{"123"}) {
    return {.caller = PhoneNumber::parse("1001", plan).value(), .callee = PhoneNumber::parse("1002", plan).value(),
            .payer = std::move(payer)};
  }
  void leg(const std::string& id, LegRole role, LegEventType type, HangupCause cause = {}) {
    service->on_leg_event({.call_id = id, .leg = role, .type = type, .at = clock.now(),
                           .handle = ScriptedEngine::channel(id, role), .cause = cause});
    pump();
  }
  // Billing's answers come back through the io_context: run what is ready.
  void pump() {
    io.restart();
    io.poll();
  }
  std::string start(const CallbackRequest& r) {
    auto id = service->start(r);
    EXPECT_TRUE(id) << id.error().describe();
    pump();
    return id ? *id : std::string();
  }
};

TEST_F(ServiceTest, TheSeedsFreeCampaignLimitsTheCallToFiveMinutesWithWarnings) {
  ServiceOptions options;
  options.campaigns["free"] = CampaignLimits{};  // 300 s, warning 20 s, every 20 s
  make(options);
  start(request(CampaignId{"free"}));
  ASSERT_EQ(engine.originated.size(), 1u);
  const auto& o = engine.originated[0];
  ASSERT_TRUE(o.connect);
  EXPECT_EQ(o.connect->limit, 300s);
  EXPECT_EQ(o.connect->warning_before, 20s);
  EXPECT_EQ(o.connect->warning_repeat, 20s);
  EXPECT_EQ(o.caller_id.digits(), "1002");           // A sees B's number
  EXPECT_EQ(o.connect->caller_id.digits(), "1001");  // B sees A's
}

TEST_F(ServiceTest, AccountCallsNeedBillingAndUnknownCampaignsAreRefused) {
  make();
  auto account = service->start(request());
  ASSERT_FALSE(account);
  EXPECT_EQ(account.error().code, "billing_unavailable");
  auto campaign = service->start(request(CampaignId{"nope"}));
  ASSERT_FALSE(campaign);
  EXPECT_EQ(campaign.error().code, "unknown_campaign");
  EXPECT_TRUE(engine.originated.empty());
}

TEST_F(ServiceTest, LimitIsTheSmallestOfBillingRequestAndMaximum) {
  ServiceOptions options;
  options.max_duration = 1h;
  make(options, &billing);
  billing.max_duration = 50min;  // the seed: 5.00 at 0.10/min
  auto r = request();
  start(r);
  ASSERT_EQ(engine.originated.size(), 1u);
  EXPECT_EQ(engine.originated.back().connect->limit, 50min);
  r.limit = 2min;
  start(r);
  ASSERT_EQ(engine.originated.size(), 2u);
  EXPECT_EQ(engine.originated.back().connect->limit, 2min);
}

TEST_F(ServiceTest, TheRequestsLanguageIsWhatTheEngineSetsOnLegA) {
  make({}, &billing);
  billing.language = "en";  // the account's: the request's own comes first
  auto r = request();
  r.language = "zh";
  start(r);
  ASSERT_EQ(engine.originated.size(), 1u);
  EXPECT_EQ(engine.originated[0].language, "zh");
}

TEST_F(ServiceTest, WithoutALanguageTheCallerHearsTheAccountsElseTheServersDefault) {
  make({}, &billing);
  billing.language = "zh";
  start(request());
  ASSERT_EQ(engine.originated.size(), 1u);
  EXPECT_EQ(engine.originated[0].language, "zh");
  billing.language.clear();
  start(request());
  ASSERT_EQ(engine.originated.size(), 2u);
  EXPECT_EQ(engine.originated[1].language, "");  // Asterisk's own default
  // A backend's bad value (a row written by hand) never reaches the engine.
  billing.language = "zh\r\nAction: Logoff";
  start(request());
  ASSERT_EQ(engine.originated.size(), 3u);
  EXPECT_EQ(engine.originated[2].language, "");
}

TEST_F(ServiceTest, ABadLanguageIsRefusedBeforeBillingOrTheEngine) {
  make({}, &billing);
  // It becomes CHANNEL(language) in an AMI action: a line break would start a new header.
  for (const std::string bad : {"zh\r\nAction: Hangup", "z", "zh CN", "../../etc", "abcdefghijklmnopq", "zh\n"}) {
    auto r = request();
    r.language = bad;
    auto id = service->start(r);
    ASSERT_FALSE(id) << bad;
    EXPECT_EQ(id.error().field, "language") << bad;
  }
  EXPECT_TRUE(billing.authorized.empty());
  EXPECT_TRUE(engine.originated.empty());
  for (const std::string good : {"en", "zh", "pt_BR", "en-US", "zh_CN_f_Yun12345"}) {
    auto r = request();
    r.language = good;
    EXPECT_TRUE(r.validate()) << good;
  }
}

TEST_F(ServiceTest, SilentEngineIsHungUpThenTheCallEndsAsEngineLostAndIsReleasedOnce) {
  ServiceOptions options;
  options.a_ring_timeout = 30s;
  options.stage_grace = 10s;
  make(options, &billing);
  const auto id = start(request());
  clock.advance(39s);
  EXPECT_TRUE(engine.hung_up.empty());
  clock.advance(1s);  // 30 s ring + 10 s grace: hang up
  ASSERT_EQ(engine.hung_up.size(), 1u);
  EXPECT_EQ(service->in_flight(), 1u);
  clock.advance(10s);  // still nothing: give up on the engine
  pump();
  EXPECT_EQ(service->in_flight(), 0u);
  ASSERT_FALSE(events.seen.empty());
  EXPECT_EQ(events.seen.back().call.state(), CallState::failed);
  EXPECT_EQ(events.seen.back().call.leg_a().cause, HangupCause::engine_lost());
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  ASSERT_EQ(store.rows.size(), 1u);
  // A late word from the engine changes nothing.
  leg(id, LegRole::a, LegEventType::ended, HangupCause{16});
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_EQ(store.rows.size(), 1u);
}

TEST_F(ServiceTest, BridgedCallThatOverrunsItsLimitIsCut) {
  make({}, &billing);
  billing.max_duration = 60s;
  const auto id = start(request());
  leg(id, LegRole::a, LegEventType::answered);
  leg(id, LegRole::b, LegEventType::dialing);
  leg(id, LegRole::b, LegEventType::connected);
  clock.advance(60s + 9s);
  EXPECT_TRUE(engine.hung_up.empty());
  clock.advance(1s);  // limit + grace
  EXPECT_FALSE(engine.hung_up.empty());
}

TEST_F(ServiceTest, BillingIsAskedForNoMoreThanTheCallsLimit) {
  make({}, &billing);
  billing.max_duration = 1000s;
  auto r = request();
  r.limit = 60s;
  start(r);
  ASSERT_EQ(billing.authorized.size(), 1u);
  ASSERT_TRUE(billing.authorized[0].max_duration);
  EXPECT_EQ(*billing.authorized[0].max_duration, 60s);
}

TEST_F(ServiceTest, SlicesAreExtendedWhileBTalksAndTheCallEndsWhenTheMoneyRunsOut) {
  make({}, &billing);
  billing.max_duration = 300s;
  billing.reserved_for = 60s;  // one debit interval
  billing.money_for = 120s;    // the account pays for two
  const auto id = start(request());
  leg(id, LegRole::a, LegEventType::answered);
  leg(id, LegRole::b, LegEventType::dialing);
  leg(id, LegRole::b, LegEventType::connected);
  EXPECT_EQ(engine.originated.at(0).connect->limit, 300s);
  clock.advance(49s);
  pump();
  EXPECT_TRUE(billing.extended.empty());
  clock.advance(1s);  // 10 s before the slice runs out
  pump();
  ASSERT_EQ(billing.extended.size(), 1u);
  EXPECT_EQ(billing.extended[0], std::make_pair("r-" + id, 120s));
  clock.advance(60s);  // 110 s: the next slice, which the money does not pay
  pump();
  ASSERT_EQ(billing.extended.size(), 2u);
  EXPECT_EQ(billing.extended[1].second, 180s);
  clock.advance(9s);
  pump();
  EXPECT_TRUE(engine.hung_up.empty());
  clock.advance(1s);  // 120 s: all that is paid for was talked
  pump();
  ASSERT_FALSE(engine.hung_up.empty());
  EXPECT_EQ(engine.hung_up[0], std::make_pair(id, LegRole::b));
  leg(id, LegRole::b, LegEventType::ended, HangupCause::normal());
  leg(id, LegRole::a, LegEventType::ended, HangupCause::normal());
  pump();
  ASSERT_FALSE(events.seen.empty());
  EXPECT_EQ(events.seen.back().outcome, "time_up");
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  ASSERT_EQ(billing.settled.size(), 1u);
  EXPECT_EQ(billing.settled[0].second, 120s);
}

TEST_F(ServiceTest, ADenialCarriesBillingsFieldAndRule) {
  make({}, &billing);
  billing.deny = DenialReason::destination_blocked;
  billing.field = "callee";
  billing.rule = "deny_prefix +882";
  Result<std::string> answer = Error{};
  service->submit(request(), [&](Result<std::string> r) { answer = std::move(r); });
  pump();
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, "denied.destination_blocked");
  EXPECT_EQ(answer.error().field, "callee");
  EXPECT_EQ(answer.error().rule, "deny_prefix +882");
}

TEST_F(ServiceTest, IdempotencyKeyGivesTheSameCallback) {
  make({}, &billing);
  auto r = request();
  r.idempotency_key = "order-17";
  const auto first = start(r);
  const auto second = start(r);
  EXPECT_EQ(first, second);
  EXPECT_EQ(engine.originated.size(), 1u);
  EXPECT_EQ(billing.authorized.size(), 1u);
}

TEST_F(ServiceTest, EngineEventsInAnyOrderStillWalkTheStateMachine) {
  make({}, &billing);
  const auto id = start(request());
  // B connected arrives before A's answer was reported (events are not causal).
  leg(id, LegRole::b, LegEventType::connected);
  leg(id, LegRole::a, LegEventType::answered);
  service->on_leg_event({.call_id = id, .leg = LegRole::b, .type = LegEventType::ended, .at = clock.now() + 30s,
                         .cause = HangupCause{16}, .far_end_hung_up = true, .billsec = 30s});
  pump();
  leg(id, LegRole::a, LegEventType::ended, HangupCause{16});
  ASSERT_EQ(service->in_flight(), 0u);
  const auto& end = events.seen.back();
  EXPECT_EQ(end.call.state(), CallState::completed);
  EXPECT_EQ(end.announcement, Announcement::partner_hangup);
  ASSERT_EQ(billing.settled.size(), 1u);
  EXPECT_EQ(billing.settled[0].second, 30s);
  EXPECT_EQ(service->find(id)->state(), CallState::completed);  // still findable
}

TEST_F(ServiceTest, AsterisksTalkTimeIsTheLegsBillsecEvenWhenWeLearnOfTheEndLate) {
  // On a busy Asterisk the engine reports B's end once its records are in, seconds after
  // B hung up: the call's B billsec (the API's, the CDR's and the charge) is Asterisk's 5 s,
  // not the 9 s between our own timestamps.
  make({}, &billing);
  const auto id = start(request());
  leg(id, LegRole::a, LegEventType::answered);
  leg(id, LegRole::b, LegEventType::connected);
  service->on_leg_event({.call_id = id, .leg = LegRole::b, .type = LegEventType::ended, .at = clock.now() + 9s,
                         .cause = HangupCause{16}, .far_end_hung_up = true, .billsec = 5s});
  service->on_leg_event({.call_id = id, .leg = LegRole::a, .type = LegEventType::ended, .at = clock.now() + 9s,
                         .cause = HangupCause{16}, .billsec = 12s});
  pump();
  ASSERT_EQ(service->in_flight(), 0u);
  const auto& end = events.seen.back();
  EXPECT_EQ(end.call.leg_b().billsec(), 5s);
  EXPECT_EQ(end.call.leg_a().billsec(), 12s);
  EXPECT_EQ(to_json(end).at("legs").at("b").at("billsec").as_int64(), 5);
  ASSERT_EQ(billing.settled.size(), 1u);
  EXPECT_EQ(billing.settled[0].second, 5s);
  ASSERT_EQ(store.rows.size(), 2u);
  EXPECT_EQ(store.rows[1].billsec, 5);
  EXPECT_EQ(store.rows[0].billsec, 12);
}

TEST_F(ServiceTest, DenialArrivesThroughSubmitAndPlacesNothing) {
  make({}, &billing);
  billing.deny = DenialReason::insufficient_balance;
  std::optional<Result<std::string>> answer;
  service->submit(request(), [&](Result<std::string> r) { answer = std::move(r); });
  pump();
  ASSERT_TRUE(answer);
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error().code, "denied.insufficient_balance");
  EXPECT_TRUE(engine.originated.empty());
  EXPECT_EQ(service->in_flight(), 0u);
  EXPECT_EQ(events.seen.back().call.state(), CallState::failed);
  EXPECT_TRUE(store.rows.empty());  // nothing was placed: no CDR
}

// What a trigger gets from TriggerSink::track: a handle once the call is placed, every
// event, and its end once; a refusal instead of a handle, and then no end.
TEST_F(ServiceTest, ATrackedCallbackGivesAHandleItsEventsAndItsEndOnce) {
  make({}, &billing);
  std::vector<Result<std::shared_ptr<CallbackHandle>>> accepted;
  std::vector<CallState> seen;
  std::vector<CallEvent> ended;
  const auto tracking = [&] {
    return Tracking{.accepted = [&](Result<std::shared_ptr<CallbackHandle>> h) { accepted.push_back(std::move(h)); },
                    .ended = [&](const CallEvent& e) { ended.push_back(e); },
                    .event = [&](const CallEvent& e) { seen.push_back(e.call.state()); }};
  };
  service->track(request(), tracking());
  pump();
  ASSERT_EQ(accepted.size(), 1u);
  ASSERT_TRUE(accepted[0]) << accepted[0].error().describe();
  const std::string id = (*accepted[0])->id();
  ASSERT_EQ(engine.originated.size(), 1u);
  EXPECT_EQ(engine.originated[0].call_id, id);
  EXPECT_EQ(seen.front(), CallState::authorizing) << "the events from the first one on";
  EXPECT_TRUE(ended.empty());

  // Canceled through the handle (it posts to the service's thread).
  (*accepted[0])->cancel();
  pump();
  EXPECT_FALSE(engine.hung_up.empty());
  leg(id, LegRole::a, LegEventType::ended, HangupCause::canceled());
  clock.advance(std::chrono::seconds(30));
  pump();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].call.id(), id);
  EXPECT_EQ(ended[0].call.state(), CallState::canceled);
  EXPECT_EQ(ended[0].outcome, "canceled");
  EXPECT_EQ(seen.back(), CallState::canceled);
  (*accepted[0])->cancel();  // after the end: nothing to do, nothing breaks
  pump();

  // Refused by billing: the answer says why, and no end follows.
  billing.deny = DenialReason::insufficient_balance;
  service->track(request(), tracking());
  pump();
  ASSERT_EQ(accepted.size(), 2u);
  ASSERT_FALSE(accepted[1]);
  EXPECT_EQ(accepted[1].error().code, "denied.insufficient_balance");
  clock.advance(std::chrono::seconds(60));
  pump();
  EXPECT_EQ(ended.size(), 1u);

  // Refused as it stands (A = B): no event, the answer at once.
  auto same = request();
  same.callee = same.caller;
  service->track(same, tracking());
  ASSERT_EQ(accepted.size(), 3u);
  EXPECT_FALSE(accepted[2]);
}

TEST_F(ServiceTest, ATrackedRepeatOfAFinishedCallbackIsToldItsEndAtOnce) {
  make({}, &billing);
  auto r = request();
  r.idempotency_key = "sms:SM1";
  const auto id = start(r);
  ASSERT_TRUE(service->cancel(id));
  pump();
  leg(id, LegRole::a, LegEventType::ended, HangupCause::canceled());
  clock.advance(std::chrono::seconds(30));
  pump();
  ASSERT_TRUE(is_final(service->find(id)->state()));

  std::optional<std::string> handle_id;
  std::vector<CallState> ended;
  service->track(r, {.accepted = [&](Result<std::shared_ptr<CallbackHandle>> h) { handle_id = (*h)->id(); },
                     .ended = [&](const CallEvent& e) { ended.push_back(e.call.state()); }});
  pump();
  EXPECT_EQ(handle_id, id) << "the same callback";
  EXPECT_EQ(ended, std::vector<CallState>{CallState::canceled});
  EXPECT_EQ(engine.originated.size(), 1u);
}

TEST_F(ServiceTest, CancelDuringAuthorizationReleasesAndPlacesNothing) {
  make({}, &billing);
  const auto id = service->start(request()).value();  // billing's answer not yet back
  ASSERT_TRUE(service->cancel(id));
  pump();
  EXPECT_TRUE(engine.originated.empty());
  EXPECT_EQ(events.seen.back().call.state(), CallState::canceled);
  EXPECT_EQ(billing.endings("r-" + id), 1u);  // the reservation it got was released
}

// Billing that answers only when the test says so.
class SlowBilling final : public Billing, Rater, Authorizer {
 public:
  std::vector<std::function<void(Result<Authorization>)>> waiting;
  std::vector<std::string> released;
  Rater& rater() override { return *this; }
  Authorizer& authorizer() override { return *this; }
  std::optional<Rate> rate(const std::string&, const PhoneNumber&, Timestamp) const override { return {}; }
  Result<Authorization> authorize(const AuthorizationRequest&) override { return Error{"unused", "", ""}; }
  Result<Money> settle(const std::string&, std::chrono::seconds) override { return Money{}; }
  Status release(const std::string& r) override {
    released.push_back(r);
    return ok_status();
  }
  void authorize_async(const AuthorizationRequest&, std::function<void(Result<Authorization>)> done) override {
    waiting.push_back(std::move(done));
  }
};

TEST_F(ServiceTest, BillingThatDoesNotAnswerInTimeFailsTheCallAndALateGrantIsGivenBack) {
  SlowBilling slow;
  ServiceOptions options;
  options.stage_grace = 10s;
  make(options, &slow);
  std::optional<Result<std::string>> answer;
  service->submit(request(), [&](Result<std::string> r) { answer = std::move(r); });
  clock.advance(9s);
  EXPECT_FALSE(answer);
  clock.advance(1s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->error().code, "billing_unavailable");
  EXPECT_EQ(events.seen.back().call.state(), CallState::failed);
  // Billing answers at last: the grant goes straight back, nothing is dialed.
  ASSERT_EQ(slow.waiting.size(), 1u);
  slow.waiting[0](Authorization{.allowed = true, .max_duration = 60s, .reservation = "late"});
  pump();
  EXPECT_EQ(slow.released, std::vector<std::string>{"late"});
  EXPECT_TRUE(engine.originated.empty());
}

TEST_F(ServiceTest, DestroyingTheServiceSettlesCallsInFlightAndWritesTheirCdrs) {
  make({}, &billing);
  billing.max_duration = 300s;
  const auto id = start(request());
  leg(id, LegRole::a, LegEventType::answered);
  leg(id, LegRole::b, LegEventType::dialing);
  leg(id, LegRole::b, LegEventType::connected);
  clock.advance(90s);
  service.reset();
  ASSERT_EQ(billing.settled.size(), 1u);
  EXPECT_EQ(billing.settled[0].second, 90s);
  EXPECT_EQ(store.rows.size(), 2u);
  EXPECT_EQ(store.rows[1].hangup_cause, HangupCause::canceled());
}

// Billing that fails to settle (its database locked) leaves the call in flight and is asked
// again, 1 s then 2 s later: the call never ends with its reservation open and unbilled.
TEST_F(ServiceTest, ASettleThatFailsIsTriedAgainUntilItIsMadeAndOnlyThenTheCallEnds) {
  make({}, &billing);
  billing.max_duration = 300s;
  const auto id = start(request());
  leg(id, LegRole::a, LegEventType::answered);
  leg(id, LegRole::b, LegEventType::dialing);
  leg(id, LegRole::b, LegEventType::connected);
  clock.advance(30s);
  billing.failures_left = 2;
  leg(id, LegRole::b, LegEventType::ended, HangupCause{16});
  leg(id, LegRole::a, LegEventType::ended, HangupCause{16});
  pump();
  EXPECT_TRUE(billing.settled.empty());
  EXPECT_EQ(service->in_flight(), 1u);  // not ended while its money is not settled
  EXPECT_NE(events.seen.back().call.state(), CallState::completed);
  clock.advance(1s);  // the second try fails too
  pump();
  EXPECT_TRUE(billing.settled.empty());
  EXPECT_EQ(service->in_flight(), 1u);
  clock.advance(2s);
  pump();
  ASSERT_EQ(billing.settled.size(), 1u);
  EXPECT_EQ(billing.settled[0].second, 30s);
  EXPECT_EQ(billing.endings("r-" + id), 1u);
  EXPECT_EQ(events.seen.back().call.state(), CallState::completed);
  ASSERT_TRUE(events.seen.back().cost);
  EXPECT_EQ(service->in_flight(), 0u);
  EXPECT_NE(log_text.str().find("settling reservation r-" + id + " failed: database is locked; trying again in 2 s"),
            std::string::npos) << log_text.str();
}

// The same for a release (nothing to charge): the grant is given back before the call ends.
TEST_F(ServiceTest, AReleaseThatFailsIsTriedAgainToo) {
  make({}, &billing);
  const auto id = start(request());
  billing.failures_left = 1;
  leg(id, LegRole::a, LegEventType::ended, HangupCause{17});
  pump();
  EXPECT_TRUE(billing.released.empty());
  EXPECT_EQ(service->in_flight(), 1u);
  clock.advance(1s);
  pump();
  EXPECT_EQ(billing.released, std::vector<std::string>{"r-" + id});
  EXPECT_EQ(events.seen.back().call.state(), CallState::failed);
  EXPECT_EQ(service->in_flight(), 0u);
}

TEST_F(ServiceTest, CdrsThatCannotBeStoredAreKeptAndStoredLater) {
  make({}, &billing);
  const auto id = start(request());
  store.failures_left = 2;
  leg(id, LegRole::a, LegEventType::ended, HangupCause{17});  // A busy: one CDR
  EXPECT_TRUE(store.rows.empty());
  EXPECT_EQ(events.seen.back().call.state(), CallState::failed);  // the ending is still told
  clock.advance(1s);  // second try fails too (the store answers through the event loop)
  pump();
  EXPECT_TRUE(store.rows.empty());
  clock.advance(1s);
  pump();
  ASSERT_EQ(store.rows.size(), 1u);
  EXPECT_EQ(store.rows[0].callback_id, id);
  EXPECT_NE(log_text.str().find("CDRs not stored yet (database is locked); trying again in 1 s"), std::string::npos);
}

TEST(AnnouncementFor, MapsCausesAsTheSeedDoes) {
  auto b_failed = [](int cause) { return announcement_for({.b_cause = HangupCause{cause}}); };
  EXPECT_EQ(b_failed(17), Announcement::partner_busy);
  EXPECT_EQ(b_failed(21), Announcement::partner_busy);
  EXPECT_EQ(b_failed(18), Announcement::partner_away);
  EXPECT_EQ(b_failed(19), Announcement::partner_away);
  EXPECT_EQ(b_failed(34), Announcement::system_busy);
  EXPECT_EQ(b_failed(38), Announcement::system_busy);
  EXPECT_EQ(b_failed(42), Announcement::system_busy);
  EXPECT_EQ(b_failed(1), Announcement::call_failed);
  EXPECT_EQ(announcement_for({.b_answered = true, .limit_reached = true}), Announcement::time_up);
  EXPECT_EQ(announcement_for({.b_answered = true, .b_hung_up = true}), Announcement::partner_hangup);
  EXPECT_FALSE(announcement_for({.b_answered = true}));  // we ended it
  EXPECT_FALSE(announcement_for({.b_cause = HangupCause{17}, .a_hung_up = true}));
}

}  // namespace

// --- the step flow: an engine with primitives only (ARI) --------------------------------

struct StepFlowTest : ServiceTest {
  void SetUp() override { engine.steps = true; }
  std::string answered_call(const std::string& language = "zh") {
    auto r = request();
    r.language = language;
    const auto id = start(r);
    EXPECT_TRUE(service->step_flow());
    leg(id, LegRole::a, LegEventType::dialing);
    leg(id, LegRole::a, LegEventType::answered);
    return id;
  }
  void b_ended(const std::string& id, HangupCause cause, bool far_end = false) {
    service->on_leg_event({.call_id = id, .leg = LegRole::b, .type = LegEventType::ended, .at = clock.now(),
                           .handle = ScriptedEngine::channel(id, LegRole::b), .cause = cause,
                           .far_end_hung_up = far_end});
    pump();
  }
  std::vector<std::string> ops() { return std::exchange(engine.operations, {}); }
};

TEST_F(StepFlowTest, AHearsPleaseWaitThenBIsDialedBridgedAndLimitedAndHearsThatBHungUp) {
  ServiceOptions options;
  options.campaigns["free"] = CampaignLimits{.limit = 60s, .warning_before = 20s, .warning_repeat = 10s};
  make(options);
  auto r = request(CampaignId{"free"});
  r.language = "zh";
  const auto id = start(r);
  ASSERT_EQ(engine.originated.size(), 1u);
  EXPECT_FALSE(engine.originated[0].connect) << "no dialplan plan for a step engine";
  EXPECT_EQ(engine.originated[0].leg, LegRole::a);
  EXPECT_EQ(engine.originated[0].caller_id.digits(), "1002");  // A sees B's number
  leg(id, LegRole::a, LegEventType::answered);
  EXPECT_EQ(ops(), std::vector<std::string>{"play A callback-please-wait zh"});
  ASSERT_EQ(engine.originated.size(), 2u) << "B once the prompt has played";
  const auto& b = engine.originated[1];
  EXPECT_EQ(b.leg, LegRole::b);
  EXPECT_EQ(b.number.digits(), "1002");
  EXPECT_EQ(b.caller_id.digits(), "1001");  // B sees A's number
  EXPECT_FALSE(b.connect);
  leg(id, LegRole::b, LegEventType::dialing);
  EXPECT_EQ(service->find(id)->state(), CallState::dialing_b);
  leg(id, LegRole::b, LegEventType::answered);
  EXPECT_EQ(ops(), (std::vector<std::string>{"bridge A B", "limit A 60000/20000/10000"}));
  EXPECT_EQ(service->find(id)->state(), CallState::bridged);
  clock.advance(30s);
  b_ended(id, HangupCause::normal(), true);
  EXPECT_EQ(ops(), (std::vector<std::string>{"play A callback-partner-hangup zh", "hangup A"}));
  EXPECT_EQ(service->in_flight(), 1u) << "until A's end";
  leg(id, LegRole::a, LegEventType::ended, HangupCause::normal());
  EXPECT_EQ(service->in_flight(), 0u);
  EXPECT_EQ(events.seen.back().outcome, "partner_hangup");
  EXPECT_EQ(events.seen.back().call.state(), CallState::completed);
  EXPECT_EQ(store.rows.size(), 2u);
}

TEST_F(StepFlowTest, EachCauseOfBGivesAItsAnnouncementFromTheDialplansTable) {
  make({}, &billing);
  const std::vector<std::pair<int, std::string>> table{{17, "callback-partner-busy"}, {21, "callback-partner-busy"},
                                                       {19, "callback-partner-away"}, {18, "callback-partner-away"},
                                                       {34, "callback-system-busy"},  {38, "callback-system-busy"},
                                                       {1, "callback-call-failed"},   {0, "callback-call-failed"}};
  for (const auto& [cause, sound] : table) {
    const auto id = answered_call("en");
    leg(id, LegRole::b, LegEventType::dialing);
    ops();
    b_ended(id, HangupCause{cause});
    EXPECT_EQ(ops(), (std::vector<std::string>{"play A " + sound + " en", "hangup A"})) << cause;
    leg(id, LegRole::a, LegEventType::ended, HangupCause::normal());
    EXPECT_EQ(service->find(id)->state(), CallState::completed) << cause;
    EXPECT_EQ(events.seen.back().announcement, announcement_for({.b_cause = HangupCause{cause}})) << cause;
  }
}

TEST_F(StepFlowTest, AHangingUpWhileBRingsHangsUpB) {
  make({}, &billing);
  const auto id = answered_call();
  leg(id, LegRole::b, LegEventType::dialing);
  ops();
  service->on_leg_event({.call_id = id, .leg = LegRole::a, .type = LegEventType::ended, .at = clock.now(),
                         .handle = ScriptedEngine::channel(id, LegRole::a), .cause = HangupCause::normal(),
                         .far_end_hung_up = true});
  pump();
  EXPECT_EQ(ops(), std::vector<std::string>{"hangup B"});
  EXPECT_EQ(service->in_flight(), 1u);
  b_ended(id, HangupCause::normal());
  EXPECT_EQ(ops(), std::vector<std::string>{}) << "nobody left to hear anything";
  EXPECT_EQ(service->in_flight(), 0u);
}

TEST_F(StepFlowTest, ACancelBeforeBIsDialedHangsUpAAndNeverDialsB) {
  make({}, &billing);
  const auto id = start(request());
  leg(id, LegRole::a, LegEventType::dialing);
  ASSERT_TRUE(service->cancel(id));
  EXPECT_EQ(ops(), std::vector<std::string>{"hangup A"});
  // A answers anyway (the hangup crossed it): no prompt, no B.
  leg(id, LegRole::a, LegEventType::answered);
  EXPECT_EQ(ops(), std::vector<std::string>{});
  EXPECT_EQ(engine.originated.size(), 1u);
  leg(id, LegRole::a, LegEventType::ended, HangupCause::canceled());
  EXPECT_EQ(service->find(id)->state(), CallState::canceled);
}

TEST_F(StepFlowTest, ACancelWhileBRingsHangsUpBothAndAHearsNothing) {
  make({}, &billing);
  const auto id = answered_call();
  leg(id, LegRole::b, LegEventType::dialing);
  ops();
  ASSERT_TRUE(service->cancel(id));
  EXPECT_EQ(ops(), (std::vector<std::string>{"hangup A", "hangup B"}));
  b_ended(id, HangupCause::canceled());
  leg(id, LegRole::a, LegEventType::ended, HangupCause::canceled());
  EXPECT_EQ(ops(), std::vector<std::string>{});
  EXPECT_EQ(service->find(id)->state(), CallState::canceled);
}

TEST_F(StepFlowTest, ABridgeTheEngineRefusesEndsTheCall) {
  make({}, &billing);
  engine.fail_bridge = Error{std::string(engine_errc::refused), "Channel not in Stasis application", {}};
  const auto id = answered_call();
  leg(id, LegRole::b, LegEventType::dialing);
  ops();
  leg(id, LegRole::b, LegEventType::answered);
  EXPECT_EQ(ops(), (std::vector<std::string>{"bridge A B", "hangup A", "hangup B"}));
}

TEST_F(ServiceTest, AnOriginateNoServerTakesAnswersTheSubmitWithWhyAndEndsTheCall) {
  // The dialplan flow's engine refuses the originate (no server), then ends the leg.
  class Refusing final : public Engine {
   public:
    boost::asio::io_context* io = nullptr;
    Subscribers<std::function<void(const LegEvent&)>> subscribers;
    Capabilities capabilities() const override { return {.dialplan_flow = true}; }
    Subscription subscribe(std::function<void(const LegEvent&)> f) override { return subscribers.add(std::move(f)); }
    Subscription route_inbound(InboundRoute, std::function<void(const InboundCall&)>) override { return {}; }
    void start() override {}
    void stop() override {}
    EngineStatus status() const override { return {}; }
    void originate(const OriginateRequest& r, Completion<Channel> placed) override {
      boost::asio::post(*io, [this, r, placed] {
        placed(engine_error(engine_errc::unavailable, "no Asterisk server is reachable"));
        subscribers.each(LegEvent{.call_id = r.call_id, .type = LegEventType::ended, .cause = HangupCause::engine_lost()});
      });
    }
    void hangup(const Channel&, HangupCause, StatusCompletion) override {}
    void answer(const Channel&, StatusCompletion) override {}
    void reject(const Channel&, HangupCause, std::chrono::milliseconds, StatusCompletion) override {}
    void play(const Channel&, const Prompt&, StatusCompletion) override {}
    void bridge(const Channel&, const Channel&, StatusCompletion) override {}
    void set_time_limit(const Channel&, const Channel&, const TimeLimit&, StatusCompletion) override {}
    void collect_digits(const Channel&, const DigitRequest&, Completion<Digits>) override {}
  } refusing;
  refusing.io = &io;
  service = std::make_unique<CallbackService>(context, refusing, &billing, store, ServiceOptions{});
  service->subscribe(events);
  Result<std::string> answer = std::string();
  service->submit(request(), [&](Result<std::string> r) { answer = std::move(r); });
  pump();
  pump();
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, "engine_unavailable");
  EXPECT_NE(answer.error().message.find("no Asterisk server is reachable"), std::string::npos);
  EXPECT_EQ(service->in_flight(), 0u) << "the leg's end ended the call";
  EXPECT_EQ(billing.settled.size() + billing.released.size(), 1u);
  service.reset();
}

// --- Subscription -------------------------------------------------------------------

// What the AMI and ARI engines' options share (validate_servers, validate_dial_string).
TEST(EngineOptions, ServersAreHostAndPortAndTheDialStringHoldsTheNumber) {
  EXPECT_TRUE(validate_servers({"127.0.0.1:5038", "pbx.example:8088", "[::1]:5038"}));
  EXPECT_EQ(validate_servers({}).error().field, "servers");
  for (const char* bad : {"127.0.0.1", ":5038", "host:0", "host:65536", "host:50x38", "host:"}) {
    const auto checked = validate_servers({"127.0.0.1:5038", bad});
    ASSERT_FALSE(checked) << bad;
    EXPECT_EQ(checked.error().code, "config.value");
    EXPECT_EQ(checked.error().field, "servers[1]") << "the bad one named";
  }
  EXPECT_NE(validate_servers({"a\nb"}).error().message.find("\\n"), std::string::npos) << "escaped";
  EXPECT_TRUE(validate_dial_string("PJSIP/{number}@gateway"));
  EXPECT_EQ(validate_dial_string("PJSIP/gateway").error().field, "dial_string");
  EXPECT_EQ(expand_dial_string("Local/{number}@phones/{number}", "1001"), "Local/1001@phones/1001");
  EXPECT_EQ(expand_dial_string("Local/{number}@phones", "{number}"), "Local/{number}@phones") << "once, not again";
}

TEST(Subscription, EachSubscriberGetsEveryEventUntilItsHandleGoes) {
  Subscribers<std::function<void(int)>> list;
  std::vector<std::string> seen;
  auto first = list.add([&](int n) { seen.push_back("1:" + std::to_string(n)); });
  std::optional<Subscription> second = list.add([&](int n) { seen.push_back("2:" + std::to_string(n)); });
  list.each(1);
  second.reset();  // destroyed: unsubscribed
  list.each(2);
  first.reset();
  list.each(3);
  EXPECT_EQ(seen, (std::vector<std::string>{"1:1", "2:1", "1:2"}));
  EXPECT_TRUE(list.empty());
}

TEST(Subscription, AHandlerMayUnsubscribeItselfAndOthersWhileEventsGoOut) {
  Subscribers<std::function<void(int)>> list;
  std::vector<std::string> seen;
  Subscription a, b, c;
  a = list.add([&](int) {
    seen.push_back("a");
    a.reset();
    b.reset();
    c = list.add([&](int) { seen.push_back("c"); });  // joins from the next event
  });
  b = list.add([&](int) { seen.push_back("b"); });
  list.each(1);
  list.each(2);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(list.size(), 1u);
}

TEST(Subscription, AHandleOutlivingItsPublisherIsHarmless) {
  Subscription kept;
  {
    Subscribers<std::function<void()>> list;
    kept = list.add([] {});
    EXPECT_TRUE(kept.active());
  }
  kept.reset();  // the list is gone: nothing to do, nothing touched
  EXPECT_FALSE(kept.active());
}
