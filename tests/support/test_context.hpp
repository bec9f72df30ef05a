#pragma once
// A Context for tests: a clock the test moves, a logger that keeps what was said.
#include <callback/context.hpp>

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

}  // namespace callback::test
