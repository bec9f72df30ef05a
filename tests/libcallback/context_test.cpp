#include <callback/context.hpp>

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

using namespace callback;
using namespace std::chrono_literals;

namespace {

TEST(ManualClock, FiresTimersInTimeOrderOnlyWhenAdvanced) {
  ManualClock clock;
  const auto start = clock.now();
  std::vector<std::string> fired;
  clock.schedule(300s, [&] { fired.push_back("limit"); });
  clock.schedule(280s, [&] { fired.push_back("warning"); });
  clock.schedule(280s, [&] { fired.push_back("warning2"); });  // same time: scheduling order
  clock.advance(279s);
  EXPECT_TRUE(fired.empty());
  clock.advance(1s);
  EXPECT_EQ(fired, (std::vector<std::string>{"warning", "warning2"}));
  clock.advance(20s);
  EXPECT_EQ(fired.back(), "limit");
  EXPECT_EQ(clock.now() - start, 300s);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(ManualClock, CanceledTimersDoNotFire) {
  ManualClock clock;
  bool fired = false;
  auto handle = clock.schedule(10s, [&] { fired = true; });
  handle.cancel();
  handle.cancel();  // twice is harmless
  clock.advance(1min);
  EXPECT_FALSE(fired);
}

TEST(ManualClock, TimersScheduledByTimersFireWithinTheSameAdvance) {
  ManualClock clock;
  std::vector<std::chrono::milliseconds> at;
  const auto origin = clock.steady_now();
  std::function<void()> repeat = [&] {
    at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - origin));
    if (at.size() < 3) clock.schedule(20s, repeat);
  };
  clock.schedule(20s, repeat);
  clock.advance(100s);
  EXPECT_EQ(at, (std::vector<std::chrono::milliseconds>{20s, 40s, 60s}));
}

TEST(SystemClock, SchedulesOnTheIoContext) {
  boost::asio::io_context io;
  SystemClock clock{io};
  int fired = 0;
  clock.schedule(1ms, [&] { ++fired; });
  auto canceled = clock.schedule(1ms, [&] { fired += 100; });
  canceled.cancel();
  io.run();  // returns once no work is left: the timer fired or was canceled
  EXPECT_EQ(fired, 1);
}

TEST(SystemClock, ACancelBeforeTheHandlerRunsHoldsEvenWhenTheTimerIsAlreadyDue) {
  // A 0 ms timer is due at once: when io.run() looks, its handler is queued with success,
  // which steady_timer::cancel cannot take back. The handle's cancel must hold anyway (it
  // did not, now and then, under a loaded machine).
  boost::asio::io_context io;
  SystemClock clock{io};
  int fired = 0;
  std::vector<TimerHandle> handles;
  for (int i = 0; i < 200; ++i) handles.push_back(clock.schedule(0ms, [&] { ++fired; }));
  for (auto& handle : handles) handle.cancel();
  io.run();
  EXPECT_EQ(fired, 0);
}

TEST(StreamLogger, WritesOneLinePerMessageAboveThreshold) {
  std::ostringstream out;
  StreamLogger log{out, LogLevel::info};
  log.debug("callback.test", "hidden");
  log.warning("callback.engine.ami", "lost 127.0.0.1:5038");
  const std::string text = out.str();
  EXPECT_EQ(text.find("hidden"), std::string::npos);
  EXPECT_NE(text.find(" warning callback.engine.ami: lost 127.0.0.1:5038\n"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
}

// A message quoting untrusted text (a webhook URL with CR/LF in it) stays one line,
// whatever Logger it goes to: the escaping is in Logger::write, not in one sink.
TEST(Logger, EscapesControlCharactersSoNoMessageForgesALine) {
  std::ostringstream out;
  StreamLogger log{out, LogLevel::info};
  log.warning("callbackd", "webhook to http://x/\r\n2026-11-26T09:00:00.000Z error callbackd: forged\x1b[2J\t\x7f");
  log.write(LogLevel::error, "comp\nonent", "a\xc2\x85" "b \xe4\xb8\xad");  // NEL (U+0085) ends lines too; CJK stays
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("http://x/\\r\\n2026-11-26T09:00:00.000Z error callbackd: forged\\x1b[2J\\t\\x7f\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(" error comp\\nonent: a\\xc2\\x85b \xe4\xb8\xad\n"), std::string::npos) << text;
}

TEST(Logger, EscapeControlLeavesOrdinaryTextAlone) {
  EXPECT_EQ(escape_control("lost 127.0.0.1:5038 \"quoted\" \xe4\xb8\xad\xe6\x96\x87 caf\xc3\xa9"),
            "lost 127.0.0.1:5038 \"quoted\" \xe4\xb8\xad\xe6\x96\x87 caf\xc3\xa9");
  EXPECT_EQ(escape_control(std::string_view("a\0b", 3)), "a\\x00b");
}

TEST(Metrics, RendersPrometheusText) {
  Metrics metrics;
  metrics.counter("callback_calls_total", "Callbacks by outcome", "outcome=\"busy\"").add(2);
  metrics.counter("callback_calls_total", "Callbacks by outcome", "outcome=\"normal\"").add();
  metrics.gauge("callback_in_flight", "Callbacks in flight").set(7);
  EXPECT_EQ(metrics.render_prometheus(),
            "# HELP callback_calls_total Callbacks by outcome\n"
            "# TYPE callback_calls_total counter\n"
            "callback_calls_total{outcome=\"busy\"} 2\n"
            "callback_calls_total{outcome=\"normal\"} 1\n"
            "# HELP callback_in_flight Callbacks in flight\n"
            "# TYPE callback_in_flight gauge\n"
            "callback_in_flight 7\n");
  EXPECT_THROW(metrics.gauge("callback_calls_total", "x"), std::logic_error);
}

}  // namespace

TEST(Metrics, HistogramsCountIntoCumulativeBucketsAndRenderAsPrometheus) {
  Metrics metrics;
  auto& h = metrics.histogram("x_seconds", "Some time", "route=\"a\"", {0.01, 0.1, 1});
  h.observe(std::chrono::milliseconds(5));    // <= 0.01
  h.observe(std::chrono::milliseconds(10));   // <= 0.01 (bounds are inclusive)
  h.observe(std::chrono::milliseconds(50));   // <= 0.1
  h.observe(std::chrono::seconds(3));         // +Inf only
  EXPECT_EQ(h.cumulative(), (std::vector<std::int64_t>{2, 3, 3, 4}));
  EXPECT_NEAR(h.sum_seconds(), 3.065, 1e-9);
  const std::string text = metrics.render_prometheus();
  EXPECT_NE(text.find("# TYPE x_seconds histogram\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{route=\"a\",le=\"0.01\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_count{route=\"a\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_sum{route=\"a\"} 3.065000\n"), std::string::npos) << text;
  EXPECT_THROW(metrics.counter("x_seconds", "clash"), std::logic_error);
}
