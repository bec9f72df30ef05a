#pragma once
// Call: one callback as it runs, with its two legs. The states are explicit and only the
// transitions below are allowed; every change is an event observers see (REST, webhooks,
// the web page, metrics).
//
//   created -> authorizing -> dialing_a -> a_answered -> dialing_b -> bridged -> completed
//   any non-final state -> failed | canceled
//
//   Call call{id, request};
//   call.transition(CallState::authorizing, clock.now());   // Status: ok
//   call.transition(CallState::bridged, clock.now());       // Error: authorizing -> bridged
#include <callback/callback_request.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/hangup_cause.hpp>
#include <callback/phone_number.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callback {

using Timestamp = std::chrono::system_clock::time_point;

enum class CallState {
  created,      // accepted, nothing done yet
  authorizing,  // asking the Authorizer
  dialing_a,    // leg A is being called
  a_answered,   // A picked up and hears the welcome / please-wait announcement
  dialing_b,    // leg B is being called
  bridged,      // A and B talk; the time limit runs
  completed,    // ended after A answered (B may have failed: see leg B's cause)
  failed,       // ended before A answered, or could not start (denied, invalid, engine)
  canceled,     // canceled on request before it ended by itself
};

[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(CallState state) noexcept;
[[nodiscard]] CALLBACK_EXPORT std::optional<CallState> call_state_from_string(std::string_view name) noexcept;
[[nodiscard]] CALLBACK_EXPORT bool is_final(CallState state) noexcept;
[[nodiscard]] CALLBACK_EXPORT bool is_allowed_transition(CallState from, CallState to) noexcept;

enum class LegRole { a, b };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(LegRole role) noexcept;  // "A", "B"

enum class LegState { idle, dialing, ringing, answered, ended };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(LegState state) noexcept;

struct Leg {
  LegRole role = LegRole::a;
  std::optional<PhoneNumber> number;
  LegState state = LegState::idle;
  std::string channel;   // engine's channel name: "PJSIP/gw-00000001", "Local/1001@phones-...;1"
  std::string uniqueid;  // engine's unique id of the channel
  std::optional<Timestamp> started, answered, ended;
  HangupCause cause;
  // The talk time the engine's peer measured (Asterisk's BillableSeconds), when it said;
  // billsec() prefers it to our own timestamps, which only say when we learned of the end.
  std::optional<std::chrono::seconds> reported_billsec;

  // Seconds from start to end / from answer to end, as Asterisk's duration and billsec.
  [[nodiscard]] CALLBACK_EXPORT std::chrono::seconds duration() const;
  [[nodiscard]] CALLBACK_EXPORT std::chrono::seconds billsec() const;
};

class CALLBACK_EXPORT Call {
 public:
  Call(std::string id, CallbackRequest request, Timestamp created_at);

  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  [[nodiscard]] const CallbackRequest& request() const noexcept { return request_; }
  [[nodiscard]] CallState state() const noexcept { return state_; }
  [[nodiscard]] Timestamp created_at() const noexcept { return created_at_; }
  [[nodiscard]] Timestamp updated_at() const noexcept { return updated_at_; }
  [[nodiscard]] const Leg& leg_a() const noexcept { return leg_a_; }
  [[nodiscard]] const Leg& leg_b() const noexcept { return leg_b_; }
  Leg& leg_a() noexcept { return leg_a_; }
  Leg& leg_b() noexcept { return leg_b_; }

  // The callee A asked for by DTMF (a request without one): the request's and leg B's.
  void set_callee(PhoneNumber callee) {
    request_.callee = callee;
    leg_b_.number = std::move(callee);
  }

  // Moves to `to` if the transition is allowed; otherwise an Error naming both states.
  Status transition(CallState to, Timestamp at);

 private:
  std::string id_;
  CallbackRequest request_;
  CallState state_ = CallState::created;
  Timestamp created_at_, updated_at_;
  Leg leg_a_, leg_b_;
};

}  // namespace callback
