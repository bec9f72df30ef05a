#include <callback/outbox.hpp>

namespace callback {

Outbox::Outbox(Logger& log, std::string component, std::size_t max_queued, std::vector<std::chrono::milliseconds> pauses)
    : log_(log),
      component_(std::move(component)),
      max_queued_(max_queued),
      pauses_(std::move(pauses)),
      worker_([this] { run(); }) {}

Outbox::~Outbox() {
  std::size_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped = queue_.size();
  }
  changed_.notify_all();
  worker_.join();
  if (dropped > 0) log_.warning(component_, std::to_string(dropped) + " messages not sent: stopping");
}

void Outbox::send(Message message) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (queue_.size() >= max_queued_) {
      log_.warning(component_, "not sent (" + message.what + "): " + std::to_string(max_queued_) +
                                   " messages are waiting already");
      return;
    }
    queue_.push_back(std::move(message));
  }
  changed_.notify_one();
}

void Outbox::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Message message = std::move(queue_.front());
    queue_.pop_front();
    for (std::size_t attempt = 0;; ++attempt) {
      std::string why;
      lock.unlock();
      bool sent = false;
      try {
        sent = message.attempt(why);
      } catch (const std::exception& e) {
        why = e.what();
      }
      lock.lock();
      if (sent) break;
      if (attempt == pauses_.size() || stopping_) {
        log_.warning(component_, "not sent (" + message.what + "): " + escape_control(why) + "; given up");
        break;
      }
      // Waits out the pause; a stop ends it early.
      if (changed_.wait_for(lock, pauses_[attempt], [this] { return stopping_; })) return;
    }
  }
}

}  // namespace callback
