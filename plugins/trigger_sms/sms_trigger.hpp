#pragma once
// callback.trigger.sms: people ask for a callback by SMS, through a gateway's webhook
// (Twilio's form POST, or a generic JSON POST). The sender is known by a number registered
// to an account, or gives the account and its password in the message. Anything that is
// not plainly a customer's request gets no call and no reply: a forged or replayed
// webhook, a repeated message, an unknown sender, a wrong password, a sender over its
// limits. Replies cost money and can be aimed at a stranger, so only a known sender gets one.
#include "http_post.hpp"
#include "sms.hpp"

#include <callback/context.hpp>
#include <callback/http.hpp>
#include <callback/outbox.hpp>
#include <callback/phone_number.hpp>
#include <callback/rate_limiter.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

namespace callback::trigger_sms {

struct SmsOptions {
  std::string path = "/hooks/sms";                // the generic JSON webhook; needs hmac_secret
  std::string twilio_path = "/hooks/sms/twilio";  // Twilio's; needs twilio_auth_token and twilio_url
  std::string twilio_auth_token;
  std::string twilio_url;  // the webhook's URL exactly as configured at Twilio (it is signed)
  std::string hmac_secret;
  std::chrono::seconds max_skew{300};  // how old a signed JSON request may be
  int per_sender_per_hour = 5;         // messages one sender may send
  int bad_passwords_per_hour = 3;      // wrong passwords before a sender is ignored for the hour
  std::size_t max_text = 1600;         // longer messages are ignored (10 concatenated SMS)
  std::size_t remembered_messages = 100'000;  // message ids kept to spot a gateway's retries
  // The outcome SMS, when the call ends: POSTed to outcome_url (empty: none sent), as JSON
  // {"to", "from", "text", "callback_id", "outcome"} signed with outcome_secret (Callback-
  // Signature, as callbackd's webhooks), or as Twilio's Messages API wants it (form To,
  // From, Body; basic authentication with twilio_account_sid and twilio_auth_token).
  std::string outcome_url;
  bool outcome_twilio = false;
  std::string outcome_secret;
  std::string twilio_account_sid;
};

class SmsTrigger final : public Trigger {
 public:
  // Adds its routes to `routes` (nullptr: none, only receive() works).
  SmsTrigger(Context& context, Store& store, const NumberingPlan& plan, HttpRoutes* routes, SmsOptions options);
  ~SmsTrigger() override;
  void start(TriggerSink& sink) override;
  void stop() override;
  [[nodiscard]] TriggerStatus status() const override;

  struct Sms {
    std::string from, to, text, id;  // id: the gateway's (MessageSid)
  };
  struct Answer {
    enum class Kind { accepted, refused, ignored, unavailable } kind = Kind::ignored;
    std::string reply;        // to send to the sender; empty for ignored
    std::string reason;       // for the log and the JSON answer: "unknown_sender", "denied.no_rate", ...
    std::string callback_id;  // when accepted
  };
  // One message from any gateway; `done` gets the answer (on some thread), once.
  void receive(const Sms& sms, std::function<void(Answer)> done);

 private:
  void on_twilio(const HttpRequest& request, HttpRespond respond);
  void on_json(const HttpRequest& request, HttpRespond respond);
  bool first_time(const std::string& id);  // false for an id seen before
  void forget(const std::string& id);      // a message not taken after all
  void count(std::string_view outcome);
  void note_error(std::string what);  // for status(); `what` already escaped
  // The outcome SMS of a call a known sender asked for, queued for the gateway.
  void send_outcome(const Sms& sms, const std::string& sender, const std::string& callee, const CallEvent& event);

  Context& context_;
  Store& store_;
  const NumberingPlan& plan_;
  SmsOptions options_;
  std::string dummy_hash_;  // verified against for an unknown account: the same time as a real one
  RateLimiter per_sender_;
  RateLimiter bad_passwords_;
  mutable std::mutex mutex_;
  TriggerSink* sink_ = nullptr;
  TriggerStatusKeeper keeper_{context_, "sms"};
  std::unordered_set<std::string> seen_;
  std::deque<std::string> seen_order_;
  std::unique_ptr<Outbox> outcomes_;  // when options_.outcome_url is set
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace callback::trigger_sms
