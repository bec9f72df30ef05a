#include "outcome_sender.hpp"

#include <curl/curl.h>

namespace callback::trigger_sms {

namespace {
constexpr std::string_view component = "callback.trigger.sms";
std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }
}  // namespace

OutcomeSender::OutcomeSender(Logger& log, std::size_t max_queued)
    : log_(log), max_queued_(max_queued), worker_([this] { run(); }) {}

OutcomeSender::~OutcomeSender() {
  std::size_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped = queue_.size();
  }
  changed_.notify_all();
  worker_.join();
  if (dropped > 0) log_.warning(component, std::to_string(dropped) + " outcome SMS not sent: stopping");
}

void OutcomeSender::send(Message message) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (queue_.size() >= max_queued_) {
      log_.warning(component, "outcome SMS not sent (" + message.what + "): " + std::to_string(max_queued_) +
                                  " are waiting for the gateway already");
      return;
    }
    queue_.push_back(std::move(message));
  }
  changed_.notify_one();
}

void OutcomeSender::run() {
  const std::chrono::seconds pauses[] = {std::chrono::seconds{1}, std::chrono::seconds{5}};
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Message message = std::move(queue_.front());
    queue_.pop_front();
    std::string why;
    for (std::size_t attempt = 0;; ++attempt) {
      lock.unlock();
      const bool sent = post(message, why);
      lock.lock();
      if (sent) break;
      if (attempt == std::size(pauses) || stopping_) {
        log_.warning(component, "outcome SMS not sent (" + message.what + "): " + why + "; given up");
        break;
      }
      // Waits out the pause; a stop ends it early.
      if (changed_.wait_for(lock, pauses[attempt], [this] { return stopping_; })) return;
    }
  }
}

bool OutcomeSender::post(const Message& message, std::string& why) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    why = "libcurl could not start";
    return false;
  }
  curl_slist* headers = nullptr;
  for (const auto& h : message.headers) headers = curl_slist_append(headers, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, message.url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, message.body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(message.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!message.userpwd.empty()) curl_easy_setopt(curl, CURLOPT_USERPWD, message.userpwd.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5'000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15'000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    why = curl_easy_strerror(rc);
    return false;
  }
  if (status < 200 || status > 299) {
    why = "the gateway answered " + std::to_string(status);
    return false;
  }
  return true;
}

}  // namespace callback::trigger_sms
