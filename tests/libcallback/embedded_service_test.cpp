// EmbeddedService (callback/embedded.hpp) against the Asterisk fake with the real plugins:
// what the Python tests cannot see from outside (event order around watch(), a handler
// ending its own subscription, handlers before wait()), and its errors.
#include "fake_asterisk.hpp"
#include "temp_dir.hpp"

#include <callback/embedded.hpp>

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

namespace callback {
namespace {

class EmbeddedServiceTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  fake::FakeAsterisk asterisk{{.time_scale = 0.01}};

  std::string config() {
    return R"({"numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
      "store": {"plugin": "callback.store.sqlite", "config": {"path": ")" + (dir / "callback.db").string() + R"("}},
      "billing": {"plugin": "callback.billing.sqlite", "enabled": false},
      "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:)" +
           std::to_string(asterisk.port()) + R"("], "secret": "callbacksecret"}}],
      "service": {"campaigns": {"free": {"limit_seconds": 30}}, "b_ring_timeout_seconds": 600},
      "log": {"level": "warning"}})";
  }
  std::unique_ptr<EmbeddedService> open() {
    auto service = EmbeddedService::open_text(config(), {.plugin_dirs = {CALLBACK_PLUGIN_DIR}});
    EXPECT_TRUE(service) << service.error().describe();
    return std::move(*service);
  }
  void SetUp() override { asterisk.start(); }
  void TearDown() override { asterisk.stop(); }

  static CallbackForm form(std::string caller, std::string callee) {
    return {.caller = std::move(caller), .callee = std::move(callee), .payer = CampaignId{"free"}};
  }
};

// Waits for a state (or the end) in what a handler saw.
struct Seen {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<CallState> states;
  void add(const CallEvent& event) {
    std::lock_guard lock(mutex);
    states.push_back(event.call.state());
    changed.notify_all();
  }
  bool wait_for(CallState state) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(30),
                            [&] { return std::find(states.begin(), states.end(), state) != states.end(); });
  }
  std::vector<CallState> copy() {
    std::lock_guard lock(mutex);
    return states;
  }
};

TEST_F(EmbeddedServiceTest, WatchGivesTheLatestStateFirstThenEachChangeAndEndsByItself) {
  auto service = open();
  ASSERT_TRUE(service->start());
  Seen submitted;
  auto ticket = service->submit(form("1001", "4001"), [&](const CallEvent& e) { submitted.add(e); });  // B rings on
  ASSERT_TRUE(ticket) << ticket.error().describe();
  ASSERT_TRUE(submitted.wait_for(CallState::dialing_b));

  Seen watched;
  auto subscription = service->watch((*ticket)->id(), [&](const CallEvent& e) { watched.add(e); });
  ASSERT_TRUE(subscription);
  ASSERT_FALSE(watched.copy().empty());
  EXPECT_EQ(watched.copy().front(), CallState::dialing_b);  // where it stood, before any change
  ASSERT_TRUE(service->cancel((*ticket)->id()));
  auto end = (*ticket)->wait(std::chrono::seconds(30));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->call.state(), CallState::canceled);
  // Handlers saw the final event before wait() returned; the watch then ended by itself.
  EXPECT_EQ(watched.copy().back(), CallState::canceled);
  EXPECT_EQ(submitted.copy().back(), CallState::canceled);
  const auto after = watched.copy().size();
  auto again = service->submit(form("1001", "3001"));
  ASSERT_TRUE(again);
  ASSERT_TRUE((*again)->wait(std::chrono::seconds(30)));
  EXPECT_EQ(watched.copy().size(), after);

  auto unknown = service->watch("cb-nothing-1", [](const CallEvent&) {});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::not_found);
}

TEST_F(EmbeddedServiceTest, AHandlerMayEndItsOwnSubscription) {
  auto service = open();
  ASSERT_TRUE(service->start());
  int calls = 0;
  Subscription subscription;
  std::mutex mutex;
  subscription = service->subscribe([&](const CallEvent&) {
    std::lock_guard lock(mutex);
    ++calls;
    subscription.reset();  // from the service thread, inside its own call
  });
  auto ticket = service->submit(form("1001", "3001"));
  ASSERT_TRUE(ticket);
  ASSERT_TRUE((*ticket)->wait(std::chrono::seconds(30)));
  std::lock_guard lock(mutex);
  EXPECT_EQ(calls, 1);
}

// From a handler (the service thread): a cancel works once the handler returns, a submit
// is refused and a wait does not wait, instead of each waiting for the thread it runs on.
TEST_F(EmbeddedServiceTest, AHandlerCanCancelButNotSubmitOrWait) {
  auto service = open();
  ASSERT_TRUE(service->start());
  std::optional<Status> canceled;
  std::optional<std::string> submitted;
  bool waited = true, had_ticket = false;
  std::shared_ptr<CallbackTicket> ticket;
  std::mutex mutex;
  auto placed = service->submit(form("1001", "4001"), [&](const CallEvent& event) {
    if (event.call.state() != CallState::dialing_b) return;
    std::lock_guard lock(mutex);
    submitted = service->submit(form("1001", "1002")).error().code;
    had_ticket = ticket != nullptr;  // set right after submit(); A rings 10 ms before B is dialed
    waited = ticket && ticket->wait(std::chrono::seconds(30)).has_value();
    canceled = service->cancel(event.call.id());
  });
  ASSERT_TRUE(placed);
  {
    std::lock_guard lock(mutex);
    ticket = *placed;
  }
  auto end = (*placed)->wait(std::chrono::seconds(30));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->call.state(), CallState::canceled);
  std::lock_guard lock(mutex);
  ASSERT_TRUE(canceled);
  EXPECT_TRUE(*canceled);
  EXPECT_EQ(submitted, "from_handler");
  EXPECT_TRUE(had_ticket);
  EXPECT_FALSE(waited);
}

TEST_F(EmbeddedServiceTest, ErrorsNameWhatWasWrong) {
  auto missing = EmbeddedService::open(dir / "nope.json");
  ASSERT_FALSE(missing);
  auto bad = EmbeddedService::open_text("{\"store\": 7}", {.plugin_dirs = {CALLBACK_PLUGIN_DIR}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "store");

  auto service = open();
  auto early = service->submit(form("1001", "1002"));
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, "not_running");
  auto invalid = service->submit(form("1001", "12ab"));  // checked before anything runs
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().field, "callee");
  ASSERT_TRUE(service->start());
  EXPECT_EQ(service->start().error().code, "already_started");
  auto done = service->submit(form("1001", "3001"));
  ASSERT_TRUE(done);
  ASSERT_TRUE((*done)->wait(std::chrono::seconds(30)));
  EXPECT_EQ(service->cancel((*done)->id()).error().kind, ErrorKind::conflict);
  EXPECT_EQ(service->cancel("cb-nothing-1").error().kind, ErrorKind::not_found);
  EXPECT_EQ(service->rate("default", "1002").error().code, "billing_disabled");
  service->stop();
  EXPECT_EQ(service->submit(form("1001", "1002")).error().code, "not_running");
  auto kept = service->get((*done)->id());
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->outcome, "partner_busy");
  EXPECT_EQ((*done)->cancel().error().code, "not_running");
}

}  // namespace
}  // namespace callback
