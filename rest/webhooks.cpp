#include "webhooks.hpp"

#include "api_keys.hpp"

#include <curl/curl.h>

#include <algorithm>

namespace callback::rest {

namespace {

std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

}  // namespace

std::string_view WebhookSender::event_for(std::string_view state) noexcept {
  if (state == "dialing_a") return "initiated";
  if (state == "dialing_b") return "ringing";
  if (state == "bridged") return "answered";
  if (state == "completed" || state == "failed" || state == "canceled") return "completed";
  return {};
}

WebhookSender::WebhookSender(Logger& log, Metrics& metrics, SecretLookup secret_for, WebhookOptions options)
    : log_(log),
      secret_for_(std::move(secret_for)),
      options_(options),
      delivered_(metrics.counter("callbackd_webhooks_total", "Status webhooks by result", "result=\"delivered\"")),
      failed_(metrics.counter("callbackd_webhooks_total", "Status webhooks by result", "result=\"given_up\"")) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  thread_ = std::thread([this] { run(); });
}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    std::size_t left = 0;
    for (const auto& [id, queue] : queues_) left += queue.size();
    if (left > 0) log_.warning("callbackd", "stopping with " + std::to_string(left) + " webhooks undelivered");
  }
  wake_.notify_all();
  thread_.join();
}

void WebhookSender::send(Webhook webhook) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    auto& queue = queues_[webhook.callback_id];
    queue.push_back(Pending{std::move(webhook), 0, std::chrono::steady_clock::now()});
  }
  wake_.notify_all();
}

bool WebhookSender::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [this] { return queues_.empty(); });
}

void WebhookSender::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // The earliest due front of any callback's queue.
    Pending* next = nullptr;
    for (auto& [id, queue] : queues_) {
      if (!queue.empty() && (next == nullptr || queue.front().due < next->due)) next = &queue.front();
    }
    if (next == nullptr) {
      wake_.wait(lock);
      continue;
    }
    if (next->due > std::chrono::steady_clock::now()) {
      wake_.wait_until(lock, next->due);
      continue;
    }
    const Webhook webhook = next->webhook;
    const int attempt = ++next->attempt;
    lock.unlock();
    const bool ok = deliver(webhook);
    lock.lock();
    auto it = queues_.find(webhook.callback_id);
    if (it == queues_.end() || it->second.empty()) continue;
    Pending& front = it->second.front();
    if (ok || attempt >= options_.attempts) {
      if (!ok) {
        failed_.add();
        log_.warning("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + " to " + webhook.url +
                                      ": given up after " + std::to_string(attempt) + " attempts");
      } else {
        delivered_.add();
      }
      it->second.pop_front();
      if (it->second.empty()) queues_.erase(it);
      if (queues_.empty()) idle_.notify_all();
    } else {
      front.due = std::chrono::steady_clock::now() + options_.first_retry * (1 << std::min(attempt - 1, 20));
    }
  }
}

bool WebhookSender::deliver(const Webhook& webhook) {
  auto secret = secret_for_(webhook.owner);
  if (!secret) {
    log_.warning("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + ": no secret for key " +
                                  webhook.owner + ": " + secret.error().message);
    return false;
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return false;
  const std::string timestamp =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                         .count());
  curl_slist* headers = nullptr;
  for (const std::string& h :
       {std::string("Content-Type: application/json"), "X-Callback-Event: " + webhook.event,
        "X-Callback-Timestamp: " + timestamp,
        "X-Callback-Signature: sha256=" + hmac_sha256_hex(*secret, webhook.body),
        std::string("User-Agent: callbackd"), std::string("Expect:")}) {
    headers = curl_slist_append(headers, h.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, webhook.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, webhook.body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(webhook.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  const bool ok = rc == CURLE_OK && status >= 200 && status < 300;
  if (!ok) {
    log_.info("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + " to " + webhook.url + ": " +
                               (rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status)));
  }
  return ok;
}

}  // namespace callback::rest
