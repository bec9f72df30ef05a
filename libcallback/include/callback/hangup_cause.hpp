#pragma once
// HangupCause: why a leg ended, as an ITU-T Q.850 cause number (what Asterisk reports in
// Hangup events, ${HANGUPCAUSE} and ARI's "cause"), plus two causes of our own that no
// network sends: the call was canceled by us, or the engine lost its Asterisk server.
// Causes fall into outcome classes, which is what billing, statistics and the
// announcements care about.
//
//   HangupCause busy{17};
//   busy.name()          == "USER_BUSY"       (Asterisk's AST_CAUSE_ name)
//   busy.outcome()       == Outcome::busy
//   HangupCause::from_name("NO_ANSWER")  -> 19
#include <callback/export.hpp>

#include <compare>
#include <optional>
#include <string_view>

namespace callback {

enum class Outcome {
  normal,       // 16: a conversation that ended normally
  busy,         // 17
  no_answer,    // 18, 19
  rejected,     // 21
  unreachable,  // 1, 3, 20, 27, 28, 38: the number or route does not work
  system_busy,  // 34, 42, 44: congestion on our side or the carrier's
  canceled,     // we hung up on purpose (user cancel, shutdown)
  engine_lost,  // the connection to Asterisk was lost with the call in flight
  failed,       // any other cause
};

[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(Outcome outcome) noexcept;
[[nodiscard]] CALLBACK_EXPORT std::optional<Outcome> outcome_from_string(std::string_view name) noexcept;

class CALLBACK_EXPORT HangupCause {
 public:
  // Q.850 defines 0..127; ours sit above that range.
  static constexpr int canceled_code = 1000;
  static constexpr int engine_lost_code = 1001;

  constexpr HangupCause() = default;  // 0: not set (Asterisk's AST_CAUSE_NOTDEFINED)
  constexpr explicit HangupCause(int code) : code_(code) {}

  static constexpr HangupCause normal() { return HangupCause{16}; }
  static constexpr HangupCause canceled() { return HangupCause{canceled_code}; }
  static constexpr HangupCause engine_lost() { return HangupCause{engine_lost_code}; }

  // From Asterisk's names ("USER_BUSY", "AST_CAUSE_USER_BUSY", case-insensitive).
  [[nodiscard]] static std::optional<HangupCause> from_name(std::string_view name) noexcept;

  [[nodiscard]] constexpr int code() const noexcept { return code_; }
  [[nodiscard]] std::string_view name() const noexcept;         // "USER_BUSY", "UNKNOWN_55"
  [[nodiscard]] std::string_view description() const noexcept;  // "User busy"
  [[nodiscard]] Outcome outcome() const noexcept;

  friend constexpr auto operator<=>(const HangupCause&, const HangupCause&) = default;

 private:
  int code_ = 0;
};

}  // namespace callback
