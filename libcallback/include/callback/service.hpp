#pragma once
// What configures the callback service (ServiceOptions, in the config's "service" block),
// and the table that picks what A hears from how leg B ended. The service itself
// (CallbackService) is not part of the public API: an application runs it through
// callback/embedded.hpp (EmbeddedService), plugins reach it through TriggerSink.
#include <callback/billing.hpp>
#include <callback/call.hpp>
#include <callback/call_event.hpp>
#include <callback/callback_request.hpp>
#include <callback/context.hpp>
#include <callback/engine.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace callback {

// What A hears when the call ends, decided from how leg B ended (one table, shared by
// the service and the shipped dialplan; see examples/asterisk/extensions.conf).
struct LegOutcome {
  bool b_answered = false;
  HangupCause b_cause;
  bool limit_reached = false;
  bool b_hung_up = false;  // B's phone ended the conversation
  bool a_hung_up = false;  // A's phone hung up first: nobody is left to hear anything
};
[[nodiscard]] CALLBACK_EXPORT std::optional<Announcement> announcement_for(const LegOutcome& outcome);

struct CampaignLimits {
  std::chrono::seconds limit{300};  // the seed's free campaign: 5 minutes
  std::chrono::seconds warning_before{20};
  std::chrono::seconds warning_repeat{20};
};

struct ServiceOptions {
  bool show_callee_to_caller = true;  // A's phone shows B's number (the seed); else our own
  PhoneNumber service_number = PhoneNumber::from_e164("000").value();  // shown when not B's
  std::chrono::seconds a_ring_timeout{30};
  std::chrono::seconds b_ring_timeout{45};
  std::chrono::seconds warning_before{20};
  std::chrono::seconds warning_repeat{20};
  std::chrono::seconds max_duration{4 * 3600};  // never longer than this, whatever is authorized
  // Slack on top of every stage's own time before the service gives up on the engine
  // and ends the call itself (hang up, then "engine lost").
  std::chrono::seconds stage_grace{10};
  // Beyond this many callbacks in flight new ones are refused ("overloaded") instead of
  // piling up faster than Asterisk can place them. 0: no limit.
  std::size_t max_in_flight = 20'000;
  std::map<std::string, CampaignLimits, std::less<>> campaigns;  // campaign id -> limits
  // A request without a callee (CallbackRequest::callee): once A answers, A hears "dial
  // the number you want, then #" and the digits are read with `numbering` (the service's
  // numbering plan) and checked as any callee (emergency and short codes refused). A
  // timeout, '*', or a number that is not one asks again, up to `ivr_attempts` in all;
  // then A hears "call failed" and the call ends with outcome "no_number".
  NumberingPlan numbering;
  int ivr_attempts = 2;
  // Several callbackd nodes on one shared journal (a server database): this node's id,
  // unique among them ("" : the only service of its journal), and the lease it renews
  // every third of its length; a node silent for a whole lease has its calls taken over.
  std::string node;
  std::chrono::seconds node_lease{15};
  std::chrono::milliseconds ivr_first_digit_timeout{10'000};
  std::chrono::milliseconds ivr_inter_digit_timeout{5'000};
};

}  // namespace callback
