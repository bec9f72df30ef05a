#include <callback/context.hpp>

#include <atomic>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <ostream>
#include <stdexcept>

namespace callback {

Clock::~Clock() = default;
Logger::~Logger() = default;

std::chrono::system_clock::time_point SystemClock::now() const { return std::chrono::system_clock::now(); }
std::chrono::steady_clock::time_point SystemClock::steady_now() const { return std::chrono::steady_clock::now(); }

TimerHandle SystemClock::schedule(std::chrono::milliseconds delay, std::function<void()> fire) {
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
  // A timer that is already due has its handler queued with success: steady_timer::cancel
  // cannot take that back, so the handler itself asks whether it was canceled meanwhile.
  auto canceled = std::make_shared<std::atomic<bool>>(false);
  timer->async_wait([timer, canceled, fire = std::move(fire)](const boost::system::error_code& ec) {
    if (!ec && !canceled->load()) fire();
  });
  std::weak_ptr<boost::asio::steady_timer> weak = timer;
  // The timer itself is cancelled on the io_context's thread: steady_timer is not safe to
  // touch from two.
  return TimerHandle([weak, canceled, &io = io_] {
    canceled->store(true);
    boost::asio::post(io, [weak] {
      if (auto t = weak.lock()) t->cancel();
    });
  });
}

ManualClock::ManualClock(std::chrono::system_clock::time_point start) : start_(start) {}

std::chrono::system_clock::time_point ManualClock::now() const {
  return start_ + std::chrono::milliseconds(elapsed_.load());
}
std::chrono::steady_clock::time_point ManualClock::steady_now() const {
  return std::chrono::steady_clock::time_point{} + std::chrono::milliseconds(elapsed_.load());
}

TimerHandle ManualClock::schedule(std::chrono::milliseconds delay, std::function<void()> fire) {
  const auto key = std::make_pair(std::chrono::milliseconds(elapsed_.load()) + std::max(delay, std::chrono::milliseconds{0}),
                                  next_sequence_++);
  timers_.emplace(key, std::move(fire));
  return TimerHandle([this, key] { timers_.erase(key); });
}

void ManualClock::advance(std::chrono::milliseconds by) {
  const auto target = std::chrono::milliseconds(elapsed_.load()) + by;
  // Timers scheduled by a firing timer fire too if they fall due before `target`.
  while (!timers_.empty() && timers_.begin()->first.first <= target) {
    auto node = timers_.extract(timers_.begin());
    elapsed_ = node.key().first.count();
    node.mapped()();
  }
  elapsed_ = target.count();
}

std::string_view to_string(LogLevel level) noexcept {
  constexpr std::string_view names[] = {"debug", "info", "warning", "error"};
  return names[static_cast<int>(level)];
}

std::string escape_control(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  constexpr char digits[] = "0123456789abcdef";
  auto hex = [&](unsigned char c) {
    out += "\\x";
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      hex(c);
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      // U+0080-U+009F: NEL (U+0085) ends a line for some readers.
      hex(c);
      hex(static_cast<unsigned char>(text[++i]));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void Logger::write(LogLevel level, std::string_view component, std::string_view message) {
  write_line(level, escape_control(component), escape_control(message));
}

void StreamLogger::write_line(LogLevel level, std::string_view component, std::string_view message) {
  const auto now = std::chrono::system_clock::now();
  const auto seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(millis));
  std::lock_guard lock(mutex_);
  out_ << stamp << ms << ' ' << to_string(level) << ' ' << component << ": " << message << '\n';
  out_.flush();
}

struct Metrics::Impl {
  enum class Type { counter, gauge };
  struct HistogramFamily {
    std::string help;
    std::map<std::string, std::unique_ptr<Histogram>, std::less<>> series;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>, std::less<>> series;
  };
  mutable std::mutex mutex_;
  std::map<std::string, HistogramFamily, std::less<>> histograms_;
  std::map<std::string, Family, std::less<>> families_;

  Counter& get(Type type, std::string_view name, std::string_view help, std::string_view labels);
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

Counter& Metrics::counter(std::string_view name, std::string_view help, std::string_view labels) {
  return impl_->get(Impl::Type::counter, name, help, labels);
}
Counter& Metrics::gauge(std::string_view name, std::string_view help, std::string_view labels) {
  return impl_->get(Impl::Type::gauge, name, help, labels);
}

Counter& Metrics::Impl::get(Type type, std::string_view name, std::string_view help, std::string_view labels) {
  std::lock_guard lock(mutex_);
  if (histograms_.contains(name)) throw std::logic_error("metric " + std::string(name) + " registered as two types");
  auto family = families_.find(name);
  if (family == families_.end()) {
    family = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  } else if (family->second.type != type) {
    throw std::logic_error("metric " + std::string(name) + " registered as two types");
  }
  auto& series = family->second.series;
  auto it = series.find(labels);
  if (it == series.end()) it = series.emplace(std::string(labels), std::make_unique<Counter>()).first;
  return *it->second;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(std::make_unique<std::atomic<std::int64_t>[]>(bounds_.size() + 1)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end())) throw std::logic_error("histogram bounds must ascend");
}

std::vector<double> Histogram::default_bounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Histogram::observe(std::chrono::nanoseconds duration) noexcept {
  const double seconds = std::chrono::duration<double>(duration).count();
  const auto bucket = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(duration.count(), std::memory_order_relaxed);
}

std::vector<std::int64_t> Histogram::cumulative() const {
  std::vector<std::int64_t> out(bounds_.size() + 1);
  std::int64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) out[i] = total += counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum_seconds() const noexcept { return static_cast<double>(sum_nanos_.load()) / 1e9; }

Histogram& Metrics::histogram(std::string_view name, std::string_view help, std::string_view labels,
                              std::vector<double> bounds) {
  auto& self = *impl_;
  std::lock_guard lock(self.mutex_);
  auto& families_ = self.families_;
  auto& histograms_ = self.histograms_;
  if (families_.contains(name)) throw std::logic_error("metric " + std::string(name) + " registered as two types");
  auto family = histograms_.find(name);
  if (family == histograms_.end()) {
    family = histograms_.emplace(std::string(name), Impl::HistogramFamily{std::string(help), {}}).first;
  }
  auto& series = family->second.series;
  auto it = series.find(labels);
  if (it == series.end()) it = series.emplace(std::string(labels), std::make_unique<Histogram>(std::move(bounds))).first;
  return *it->second;
}

std::string Metrics::render_prometheus() const {
  const auto& self = *impl_;
  std::lock_guard lock(self.mutex_);
  const auto& families_ = self.families_;
  const auto& histograms_ = self.histograms_;
  std::string out;
  for (const auto& [name, family] : histograms_) {
    out += "# HELP " + name + " " + family.help + "\n# TYPE " + name + " histogram\n";
    for (const auto& [labels, h] : family.series) {
      const std::string prefix = labels.empty() ? "" : labels + ",";
      const auto counts = h->cumulative();
      char bound[32];
      for (std::size_t i = 0; i < h->bounds().size(); ++i) {
        std::snprintf(bound, sizeof bound, "%g", h->bounds()[i]);
        out += name + "_bucket{" + prefix + "le=\"" + bound + "\"} " + std::to_string(counts[i]) + "\n";
      }
      out += name + "_bucket{" + prefix + "le=\"+Inf\"} " + std::to_string(counts.back()) + "\n";
      const std::string suffix = labels.empty() ? "" : "{" + labels + "}";
      std::snprintf(bound, sizeof bound, "%.6f", h->sum_seconds());
      out += name + "_sum" + suffix + " " + bound + "\n";
      out += name + "_count" + suffix + " " + std::to_string(counts.back()) + "\n";
    }
  }
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " " + family.help + "\n";
    out += "# TYPE " + name + (family.type == Impl::Type::counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, value] : family.series) {
      out += name;
      if (!labels.empty()) out.append("{").append(labels).append("}");
      out.append(" ").append(std::to_string(value->value())).append("\n");
    }
  }
  return out;
}

}  // namespace callback
