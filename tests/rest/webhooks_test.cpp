// Status webhooks on their own: the address policy (what they may reach, judged on the
// address really dialed), the signature over timestamp and body (and the worked example
// of rest/API-CONTRACT.md), URLs in logs without credentials, and one slow receiver not
// holding up the others.
#include "webhooks.hpp"

#include <thread>
#include <gtest/gtest.h>

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace callback::rest {
namespace {

// --- the address policy -------------------------------------------------------------------

TEST(AddressPolicy, RefusesLoopbackPrivateLinkLocalMetadataAndUnspecifiedByDefault) {
  const AddressPolicy policy;
  for (const char* address :
       {"127.0.0.1", "127.255.0.9", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
        "fc00::1", "fd12:3456::1", "169.254.1.1", "fe80::1", "169.254.169.254", "fd00:ec2::254", "0.0.0.0", "::",
        "0.1.2.3", "224.0.0.1", "255.255.255.255", "ff02::1",
        // IPv6 spellings of IPv4 addresses are judged by the IPv4 address
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::10.0.0.1", "2002:7f00:1::1", "::127.0.0.1"}) {
    EXPECT_NE(policy.refusal(std::string_view(address)), "") << address;
  }
  EXPECT_NE(policy.refusal(std::string_view("127.0.0.1")).find("loopback"), std::string::npos);
  EXPECT_NE(policy.refusal(std::string_view("169.254.169.254")).find("metadata"), std::string::npos);
  EXPECT_NE(policy.refusal(std::string_view("fd00:ec2::254")).find("metadata"), std::string::npos);
  EXPECT_NE(policy.refusal(std::string_view("fe80::1")).find("link-local"), std::string::npos);
  EXPECT_NE(policy.refusal(std::string_view("10.0.0.1")).find("private"), std::string::npos);
  EXPECT_NE(policy.refusal(std::string_view("::")).find("unspecified"), std::string::npos);
  // Public addresses pass, including neighbours of the refused ranges.
  for (const char* address : {"93.184.216.34", "172.15.255.255", "172.32.0.1", "192.167.1.1", "100.128.0.1",
                              "169.253.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "fe00::1"}) {
    EXPECT_EQ(policy.refusal(std::string_view(address)), "") << address;
  }
}

TEST(AddressPolicy, AllowedNetworksPassWhateverTheyAre) {
  auto policy = AddressPolicy::make({"127.0.0.1/32", "10.20.0.0/16", "fd00::/8", "::1"});
  ASSERT_TRUE(policy) << policy.error().describe();
  EXPECT_EQ(policy->refusal(std::string_view("127.0.0.1")), "");
  EXPECT_EQ(policy->refusal(std::string_view("::ffff:127.0.0.1")), "");  // the same address
  EXPECT_NE(policy->refusal(std::string_view("127.0.0.2")), "");
  EXPECT_EQ(policy->refusal(std::string_view("10.20.99.1")), "");
  EXPECT_NE(policy->refusal(std::string_view("10.21.0.1")), "");
  EXPECT_EQ(policy->refusal(std::string_view("fd00:ec2::254")), "");  // allowed by the operator, on purpose
  EXPECT_EQ(policy->refusal(std::string_view("::1")), "");
  EXPECT_NE(policy->refusal(std::string_view("169.254.169.254")), "");
}

TEST(AddressPolicy, BadNetworksAreConfigErrorsWithTheirIndex) {
  for (const auto& [text, index] : std::vector<std::pair<std::string, std::string>>{
           {"localhost", "[1]"}, {"10.0.0.0/33", "[1]"}, {"::1/129", "[1]"}, {"10.0.0.0/", "[1]"}, {"10.0.0.0/x", "[1]"}}) {
    auto policy = AddressPolicy::make({"127.0.0.1/32", text});
    ASSERT_FALSE(policy) << text;
    EXPECT_EQ(policy.error().field, "server.webhook_allow_networks" + index) << text;
  }
}

// --- URLs and signatures ------------------------------------------------------------------

TEST(WebhookUrl, OnlyHttpAndHttpsWithAHost) {
  EXPECT_TRUE(check_webhook_url("https://hooks.example.com/callback?x=1"));
  EXPECT_TRUE(check_webhook_url("http://user:pass@hooks.example.com:8443/"));
  for (const char* url : {"ftp://hooks.example.com/", "file:///etc/passwd", "gopher://x/", "dict://x:11211/",
                          "hooks.example.com/callback", "http://", "javascript:alert(1)"}) {
    auto ok = check_webhook_url(url);
    ASSERT_FALSE(ok) << url;
    EXPECT_EQ(ok.error().code, "invalid_url") << url;
    EXPECT_EQ(ok.error().field, "status_callback");
  }
}

TEST(WebhookUrl, LogsNeverShowCredentials) {
  EXPECT_EQ(redact_url("https://alice:s3cret@hooks.example.com/cb?x=1"), "https://hooks.example.com/cb?x=1");
  EXPECT_EQ(redact_url("https://alice@hooks.example.com/"), "https://hooks.example.com/");
  EXPECT_EQ(redact_url("https://hooks.example.com/"), "https://hooks.example.com/");
}

// The worked example of rest/API-CONTRACT.md, section "Verifying a status webhook".
TEST(WebhookSignature, TheContractsWorkedExample) {
  const std::string secret = "whsec_0123456789abcdef";
  const std::string body = R"({"id":"cb_example","state":"completed","outcome":"time_up"})";
  const std::string header = "t=1796000000,v1=d74c742b5aecd1fe767576d851e329aaaf0217638ba42310e738fbfd32280dae";
  EXPECT_EQ(webhook_signature(secret, 1796000000, body), header);
  EXPECT_TRUE(verify_webhook_signature(secret, header, body, 1796000000 + 299));
  // The document shows the same numbers.
  std::ifstream contract(std::string(CALLBACK_SOURCE_DIR) + "/rest/API-CONTRACT.md");
  std::stringstream text;
  text << contract.rdbuf();
  EXPECT_NE(text.str().find("Callback-Signature: " + header), std::string::npos);
  EXPECT_NE(text.str().find(body), std::string::npos);
  EXPECT_NE(text.str().find(secret), std::string::npos);
}

TEST(WebhookSignature, ReplaysTamperingAndOtherSecretsAreRefused) {
  const std::string body = R"({"id":"cb_1","state":"bridged"})";
  const std::string header = webhook_signature("whsec_a", 1796000000, body);
  EXPECT_TRUE(verify_webhook_signature("whsec_a", header, body, 1796000000));
  // A captured webhook replayed later: refused.
  EXPECT_EQ(verify_webhook_signature("whsec_a", header, body, 1796000000 + 301).error().code, "stale_signature");
  // The timestamp moved forward to look fresh: the signature no longer matches.
  const std::string moved = "t=1796003600," + header.substr(header.find("v1="));
  EXPECT_EQ(verify_webhook_signature("whsec_a", moved, body, 1796003600).error().code, "invalid_signature");
  EXPECT_FALSE(verify_webhook_signature("whsec_a", header, body + " ", 1796000000));
  EXPECT_FALSE(verify_webhook_signature("whsec_b", header, body, 1796000000));
  // A rotated secret: any v1 may match.
  EXPECT_TRUE(verify_webhook_signature("whsec_a", "t=1796000000,v1=00," + header.substr(header.find("v1=")), body,
                                       1796000000));
  for (const char* bad : {"", "t=1796000000", "v1=ab", "t=x,v1=ab", "sha256=abc"}) {
    EXPECT_FALSE(verify_webhook_signature("whsec_a", bad, body, 1796000000)) << bad;
  }
}

// --- delivery -----------------------------------------------------------------------------

// A webhook endpoint that counts what reaches it and answers 204.
struct Receiver {
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<std::string> bodies;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint;
  // Bodies containing this answer 500 the first time they come (then 204, as the others).
  std::string fail_first_containing;
  std::set<std::string> failed_once;

  class Handler final : public Pistache::Http::Handler {
   public:
    HTTP_PROTOTYPE(Handler)
    explicit Handler(Receiver* receiver) : receiver_(receiver) {}
    void onRequest(const Pistache::Http::Request& request, Pistache::Http::ResponseWriter response) override {
      {
        std::lock_guard lock(receiver_->mutex);
        const std::string& body = request.body();
        if (!receiver_->fail_first_containing.empty() &&
            body.find(receiver_->fail_first_containing) != std::string::npos &&
            receiver_->failed_once.insert(body).second) {
          response.send(Pistache::Http::Code::Internal_Server_Error);
          return;
        }
        receiver_->bodies.push_back(body);
      }
      receiver_->arrived.notify_all();
      response.send(Pistache::Http::Code::No_Content);
    }

   private:
    Receiver* receiver_;
  };

  std::uint16_t start() {
    endpoint = std::make_unique<Pistache::Http::Endpoint>(Pistache::Address("127.0.0.1", Pistache::Port(0)));
    endpoint->init(Pistache::Http::Endpoint::options().threads(1));
    endpoint->setHandler(Pistache::Http::make_handler<Handler>(this));
    endpoint->serveThreaded();
    return static_cast<std::uint16_t>(endpoint->getPort());
  }
  ~Receiver() {
    if (endpoint) endpoint->shutdown();
  }
  bool wait_for(std::size_t n, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex);
    return arrived.wait_for(lock, timeout, [&] { return bodies.size() >= n; });
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return bodies.size();
  }
};

// A receiver that takes connections (the kernel's backlog does) and never answers.
struct SilentReceiver {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  std::uint16_t start() {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(fd, 64) != 0) return 0;
    socklen_t size = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    return ntohs(address.sin_port);
  }
  ~SilentReceiver() { close(fd); }
};

class CapturingLogger final : public Logger {
 public:
  bool enabled(LogLevel) const noexcept override { return true; }
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 protected:
  void write_line(LogLevel, std::string_view component, std::string_view message) override {
    std::lock_guard lock(mutex_);
    text_.append(component).append(": ").append(message).append("\n");
  }

 private:
  std::mutex mutex_;
  std::string text_;
};

struct Sender {
  CapturingLogger log;
  Metrics metrics;
  WebhookSender sender;
  explicit Sender(WebhookOptions options)
      : sender(log, metrics, [](const std::string&) { return Result<std::string>(std::string("whsec_test")); },
               std::move(options)) {}
  std::int64_t count(const char* result) {
    return metrics.counter("callbackd_webhooks_total", "Status webhooks by result",
                           std::string("result=\"") + result + "\"").value();
  }
};

Webhook hook(const std::string& id, const std::string& url) {
  return {.callback_id = id, .url = url, .event = "completed", .body = R"({"id":")" + id + R"("})", .owner = "k"};
}

// The addresses of the issue: 127.0.0.1, localhost, 2130706433 and 0x7f.1 all reach the
// loopback interface, and only the resolved address shows it.
TEST(WebhookDelivery, SpecialAddressesAreRefusedAtConnectTimeWhateverTheSpelling) {
  Receiver receiver;
  const std::string port = std::to_string(receiver.start());
  const std::vector<std::string> urls = {"http://127.0.0.1:" + port + "/", "http://localhost:" + port + "/",
                                         "http://2130706433:" + port + "/", "http://0x7f.1:" + port + "/",
                                         "http://[::ffff:127.0.0.1]:" + port + "/", "http://[::1]:" + port + "/",
                                         "http://user:hunter2@127.0.0.1:" + port + "/"};
  {
    Sender refusing({.attempts = 3, .first_retry = std::chrono::milliseconds(1)});
    for (std::size_t i = 0; i < urls.size(); ++i) refusing.sender.send(hook("cb_" + std::to_string(i), urls[i]));
    ASSERT_TRUE(refusing.sender.flush(std::chrono::seconds(10)));
    EXPECT_EQ(refusing.count("refused"), static_cast<std::int64_t>(urls.size()));
    EXPECT_EQ(refusing.count("delivered"), 0);
    EXPECT_EQ(receiver.count(), 0u);  // every one was given up before a byte was sent
    const std::string log = refusing.log.text();
    EXPECT_NE(log.find("127.0.0.1 is a loopback address"), std::string::npos) << log;
    EXPECT_EQ(log.find("hunter2"), std::string::npos) << log;  // credentials never reach the log
    EXPECT_EQ(log.find("user:"), std::string::npos) << log;
  }
  // Allowed by the operator: the names that resolve to 127.0.0.1 are delivered.
  Sender allowing({.addresses = AddressPolicy::make({"127.0.0.1/32"}).value()});
  allowing.sender.send(hook("cb_localhost", urls[1]));
  allowing.sender.send(hook("cb_number", urls[2]));
  ASSERT_TRUE(allowing.sender.flush(std::chrono::seconds(10)));
  EXPECT_EQ(allowing.count("delivered"), 2);
  EXPECT_EQ(receiver.count(), 2u);
}

TEST(WebhookDelivery, OnlyHttpAndHttpsAreEverFetched) {
  Sender sender({.attempts = 1, .addresses = AddressPolicy::make({"127.0.0.1/32"}).value()});
  sender.sender.send(hook("cb_file", "file:///etc/passwd"));
  sender.sender.send(hook("cb_gopher", "gopher://127.0.0.1:1/"));
  ASSERT_TRUE(sender.sender.flush(std::chrono::seconds(10)));
  EXPECT_EQ(sender.count("delivered"), 0);
  EXPECT_EQ(sender.count("given_up"), 2);
}

// One receiver that never answers takes at most `per_receiver` workers: the others' webhooks
// keep flowing. Proof by count: every webhook to the good receiver is delivered while not
// one to the silent receiver has finished (its attempts time out only after a minute).
TEST(WebhookDelivery, ASilentReceiverDoesNotHoldUpTheOthers) {
  SilentReceiver silent;
  const std::uint16_t silent_port = silent.start();
  ASSERT_NE(silent_port, 0);
  Receiver good;
  const std::string good_url = "http://127.0.0.1:" + std::to_string(good.start()) + "/";
  Sender sender({.timeout = std::chrono::minutes(1), .workers = 3, .per_receiver = 2,
                 .addresses = AddressPolicy::make({"127.0.0.1/32"}).value()});
  // The silent receiver's webhooks go first, more of them than there are workers.
  for (int i = 0; i < 6; ++i) {
    sender.sender.send(hook("cb_silent_" + std::to_string(i), "http://127.0.0.1:" + std::to_string(silent_port) + "/"));
  }
  for (int i = 0; i < 5; ++i) sender.sender.send(hook("cb_good_" + std::to_string(i), good_url));
  ASSERT_TRUE(good.wait_for(5)) << "the good receiver got " << good.count() << " of 5";
  // The receiver has them; the sender counts each once its answer is read.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (sender.count("delivered") < 5 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_FALSE(sender.sender.flush(std::chrono::milliseconds(0)));
  EXPECT_EQ(sender.count("delivered"), 5);
  EXPECT_EQ(sender.count("given_up"), 0);  // the silent receiver's are all still pending
  // Stopping aborts the deliveries under way instead of waiting out their minute.
}

// A backlog (500 callbacks' events queued at once, every "initiated" failing its first
// attempt) drains, and each callback's events arrive in the order they were sent: a retried
// event holds back that callback's later ones, never the other callbacks'.
TEST(WebhookDelivery, EachCallbacksEventsArriveInOrderThroughRetriesAndABacklog) {
  Receiver receiver;
  receiver.fail_first_containing = R"("event":"initiated")";
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.start()) + "/";
  Sender sender({.first_retry = std::chrono::milliseconds(1), .addresses = AddressPolicy::make({"127.0.0.1/32"}).value()});
  constexpr int callbacks = 500;
  const std::vector<std::string> events = {"initiated", "ringing", "completed"};
  for (const auto& event : events) {
    for (int i = 0; i < callbacks; ++i) {
      const std::string id = "cb_" + std::to_string(i);
      sender.sender.send({.callback_id = id, .url = url, .event = event,
                          .body = R"({"id":")" + id + R"(","event":")" + event + R"("})", .owner = "k"});
    }
  }
  ASSERT_TRUE(sender.sender.flush(std::chrono::seconds(120)));
  EXPECT_EQ(sender.count("delivered"), callbacks * 3);
  EXPECT_EQ(sender.count("given_up"), 0);
  std::map<std::string, std::vector<std::string>> arrived;
  {
    std::lock_guard lock(receiver.mutex);
    EXPECT_EQ(receiver.failed_once.size(), static_cast<std::size_t>(callbacks));
    for (const auto& body : receiver.bodies) {
      const auto id = body.substr(7, body.find('"', 7) - 7);
      const auto at = body.find(R"("event":")") + 9;
      arrived[id].push_back(body.substr(at, body.find('"', at) - at));
    }
  }
  ASSERT_EQ(arrived.size(), static_cast<std::size_t>(callbacks));
  for (const auto& [id, got] : arrived) EXPECT_EQ(got, events) << id;
}

}  // namespace
}  // namespace callback::rest
