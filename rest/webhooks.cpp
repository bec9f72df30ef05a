#include "webhooks.hpp"

#include "api_keys.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>

namespace callback::rest {

namespace {

std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

using Bytes = std::array<std::uint8_t, 16>;

// IPv4 a.b.c.d as ::ffff:a.b.c.d, so one comparison serves both families.
Bytes mapped(const std::uint8_t* v4) {
  Bytes bytes{};
  bytes[10] = bytes[11] = 0xff;
  std::memcpy(bytes.data() + 12, v4, 4);
  return bytes;
}

bool parse_address(std::string_view text, Bytes& bytes, bool& v4) {
  const std::string copy(text);
  std::uint8_t raw[16];
  if (inet_pton(AF_INET, copy.c_str(), raw) == 1) {
    bytes = mapped(raw);
    v4 = true;
    return true;
  }
  if (inet_pton(AF_INET6, copy.c_str(), raw) == 1) {
    std::memcpy(bytes.data(), raw, 16);
    v4 = false;
    return true;
  }
  return false;
}

bool starts_with(const Bytes& b, std::initializer_list<std::uint8_t> prefix) {
  return std::equal(prefix.begin(), prefix.end(), b.begin());
}

// What kind of special address this is ("loopback", ...), or "" for an ordinary one.
std::string_view special_v4(const std::uint8_t* a) {
  if (a[0] == 169 && a[1] == 254 && a[2] == 169 && a[3] == 254) return "cloud metadata";
  if (a[0] == 0) return "unspecified";
  if (a[0] == 127) return "loopback";
  if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168)) return "private";
  if (a[0] == 100 && (a[1] & 0xc0) == 64) return "private";  // shared address space (carrier NAT), RFC 6598
  if (a[0] == 169 && a[1] == 254) return "link-local";
  if (a[0] >= 224 && a[0] < 240) return "multicast";
  if (a[0] >= 240) return "reserved";  // and 255.255.255.255, broadcast
  return {};
}

std::string_view special(const Bytes& b) {
  const bool zero_80 = std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; });
  if (zero_80 && b[10] == 0xff && b[11] == 0xff) return special_v4(b.data() + 12);  // ::ffff:a.b.c.d
  if (starts_with(b, {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) return special_v4(b.data() + 12);  // NAT64
  if (starts_with(b, {0x20, 0x02})) return special_v4(b.data() + 2);  // 6to4 2002:a.b.c.d::/48
  if (zero_80 && b[10] == 0 && b[11] == 0) {
    if (std::all_of(b.begin() + 12, b.end() - 1, [](std::uint8_t x) { return x == 0; }) && b[15] <= 1) {
      return b[15] == 0 ? "unspecified" : "loopback";  // :: and ::1
    }
    return special_v4(b.data() + 12);  // ::a.b.c.d, IPv4-compatible (deprecated, still routed by some stacks)
  }
  static const Bytes aws_metadata = [] {
    Bytes m{};
    inet_pton(AF_INET6, "fd00:ec2::254", m.data());
    return m;
  }();
  if (b == aws_metadata) return "cloud metadata";
  if ((b[0] & 0xfe) == 0xfc) return "private";  // unique local fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "private";  // site-local, deprecated
  if (b[0] == 0xff) return "multicast";
  return {};
}

bool in_network(const Bytes& address, const Bytes& network, int prefix) {
  for (int bit = 0; bit < prefix; bit += 8) {
    const int bits = std::min(8, prefix - bit);
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((address[bit / 8] & mask) != (network[bit / 8] & mask)) return false;
  }
  return true;
}

struct UrlHandle {
  CURLU* url = curl_url();
  ~UrlHandle() { curl_url_cleanup(url); }
  UrlHandle() = default;
  UrlHandle(const UrlHandle&) = delete;
  UrlHandle& operator=(const UrlHandle&) = delete;
  std::string part(CURLUPart which, unsigned flags = 0) const {
    char* text = nullptr;
    if (curl_url_get(url, which, &text, flags) != CURLUE_OK) return {};
    std::string out(text);
    curl_free(text);
    return out;
  }
};

// scheme://host:port of a URL, the unit a receiver's share of the workers is counted in.
std::string receiver_of(const std::string& url) {
  UrlHandle handle;
  if (curl_url_set(handle.url, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return url;
  std::string host = handle.part(CURLUPART_HOST);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return handle.part(CURLUPART_SCHEME) + "://" + host + ":" + handle.part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
}

// What a transfer's socket callback learns: the policy to apply, and why it refused.
struct Transfer {
  const AddressPolicy* policy;
  const std::atomic<bool>* abort;
  std::string refused;
};

// Every connection libcurl opens comes here with the address it resolved: the one place
// where the address policy can see what is really dialed.
curl_socket_t open_socket(void* data, curlsocktype purpose, curl_sockaddr* address) {
  auto* transfer = static_cast<Transfer*>(data);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  std::string why = transfer->policy->refusal(address->addr);
  if (!why.empty()) {
    transfer->refused = std::move(why);
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}

int progress(void* data, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(data)->abort->load() ? 1 : 0;  // stopping: abort the transfer
}

}  // namespace

// --- the address policy ------------------------------------------------------------------

Result<AddressPolicy> AddressPolicy::make(const std::vector<std::string>& allow) {
  AddressPolicy policy;
  for (std::size_t i = 0; i < allow.size(); ++i) {
    const std::string field = "server.webhook_allow_networks[" + std::to_string(i) + "]";
    const std::string& text = allow[i];
    const auto slash = text.find('/');
    Network network;
    bool v4 = false;
    if (!parse_address(std::string_view(text).substr(0, slash), network.bytes, v4)) {
      return Error{"config.value", "expected a network such as \"127.0.0.1/32\" or \"fd00::/8\", got \"" + text + "\"",
                   field};
    }
    const int max = v4 ? 32 : 128;
    int prefix = max;
    if (slash != std::string::npos) {
      const char* begin = text.data() + slash + 1;
      const char* end = text.data() + text.size();
      auto [stop, ec] = std::from_chars(begin, end, prefix);
      if (ec != std::errc{} || stop != end || begin == end || prefix < 0 || prefix > max) {
        return Error{"config.value", "the prefix length after '/' must be 0 to " + std::to_string(max), field};
      }
    }
    network.prefix = v4 ? prefix + 96 : prefix;
    policy.allow_.push_back(network);
  }
  return policy;
}

std::string AddressPolicy::refusal(const Bytes& bytes, const std::string& text) const {
  for (const auto& network : allow_) {
    if (in_network(bytes, network.bytes, network.prefix)) return {};
  }
  const auto kind = special(bytes);
  if (kind.empty()) return {};
  return text + " is " + (kind == "unspecified" ? "an " : "a ") + std::string(kind) +
         " address (allow it in server.webhook_allow_networks)";
}

std::string AddressPolicy::refusal(const sockaddr& address) const {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.sa_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    return refusal(mapped(reinterpret_cast<const std::uint8_t*>(&in.sin_addr)), text);
  }
  if (address.sa_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    Bytes bytes;
    std::memcpy(bytes.data(), &in6.sin6_addr, 16);
    return refusal(bytes, text);
  }
  return "address family " + std::to_string(address.sa_family) + " is not IP";
}

std::string AddressPolicy::refusal(std::string_view address) const {
  Bytes bytes;
  bool v4 = false;
  if (!parse_address(address, bytes, v4)) return "not an IP address";
  return refusal(bytes, std::string(address));
}

// --- URLs and signatures -----------------------------------------------------------------

Status check_webhook_url(std::string_view url, const std::string& field) {
  if (url.size() > 2000) return Error{"invalid_url", "must be at most 2000 characters", field};
  UrlHandle handle;
  const std::string copy(url);
  if (curl_url_set(handle.url, CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK) {
    return Error{"invalid_url", "is not a URL", field};
  }
  std::string scheme = handle.part(CURLUPART_SCHEME);
  if (scheme != "http" && scheme != "https") return Error{"invalid_url", "must be an http:// or https:// URL", field};
  if (handle.part(CURLUPART_HOST).empty()) return Error{"invalid_url", "has no host", field};
  return ok_status();
}

std::string redact_url(const std::string& url) {
  UrlHandle handle;
  if (curl_url_set(handle.url, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "(unparseable URL)";
  curl_url_set(handle.url, CURLUPART_USER, nullptr, 0);
  curl_url_set(handle.url, CURLUPART_PASSWORD, nullptr, 0);
  curl_url_set(handle.url, CURLUPART_OPTIONS, nullptr, 0);
  return handle.part(CURLUPART_URL);
}

// --- the sender --------------------------------------------------------------------------

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
      options_(std::move(options)),
      delivered_(metrics.counter("callbackd_webhooks_total", "Status webhooks by result", "result=\"delivered\"")),
      failed_(metrics.counter("callbackd_webhooks_total", "Status webhooks by result", "result=\"given_up\"")),
      refused_(metrics.counter("callbackd_webhooks_total", "Status webhooks by result", "result=\"refused\"")) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { run(); });
}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    abort_ = true;
    std::size_t left = 0;
    for (const auto& [id, queue] : queues_) left += queue.size();
    if (left > 0) log_.warning("callbackd", "stopping with " + std::to_string(left) + " webhooks undelivered");
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void WebhookSender::send(Webhook webhook) {
  std::string receiver = receiver_of(webhook.url);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    const auto now = Clock::now();
    const std::string id = webhook.callback_id;
    auto& queue = queues_[id];
    queue.push_back(Pending{std::move(webhook), std::move(receiver), 0, now});
    if (queue.size() == 1) schedule_front(id, now);  // else it waits behind the callback's earlier events
  }
  wake_.notify_all();
}

bool WebhookSender::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [this] { return queues_.empty(); });
}

void WebhookSender::schedule_front(const std::string& callback_id, Clock::time_point now) {
  const Pending& front = queues_.at(callback_id).front();
  if (front.due > now) {
    timers_.emplace(front.due, callback_id);
    return;
  }
  Receiver& receiver = receivers_[front.receiver];
  receiver.ready.push_back(callback_id);
  list_if_runnable(front.receiver, receiver);
}

void WebhookSender::list_if_runnable(const std::string& name, Receiver& receiver) {
  if (!receiver.listed && !receiver.ready.empty() && receiver.busy < std::max(1, options_.per_receiver)) {
    receiver.listed = true;
    runnable_.push_back(name);
  }
}

void WebhookSender::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = Clock::now();
    while (!timers_.empty() && timers_.top().first <= now) {
      const std::string id = timers_.top().second;
      timers_.pop();
      schedule_front(id, now);
    }
    // The next receiver with a due webhook and a free slot; it goes to the back of the
    // line, so that one busy receiver's backlog does not hold up the others.
    std::string id;
    std::string receiver_name;
    while (id.empty() && !runnable_.empty()) {
      receiver_name = std::move(runnable_.front());
      runnable_.pop_front();
      Receiver& receiver = receivers_.at(receiver_name);  // listed ones are never erased
      receiver.listed = false;
      if (receiver.ready.empty() || receiver.busy >= std::max(1, options_.per_receiver)) continue;
      id = std::move(receiver.ready.front());
      receiver.ready.pop_front();
      ++receiver.busy;
      list_if_runnable(receiver_name, receiver);
    }
    if (id.empty()) {
      if (timers_.empty()) {
        wake_.wait(lock);
      } else {
        // A copy: wait_until reads its deadline again after the lock was given up, when
        // another worker may have pushed to the heap (and moved its elements).
        const Clock::time_point until = timers_.top().first;
        wake_.wait_until(lock, until);
      }
      continue;
    }
    Pending& front = queues_.at(id).front();
    const int attempt = ++front.attempt;
    const Webhook webhook = front.webhook;
    lock.unlock();
    const Delivery result = deliver(webhook);
    lock.lock();
    now = Clock::now();
    // Only this worker delivers a callback's front, so the queue and its front are still there.
    auto it = queues_.find(id);
    if (result != Delivery::failed || attempt >= options_.attempts) {
      if (result == Delivery::failed) {
        failed_.add();
        log_.warning("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + " to " +
                                      redact_url(webhook.url) + ": given up after " + std::to_string(attempt) +
                                      " attempts");
      } else {
        (result == Delivery::delivered ? delivered_ : refused_).add();
      }
      it->second.pop_front();
      if (it->second.empty()) {
        queues_.erase(it);
      } else {
        schedule_front(id, now);
      }
    } else {
      it->second.front().due = now + options_.first_retry * (1 << std::min(attempt - 1, 20));
      schedule_front(id, now);
    }
    auto receiver = receivers_.find(receiver_name);
    --receiver->second.busy;
    list_if_runnable(receiver_name, receiver->second);
    if (receiver->second.busy == 0 && receiver->second.ready.empty() && !receiver->second.listed) {
      receivers_.erase(receiver);
    }
    if (queues_.empty()) idle_.notify_all();
    wake_.notify_all();  // a receiver's slot is free, or this callback's next event may go
  }
}

WebhookSender::Delivery WebhookSender::deliver(const Webhook& webhook) {
  auto secret = secret_for_(webhook.owner);
  if (!secret) {
    log_.warning("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + ": no secret for key " +
                                  webhook.owner + ": " + secret.error().message);
    return Delivery::failed;
  }
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Delivery::failed;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  curl_slist* headers = nullptr;
  for (const std::string& h :
       {std::string("Content-Type: application/json"), "X-Callback-Event: " + webhook.event,
        "Callback-Signature: " + webhook_signature(*secret, now.count(), webhook.body),
        std::string("User-Agent: callbackd"), std::string("Expect:")}) {
    headers = curl_slist_append(headers, h.c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers, curl_slist_free_all);
  Transfer transfer{&options_.addresses, &abort_, {}};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, webhook.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // a proxy would connect for us, past the address policy
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, webhook.body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(webhook.body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK && !transfer.refused.empty()) {
    log_.warning("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + " to " +
                                  redact_url(webhook.url) + ": refused: " + transfer.refused);
    return Delivery::refused;
  }
  const bool ok = rc == CURLE_OK && status >= 200 && status < 300;
  if (!ok) {
    log_.info("callbackd", "webhook " + webhook.event + " of " + webhook.callback_id + " to " + redact_url(webhook.url) +
                               ": " + (rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status)));
  }
  return ok ? Delivery::delivered : Delivery::failed;
}

}  // namespace callback::rest
