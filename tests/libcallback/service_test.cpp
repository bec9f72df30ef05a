// CallbackService on its own, with a scripted engine and a clock the test moves.
#include "recording_billing.hpp"
#include "test_context.hpp"

#include <callback/json.hpp>
#include <callback/service.hpp>

#include <gtest/gtest.h>

#include <sstream>

using namespace callback;
using namespace std::chrono_literals;

namespace {

const NumberingPlan plan{.country_code = "", .trunk_prefix = "", .international_prefixes = {}};

// Records what the service asks; the test plays the engine's part by calling
// service.on_leg_event itself.
class ScriptedEngine final : public Engine {
 public:
  std::vector<OriginateRequest> originated;
  std::vector<std::pair<std::string, LegRole>> hung_up;
  Capabilities capabilities() const override { return {.server_side_connect = true}; }
  void set_observer(EngineObserver*) override {}
  void start() override {}
  void stop() override {}
  EngineStatus status() const override { return {}; }
  void originate(const OriginateRequest& request) override { originated.push_back(request); }
  void hangup(const std::string& id, LegRole leg, HangupCause) override { hung_up.emplace_back(id, leg); }
  void bridge(const std::string&) override {}
  void set_time_limit(const std::string&, std::chrono::seconds, std::chrono::seconds, std::chrono::seconds) override {}
  void play(const std::string&, LegRole, Announcement) override {}
  void collect_digits(const std::string&, LegRole, std::size_t, char, std::chrono::seconds) override {}
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
    service = std::make_unique<CallbackService>(context, engine, with_billing, store, std::move(options));
    service->subscribe(events);
  }
  CallbackRequest request(Payer payer = AccountId{"123"}) {
    return {.caller = PhoneNumber::parse("1001", plan).value(), .callee = PhoneNumber::parse("1002", plan).value(),
            .payer = std::move(payer)};
  }
  void leg(const std::string& id, LegRole role, LegEventType type, HangupCause cause = {}) {
    service->on_leg_event({.call_id = id, .leg = role, .type = type, .at = clock.now(), .cause = cause});
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
