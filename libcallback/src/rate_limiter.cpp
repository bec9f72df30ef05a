#include <callback/rate_limiter.hpp>

#include <algorithm>

namespace callback {

RateLimiter::Window& RateLimiter::window(const std::string& key, Timestamp now) {
  if (now - last_prune_ > window_) {
    std::erase_if(windows_, [&](const auto& entry) { return now - entry.second.start >= window_; });
    last_prune_ = now;
  }
  Window& w = windows_[key];
  if (w.count == 0 || now - w.start >= window_) w = Window{now, 0};
  return w;
}

std::chrono::seconds RateLimiter::wait(const Window& w, Timestamp now) const {
  if (w.count < limit_) return std::chrono::seconds{0};
  const auto left = std::chrono::ceil<std::chrono::seconds>(w.start + window_ - now);
  return std::max(left, std::chrono::seconds{1});
}

std::optional<std::chrono::seconds> RateLimiter::shared(const std::string& key, Timestamp now, bool count) {
  if (counter_ == nullptr) return std::nullopt;
  auto wait = counter_->hit(name_, key, limit_, window_, now, count);
  if (!wait) return std::nullopt;
  return *wait;
}

std::chrono::seconds RateLimiter::hit(const std::string& key, Timestamp now) {
  if (auto wait = shared(key, now, true)) return *wait;
  std::lock_guard lock(mutex_);
  Window& w = window(key, now);
  if (auto left = wait(w, now); left.count() > 0) return left;
  ++w.count;
  return std::chrono::seconds{0};
}

std::chrono::seconds RateLimiter::blocked(const std::string& key, Timestamp now) {
  if (auto wait = shared(key, now, false)) return *wait;
  std::lock_guard lock(mutex_);
  return wait(window(key, now), now);
}

}  // namespace callback
