#pragma once
// A Context for tests: a clock the test moves, a logger that keeps what was said.
#include <callback/context.hpp>

#include <chrono>
#include <functional>
#include <sstream>

namespace callback::test {

struct TestContext {
  boost::asio::io_context io;
  ManualClock clock;
  std::ostringstream log_text;
  StreamLogger log{log_text, LogLevel::debug};
  Metrics metrics;
  Context context{io, clock, log, metrics};
};

// Runs `io` until `done` says yes (true) or `timeout` of real time passes (false): for
// tests whose peers (a fake server on its own thread) run in real time.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (io.stopped()) io.restart();  // it ran out of work once: run_for would return at once
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.run_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace callback::test
