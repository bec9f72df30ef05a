#pragma once
// Context: everything a component needs from its surroundings, handed in when it is
// created; there are no globals or singletons. The io_context runs the component's I/O
// and timers; the Clock tells time and schedules timers, and tests replace it with a
// ManualClock to move time (call limits, warnings, reconnect backoff) without sleeping.
//
//   boost::asio::io_context io;
//   callback::SystemClock clock{io};
//   callback::StreamLogger log{std::cerr, LogLevel::info};
//   callback::Metrics metrics;
//   callback::Context context{io, clock, log, metrics};
//   auto timer = context.clock.schedule(std::chrono::seconds(20), [] { warn(); });
//   timer.cancel();
#include <callback/export.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

// --- time ------------------------------------------------------------------------------

// Cancels a scheduled timer; destroying the handle does not. Safe after the timer fired.
class CALLBACK_EXPORT TimerHandle {
 public:
  TimerHandle() = default;
  explicit TimerHandle(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  void cancel() {
    if (cancel_) std::exchange(cancel_, nullptr)();
  }

 private:
  std::function<void()> cancel_;
};

class CALLBACK_EXPORT Clock {
 public:
  virtual ~Clock();
  [[nodiscard]] virtual std::chrono::system_clock::time_point now() const = 0;
  [[nodiscard]] virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  // Runs `fire` on the clock's executor after `delay` unless canceled first.
  virtual TimerHandle schedule(std::chrono::milliseconds delay, std::function<void()> fire) = 0;
};

// Real time; timers are Asio steady_timers on the given io_context.
class CALLBACK_EXPORT SystemClock final : public Clock {
 public:
  explicit SystemClock(boost::asio::io_context& io) : io_(io) {}
  [[nodiscard]] std::chrono::system_clock::time_point now() const override;
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const override;
  TimerHandle schedule(std::chrono::milliseconds delay, std::function<void()> fire) override;

 private:
  boost::asio::io_context& io_;
};

// Time that moves only when a test says so. advance() fires due timers in time order,
// on the calling thread. Single-threaded by design.
class CALLBACK_EXPORT ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point start = std::chrono::system_clock::time_point{
                           std::chrono::seconds{1'800'000'000}});
  [[nodiscard]] std::chrono::system_clock::time_point now() const override;
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const override;
  TimerHandle schedule(std::chrono::milliseconds delay, std::function<void()> fire) override;

  void advance(std::chrono::milliseconds by);
  [[nodiscard]] std::size_t pending_timers() const noexcept { return timers_.size(); }

 private:
  std::chrono::system_clock::time_point start_;
  // now() may be read from other threads (billing's writer) while advance() runs.
  std::atomic<std::chrono::milliseconds::rep> elapsed_{0};
  std::uint64_t next_sequence_ = 0;
  std::map<std::pair<std::chrono::milliseconds, std::uint64_t>, std::function<void()>> timers_;
};

// --- logging ---------------------------------------------------------------------------

enum class LogLevel { debug, info, warning, error };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(LogLevel level) noexcept;

// Every message goes through write(), which escapes control characters (CR, LF, ESC,
// ... as \r, \n, \x1b) before a sink sees it: a message quoting untrusted text (a URL,
// a header) can never forge a line. Sinks implement write_line().
class CALLBACK_EXPORT Logger {
 public:
  virtual ~Logger();
  [[nodiscard]] virtual bool enabled(LogLevel level) const noexcept = 0;
  // `component` is the canonical plugin or module name: "callback.engine.ami".
  void write(LogLevel level, std::string_view component, std::string_view message);

  void debug(std::string_view c, std::string_view m) { if (enabled(LogLevel::debug)) write(LogLevel::debug, c, m); }
  void info(std::string_view c, std::string_view m) { if (enabled(LogLevel::info)) write(LogLevel::info, c, m); }
  void warning(std::string_view c, std::string_view m) { if (enabled(LogLevel::warning)) write(LogLevel::warning, c, m); }
  void error(std::string_view c, std::string_view m) { if (enabled(LogLevel::error)) write(LogLevel::error, c, m); }

 protected:
  // One line, already escaped: no byte below 0x20, no DEL, no C1 control.
  virtual void write_line(LogLevel level, std::string_view component, std::string_view message) = 0;
};

// `text` with its control characters spelled out: \r \n \t, others \xHH (ASCII C0 and
// DEL, and UTF-8 C1 controls U+0080-U+009F); everything else as it is.
[[nodiscard]] CALLBACK_EXPORT std::string escape_control(std::string_view text);

// One line a message: "2026-11-26T09:13:17.123Z warning callback.engine.ami: lost 127.0.0.1:5038".
class CALLBACK_EXPORT StreamLogger final : public Logger {
 public:
  StreamLogger(std::ostream& out, LogLevel threshold) : out_(out), threshold_(threshold) {}
  [[nodiscard]] bool enabled(LogLevel level) const noexcept override { return level >= threshold_; }

 protected:
  void write_line(LogLevel level, std::string_view component, std::string_view message) override;

 private:
  std::mutex mutex_;
  std::ostream& out_;
  LogLevel threshold_;
};

// --- metrics ---------------------------------------------------------------------------

// A monotonically increasing count, or a value that goes up and down. Lock-free updates.
class CALLBACK_EXPORT Counter {
 public:
  void add(std::int64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  void set(std::int64_t n) noexcept { value_.store(n, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Durations in fixed buckets (seconds), as a Prometheus histogram. Lock-free updates.
class CALLBACK_EXPORT Histogram {
 public:
  // Upper bounds in seconds, ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void observe(std::chrono::nanoseconds duration) noexcept;
  [[nodiscard]] const std::vector<double>& bounds() const noexcept { return bounds_; }
  // Cumulative counts per bound, then the +Inf count; the sum in seconds.
  [[nodiscard]] std::vector<std::int64_t> cumulative() const;
  [[nodiscard]] double sum_seconds() const noexcept;
  // 0.5 ms to 10 s: HTTP requests and call set-up alike.
  static std::vector<double> default_bounds();

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::int64_t>[]> counts_;  // per bucket, +Inf last
  std::atomic<std::int64_t> sum_nanos_{0};
};

// Named counters and gauges, rendered in the Prometheus text format. References returned
// stay valid for the registry's lifetime, so hot paths look a metric up once.
class CALLBACK_EXPORT Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  // `labels` is already in Prometheus form: outcome="busy",engine="ami".
  Counter& counter(std::string_view name, std::string_view help, std::string_view labels = {});
  Counter& gauge(std::string_view name, std::string_view help, std::string_view labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, std::string_view labels = {},
                       std::vector<double> bounds = Histogram::default_bounds());
  [[nodiscard]] std::string render_prometheus() const;

 private:
  struct Impl;  // the families, behind a lock
  std::unique_ptr<Impl> impl_;
};

// --- the context -----------------------------------------------------------------------

struct Context {
  boost::asio::io_context& io;
  Clock& clock;
  Logger& log;
  Metrics& metrics;
};

}  // namespace callback
