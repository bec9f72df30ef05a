#pragma once
// RateLimiter: fixed-window counters per key (a caller number, a client address, an SMS
// sender), pruned as windows pass. Thread-safe. The triggers' abuse limits. Shared by
// several nodes through the store (share()): then every node counts in the same windows,
// and while the database does not answer each counts on its own.
//
//   RateLimiter per_sender(5, std::chrono::hours(1));
//   per_sender.share(store.rate_counter(), "sms.per_sender");   // nullptr: this process only
//   if (auto wait = per_sender.hit(sender, now); wait.count() > 0) refuse("try again in", wait);
#include <callback/export.hpp>
#include <callback/store.hpp>
#include <callback/timestamp.hpp>

#include <chrono>
#include <mutex>
#include <optional>
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
  // Counts in `counter` under `name` from now on (nullptr: in this process).
  void share(RateCounter* counter, std::string name) {
    counter_ = counter;
    name_ = std::move(name);
  }

 private:
  struct Window {
    Timestamp start;
    int count = 0;
  };
  Window& window(const std::string& key, Timestamp now);  // under mutex_
  std::chrono::seconds wait(const Window& w, Timestamp now) const;

  // The shared count, or nothing when the counter fails (then: this process's count).
  [[nodiscard]] std::optional<std::chrono::seconds> shared(const std::string& key, Timestamp now, bool count);

  int limit_;
  std::chrono::seconds window_;
  RateCounter* counter_ = nullptr;
  std::string name_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
  Timestamp last_prune_{};
};

}  // namespace callback
