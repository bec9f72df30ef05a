#pragma once
// What every callback flow test checks at a call's end, whatever the engine (AMI against
// the Asterisk fake, ARI against the ARI fake): the final state, the cause class of each
// leg, A's announcement, exactly one settle or release and its amount, and one CDR row
// per leg placed with its disposition, account code, userfield and billsec.
//
// FlowBase is what both fixtures share: the context on a real clock, a SQLite store in a
// temporary folder, the recording billing, the service and its engine, and the helpers
// that start a callback, wait for its end and read its CDRs.
#include "recording_billing.hpp"
#include "sqlite_store.hpp"
#include "temp_dir.hpp"
#include "test_context.hpp"

#include <callback_internal/callback_service.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <optional>
#include <string>
#include <vector>

namespace callback::test {

class FlowObserver final : public CallObserver {
 public:
  std::vector<CallEvent> events;
  void on_call_event(const CallEvent& event) override { events.push_back(event); }
  const CallEvent* final_event(const std::string& id) const {
    for (const auto& e : events) {
      if (e.call.id() == id && is_final(e.call.state())) return &e;
    }
    return nullptr;
  }
  bool reached(const std::string& id, CallState state) const {
    for (const auto& e : events) {
      if (e.call.id() == id && e.call.state() == state) return true;
    }
    return false;
  }
  std::vector<CallState> states(const std::string& id) const {
    std::vector<CallState> out;
    for (const auto& e : events) {
      if (e.call.id() == id) out.push_back(e.call.state());
    }
    return out;
  }
};


inline const NumberingPlan as_dialed{.country_code = "", .trunk_prefix = "", .international_prefixes = {}};

template <class EngineType>
struct FlowBase : ::testing::Test {
  boost::asio::io_context io;
  SystemClock clock{io};
  std::ostringstream log_text;
  StreamLogger log{log_text, LogLevel::debug};
  Metrics metrics;
  Context context{io, clock, log, metrics};
  test::TempDir dir;
  std::unique_ptr<store_sqlite::SqliteStore> store =
      store_sqlite::SqliteStore::open({.path = dir / "callback.db", .synchronous = "normal"}).value();
  test::RecordingBilling billing;
  FlowObserver observer;
  std::unique_ptr<EngineType> engine;
  std::unique_ptr<CallbackService> service;

  ~FlowBase() override {
    service.reset();  // before the engine it subscribed to
    engine.reset();
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    return test::run_until(io, done, timeout);
  }

  std::string start(std::string_view a, std::string_view b, std::string language = {}) {
    CallbackRequest request{.caller = PhoneNumber::parse(a, as_dialed).value(),
                            .callee = PhoneNumber::parse(b, as_dialed).value(),
                            .payer = AccountId{"123"},
                            .origin = Origin::rest};
    request.language = std::move(language);
    auto id = service->start(request);
    EXPECT_TRUE(id) << id.error().describe();
    return id ? *id : std::string();
  }

  const CallEvent& finish(const std::string& id) {
    EXPECT_TRUE(run_until([&] { return observer.final_event(id) != nullptr; }, std::chrono::seconds(20)))
        << "callback " << id << " did not end; log:\n" << log_text.str().substr(0, 200'000);
    static const CallEvent none{Call{"none", CallbackRequest{.caller = PhoneNumber::from_e164("111").value(),
                                                             .callee = PhoneNumber::from_e164("222").value(),
                                                             .payer = CampaignId{"x"}},
                                     Timestamp{}},
                                CallState::created, {}, {}};
    const auto* e = observer.final_event(id);
    return e != nullptr ? *e : none;
  }

  // `engine` has no server it can reach: a callback fails at once as engine lost, its money
  // released, and a trigger asking through submit() is told so, not handed an id.
  void expect_calls_fail_at_once_without_a_server() {
    service = std::make_unique<CallbackService>(context, *engine, &billing, *store, ServiceOptions());
    service->subscribe(observer);
    engine->start();
    const auto id = start("1001", "1002");
    const CallEvent& end = finish(id);
    EXPECT_EQ(end.call.state(), CallState::failed);
    EXPECT_EQ(end.call.leg_a().cause.outcome(), Outcome::engine_lost);
    EXPECT_EQ(billing.released.size(), 1u);
    std::optional<Result<std::string>> answer;
    service->submit({.caller = PhoneNumber::parse("1001", as_dialed).value(),
                     .callee = PhoneNumber::parse("1003", as_dialed).value(), .payer = AccountId{"123"}},
                    [&](Result<std::string> r) { answer = std::move(r); });
    ASSERT_TRUE(run_until([&] { return answer.has_value(); }, std::chrono::seconds(5)));
    ASSERT_FALSE(*answer);
    EXPECT_EQ(answer->error().code, "engine_unavailable");
  }

  std::vector<Cdr> cdrs(const std::string& id) {
    std::vector<Cdr> rows;
    EXPECT_TRUE(store->cdrs().query({.callback_id = id}, [&](const Cdr& c) {
      rows.push_back(c);
      return true;
    }));
    std::sort(rows.begin(), rows.end(), [](const Cdr& x, const Cdr& y) { return x.leg < y.leg; });
    return rows;
  }
};

// The fixtures' phones (tests/fixtures/asterisk/README.md) and what each gives, the same
// on every engine: B failing after A answered, and A failing.
struct PartnerFailure {
  const char* b;
  Outcome outcome;
  Announcement announcement;
  Disposition disposition;
};
inline const PartnerFailure partner_failures[] = {
    {"3001", Outcome::busy, Announcement::partner_busy, Disposition::busy},
    {"4001", Outcome::no_answer, Announcement::partner_away, Disposition::no_answer},
    {"5001", Outcome::system_busy, Announcement::system_busy, Disposition::congestion},
    {"5501", Outcome::unreachable, Announcement::system_busy, Disposition::failed},
    {"6001", Outcome::rejected, Announcement::partner_busy, Disposition::busy},
    {"5801", Outcome::unreachable, Announcement::call_failed, Disposition::failed},
    {"0002", Outcome::unreachable, Announcement::call_failed, Disposition::failed},
};
struct CallerFailure {
  const char* a;
  Outcome outcome;
  Disposition disposition;
};
inline const CallerFailure caller_failures[] = {
    {"3001", Outcome::busy, Disposition::busy},
    {"4001", Outcome::no_answer, Disposition::no_answer},
    {"5001", Outcome::system_busy, Disposition::congestion},
    {"5501", Outcome::unreachable, Disposition::failed},
    {"5801", Outcome::unreachable, Disposition::failed},
    {"6001", Outcome::rejected, Disposition::busy},
    {"0001", Outcome::unreachable, Disposition::failed},
};

struct Expected {
  CallState state;
  Outcome a_outcome;
  std::optional<Outcome> b_outcome;  // empty: B never dialed
  std::optional<Announcement> announcement;
  Disposition a_disposition;
  std::optional<Disposition> b_disposition;
  std::optional<std::chrono::seconds> settled;  // empty: released
};

template <class Fixture>
void check(Fixture& t, const std::string& id, const Expected& expected) {
  SCOPED_TRACE(id);
  struct DumpLogOnFailure {
    Fixture& t;
    ~DumpLogOnFailure() {
      if (::testing::Test::HasFailure()) std::cerr << "engine log:\n" << t.log_text.str();
    }
  } dump{t};
  const CallEvent& end = t.finish(id);
  EXPECT_EQ(end.call.state(), expected.state) << to_string(end.call.state());
  EXPECT_EQ(end.call.leg_a().cause.outcome(), expected.a_outcome)
      << "A cause " << end.call.leg_a().cause.code();
  if (expected.b_outcome) {
    EXPECT_EQ(end.call.leg_b().cause.outcome(), *expected.b_outcome) << "B cause " << end.call.leg_b().cause.code();
  }
  EXPECT_EQ(end.announcement, expected.announcement)
      << (end.announcement ? to_string(*end.announcement) : std::string_view("none"));
  // Billing: one authorization, then exactly one settle or release.
  EXPECT_EQ(t.billing.endings("r-" + id), 1u);
  if (expected.settled) {
    ASSERT_EQ(t.billing.settled.size(), 1u);
    EXPECT_EQ(t.billing.settled[0].second, *expected.settled);
    ASSERT_TRUE(end.cost);
  } else {
    EXPECT_TRUE(t.billing.settled.empty());
    EXPECT_FALSE(end.cost);
  }
  // CDRs: one row per leg placed.
  const auto rows = t.cdrs(id);
  ASSERT_EQ(rows.size(), expected.b_disposition ? 2u : 1u);
  EXPECT_EQ(rows[0].leg, LegRole::a);
  EXPECT_EQ(rows[0].disposition, expected.a_disposition) << to_string(rows[0].disposition);
  EXPECT_EQ(rows[0].accountcode, "123");
  EXPECT_EQ(rows[0].userfield, "Hangupcause:" + std::to_string(end.call.leg_a().cause.code()));
  if (expected.b_disposition) {
    EXPECT_EQ(rows[1].leg, LegRole::b);
    EXPECT_EQ(rows[1].disposition, *expected.b_disposition) << to_string(rows[1].disposition);
    if (expected.settled) {
      EXPECT_EQ(rows[1].billsec, expected.settled->count());
      ASSERT_TRUE(rows[1].cost);
      EXPECT_EQ(*rows[1].cost, *end.cost);
    }
  }
}


// Two inbound calls whose callers (1234 and 1235) send "123456" and nothing, answered and
// asked for at most 4 digits with 300 ms timeouts: the first stops at max digits with
// "1234", the second at the first-digit timeout with none. Both are hung up then.
template <class Fixture>
void expect_max_digits_and_first_digit_timeout(Fixture& t, const std::vector<InboundCall>& calls) {
  using namespace std::chrono_literals;
  ASSERT_TRUE(t.run_until([&] { return calls.size() == 2; }, 5s));
  std::map<std::string, Result<Digits>> got;
  for (const auto& call : calls) {
    t.engine->answer(call.channel, [](Status) {});
    t.engine->collect_digits(call.channel,
                             {.max_digits = 4, .terminator = '#', .first_digit_timeout = 300ms,
                              .inter_digit_timeout = 300ms},
                             [&, caller = call.caller](Result<Digits> d) { got.emplace(caller, std::move(d)); });
  }
  ASSERT_TRUE(t.run_until([&] { return got.size() == 2; }, 10s));
  ASSERT_TRUE(got.at("1234"));
  EXPECT_EQ(got.at("1234")->digits, "1234");
  EXPECT_EQ(got.at("1234")->stop, Digits::Stop::max_digits);
  ASSERT_TRUE(got.at("1235"));
  EXPECT_EQ(got.at("1235")->digits, "");
  EXPECT_EQ(got.at("1235")->stop, Digits::Stop::first_digit_timeout);
  for (const auto& call : calls) t.engine->hangup(call.channel, HangupCause::normal(), nullptr);
}

// What the IVR tests' phones key once called back and asked for B (the fakes' phone_dtmf).
inline std::map<std::string, std::string> ivr_phones() {
  return {{"1101", "2002#"},                   // B at once
          {"1102", "*#2003#"},                 // '*' first: asked again, then B
          {"1103", ""},                        // silent: asked twice, then "call failed"
          {"1104", "110#110#"},                // an emergency number, twice
          {"1105", "1105#1105#"},              // their own number, twice
          {"1106", "2004#"},                   // B, which billing refuses
          {"1107", "123456789012345678901"}};  // 21 digits: too many, then "1": too short
}

// The IVR's callers that give no usable number, and how each call ends: silent (asked twice),
// an emergency number twice, their own number twice, 21 digits then "1" (too many, too short).
struct IvrGiveUp {
  std::string a, outcome, code;
};
inline const IvrGiveUp ivr_give_ups[] = {{"1103", "no_number", "no_number"},
                                         {"1104", "refused", "denied.emergency_number"},
                                         {"1105", "no_number", "no_number"},
                                         {"1107", "no_number", "no_number"}};

// The end of a callback whose IVR got no usable number: completed with the outcome and the
// error on `callee`, "call failed", A hung up by us, nothing asked of billing, and one record
// (A's, answered: B was never dialed).
template <class Fixture>
void check_ivr_gave_up(Fixture& t, const std::string& id, const IvrGiveUp& c) {
  const CallEvent& end = t.finish(id);
  EXPECT_EQ(end.call.state(), CallState::completed);
  EXPECT_EQ(end.outcome, c.outcome);
  ASSERT_TRUE(end.error.has_value());
  EXPECT_EQ(end.error->code, c.code);
  EXPECT_EQ(end.error->field, "callee");
  EXPECT_EQ(end.announcement, Announcement::call_failed);
  EXPECT_FALSE(end.call.request().callee.has_value());
  EXPECT_EQ(end.call.leg_a().cause.outcome(), Outcome::normal) << "we hung up after the announcement";
  EXPECT_TRUE(t.billing.authorized.empty()) << "no number, nothing asked of billing";
  const auto rows = t.cdrs(id);
  ASSERT_EQ(rows.size(), 1u) << "B was never dialed";
  EXPECT_EQ(rows[0].disposition, Disposition::answered);
}

}  // namespace callback::test
