#pragma once
// Subscription: an owned registration. Whoever subscribes to something (an engine's leg
// events, its inbound calls, a trigger's replies) gets one back and holds it; destroying
// it, or calling reset(), unsubscribes. So an observer can never be called after it is
// gone, and several observers can come and go independently.
//
//   Subscription s = engine.subscribe([this](const LegEvent& e) { on_leg_event(e); });
//   ...
//   s.reset();  // no more events
//
// Subscribers<F> is the list a publisher keeps: add() returns the Subscription, each()
// calls every handler that is still subscribed, and handlers may unsubscribe themselves
// or others (or subscribe new ones) while it runs. Single-threaded: use it on one
// executor, like the engines do. A publisher destroyed before its subscriptions leaves
// them harmless: their reset() does nothing.
#include <callback/export.hpp>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace callback {

class CALLBACK_EXPORT Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      reset();
      cancel_ = std::exchange(other.cancel_, nullptr);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }

  void reset() {
    if (cancel_) std::exchange(cancel_, nullptr)();
  }
  [[nodiscard]] bool active() const noexcept { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

template <class F>
class Subscribers {
 public:
  Subscribers() = default;
  Subscribers(const Subscribers&) = delete;
  Subscribers& operator=(const Subscribers&) = delete;
  ~Subscribers() { *alive_ = false; }

  [[nodiscard]] Subscription add(F handler) {
    auto entry = std::make_shared<Entry>(Entry{std::move(handler), true});
    entries_.push_back(entry);
    std::weak_ptr<bool> alive = alive_;
    return Subscription([this, alive, weak = std::weak_ptr<Entry>(entry)] {
      auto still = alive.lock();
      if (!still || !*still) return;  // the publisher is gone
      if (auto e = weak.lock()) {
        e->subscribed = false;  // the handler itself may be running: it goes with its entry
        compact();
      }
    });
  }
  // Calls each handler subscribed when each() started and still subscribed when its
  // turn comes.
  template <class... Args>
  void each(Args&&... args) {
    ++depth_;
    const std::size_t n = entries_.size();
    for (std::size_t i = 0; i < n && i < entries_.size(); ++i) {
      auto entry = entries_[i];  // a handler may unsubscribe itself: keep it alive
      if (entry->subscribed) entry->handler(args...);
    }
    --depth_;
    compact();
  }
  [[nodiscard]] std::size_t size() const {
    std::size_t n = 0;
    for (const auto& e : entries_) n += e->subscribed ? 1 : 0;
    return n;
  }
  [[nodiscard]] bool empty() const { return size() == 0; }
  // The handlers themselves, for a publisher that picks one (routing) rather than
  // calling all of them.
  template <class Visit>
  void visit(Visit&& visit) const {
    for (const auto& e : entries_) {
      if (e->subscribed) visit(e->handler);
    }
  }

 private:
  struct Entry {
    F handler;
    bool subscribed = true;
  };
  void compact() {
    if (depth_ > 0) return;
    std::erase_if(entries_, [](const auto& e) { return !e->subscribed; });
  }
  std::vector<std::shared_ptr<Entry>> entries_;
  int depth_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace callback
