#pragma once
// RateLimiter: fixed-window counters per key (a caller number, a client address, an SMS
// sender), pruned as windows pass. Thread-safe. The triggers' abuse limits.
//
//   RateLimiter per_sender(5, std::chrono::hours(1));
//   if (auto wait = per_sender.hit(sender, now); wait.count() > 0) refuse("try again in", wait);
#include <callback/export.hpp>
#include <callback/timestamp.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace callback {

class CALLBACK_EXPORT RateLimiter {
 public:
  RateLimiter(int limit, std::chrono::seconds window) : limit_(limit), window_(window) {}
  // Counts one request for `key` at `now`; 0 if allowed, else seconds until it would be.
  std::chrono::seconds hit(const std::string& key, Timestamp now);
  // The same without counting: whether `key` has used up its window.
  [[nodiscard]] std::chrono::seconds blocked(const std::string& key, Timestamp now);

 private:
  struct Window {
    Timestamp start;
    int count = 0;
  };
  Window& window(const std::string& key, Timestamp now);  // under mutex_
  std::chrono::seconds wait(const Window& w, Timestamp now) const;

  int limit_;
  std::chrono::seconds window_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
  Timestamp last_prune_{};
};

}  // namespace callback
