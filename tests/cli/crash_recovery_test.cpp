// kill -9 of callbackd at each stage of a callback, then a restart (issue 10, item 1): the
// money is settled or released, the CDRs are written, the callback is readable by id and
// its idempotency key still names it. callbackd runs as a process of its own (callbackctl
// serve) on SQLite store and billing, against the Asterisk fake in this process, which
// keeps its calls and its AstDB across the kill as a real Asterisk would.
//
// The stages come from CALLBACK_CRASH_AT (the service raises SIGKILL there: "authorizing",
// "authorized", "settled"), or from a kill -9 sent once GET shows the state (A ringing,
// bridged).
#include "daemon.hpp"
#include "poll.hpp"
#include "raw_http.hpp"
#include "run_command.hpp"
#include "temp_dir.hpp"

#include "fake_asterisk.hpp"

#include <boost/json.hpp>
#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

namespace callback {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::Daemon;
using test::run_command;
using test::shell_quote;

struct Reply {
  int status = 0;
  json::value body;
  bool answered = false;
};

class CrashRecoveryTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  fake::FakeAsterisk asterisk{{.time_scale = 0.05}};
  std::string config;
  std::string key;

  void SetUp() override {
    asterisk.start();
    config = (dir / "callback.json").string();
    const std::string db = (dir / "callback.db").string();
    std::ofstream(config) << R"({
      "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": [], "min_subscriber_digits": 4},
      "store": {"plugin": "callback.store.sqlite", "config": {"path": ")" << db << R"("}},
      "billing": {"plugin": "callback.billing.sqlite", "config": {"path": ")" << db << R"("}},
      "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:)" << asterisk.port()
                          << R"("], "secret": "callbacksecret"}}],
      "service": {"a_ring_timeout_seconds": 60, "b_ring_timeout_seconds": 20},
      "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 1},
      "log": {"level": "warning"}})";
    std::ofstream(dir / "deck.csv") << "prefix;description;rate;increment;connection_fee\n1;Lab stays up;0.60;1/1;0\n2;Lab hangs up;0.60;1/1;0\n"
                                       "4;Lab no answer;0.60;1/1;0\n9;Lab answers;0.60;1/1;0\n";
    ASSERT_EQ(ctl("rates import default " + shell_quote((dir / "deck.csv").string()) + " --currency CNY").exit_code, 0);
    auto account = ctl("accounts add acc --currency CNY --balance 100.00");
    ASSERT_EQ(account.exit_code, 0) << account.err;
    auto made = ctl("--json keys add crash --scope admin");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    key = std::string(json::parse(made.out).at("key").as_string());
  }

  test::CommandResult ctl(const std::string& args, int timeout_seconds = 30) {
    return run_command(shell_quote(CALLBACKCTL_PATH) + " --config " + shell_quote(config) + " " + args, timeout_seconds);
  }

  Reply http(const Daemon& d, const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& extra = "") {
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                          "\r\nConnection: close\r\n" + extra;
    if (!body.empty()) {
      request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    }
    request += "\r\n" + body;
    auto exchange = test::raw_http(d.port(), request, {.deadline = 10'000ms});
    Reply reply;
    if (exchange.responses.empty()) return reply;
    reply.answered = true;
    reply.status = exchange.responses[0].status;
    boost::system::error_code ec;
    reply.body = json::parse(exchange.responses[0].body, ec);
    return reply;
  }

  Reply post_callback(const Daemon& d, const std::string& caller, const std::string& callee,
                      const std::string& idempotency_key = "") {
    return http(d, "POST", "/v1/callbacks",
                R"({"caller": ")" + caller + R"(", "callee": ")" + callee + R"(", "account": "acc"})",
                idempotency_key.empty() ? "" : "Idempotency-Key: " + idempotency_key + "\r\n");
  }

  // Polls GET until `done(callback)` holds (a condition, not a fixed wait); the last body.
  json::object wait_for(const Daemon& d, const std::string& id, const std::function<bool(const json::object&)>& done,
                        std::chrono::seconds deadline = 60s) {
    json::object last;
    const bool held = test::poll_until(deadline, [&] {
      auto r = http(d, "GET", "/v1/callbacks/" + id);
      if (r.status != 200 || !r.body.is_object()) return false;
      last = r.body.as_object();
      return done(last);
    });
    if (!held) ADD_FAILURE() << id << " never reached the awaited state; last: " << json::serialize(last);
    return last;
  }
  // The id of the one callback callbackd knows (the POST that made it got no answer), once
  // its recovery has told the REST side (it may still be writing the records when the
  // server starts answering).
  std::string only_callback(const Daemon& d) {
    Reply list;
    if (test::poll_until(30s, [&] {
          list = http(d, "GET", "/v1/callbacks");
          return list.status == 200 && list.body.at("callbacks").as_array().size() == 1;
        })) {
      return std::string(list.body.at("callbacks").as_array()[0].at("id").as_string());
    }
    ADD_FAILURE() << "expected one callback: " << json::serialize(list.body);
    return {};
  }
  static bool final(const json::object& cb) {
    const auto& s = cb.at("state").as_string();
    return s == "completed" || s == "failed" || s == "canceled";
  }

  json::object account() {
    auto shown = ctl("--json accounts show acc");
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return json::parse(shown.out).as_object();
  }
  std::string balance() { return std::string(account().at("balance").as_string()); }
  std::string reserved() { return std::string(account().at("reserved").as_string()); }
  // The CDRs of a callback, as the store has them.
  json::array cdrs(const std::string& id) {
    auto status = ctl("--json status " + id);
    if (status.exit_code != 0) {
      ADD_FAILURE() << "callbackctl status " << id << ": " << status.err;
      return {};
    }
    return json::parse(status.out).at("cdrs").as_array();
  }
};

std::string id_of(const Reply& r) { return std::string(r.body.at("id").as_string()); }

TEST_F(CrashRecoveryTest, FinishedCallbacksAndTheirIdempotencyKeysSurviveAKill) {
  std::string id, cost;
  {
    Daemon d(config, {});
    ASSERT_NE(d.port(), 0);
    auto accepted = post_callback(d, "9001", "2001", "order-42");
    ASSERT_EQ(accepted.status, 202) << json::serialize(accepted.body);
    id = id_of(accepted);
    auto done = wait_for(d, id, final);
    ASSERT_EQ(done.at("state"), "completed") << json::serialize(done);
    ASSERT_TRUE(done.at("cost").is_object());
    cost = std::string(done.at("cost").at("amount").as_string());
    d.kill9();
  }
  const std::string balance_before = balance();
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  // Readable by id, as it ended.
  auto read = http(again, "GET", "/v1/callbacks/" + id);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.body.at("state"), "completed");
  EXPECT_EQ(read.body.at("cost").at("amount"), json::value(cost));
  // The same key is the same callback: no second call, no second charge.
  auto repeated = post_callback(again, "9001", "2001", "order-42");
  ASSERT_TRUE(repeated.status == 200 || repeated.status == 202) << repeated.status;
  EXPECT_EQ(id_of(repeated), id);
  EXPECT_EQ(balance(), balance_before);
  EXPECT_EQ(cdrs(id).size(), 2u);
}

TEST_F(CrashRecoveryTest, AKillWhileAuthorizingHoldsNoMoneyAndFreesTheKey) {
  const std::string before = balance();
  {
    Daemon d(config, {"CALLBACK_CRASH_AT=authorizing"});
    ASSERT_NE(d.port(), 0);
    auto lost = post_callback(d, "9001", "2001", "try-1");
    EXPECT_FALSE(lost.answered);  // it died before answering
    EXPECT_EQ(d.wait(), SIGKILL);
  }
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  const std::string id = only_callback(again);
  ASSERT_FALSE(id.empty());
  auto interrupted = wait_for(again, id, final);
  EXPECT_EQ(interrupted.at("state"), "failed");
  EXPECT_EQ(interrupted.at("outcome"), "interrupted");
  EXPECT_EQ(interrupted.at("error").at("code"), "interrupted");
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_EQ(balance(), before);
  EXPECT_EQ(asterisk.active_calls(), 0u);
  // The key was given back: trying again places the call.
  auto retried = post_callback(again, "9001", "2001", "try-1");
  ASSERT_EQ(retried.status, 202);
  EXPECT_NE(id_of(retried), id);
  EXPECT_EQ(wait_for(again, id_of(retried), final).at("state"), "completed");
}

// `callbackctl call` runs its own service, which takes up what the journal held when it
// starts: a callback interrupted by a kill ends "interrupted" right then. The command shows
// and waits for its own call, not that one.
TEST_F(CrashRecoveryTest, CallbackctlCallFollowsItsOwnCallNotOneItsStartTookUp) {
  {
    Daemon d(config, {"CALLBACK_CRASH_AT=authorizing"});
    ASSERT_NE(d.port(), 0);
    EXPECT_FALSE(post_callback(d, "9001", "2001").answered);
    EXPECT_EQ(d.wait(), SIGKILL);
  }
  auto run = ctl("--json call 9002 2002 --account acc --wait", 60);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::istringstream lines(run.out);
  std::string id;
  std::size_t events = 0;
  for (std::string line; std::getline(lines, line);) {
    auto event = json::parse(line).as_object();
    if (id.empty()) id = std::string(event.at("id").as_string());
    EXPECT_EQ(event.at("id"), json::value(id)) << run.out;  // one callback's events only
    EXPECT_EQ(event.at("caller"), "9002") << run.out;
    ++events;
  }
  EXPECT_GT(events, 1u) << run.out;
  EXPECT_EQ(cdrs(id).size(), 2u);
}

TEST_F(CrashRecoveryTest, AKillRightAfterTheGrantReleasesIt) {
  const std::string before = balance();
  {
    Daemon d(config, {"CALLBACK_CRASH_AT=authorized"});
    ASSERT_NE(d.port(), 0);
    (void)post_callback(d, "9001", "2001");
    EXPECT_EQ(d.wait(), SIGKILL);
  }
  EXPECT_NE(reserved(), "0.00");  // the grant outlived the process
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  const std::string id = only_callback(again);
  ASSERT_FALSE(id.empty());
  // The grant was durable, the journal did not say "dialing" yet: nothing was placed.
  auto ended = wait_for(again, id, final);
  EXPECT_EQ(ended.at("state"), "failed") << json::serialize(ended);
  EXPECT_EQ(ended.at("outcome"), "interrupted");
  EXPECT_EQ(asterisk.active_calls(), 0u);
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_EQ(balance(), before);
}

TEST_F(CrashRecoveryTest, AKillWhileARingsEndsItAfterTheRestartWithoutCharge) {
  const std::string before = balance();
  std::string id;
  {
    Daemon d(config, {});
    ASSERT_NE(d.port(), 0);
    auto accepted = post_callback(d, "4001", "2001");  // A rings, nobody answers
    ASSERT_EQ(accepted.status, 202);
    id = id_of(accepted);
    wait_for(d, id, [](const json::object& cb) { return cb.at("state") == "dialing_a"; });
    d.kill9();
  }
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  auto ended = wait_for(again, id, final);
  EXPECT_EQ(ended.at("state"), "failed") << json::serialize(ended);
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_EQ(balance(), before);
  EXPECT_FALSE(cdrs(id).empty());
}

TEST_F(CrashRecoveryTest, CallsBridgedAtTheKillAreFollowedAndBilledAfterTheRestart) {
  std::vector<std::string> ids;
  {
    Daemon d(config, {});
    ASSERT_NE(d.port(), 0);
    for (int i = 0; i < 5; ++i) {
      auto accepted = post_callback(d, "900" + std::to_string(i), "100" + std::to_string(i));
      ASSERT_EQ(accepted.status, 202) << json::serialize(accepted.body);
      ids.push_back(id_of(accepted));
    }
    for (const auto& id : ids) wait_for(d, id, [](const json::object& cb) { return cb.at("state") == "bridged"; });
    d.kill9();
  }
  ASSERT_EQ(asterisk.active_calls(), 5u);  // Asterisk keeps them up
  EXPECT_NE(reserved(), "0.00");
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  // Still bridged and ours: a cancel reaches them, and they end billed.
  for (const auto& id : ids) {
    auto state = wait_for(again, id, [](const json::object& cb) { return cb.at("state") == "bridged"; });
    auto canceled = http(again, "DELETE", "/v1/callbacks/" + id);
    EXPECT_TRUE(canceled.status == 202 || canceled.status == 200) << canceled.status;
  }
  for (const auto& id : ids) {
    auto ended = wait_for(again, id, final);
    ASSERT_TRUE(ended.at("cost").is_object()) << json::serialize(ended);
    EXPECT_GT(ended.at("legs").at("b").at("billsec").as_int64(), 0);
    EXPECT_EQ(cdrs(id).size(), 2u) << id;
  }
  EXPECT_TRUE(asterisk.wait_for_active_calls(0, 10s));
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_NE(balance(), "100.00");
}

TEST_F(CrashRecoveryTest, AKillWhileSettlingChargesOnceAndWritesTheRecordsOnce) {
  {
    Daemon d(config, {"CALLBACK_CRASH_AT=settled"});
    ASSERT_NE(d.port(), 0);
    auto accepted = post_callback(d, "9001", "2001");  // B hangs up after a while
    ASSERT_EQ(accepted.status, 202);
    EXPECT_EQ(d.wait(), SIGKILL);
  }
  const std::string charged = balance();
  EXPECT_NE(charged, "100.00");  // the charge was made before the kill
  EXPECT_EQ(reserved(), "0.00");
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  const std::string id = only_callback(again);
  ASSERT_FALSE(id.empty());
  auto ended = wait_for(again, id, final);
  ASSERT_TRUE(ended.at("cost").is_object()) << json::serialize(ended);
  EXPECT_EQ(balance(), charged);  // not charged twice
  EXPECT_EQ(cdrs(id).size(), 2u);
}

// Killed between the legs' ends reaching the journal and the charge: Asterisk has no channel
// of the call any more, and the journal knows how it ended. The restart charges B's talk
// from it, once, and writes the records once.
TEST_F(CrashRecoveryTest, AKillAfterTheCallEndedButBeforeTheChargeChargesItFromTheJournal) {
  {
    Daemon d(config, {"CALLBACK_CRASH_AT=ended"});
    ASSERT_NE(d.port(), 0);
    auto accepted = post_callback(d, "9001", "2001");  // B hangs up after a while
    ASSERT_EQ(accepted.status, 202);
    EXPECT_EQ(d.wait(), SIGKILL);
  }
  EXPECT_EQ(balance(), "100.00");  // nothing charged yet
  EXPECT_NE(reserved(), "0.00");
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 10s));
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  const std::string id = only_callback(again);
  ASSERT_FALSE(id.empty());
  auto ended = wait_for(again, id, final);
  ASSERT_TRUE(ended.at("cost").is_object()) << json::serialize(ended);
  EXPECT_GT(ended.at("legs").at("b").at("billsec").as_int64(), 0) << json::serialize(ended);
  EXPECT_EQ(ended.at("outcome"), "partner_hangup") << json::serialize(ended);
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_NE(balance(), "100.00");
  EXPECT_EQ(cdrs(id).size(), 2u);
}

// Money held in slices (debit_interval_seconds): a call taken up after a kill keeps asking
// for the next slice (before, it held the slice it had at the kill and no more), and is
// charged for its talk.
TEST_F(CrashRecoveryTest, ACallOnMoneyHeldInSlicesKeepsExtendingAfterTheRestart) {
  {
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string billing = "\"plugin\": \"callback.billing.sqlite\", \"config\": {";
    const auto at = text.find(billing);
    ASSERT_NE(at, std::string::npos);
    text.insert(at + billing.size(), "\"debit_interval_seconds\": 4, ");
    std::ofstream(config) << text;
  }
  std::string id;
  {
    Daemon d(config, {});
    ASSERT_NE(d.port(), 0);
    auto accepted = post_callback(d, "9001", "1001");  // B stays up
    ASSERT_EQ(accepted.status, 202) << json::serialize(accepted.body);
    id = id_of(accepted);
    wait_for(d, id, [](const json::object& cb) { return cb.at("state") == "bridged"; });
    d.kill9();
  }
  EXPECT_NE(reserved(), "0.00");  // a slice or two: 4 s at 0.60/min each
  Daemon again(config, {});
  ASSERT_NE(again.port(), 0);
  wait_for(again, id, [](const json::object& cb) { return cb.at("state") == "bridged"; });
  // The next slices are asked for (a condition, polled): more than 8 s of talk held.
  test::poll_until(60s, [&] { return std::stod(reserved()) > 0.08; }, 200ms);
  ASSERT_GT(std::stod(reserved()), 0.08);
  auto canceled = http(again, "DELETE", "/v1/callbacks/" + id);
  EXPECT_TRUE(canceled.status == 202 || canceled.status == 200) << canceled.status;
  auto ended = wait_for(again, id, final);
  ASSERT_TRUE(ended.at("cost").is_object()) << json::serialize(ended);
  // B's billsec is what the fake replays from its recording (not the time the test took).
  const auto billsec = ended.at("legs").at("b").at("billsec").as_int64();
  EXPECT_EQ(reserved(), "0.00");
  // Charged for every second of it (0.01 a second at 0.60/min, 1/1 increments).
  const auto charged = ended.at("cost").at("amount").as_string();
  char expected[48];
  std::snprintf(expected, sizeof expected, "%lld.%02lld", static_cast<long long>(billsec / 100),
                static_cast<long long>(billsec % 100));
  EXPECT_EQ(charged, expected) << json::serialize(ended);
}

TEST_F(CrashRecoveryTest, ReconcileRefusesWhileCallbackdOwnsTheStoreAndFixesAfterAKill) {
  std::string id;
  {
    Daemon d(config, {});
    ASSERT_NE(d.port(), 0);
    auto busy = ctl("reconcile");
    EXPECT_NE(busy.exit_code, 0);
    EXPECT_NE(busy.err.find("in use by another callback service"), std::string::npos) << busy.err;
    auto accepted = post_callback(d, "9001", "2001");
    ASSERT_EQ(accepted.status, 202);
    id = id_of(accepted);
    wait_for(d, id, [](const json::object& cb) { return cb.at("state") == "bridged"; });
    d.kill9();
  }
  // B hangs up on its own (2XXX) while nobody watches; reconcile finds the call ended.
  ASSERT_TRUE(asterisk.wait_for_active_calls(0, 30s));
  auto fixed = ctl("--json reconcile --timeout 30", 60);
  ASSERT_EQ(fixed.exit_code, 0) << fixed.err << fixed.out;
  auto report = json::parse(fixed.out).as_object();
  ASSERT_EQ(report.at("fixed").as_array().size(), 1u) << fixed.out;
  EXPECT_EQ(report.at("fixed").as_array()[0].at("id"), json::value(id));
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_EQ(cdrs(id).size(), 2u);
  // Run again: nothing left to fix.
  auto twice = ctl("--json reconcile --timeout 30", 60);
  ASSERT_EQ(twice.exit_code, 0) << twice.err;
  EXPECT_TRUE(json::parse(twice.out).at("fixed").as_array().empty());
}

// A release on billing's thread and the final journal entry on the store's commit in no
// fixed order; a stop between the two left the reservation open with its callback final.
// Made here by hand (an open reservation of a finished callback): reconcile gives it back.
TEST_F(CrashRecoveryTest, AReservationLeftOpenForAFinishedCallbackIsReleasedByTheNextStart) {
  std::string id;
  {
    Daemon d(config, {});
    ASSERT_NE(d.port(), 0);
    auto accepted = post_callback(d, "9001", "4001");  // B never answers: released, nothing charged
    ASSERT_EQ(accepted.status, 202);
    id = id_of(accepted);
    EXPECT_EQ(wait_for(d, id, final).at("state"), "completed");
    d.terminate();
  }
  {
    SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READWRITE);
    db.exec("UPDATE reservation SET status = 'open', ended_at = NULL WHERE call_id = '" + id + "'");
    db.exec("UPDATE account SET reserved_micros = reserved_micros + "
            "(SELECT amount_micros FROM reservation WHERE call_id = '" + id + "') WHERE id = 'acc'");
  }
  ASSERT_NE(reserved(), "0.00");
  auto fixed = ctl("--json reconcile --timeout 10", 60);
  ASSERT_EQ(fixed.exit_code, 0) << fixed.err << fixed.out;
  auto report = json::parse(fixed.out).as_object();
  EXPECT_EQ(report.at("released").as_array().size(), 1u) << fixed.out;
  EXPECT_TRUE(report.at("fixed").as_array().empty()) << fixed.out;
  EXPECT_EQ(reserved(), "0.00");
  EXPECT_EQ(balance(), "100.00");
  EXPECT_EQ(cdrs(id).size(), 2u);  // its records stay as they were
}

}  // namespace
}  // namespace callback
