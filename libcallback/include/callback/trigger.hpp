#pragma once
// Trigger: a way for people to ask for a callback (the seed's five kinds: web page/REST,
// SMS-gateway webhook, e-mail, ANI missed call, DID access number). A trigger turns what
// it receives into a CallbackRequest and submits it; the service answers with the
// callback's id or the reason it was refused, which the trigger reports back the way its
// medium allows (HTTP response, reply SMS, reply mail, nothing for a missed call).
//
//   class SmsTrigger : public Trigger {
//     void start(TriggerSink& sink) override { sink_ = &sink; listen(); }
//     void on_sms(const Sms& sms) {
//       auto request = parse_sms(sms.text);            // "user pass 0044123 0044987"
//       if (!request) return reply(sms, request.error().message);
//       sink_->submit(std::move(*request), [sms](Result<std::string> id) { reply(sms, id); });
//     }
//   };
#include <callback/call.hpp>
#include <callback/callback_request.hpp>
#include <callback/component.hpp>
#include <callback/context.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string_view>
#include <optional>
#include <memory>
#include <string>

namespace callback {

class Call;
struct CallEvent;

// One submitted callback, as its trigger follows it: valid while the runtime runs.
class CALLBACK_EXPORT CallbackHandle {
 public:
  virtual ~CallbackHandle();
  [[nodiscard]] virtual const std::string& id() const noexcept = 0;
  // Cancels it at whatever stage it is; any thread. Tracking::ended still comes.
  virtual void cancel() = 0;
};

// What a trigger hears of a callback it submitted with TriggerSink::track. All on the
// service thread; keep them short (post the slow part: a reply mail, an SMS).
struct Tracking {
  // Once: the handle when the service took the call (authorized, dialing), or why not.
  std::function<void(Result<std::shared_ptr<CallbackHandle>>)> accepted;
  // Once, for an accepted call: its final event (state, causes, legs, outcome, cost).
  std::function<void(const CallEvent&)> ended;
  // Optional: every event on the way (dialing, ringing, answered, ...).
  std::function<void(const CallEvent&)> event;
};

class CALLBACK_EXPORT TriggerSink {
 public:
  virtual ~TriggerSink();
  // `done` receives the callback id, or an Error (invalid number, denied, rate limited).
  virtual void submit(CallbackRequest request, std::function<void(Result<std::string>)> done) = 0;
  // The same, followed to its end (a reply SMS or mail says how it went). Any thread.
  virtual void track(CallbackRequest request, Tracking tracking) = 0;
};

// How a trigger is doing, for `callbackctl triggers` and GET /v1/triggers.
struct TriggerStatus {
  bool healthy = true;                 // false: it cannot do its job now (its mailbox is unreachable, ...)
  std::optional<Timestamp> last_poll;     // pollers: the last time it looked
  std::optional<Timestamp> last_message;  // the last request it received
  std::string last_error;                 // the last thing that went wrong ("" when none yet), escaped
  std::optional<Timestamp> last_error_at;
  std::map<std::string, std::int64_t> counts;  // requests by outcome: accepted, refused, ignored, forged
};

// What a trigger keeps of its health for status(), shared by its threads, and the
// callback_trigger_requests_total{trigger,outcome} counter it feeds. Thread-safe.
//
//   TriggerStatusKeeper keeper(context, "ani");
//   keeper.count("accepted");                 // a request, and when it came
//   keeper.error("the store: " + escape_control(why));
//   TriggerStatus status() const override { return keeper.status(); }
class CALLBACK_EXPORT TriggerStatusKeeper {
 public:
  TriggerStatusKeeper(Context& context, std::string trigger);
  // One request with this outcome; `message`: it counts as the last message received
  // (not for forgeries, say).
  void count(std::string_view outcome, bool message = true);
  void received();               // a message came (before its outcome is known)
  void error(std::string what);  // already escaped
  void polled();
  void healthy(bool healthy);
  [[nodiscard]] TriggerStatus status() const;

 private:
  Context& context_;
  std::string trigger_;
  mutable std::mutex mutex_;
  TriggerStatus status_;
};

// What a reply (an outcome SMS, a reply mail) says of a call that ended: its `outcome`
// (CallEvent::outcome: an announcement's name, "completed", "caller_unreachable",
// "canceled", ...), the number it was for, how long they talked and what it cost (""
// when nothing was charged). "Your call with +8613900139000 ended after 2 min 5 s. Charged: 0.30."
[[nodiscard]] CALLBACK_EXPORT std::string outcome_text(std::string_view outcome, std::string_view callee,
                                                       std::chrono::seconds talked, std::string_view cost);

class CALLBACK_EXPORT Trigger : public Component {
 public:
  virtual void start(TriggerSink& sink) = 0;
  virtual void stop() = 0;
  // Thread-safe. The default: healthy, nothing known.
  [[nodiscard]] virtual TriggerStatus status() const;
};

// A front end serves people or programs (the REST server, the web page); it gets the
// running service through the sink as triggers do, plus read access to the store.
class CALLBACK_EXPORT FrontEnd : public Component {
 public:
  virtual void start(TriggerSink& sink) = 0;
  virtual void stop() = 0;
};

}  // namespace callback
