#include <callback/hangup_cause.hpp>

#include "enum_names.hpp"

#include <algorithm>
#include <cctype>

namespace callback {
namespace {

struct CauseName {
  int code;
  std::string_view name;  // Asterisk's AST_CAUSE_<name> (include/asterisk/causes.h)
  std::string_view description;
};

constexpr CauseName causes[] = {
    {0, "NOTDEFINED", "Not defined"},
    {1, "UNALLOCATED", "Unallocated (unassigned) number"},
    {2, "NO_ROUTE_TRANSIT_NET", "No route to specified transmit network"},
    {3, "NO_ROUTE_DESTINATION", "No route to destination"},
    {5, "MISDIALLED_TRUNK_PREFIX", "Misdialled trunk prefix"},
    {6, "CHANNEL_UNACCEPTABLE", "Channel unacceptable"},
    {7, "CALL_AWARDED_DELIVERED", "Call awarded and being delivered in an established channel"},
    {8, "PRE_EMPTED", "Pre-empted"},
    {14, "NUMBER_PORTED_NOT_HERE", "Number ported elsewhere"},
    {16, "NORMAL_CLEARING", "Normal Clearing"},
    {17, "USER_BUSY", "User busy"},
    {18, "NO_USER_RESPONSE", "No user responding"},
    {19, "NO_ANSWER", "User alerting, no answer"},
    {20, "SUBSCRIBER_ABSENT", "Subscriber absent"},
    {21, "CALL_REJECTED", "Call Rejected"},
    {22, "NUMBER_CHANGED", "Number changed"},
    {23, "REDIRECTED_TO_NEW_DESTINATION", "Redirected to new destination"},
    {26, "ANSWERED_ELSEWHERE", "Answered elsewhere"},
    {27, "DESTINATION_OUT_OF_ORDER", "Destination out of order"},
    {28, "INVALID_NUMBER_FORMAT", "Invalid number format"},
    {29, "FACILITY_REJECTED", "Facility rejected"},
    {30, "RESPONSE_TO_STATUS_ENQUIRY", "Response to STATus ENQuiry"},
    {31, "NORMAL_UNSPECIFIED", "Normal, unspecified"},
    {34, "NORMAL_CIRCUIT_CONGESTION", "Circuit/channel congestion"},
    {38, "NETWORK_OUT_OF_ORDER", "Network out of order"},
    {41, "NORMAL_TEMPORARY_FAILURE", "Temporary failure"},
    {42, "SWITCH_CONGESTION", "Switching equipment congestion"},
    {43, "ACCESS_INFO_DISCARDED", "Access information discarded"},
    {44, "REQUESTED_CHAN_UNAVAIL", "Requested channel not available"},
    {50, "FACILITY_NOT_SUBSCRIBED", "Facility not subscribed"},
    {52, "OUTGOING_CALL_BARRED", "Outgoing call barred"},
    {54, "INCOMING_CALL_BARRED", "Incoming call barred"},
    {57, "BEARERCAPABILITY_NOTAUTH", "Bearer capability not authorized"},
    {58, "BEARERCAPABILITY_NOTAVAIL", "Bearer capability not available"},
    {65, "BEARERCAPABILITY_NOTIMPL", "Bearer capability not implemented"},
    {66, "CHAN_NOT_IMPLEMENTED", "Channel not implemented"},
    {69, "FACILITY_NOT_IMPLEMENTED", "Facility not implemented"},
    {81, "INVALID_CALL_REFERENCE", "Invalid call reference value"},
    {88, "INCOMPATIBLE_DESTINATION", "Incompatible destination"},
    {95, "INVALID_MSG_UNSPECIFIED", "Invalid message unspecified"},
    {96, "MANDATORY_IE_MISSING", "Mandatory information element is missing"},
    {97, "MESSAGE_TYPE_NONEXIST", "Message type nonexist."},
    {98, "WRONG_MESSAGE", "Wrong message"},
    {99, "IE_NONEXIST", "Info. element nonexist or not implemented"},
    {100, "INVALID_IE_CONTENTS", "Invalid information element contents"},
    {101, "WRONG_CALL_STATE", "Message not compatible with call state"},
    {102, "RECOVERY_ON_TIMER_EXPIRE", "Recover on timer expiry"},
    {103, "MANDATORY_IE_LENGTH_ERROR", "Mandatory IE length error"},
    {111, "PROTOCOL_ERROR", "Protocol error, unspecified"},
    {127, "INTERWORKING", "Interworking, unspecified"},
    {HangupCause::canceled_code, "CANCELED", "Canceled by the callback service"},
    {HangupCause::engine_lost_code, "ENGINE_LOST", "Connection to the Asterisk server lost"},
};

const CauseName* lookup(int code) {
  for (const auto& c : causes) {
    if (c.code == code) return &c;
  }
  return nullptr;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

constexpr std::string_view outcome_names[] = {"normal",      "busy",     "no_answer",   "rejected", "unreachable",
                                              "system_busy", "canceled", "engine_lost", "failed"};

}  // namespace

std::string_view to_string(Outcome outcome) noexcept { return outcome_names[static_cast<int>(outcome)]; }

std::optional<Outcome> outcome_from_string(std::string_view name) noexcept {
  return detail::enum_from_name<Outcome>(outcome_names, name);
}

std::optional<HangupCause> HangupCause::from_name(std::string_view name) noexcept {
  if (name.size() > 10 && iequals(name.substr(0, 10), "AST_CAUSE_")) name.remove_prefix(10);
  for (const auto& c : causes) {
    if (iequals(c.name, name)) return HangupCause{c.code};
  }
  return std::nullopt;
}

std::string_view HangupCause::name() const noexcept {
  if (const auto* c = lookup(code_)) return c->name;
  return "UNKNOWN";
}

std::string_view HangupCause::description() const noexcept {
  if (const auto* c = lookup(code_)) return c->description;
  return "Unknown cause";
}

Outcome HangupCause::outcome() const noexcept {
  switch (code_) {
    case 16: return Outcome::normal;
    case 17: return Outcome::busy;
    case 18:
    case 19: return Outcome::no_answer;
    case 21: return Outcome::rejected;
    case 1:
    case 3:
    case 20:
    case 27:
    case 28:
    case 38: return Outcome::unreachable;
    case 34:
    case 42:
    case 44: return Outcome::system_busy;
    case canceled_code: return Outcome::canceled;
    case engine_lost_code: return Outcome::engine_lost;
    default: return Outcome::failed;
  }
}

}  // namespace callback
