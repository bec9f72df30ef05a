// Several callbackd nodes on one PostgreSQL (issue 13, "several nodes"): three processes
// (callbackctl serve), each with its own node id, sharing the store, billing and the
// callback journal, and both of two Asterisk fakes (in this process). Any node answers
// for any callback; a cancel sent to a node that does not run the call reaches the one
// that does; 1,000 requests at once on one account over the three never spend more than
// its balance; and a node killed with kill -9 leaves its calls to the others, which
// follow them to their end and bill each once.
#include "daemon.hpp"
#include "pg.hpp"
#include "poll.hpp"
#include "postgres.hpp"
#include "run_command.hpp"
#include "temp_dir.hpp"

#include "fake_asterisk.hpp"

#include <boost/json.hpp>
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace callback {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::Daemon;
using test::run_command;
using test::shell_quote;

struct Reply {
  long status = 0;
  std::string body;
  [[nodiscard]] json::object object() const {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    return !ec && v.is_object() ? v.as_object() : json::object{};
  }
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

bool final_state(const json::object& cb) {
  if (!cb.contains("state")) return false;
  const auto& s = cb.at("state").as_string();
  return s == "completed" || s == "failed" || s == "canceled";
}

std::string id_of(const Reply& r) {
  auto o = r.object();
  return o.contains("id") ? std::string(o.at("id").as_string()) : std::string();
}

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  test::TempDir dir;
  test::PostgresDatabase database;
  // agi written: the access numbers' calls wait in Async AGI (inbound calls).
  fake::FakeAsterisk asterisk1{{.time_scale = 0.05, .read_classes = "system,call,user,cdr,originate,agi,dtmf",
                                .write_classes = "system,call,command,originate,agi"}};
  fake::FakeAsterisk asterisk2{{.time_scale = 0.05, .read_classes = "system,call,user,cdr,originate,agi,dtmf",
                                .write_classes = "system,call,command,originate,agi"}};
  std::string key;
  // Configs written from now on have these triggers too, and receive inbound calls.
  std::string more_triggers;

  void SetUp() override {
    asterisk1.start();
    asterisk2.start();
    std::ofstream(dir / "deck.csv") << "prefix;description;rate;increment;connection_fee\n1;Lab stays up;0.60;1/1;0\n"
                                       "2;Lab hangs up;0.60;1/1;0\n";
    ASSERT_EQ(ctl("n1", "rates import default " + shell_quote((dir / "deck.csv").string()) + " --currency CNY").exit_code,
              0);
    auto made = ctl("n1", "--json keys add cluster --scope admin");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    key = std::string(json::parse(made.out).at("key").as_string());
  }

  // Node `node`'s config file: both Asterisks, a 2-second lease (so a dead node's calls
  // move within seconds).
  std::string config(const std::string& node) {
    const std::string path = (dir / (node + ".json")).string();
    if (std::filesystem::exists(path)) return path;
    std::ofstream(path) << R"({
      "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": [], "min_subscriber_digits": 4},
      "store": {"plugin": "callback.store.postgres", "config": {"conninfo": ")" << database.conninfo() << R"("}},
      "billing": {"plugin": "callback.billing.postgres", "config": {}},
      "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:)" << asterisk1.port()
                        << R"(", "127.0.0.1:)" << asterisk2.port() << R"("], "secret": "callbacksecret", "events": ")"
                        << (more_triggers.empty() ? "call,user,cdr" : "call,user,cdr,agi,dtmf") << R"("}}],
      "triggers": [{"plugin": "callback.trigger.web",
                    "config": {"token_secret": "one-secret-for-every-node-behind-the-address"}})"
                        << more_triggers << R"(],
      "service": {"node": ")" << node << R"(", "node_lease_seconds": 2, "a_ring_timeout_seconds": 60,
                  "b_ring_timeout_seconds": 20, "campaigns": {"free": {"limit_seconds": 60}}},
      "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 1},
      "log": {"level": "warning"}})";
    return path;
  }

  test::CommandResult ctl(const std::string& node, const std::string& args, int timeout_seconds = 30) {
    return run_command(shell_quote(CALLBACKCTL_PATH) + " --config " + shell_quote(config(node)) + " " + args,
                       timeout_seconds);
  }

  std::unique_ptr<Daemon> start(const std::string& node) {
    auto d = std::make_unique<Daemon>(config(node), std::vector<std::string>{});
    EXPECT_NE(d->port(), 0) << node << " did not start";
    return d;
  }

  Reply http(const Daemon& d, const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& extra_header = "") {
    Reply r;
    CURL* curl = curl_easy_init();
    curl_slist* headers = curl_slist_append(nullptr, ("Authorization: Bearer " + key).c_str());
    if (!body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
    if (!extra_header.empty()) headers = curl_slist_append(headers, extra_header.c_str());
    const std::string url = "http://127.0.0.1:" + std::to_string(d.port()) + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty()) {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return r;
  }

  Reply post(const Daemon& d, const std::string& caller, const std::string& callee, const std::string& extra = "",
             const std::string& idempotency_key = "") {
    return http(d, "POST", "/v1/callbacks",
                R"({"caller": ")" + caller + R"(", "callee": ")" + callee + R"(", "account": "acc")" + extra + "}",
                idempotency_key.empty() ? "" : "Idempotency-Key: " + idempotency_key);
  }

  // Polls GET on `d` until `done(callback)` holds (a condition, not a fixed wait).
  json::object wait_for(const Daemon& d, const std::string& id, const std::function<bool(const json::object&)>& done,
                        std::chrono::seconds deadline = 60s) {
    json::object last;
    const bool held = test::poll_until(deadline, [&] {
      auto r = http(d, "GET", "/v1/callbacks/" + id);
      if (r.status != 200) return false;
      last = r.object();
      return done(last);
    });
    if (!held) ADD_FAILURE() << id << " never reached the awaited state; last: " << json::serialize(last);
    return last;
  }

  // `n` calls placed on `d` (A 9000.., B 1001: both stay up), once all of them talk.
  std::vector<std::string> place_talking_calls(const Daemon& d, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      auto r = post(d, std::to_string(9000 + i), "1001", R"(, "limit_seconds": 240)");
      EXPECT_EQ(r.status, 202) << r.body;
      ids.push_back(id_of(r));
    }
    for (const auto& id : ids) {
      wait_for(d, id, [](const json::object& cb) { return cb.at("state").as_string() == "bridged"; });
    }
    return ids;
  }

  void add_account(const std::string& balance) {
    auto made = ctl("n1", "accounts add acc --currency CNY --balance " + balance);
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  std::int64_t count(const std::string& sql) {
    return pg::Connection(database.conninfo()).exec(sql).integer(0, 0);
  }
  std::int64_t balance_micros() { return count("SELECT balance_micros FROM account WHERE id = 'acc'"); }
  std::int64_t reserved_micros() { return count("SELECT reserved_micros FROM account WHERE id = 'acc'"); }
};

TEST_F(ClusterTest, ANodeIdInUseIsRefusedAtStart) {
  auto n1 = start("n1");
  auto second = ctl("n1", "serve", 30);
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("node id \"n1\" is in use by another running callback service"), std::string::npos)
      << second.err;
  EXPECT_NE(second.err.find("service.node"), std::string::npos) << second.err;
  // A service without a node id cannot take the journal whole while nodes share it.
  std::string whole = config("n1");
  {
    std::ifstream in(whole);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    s.replace(s.find(R"("node": "n1", )"), std::string(R"("node": "n1", )").size(), "");
    std::ofstream(dir / "whole.json") << s;
  }
  auto alone = run_command(shell_quote(CALLBACKCTL_PATH) + " --config " + shell_quote((dir / "whole.json").string()) +
                               " serve",
                           30);
  EXPECT_NE(alone.exit_code, 0);
  EXPECT_NE(alone.err.find("in use by another callback service"), std::string::npos) << alone.err;
  // Another id is welcome; and n1's id is free again once n1 is gone.
  auto n2 = start("n2");
  ASSERT_NE(n2->port(), 0);
  n1->terminate();
  auto again = start("n1");
  EXPECT_NE(again->port(), 0);
}

TEST_F(ClusterTest, AnyNodeShowsListsStreamsAndCancelsAnotherNodesCallback) {
  add_account("100.00");
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto n3 = start("n3");
  auto accepted = post(*n1, "9001", "1001", R"(, "limit_seconds": 600)");
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  const std::string id = id_of(accepted);
  auto talking = [](const json::object& cb) { return cb.at("state").as_string() == "bridged"; };
  wait_for(*n1, id, talking);
  // n2 and n3 do not run it, but show it from the journal.
  EXPECT_EQ(wait_for(*n2, id, talking).at("id").as_string(), id);
  auto listed = http(*n3, "GET", "/v1/callbacks");
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(listed.object().at("callbacks").as_array().size(), 1u) << listed.body;
  EXPECT_EQ(listed.object().at("callbacks").as_array()[0].at("id").as_string(), id);
  // n3 streams it until it ends; n2 is asked to cancel it.
  std::string stream;
  std::thread follower([&] { stream = http(*n3, "GET", "/v1/callbacks/" + id + "/events").body; });
  auto canceled = http(*n2, "DELETE", "/v1/callbacks/" + id);
  EXPECT_EQ(canceled.status, 202) << canceled.body;
  auto ended = wait_for(*n1, id, final_state);
  EXPECT_EQ(ended.at("state").as_string(), "canceled") << json::serialize(ended);
  follower.join();  // the stream ends by itself after the final state
  EXPECT_NE(stream.find("\"state\":\"bridged\""), std::string::npos) << stream;
  EXPECT_NE(stream.find("\"state\":\"canceled\""), std::string::npos) << stream;
  EXPECT_EQ(wait_for(*n2, id, final_state).at("state").as_string(), "canceled");
  // Canceling it again, anywhere, is a conflict; an unknown id is unknown everywhere.
  EXPECT_EQ(http(*n3, "DELETE", "/v1/callbacks/" + id).status, 409);
  EXPECT_EQ(http(*n2, "GET", "/v1/callbacks/cb-nobody-00000001").status, 404);
  EXPECT_EQ(count("SELECT count(*) FROM cdr WHERE callback_id = '" + id + "'"), 2);
  EXPECT_EQ(reserved_micros(), 0);
}

// The web page behind a load balancer: its request reaches one node, its event stream
// another. With one token_secret on every node, the token one node gave works on the others.
TEST_F(ClusterTest, ThePagesStreamTokenWorksOnEveryNode) {
  ASSERT_EQ(ctl("n1", "campaigns add free --limit 60").exit_code, 0);
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto asked = http(*n1, "POST", "/v1/public/callbacks", R"({"caller": "9005", "callee": "2001"})");
  ASSERT_EQ(asked.status, 202) << asked.body;
  const std::string id(asked.object().at("callback").at("id").as_string());
  const std::string events_url(asked.object().at("events_url").as_string());
  ASSERT_NE(events_url.find("token="), std::string::npos) << events_url;
  // Another node refuses a wrong token, and streams the call with the right one to its end.
  EXPECT_EQ(http(*n2, "GET", "/v1/public/callbacks/" + id + "/events?token=0123456789abcdef0123456789abcdef").status,
            403);
  auto stream = http(*n2, "GET", events_url);
  EXPECT_EQ(stream.status, 200) << stream.body;
  EXPECT_NE(stream.body.find("\"state\":\"completed\""), std::string::npos) << stream.body;
  EXPECT_NE(stream.body.find("\"outcome\":\"partner_hangup\""), std::string::npos) << stream.body;
}

TEST_F(ClusterTest, AnIdempotencyKeyNamesOneCallbackOnEveryNode) {
  add_account("100.00");
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto first = post(*n1, "9001", "2001", "", "order-7");
  ASSERT_EQ(first.status, 202) << first.body;
  auto again = post(*n2, "9001", "2001", "", "order-7");
  ASSERT_TRUE(again.status == 200 || again.status == 202) << again.status << " " << again.body;
  EXPECT_EQ(id_of(again), id_of(first));
  wait_for(*n2, id_of(first), final_state);
  EXPECT_EQ(count("SELECT count(*) FROM callback_journal WHERE idempotency_key IS NOT NULL"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM ledger WHERE kind = 'call_charge'"), 1);
}

TEST_F(ClusterTest, AThousandRequestsAtOnceOnOneAccountNeverSpendMoreThanItHas) {
  add_account("3.00");
  const std::int64_t before = balance_micros();
  std::vector<std::unique_ptr<Daemon>> nodes;
  for (const char* n : {"n1", "n2", "n3"}) nodes.push_back(start(n));
  std::atomic<int> next{0}, accepted{0}, refused{0}, other{0};
  std::vector<std::string> ids(1000);
  std::vector<std::thread> clients;
  for (int t = 0; t < 24; ++t) {
    clients.emplace_back([&] {
      for (int i; (i = next++) < 1000;) {
        auto r = post(*nodes[static_cast<std::size_t>(i) % 3], std::to_string(9000 + i % 700), "2001",
                      R"(, "limit_seconds": 60)");
        if (r.status == 202) {
          ids[static_cast<std::size_t>(i)] = id_of(r);
          ++accepted;
        } else if (r.status == 402 || r.status == 403 || r.status == 409) {
          ++refused;
        } else {
          ++other;
          ADD_FAILURE() << r.status << " " << r.body;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(accepted.load(), 0);
  EXPECT_GT(refused.load(), 0) << "the balance pays for far fewer than 1,000";
  std::int64_t charged = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) continue;
    auto done = wait_for(*nodes[(i + 1) % 3], ids[i], final_state, 120s);  // read on another node
    if (done.contains("cost") && done.at("cost").is_object()) {
      const std::string amount(done.at("cost").at("amount").as_string());
      charged += static_cast<std::int64_t>(std::llround(std::stod(amount) * 1'000'000));
    }
  }
  EXPECT_EQ(reserved_micros(), 0);
  EXPECT_GE(balance_micros(), 0);
  EXPECT_LE(charged, before);
  EXPECT_EQ(balance_micros(), before - charged);
  EXPECT_EQ(count("SELECT count(*) FROM ledger WHERE kind = 'call_charge'"),
            count("SELECT count(DISTINCT reference) FROM ledger WHERE kind = 'call_charge'"))
      << "each call charged once";
}

TEST_F(ClusterTest, AKilledNodesCallsEndAndAreBilledOnceByTheOthers) {
  add_account("1000.00");
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto n3 = start("n3");
  const auto ids = place_talking_calls(*n1, 100);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(asterisk1.active_calls() + asterisk2.active_calls(), 100u);
  n1->kill9();
  // The others take the calls over once n1's lease runs out, and follow them to the limit.
  std::set<std::string> owners;
  for (const auto& id : ids) {
    auto done = wait_for(*n2, id, final_state, 120s);
    EXPECT_EQ(done.at("state").as_string(), "completed") << json::serialize(done);
    EXPECT_EQ(done.at("outcome").as_string(), "time_up") << json::serialize(done);
  }
  pg::Connection conn(database.conninfo());
  auto rows = conn.exec("SELECT DISTINCT owner FROM callback_journal");
  for (int i = 0; i < rows.size(); ++i) owners.insert(rows.text(i, 0));
  EXPECT_FALSE(owners.contains("n1")) << "n1's calls were taken over";
  EXPECT_EQ(count("SELECT count(*) FROM ledger WHERE kind = 'call_charge'"), 100);
  EXPECT_EQ(count("SELECT count(DISTINCT reference) FROM ledger WHERE kind = 'call_charge'"), 100);
  EXPECT_EQ(count("SELECT count(*) FROM cdr"), 200);
  EXPECT_EQ(count("SELECT count(DISTINCT callback_id) FROM cdr"), 100);
  EXPECT_EQ(reserved_micros(), 0);
  EXPECT_EQ(asterisk1.active_calls() + asterisk2.active_calls(), 0u);
}

// Every node is connected to both Asterisks and sees every call to an access number. Each
// call is taken by one node: rejected busy once (never turned away by another node, never
// answered) and called back once; the callback's A, waiting in its node's IVR for the
// number, is left alone by the other node.
TEST_F(ClusterTest, EachCallToAnAccessNumberIsTakenByOneNodeAndCalledBackOnce) {
  more_triggers = R"(, {"plugin": "callback.trigger.did", "config": {"ring_seconds": 1, "callback_delay_seconds": 0,
      "per_caller_per_hour": 100, "numbers": {"5001": {"mode": "fixed", "destination": "2001", "campaign": "free"},
                                              "5002": {"mode": "ivr", "campaign": "free"}}}})";
  ASSERT_EQ(ctl("d1", "campaigns add free --limit 60").exit_code, 0);
  auto d1 = start("d1");
  auto d2 = start("d2");
  // Both nodes logged in to both Asterisks: an inbound call before that would reach one.
  ASSERT_TRUE(test::poll_until(30s, [&] { return asterisk1.connections() == 2 && asterisk2.connections() == 2; }));
  std::vector<std::pair<fake::FakeAsterisk*, std::string>> calls;
  for (int i = 0; i < 20; ++i) {
    auto& pbx = i % 2 == 0 ? asterisk1 : asterisk2;
    // Fixed (B 2001 hangs up after 5 s), or into the IVR, where a 7XXX phone keys 2XXX#.
    calls.emplace_back(&pbx, i % 4 < 2 ? pbx.inbound({.from = std::to_string(1100 + i), .to = "5001"})
                                       : pbx.inbound({.from = std::to_string(7100 + i), .to = "5002"}));
  }
  for (const auto& [pbx, channel] : calls) {
    ASSERT_TRUE(pbx->wait_for_inbound_end(channel, 30s)) << channel;
    const auto end = pbx->inbound_end(channel);
    EXPECT_FALSE(end->answered) << channel << ": the caller pays nothing";
    EXPECT_EQ(end->cause, 17) << channel << ": busy from the node that took it, not congestion from the other";
  }
  // One node took each call: one Hangup names it (two nodes would both reject it).
  for (auto* pbx : {&asterisk1, &asterisk2}) {
    const auto actions = pbx->actions();
    for (const auto& [on, channel] : calls) {
      if (on != pbx) continue;
      EXPECT_EQ(std::count_if(actions.begin(), actions.end(),
                              [&](const std::string& a) {
                                return a.starts_with("Action: Hangup\r\n") &&
                                       a.find("Channel: " + channel + "\r\n") != std::string::npos;
                              }),
                1)
          << channel;
    }
  }
  std::vector<json::object> callbacks;
  ASSERT_TRUE(test::poll_until(60s, [&] {
    auto listed = http(*d2, "GET", "/v1/callbacks?limit=100");
    if (listed.status != 200) return false;
    callbacks.clear();
    const auto body = listed.object();
    for (const auto& cb : body.at("callbacks").as_array()) callbacks.push_back(cb.as_object());
    return callbacks.size() >= calls.size() &&
           std::all_of(callbacks.begin(), callbacks.end(), [](const json::object& cb) { return final_state(cb); });
  })) << callbacks.size() << " callbacks";
  EXPECT_EQ(callbacks.size(), calls.size()) << "one callback a call";
  std::set<std::string> callers;
  for (const auto& cb : callbacks) {
    const auto caller = std::string(cb.at("caller").as_string());
    callers.insert(caller);
    EXPECT_EQ(cb.at("state").as_string(), "completed") << json::serialize(cb);
    EXPECT_EQ(cb.at("outcome").as_string(), "partner_hangup") << json::serialize(cb);
    // The IVR's callers keyed 2XXX#: B is what they keyed on their node's IVR.
    if (caller.starts_with("71")) {
      EXPECT_EQ(cb.at("callee").as_string(), "2" + caller.substr(1)) << json::serialize(cb);
    }
  }
  EXPECT_EQ(callers.size(), calls.size());
  EXPECT_EQ(count("SELECT count(*) FROM inbound_claim"), static_cast<std::int64_t>(calls.size()));
  std::cout << "callbacks by node:";  // which node claims first is a race: not asserted
  for (const auto* node : {"d1", "d2"}) {
    std::cout << " " << node << " " << count(std::string("SELECT count(*) FROM callback_journal WHERE owner = '") + node + "'");
  }
  std::cout << "\n";
  EXPECT_EQ(count("SELECT count(*) FROM cdr"), 2 * static_cast<std::int64_t>(calls.size()));
  EXPECT_EQ(asterisk1.active_calls() + asterisk2.active_calls(), 0u);
}

// A node frozen longer than its lease (SIGSTOP: a stalled VM, a long pause) loses its
// calls to another node. When it runs again it finds out at its next renewal and stops at
// once (exit 75) without touching them; the other node ends and bills each once.
TEST_F(ClusterTest, AFrozenNodeLosesItsCallsAndStopsWhenItWakesUp) {
  add_account("1000.00");
  auto n1 = start("n1");
  auto n2 = start("n2");
  const auto ids = place_talking_calls(*n1, 10);
  ASSERT_FALSE(HasFailure());
  n1->signal(SIGSTOP);
  // n2 takes them over once n1's lease has run out: all of them, unless n1 froze in the
  // middle of a journal write (seen under ASan in CI, 9 of 10): that call's row stays
  // locked by n1's open transaction, and n2 takes it once n1 has woken and stopped.
  test::poll_until(60s, [&] { return count("SELECT count(*) FROM callback_journal WHERE owner = 'n2' AND NOT final") >= 10; });
  ASSERT_GE(count("SELECT count(*) FROM callback_journal WHERE owner = 'n2'"), 9);
  n1->signal(SIGCONT);
  EXPECT_EQ(n1->wait(30s), 128 + 75) << "n1 stops at its next renewal (every 2/3 s)";
  EXPECT_TRUE(test::poll_until(60s, [&] { return count("SELECT count(*) FROM callback_journal WHERE owner = 'n2'") == 10; }));
  for (const auto& id : ids) {
    auto done = wait_for(*n2, id, final_state, 120s);
    EXPECT_EQ(done.at("outcome").as_string(), "time_up") << json::serialize(done);
  }
  EXPECT_EQ(count("SELECT count(*) FROM ledger WHERE kind = 'call_charge'"), 10);
  EXPECT_EQ(count("SELECT count(*) FROM cdr"), 20);
  EXPECT_EQ(reserved_micros(), 0);
  EXPECT_EQ(asterisk1.active_calls() + asterisk2.active_calls(), 0u);
}

}  // namespace
}  // namespace callback
