#include <callback/call.hpp>

namespace callback {
namespace {
constexpr std::string_view state_names[] = {"created",   "authorizing", "dialing_a", "a_answered", "dialing_b",
                                            "bridged",   "completed",   "failed",    "canceled"};
std::chrono::seconds between(const std::optional<Timestamp>& from, const std::optional<Timestamp>& to) {
  if (!from || !to || *to < *from) return std::chrono::seconds{0};
  return std::chrono::duration_cast<std::chrono::seconds>(*to - *from);
}
}  // namespace

std::string_view to_string(CallState state) noexcept { return state_names[static_cast<int>(state)]; }

std::optional<CallState> call_state_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(state_names); ++i) {
    if (state_names[i] == name) return static_cast<CallState>(i);
  }
  return std::nullopt;
}

bool is_final(CallState state) noexcept {
  return state == CallState::completed || state == CallState::failed || state == CallState::canceled;
}

bool is_allowed_transition(CallState from, CallState to) noexcept {
  using S = CallState;
  if (is_final(from)) return false;
  if (to == S::canceled) return true;  // cancel at any stage
  switch (from) {
    case S::created: return to == S::authorizing || to == S::failed;
    case S::authorizing: return to == S::dialing_a || to == S::failed;
    case S::dialing_a: return to == S::a_answered || to == S::failed;
    // B is dialed only after A answered; a call that ends after A answered is completed,
    // whatever happened to B (leg B's cause tells).
    case S::a_answered: return to == S::dialing_b || to == S::completed;
    case S::dialing_b: return to == S::bridged || to == S::completed;
    case S::bridged: return to == S::completed;
    default: return false;
  }
}

std::string_view to_string(LegRole role) noexcept { return role == LegRole::a ? "A" : "B"; }

std::string_view to_string(LegState state) noexcept {
  constexpr std::string_view names[] = {"idle", "dialing", "ringing", "answered", "ended"};
  return names[static_cast<int>(state)];
}

std::chrono::seconds Leg::duration() const { return between(started, ended); }
std::chrono::seconds Leg::billsec() const { return reported_billsec ? *reported_billsec : between(answered, ended); }

Call::Call(std::string id, CallbackRequest request, Timestamp created_at)
    : id_(std::move(id)), request_(std::move(request)), created_at_(created_at), updated_at_(created_at) {
  leg_a_.role = LegRole::a;
  leg_a_.number = request_.caller;
  leg_b_.role = LegRole::b;
  leg_b_.number = request_.callee;
}

Status Call::transition(CallState to, Timestamp at) {
  if (!is_allowed_transition(state_, to)) {
    return Error{"invalid_transition",
                 "callback " + id_ + " cannot go from " + std::string(to_string(state_)) + " to " +
                     std::string(to_string(to)),
                 "state"};
  }
  state_ = to;
  updated_at_ = at;
  return ok_status();
}

}  // namespace callback
