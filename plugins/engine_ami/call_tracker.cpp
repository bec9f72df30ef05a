#include "call_tracker.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

namespace callback::engine_ami {
namespace {

constexpr std::string_view component = "callback.engine.ami";
constexpr std::string_view a1_suffix = "-A1";
constexpr std::string_view a2_suffix = "-A2";

int to_int(std::string_view text, int fallback = 0) {
  int value = fallback;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} ? value : fallback;
}

// Asterisk's DIALSTATUS for a B that never answered, as a cause (see the fixtures
// README's Dial() table: the cause itself is often 0 on Local channels).
HangupCause cause_for_dial_status(std::string_view status, int reported_cause) {
  if (reported_cause != 0) return HangupCause{reported_cause};
  if (status == "BUSY") return HangupCause{17};
  if (status == "NOANSWER") return HangupCause{19};
  if (status == "CONGESTION") return HangupCause{34};
  if (status == "CANCEL") return HangupCause{16};
  if (status == "ANSWER") return HangupCause{16};
  return HangupCause{3};  // CHANUNAVAIL with no cause: no route (no such number here)
}

// OriginateResponse Reason -> the cause of A's failure (README: 3 no answer, 5 busy,
// 8 congestion, 0 everything else: then the cause is only in the Hangup events).
HangupCause cause_for_reason(int reason, int hangup_cause) {
  switch (reason) {
    case 3: return HangupCause{19};
    case 5: return HangupCause{17};
    case 8: return HangupCause{34};
    case 1: return HangupCause{16};  // hung up (we canceled it)
    default: return hangup_cause != 0 ? HangupCause{hangup_cause} : HangupCause{3};
  }
}

std::string hangup_cause_text(HangupCause cause) { return std::to_string(cause.code() > 127 ? 16 : cause.code()); }

constexpr std::string_view record_family = "callback";  // the dialplan's DB(callback/${CB_ID})
constexpr std::string_view dbget_prefix = "dbget-";

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Talk time from `since` up to `until` (whole seconds, never negative).
std::chrono::seconds up_time(const std::optional<Timestamp>& since, const std::optional<Timestamp>& until) {
  if (!since || !until || *until < *since) return std::chrono::seconds{0};
  return std::chrono::duration_cast<std::chrono::seconds>(*until - *since);
}

}  // namespace

std::optional<CallRecord> parse_call_record(std::string_view value) {
  std::vector<std::string_view> fields;
  for (std::size_t start = 0;;) {
    const auto bar = value.find('|', start);
    fields.push_back(value.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start));
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }
  if (fields.size() != 5 || (fields[4] != "end" && fields[4] != "h")) return std::nullopt;
  const std::string_view status = fields[0], cause = fields[1], answered = fields[2], limit = fields[3];
  if ((!cause.empty() && !all_digits(cause)) || (!answered.empty() && !all_digits(answered)) ||
      (limit != "" && limit != "0" && limit != "1") ||
      !std::all_of(status.begin(), status.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return std::nullopt;
  }
  CallRecord record{.dial_status = std::string(status), .hangup_cause = to_int(cause), .where_h = fields[4] == "h"};
  if (!answered.empty()) record.answered_time = std::chrono::seconds(to_int(answered));
  record.limit_reached = limit.empty() ? -1 : to_int(limit);
  return record;
}

ListedChannel listed_channel(const ami::MessageView& m) {
  ListedChannel out{.channel = std::string(m.get("Channel")),
                    .uniqueid = std::string(m.get("Uniqueid")),
                    .linkedid = std::string(m.get("Linkedid")),
                    .state = to_int(m.get("ChannelState")),
                    .bridge_id = std::string(m.get("BridgeId"))};
  // Duration: HH:MM:SS (main/manager.c, action_coreshowchannels).
  int seconds = 0;
  for (std::string_view rest = m.get("Duration"); !rest.empty();) {
    const auto colon = rest.find(':');
    seconds = seconds * 60 + to_int(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
  }
  out.duration = std::chrono::seconds(seconds);
  return out;
}

// --- one callback as Asterisk reports it -------------------------------------------------

struct CallTracker::Call {
  std::string id;
  std::string a1, a2;  // A's Uniqueids (ChannelId / OtherChannelId)
  std::string server;
  std::string a_channel;              // A;1's channel name
  std::string b_channel, b_uniqueid;  // B's first channel (;1 for Local)
  std::set<std::string> live;         // channels seen and not hung up
  std::set<std::string> gone;         // channels whose Hangup came
  std::set<std::string> b_channels;
  // The Originate.
  bool queued = false;          // acknowledged
  bool originate_done = false;  // OriginateResponse (or a refusal) seen
  bool originate_ok = false;
  bool refused = false;  // Response: Error: no channel will ever come
  int reason = -1;
  bool a1_seen = false, a1_gone = false;
  // What has been emitted (each at most once, in the call's order).
  bool a_dialing = false, a_ringing = false, a_answered = false;
  bool b_dialing = false, b_ringing = false, b_connected = false;
  // The dialplan's UserEvent CallbackResult.
  bool user_event = false, where_h = false;
  int limit_header = -1;  // our dialplan's LimitReached: 1/0; -1 when absent (fixtures' dialplan)
  std::string dial_status;
  int user_hangup_cause = 0;
  std::optional<std::chrono::seconds> answered_time;  // its AnsweredTime
  int a_hangup_cause = 0, b_hangup_cause = 0;
  std::optional<std::chrono::milliseconds> limit;  // the Originate's CB_LIMIT
  // Cancel.
  bool hangup_requested = false;
  bool hangup_sent = false;
  HangupCause requested_cause;
  // Talk time from the Cdr records.
  std::optional<std::chrono::seconds> a_billsec, b_billsec;
  bool b_answered_record = false;
  // Losing sight of it (a lost connection, a restart of this process).
  std::optional<Timestamp> a_up_at, b_up_at;  // when A answered, B connected
  std::optional<Timestamp> lost_at;           // the last moment it was known up
  std::set<std::string> candidates;           // orphaned: the servers that may still hold it
  std::set<std::string> asked;                // servers asked for its record (DBGet)
  bool recovered = false;                     // adopted after a restart (recover())
  bool b_dialed_hint = false;                 // the service says B was (maybe) dialed
  bool from_record = false;                   // the result came from the AstDB record
  bool counted = false;                       // in in_flight_[server]
  // Waiting.
  enum class Wait { none, channels, records, lost };
  Wait waiting = Wait::none;
  bool orphaned = false;  // its server connection was lost (or it was adopted)
  bool done = false;
  TimerHandle timer;
};

CallTracker::CallTracker(Clock& clock, Logger& log, Sink& sink, TrackerOptions options)
    : clock_(clock), log_(log), sink_(sink), options_(options) {}

CallTracker::~CallTracker() {
  for (auto& [id, call] : calls_) call->timer.cancel();
}

void CallTracker::set_limit(const std::string& call_id, std::chrono::milliseconds limit) {
  if (auto it = calls_.find(call_id); it != calls_.end()) it->second->limit = limit;
}

void CallTracker::add(const std::string& call_id, const std::string& server,
                      std::optional<std::chrono::milliseconds> limit) {
  auto call = std::make_unique<Call>();
  call->id = call_id;
  call->limit = limit;
  call->a1 = call_id + std::string(a1_suffix);
  call->a2 = call_id + std::string(a2_suffix);
  call->server = server;
  call->counted = true;
  ++in_flight_[server];
  calls_.insert_or_assign(call_id, std::move(call));
}

void CallTracker::adopt(const Engine::Recovered& recovered, const std::vector<std::string>& servers) {
  if (calls_.count(recovered.call_id) > 0) return;
  auto call = std::make_unique<Call>();
  call->id = recovered.call_id;
  call->a1 = recovered.call_id + std::string(a1_suffix);
  call->a2 = recovered.call_id + std::string(a2_suffix);
  if (recovered.limit.count() > 0) call->limit = std::chrono::milliseconds(recovered.limit);
  call->recovered = true;
  call->b_dialed_hint = recovered.b_dialed;
  call->orphaned = true;
  call->waiting = Call::Wait::lost;
  if (std::find(servers.begin(), servers.end(), recovered.server) != servers.end()) {
    call->server = recovered.server;
    call->counted = true;
    ++in_flight_[recovered.server];
    call->candidates.insert(recovered.server);
  } else {
    // Placed on a server we do not know (or did not say where): any of ours may hold it.
    call->candidates.insert(servers.begin(), servers.end());
  }
  auto& adopted = *call;
  calls_.emplace(recovered.call_id, std::move(call));
  if (adopted.candidates.empty()) return finish(adopted, End::lost);
  wait_then_finish(adopted, options_.lost_call_grace);
}

std::size_t CallTracker::in_flight(const std::string& server) const {
  auto it = in_flight_.find(server);
  return it == in_flight_.end() ? 0 : it->second;
}

CallTracker::Call* CallTracker::find(std::string_view call_id) {
  auto it = calls_.find(std::string(call_id));
  return it == calls_.end() ? nullptr : it->second.get();
}

CallTracker::Call* CallTracker::for_linkedid(std::string_view linkedid) {
  if (linkedid.size() <= a1_suffix.size() || !linkedid.ends_with(a1_suffix)) return nullptr;
  return find(linkedid.substr(0, linkedid.size() - a1_suffix.size()));
}

// --- what the service hears, in the order of a call ----------------------------------------

void CallTracker::emit(Call& call, LegRole leg, LegEventType type) {
  LegEvent event{.call_id = call.id, .leg = leg, .type = type, .at = clock_.now(), .server = call.server};
  if (leg == LegRole::a) {
    event.channel = call.a_channel;
    event.uniqueid = call.a1;
  } else {
    event.channel = call.b_channel;
    event.uniqueid = call.b_uniqueid;
  }
  sink_.on_leg_event(event);
}

void CallTracker::a_dialing(Call& call) {
  if (std::exchange(call.a_dialing, true)) return;
  emit(call, LegRole::a, LegEventType::dialing);
}
void CallTracker::a_ringing(Call& call) {
  if (call.a_answered || std::exchange(call.a_ringing, true)) return;
  a_dialing(call);
  emit(call, LegRole::a, LegEventType::ringing);
}
void CallTracker::a_answered(Call& call) {
  if (std::exchange(call.a_answered, true)) return;
  if (!call.a_up_at) call.a_up_at = clock_.now();
  a_dialing(call);
  emit(call, LegRole::a, LegEventType::answered);
}
void CallTracker::b_dialing(Call& call) {
  if (call.b_dialing) return;
  a_answered(call);  // B is dialled from A's dialplan: A is up
  call.b_dialing = true;
  emit(call, LegRole::b, LegEventType::dialing);
}
void CallTracker::b_ringing(Call& call) {
  if (call.b_connected || std::exchange(call.b_ringing, true)) return;
  b_dialing(call);
  emit(call, LegRole::b, LegEventType::ringing);
}
void CallTracker::b_connected(Call& call) {
  if (call.b_connected) return;
  b_dialing(call);
  call.b_connected = true;
  if (!call.b_up_at) call.b_up_at = clock_.now();
  emit(call, LegRole::b, LegEventType::connected);
}

// --- messages ----------------------------------------------------------------------------

void CallTracker::on_message(const std::string& server, const ami::MessageView& m) {
  if (m.is_response()) {
    // The Originate's acknowledgement (ActionID = callback id).
    Call* call = find(m.action_id());
    if (call == nullptr) {
      // DBGet's "Database entry not found" (its Success is the list's start: the record
      // follows as DBGetResponse). DBDel's answers are not waited for.
      if (const auto id = m.action_id(); id.starts_with(dbget_prefix) && m.response() != "Success") {
        if (m.get("Message") != "Database entry not found") {
          log_.warning(component, std::string(id) + " on " + server + ": " + std::string(m.get("Message")));
        }
        on_record(server, id.substr(dbget_prefix.size()), std::nullopt);
      }
      return;
    }
    if (call->server != server || call->done) return;
    if (m.response() == "Success") {
      if (!call->queued) {
        call->queued = true;
        a_dialing(*call);
      }
    } else if (!call->queued && !call->originate_done) {
      // Refused outright (bad channel, permission): it never started.
      call->originate_done = true;
      call->refused = true;
      call->reason = 0;
      log_.warning(component, call->id + ": Originate refused: " + std::string(m.get("Message")));
      check_done(*call);
    }
    return;
  }
  if (m.is_event()) on_event(server, m, m.event());
}

void CallTracker::on_event(const std::string& server, const ami::MessageView& m, std::string_view event) {
  if (event == "Cdr") return on_cdr(server, m);
  if (event == "DBGetResponse") {
    const auto id = m.action_id();
    if (!id.starts_with(dbget_prefix) || m.get("Family") != record_family ||
        m.get("Key") != id.substr(dbget_prefix.size())) {
      return;
    }
    return on_record(server, m.get("Key"), m.get("Val"));
  }

  if (event == "UserEvent") {
    if (m.get("UserEvent") != "CallbackResult") return;
    Call* call = find(m.get("CallbackID"));
    if (call == nullptr || call->server != server || call->user_event) return;
    // Only the call's own dialplan speaks for it: a UserEvent from another call's
    // channel that names this call is not believed.
    if (m.has("Linkedid") && m.get("Linkedid") != call->a1) return;
    call->user_event = true;
    call->dial_status = std::string(m.get("DialStatus"));
    call->user_hangup_cause = to_int(m.get("HangupCause"));
    call->where_h = m.get("Where") == "h";
    if (m.has("LimitReached")) call->limit_header = to_int(m.get("LimitReached"));
    if (m.has("AnsweredTime") && !m.get("AnsweredTime").empty()) {
      call->answered_time = std::chrono::seconds(to_int(m.get("AnsweredTime")));
    }
    return check_done(*call);
  }

  if (event == "OriginateResponse") {
    Call* call = find(m.action_id());
    if (call == nullptr || call->server != server || call->originate_done) return;
    call->originate_done = true;
    call->originate_ok = m.get("Response") == "Success";
    call->reason = to_int(m.get("Reason"), -1);
    if (call->originate_ok) a_answered(*call);
    return check_done(*call);
  }

  // Channel events: the call through the Linkedid (DestLinkedid for Dial*).
  const bool dial_event = event.starts_with("Dial");
  Call* call = for_linkedid(m.get(dial_event ? "DestLinkedid" : "Linkedid"));
  if (call == nullptr || call->server != server || call->done) return;
  const std::string uniqueid(m.get(dial_event ? "DestUniqueid" : "Uniqueid"));
  if (uniqueid.empty()) return;
  const auto channel = m.get(dial_event ? "DestChannel" : "Channel");
  const bool is_a = uniqueid == call->a1 || uniqueid == call->a2;

  if (event == "Newchannel") {
    if (call->gone.count(uniqueid) > 0 || !call->live.insert(uniqueid).second) return;  // a duplicate
    if (uniqueid == call->a1) {
      call->a1_seen = true;
      call->a_channel = std::string(channel);
      if (call->waiting == Call::Wait::channels) {
        call->timer.cancel();
        call->waiting = Call::Wait::none;
      }
      if (call->hangup_requested && !call->hangup_sent) send_hangup(*call);
    } else if (!is_a) {
      call->b_channels.insert(uniqueid);
      b_channels_.emplace(uniqueid, call->id);
      if (call->b_uniqueid.empty() || channel.ends_with(";1")) {
        call->b_uniqueid = uniqueid;
        call->b_channel = std::string(channel);
      }
      // A Cdr that came before this channel was known.
      if (auto held = held_cdrs_.find(uniqueid); held != held_cdrs_.end()) {
        const auto records = std::move(held->second);
        held_cdrs_.erase(held);
        for (const auto& r : records) apply_cdr(*call, uniqueid, r.destination_channel, r.disposition, r.billsec);
        return check_done(*call);
      }
    }
    return;
  }
  if (event == "Hangup") {
    if (!call->gone.insert(uniqueid).second) return;  // a duplicate
    call->live.erase(uniqueid);
    const int cause = to_int(m.get("Cause"));
    if (is_a) {
      call->a_hangup_cause = std::max(call->a_hangup_cause, cause);
    } else {
      call->b_hangup_cause = std::max(call->b_hangup_cause, cause);
    }
    if (uniqueid == call->a1) call->a1_seen = call->a1_gone = true;
    return check_done(*call);
  }
  if (event == "Newstate") {
    const int state = to_int(m.get("ChannelState"));
    if (uniqueid == call->a1 && state == 5) a_ringing(*call);
    if (uniqueid == call->a1 && state == 6) {
      // Adopted while A rang: its OriginateResponse goes to the connection that sent the
      // Originate, which is gone; A;1 going Up says the same.
      if (call->recovered && !call->originate_done) call->queued = call->originate_done = call->originate_ok = true;
      a_answered(*call);
    }
    return;
  }
  if (is_a) return;  // the rest concerns B
  if (event == "DialBegin") {
    b_dialing(*call);
  } else if (event == "DialState") {
    if (m.get("DialStatus") == "RINGING") {
      b_ringing(*call);
    } else {
      b_dialing(*call);
    }
  } else if ((event == "DialEnd" && m.get("DialStatus") == "ANSWER") || event == "BridgeEnter") {
    b_connected(*call);
  }
}

void CallTracker::on_cdr(const std::string& server, const ami::MessageView& m) {
  if (cdr_servers_.insert(server).second) {
    // This server does send Cdrs after all: calls that began the short wait (for a
    // server without them) wait the full one.
    for (auto& [id, c] : calls_) {
      if (c->server == server && c->waiting == Call::Wait::records) wait_then_finish(*c, options_.cdr_wait);
    }
  }
  const auto uniqueid = m.get("UniqueID");
  const auto billsec = std::chrono::seconds(to_int(m.get("BillableSeconds")));
  Call* call = nullptr;
  const bool mapped = m.has("LinkedID");  // cdr_manager.conf's `linkedid => LinkedID`
  if (mapped) {
    call = for_linkedid(m.get("LinkedID"));
  } else if (uniqueid.ends_with(a1_suffix) || uniqueid.ends_with(a2_suffix)) {
    call = find(uniqueid.substr(0, uniqueid.size() - a1_suffix.size()));
  } else if (auto c = b_channels_.find(std::string(uniqueid)); c != b_channels_.end()) {
    call = find(c->second);
  } else if (!uniqueid.empty()) {
    // Without the mapping, a B record can come before its channel's Newchannel: hold it
    // (bounded) for when the channel is known.
    if (held_order_.size() >= options_.max_held_cdrs) {
      held_cdrs_.erase(held_order_.front());
      held_order_.pop_front();
    }
    const std::string key(uniqueid);
    held_cdrs_[key].push_back({.destination_channel = std::string(m.get("DestinationChannel")),
                               .disposition = std::string(m.get("Disposition")),
                               .billsec = billsec});
    held_order_.push_back(key);
    return;
  }
  if (call == nullptr || call->server != server || call->done) return;
  apply_cdr(*call, uniqueid, m.get("DestinationChannel"), m.get("Disposition"), billsec);
  check_done(*call);
}

void CallTracker::apply_cdr(Call& call, std::string_view uniqueid, std::string_view destination_channel,
                            std::string_view disposition, std::chrono::seconds billsec) {
  // A leg's own record (DestinationChannel empty) holds its answered time: for A the ;2
  // half (A;1's records belong to the Dial), for B any of its channels.
  if (!destination_channel.empty() || uniqueid == call.a1) return;
  if (uniqueid == call.a2) {
    call.a_billsec = billsec;
  } else if (disposition == "ANSWERED") {
    if (!call.b_answered_record || billsec > *call.b_billsec) call.b_billsec = billsec;
    call.b_answered_record = true;
  } else if (!call.b_billsec) {
    call.b_billsec = billsec;
  }
}

// --- when a call is over -------------------------------------------------------------------

void CallTracker::check_done(Call& call) {
  if (call.done || call.orphaned) return;
  if (call.recovered && !call.originate_done && call.a1_gone) {
    // Adopted while A rang, and A;1 went without going Up: A never answered (its
    // OriginateResponse went to the connection that is gone). The Hangup's cause says why.
    call.queued = call.originate_done = true;
    call.originate_ok = false;
  }
  if (!call.originate_done) return;
  if (call.refused) return finish(call, End::seen);
  if (!call.originate_ok) {
    if (!call.a1_seen) {
      // A Failure often comes before A's channel events, which carry the real cause
      // (a busy server sent it up to 0.3 s and 2,000 messages early: fixtures README,
      // "AMI, bursts"); but when the channel driver could not make a channel at all
      // (ami-burst-nochannel) none will come, and the Failure looks the same (its
      // Uniqueid is our ChannelId either way). Only a wait tells them apart.
      if (call.waiting != Call::Wait::channels) {
        call.waiting = Call::Wait::channels;
        wait_then_finish(call, options_.channel_grace);
      }
      return;
    }
    if (!call.live.empty()) return;
    return finish(call, End::seen);
  }
  // A answered: the dialplan's result and A;1's end make the call over.
  if (!call.user_event || !call.a1_gone) return;
  const bool need_b = call.dial_status == "ANSWER" && !call.b_answered_record;
  if (call.a_billsec && !need_b) return finish(call, End::seen);
  // The talk-time records trail the Hangups; how long to wait for them depends on
  // whether this server sends Cdr events at all.
  if (call.waiting == Call::Wait::records) return;
  call.waiting = Call::Wait::records;
  wait_then_finish(call, cdr_servers_.count(call.server) > 0 ? options_.cdr_wait : options_.cdr_grace);
}

void CallTracker::wait_then_finish(Call& call, std::chrono::milliseconds delay) {
  call.timer.cancel();
  const std::string id = call.id;
  const auto waiting = call.waiting;
  call.timer = clock_.schedule(delay, [this, id, waiting] {
    Call* c = find(id);
    if (c == nullptr || c->waiting != waiting) return;
    if (waiting == Call::Wait::channels && c->a1_seen) return;  // they came after all
    finish(*c, waiting == Call::Wait::lost ? End::lost : End::seen);
  });
}

void CallTracker::finish(Call& call, End how) {
  if (call.done) return;
  call.done = true;
  call.timer.cancel();
  const bool engine_lost = how == End::lost || how == End::stopped;
  const bool unobserved = how == End::lost || how == End::record;
  const bool we_hung_up = call.hangup_requested;
  a_dialing(call);
  // B was dialed as far as anyone knows: its events, the dialplan's result (a UserEvent or
  // record whose DIALSTATUS is empty comes from an A that went before the Dial: in
  // [callback-ivr-ami] before B was known, ami-outbound-ivr-hangup), or the service.
  const bool b_known = call.b_dialing || !call.b_channels.empty() || call.b_dialed_hint ||
                       (call.user_event && call.originate_ok && !call.dial_status.empty());
  if (b_known) {
    if (call.dial_status == "ANSWER") b_connected(call);
    b_dialing(call);
    LegEvent b{.call_id = call.id, .leg = LegRole::b, .type = LegEventType::ended, .at = clock_.now(),
               .channel = call.b_channel, .uniqueid = call.b_uniqueid, .server = call.server};
    if (engine_lost) {
      b.cause = HangupCause::engine_lost();
    } else if (we_hung_up) {
      b.cause = call.requested_cause;
    } else {
      b.cause = cause_for_dial_status(call.dial_status, call.user_hangup_cause != 0 ? call.user_hangup_cause
                                                                                    : (call.b_connected ? 16 : call.b_hangup_cause));
    }
    b.dial_status = call.dial_status;
    if (!call.b_connected) {
      b.billsec = std::chrono::seconds{0};
    } else if (how == End::lost) {
      // Not what the grace added: only the time it was known to be up.
      b.billsec = up_time(call.b_up_at, call.lost_at);
    } else {
      // Asterisk's own record; without one (no CDR events), the Dial's ANSWEREDTIME.
      b.billsec = call.b_billsec ? call.b_billsec : call.answered_time;
    }
    // With Dial's `g`, the dialplan goes on after Dial only when B hung up or the limit
    // ended the call; when A goes, `h` runs instead. Our shipped dialplan says which
    // (LimitReached: 1); the fixtures' does not, so then the Dial's own ANSWEREDTIME is
    // held against the limit. (Who left the bridge first is no guide: the two channels'
    // BridgeLeave events come in either order on a busy server.)
    const bool b_ended_it = !engine_lost && !we_hung_up && call.dial_status == "ANSWER" && !call.where_h;
    if (call.limit_header >= 0) {
      b.limit_reached = b_ended_it && call.limit_header == 1;
    } else {
      b.limit_reached = b_ended_it && call.limit && call.answered_time &&
                        std::chrono::milliseconds(*call.answered_time) + std::chrono::seconds(1) >= *call.limit;
    }
    b.far_end_hung_up = b_ended_it && !b.limit_reached;
    b.unobserved = unobserved;
    sink_.on_leg_event(b);
  }
  LegEvent a{.call_id = call.id, .leg = LegRole::a, .type = LegEventType::ended, .at = clock_.now(),
             .channel = call.a_channel, .uniqueid = call.a1, .server = call.server};
  if (engine_lost) {
    a.cause = HangupCause::engine_lost();
  } else if (we_hung_up) {
    a.cause = call.requested_cause;
  } else if (!call.originate_ok) {
    a.cause = cause_for_reason(call.reason, call.a_hangup_cause);
  } else {
    a.cause = HangupCause{call.a_hangup_cause != 0 ? call.a_hangup_cause : 16};
  }
  if (how == End::lost) {
    a.billsec = call.a_answered ? up_time(call.a_up_at, call.lost_at) : std::chrono::seconds{0};
  } else if (how == End::record) {
    a.billsec = call.a_billsec ? call.a_billsec : call.answered_time;  // ANSWEREDTIME is A's up time
  } else {
    // A that never answered has nothing to bill, whether or not its record came yet.
    a.billsec = call.originate_ok ? call.a_billsec : call.a_billsec.value_or(std::chrono::seconds{0});
  }
  a.far_end_hung_up = !engine_lost && !we_hung_up && call.where_h;
  a.unobserved = unobserved;
  // The dialplan wrote its record with the result we now have: AstDB need not keep it
  // once the service has the end on disk (forget()).
  if ((how == End::seen || how == End::record) && call.user_event && call.originate_ok) {
    if (unforgotten_.emplace(call.id, call.server).second) unforgotten_order_.push_back(call.id);
    while (unforgotten_.size() > forget_kept && !unforgotten_order_.empty()) {
      const std::string oldest = std::move(unforgotten_order_.front());
      unforgotten_order_.pop_front();
      if (auto it = unforgotten_.find(oldest); it != unforgotten_.end()) {
        delete_record(it->second, oldest);
        unforgotten_.erase(it);
      }
    }
  }
  if (auto n = in_flight_.find(call.server); call.counted && n != in_flight_.end() && n->second > 0) --n->second;
  for (const auto& b_id : call.b_channels) b_channels_.erase(b_id);
  auto node = calls_.extract(call.id);  // keeps `call` alive until the end of this scope
  sink_.on_leg_event(a);
}

void CallTracker::delete_record(const std::string& server, const std::string& call_id) {
  sink_.send(server, ami::Action("DBDel")
                         .add("ActionID", "dbdel-" + call_id)
                         .add("Family", std::string(record_family))
                         .add("Key", call_id)
                         .str());
}

void CallTracker::forget(const std::string& call_id) {
  auto it = unforgotten_.find(call_id);
  if (it == unforgotten_.end()) return;
  delete_record(it->second, call_id);
  unforgotten_.erase(it);
  // Its place in the order goes when it reaches the front (erased ids are skipped there).
  while (!unforgotten_order_.empty() && unforgotten_.count(unforgotten_order_.front()) == 0) {
    unforgotten_order_.pop_front();
  }
}

// --- cancel, lost connections, stop --------------------------------------------------------

void CallTracker::send_hangup(Call& call) {
  // Before Asterisk created A's channel the Hangup would find nothing: it goes out once
  // the channel appears (Newchannel).
  if (call.live.count(call.a1) == 0) return;
  call.hangup_sent = sink_.send(call.server, ami::Action("Hangup")
                                                 .add("ActionID", "hangup-" + call.id)
                                                 .add("Channel", call.a_channel.empty() ? call.a1 : call.a_channel)
                                                 .add("Cause", hangup_cause_text(call.requested_cause))
                                                 .str());
}

bool CallTracker::hangup(const std::string& call_id, LegRole leg, HangupCause cause) {
  Call* call = find(call_id);
  if (call == nullptr || call->done) return false;
  if (leg == LegRole::b) {
    // Hanging up A ends B as well (the dialplan's Dial goes with it); B alone only when
    // B's channel is known.
    if (!call->b_uniqueid.empty()) {
      sink_.send(call->server, ami::Action("Hangup")
                                   .add("ActionID", "hangup-" + call_id + "-B")
                                   .add("Channel", call->b_channel)
                                   .add("Cause", hangup_cause_text(cause))
                                   .str());
    }
    return true;
  }
  call->hangup_requested = true;
  call->requested_cause = cause;
  if (!call->orphaned) send_hangup(*call);
  return true;
}

void CallTracker::connection_lost(const std::string& server) {
  // We no longer see these calls: each was last known up now. They wait for the
  // reconnect to tell whether they are still up; past lost_call_grace they end as
  // "engine lost", billed up to now.
  const auto now = clock_.now();
  for (auto& [id, call] : calls_) {
    if (call->server != server || call->orphaned) continue;
    call->orphaned = true;
    call->lost_at = now;
    call->candidates = {server};
    call->asked.clear();
    call->waiting = Call::Wait::lost;
    wait_then_finish(*call, options_.lost_call_grace);
  }
}

bool CallTracker::has_orphans(const std::string& server) const {
  return std::any_of(calls_.begin(), calls_.end(), [&](const auto& entry) {
    return entry.second->orphaned && entry.second->candidates.count(server) > 0;
  });
}

void CallTracker::reconcile(const std::string& server, const std::vector<ListedChannel>& channels) {
  std::unordered_map<std::string, std::vector<const ListedChannel*>> by_linkedid;
  for (const auto& c : channels) by_linkedid[c.linkedid].push_back(&c);
  std::vector<std::string> orphans;
  for (auto& [id, call] : calls_) {
    if (call->orphaned && call->candidates.count(server) > 0) orphans.push_back(id);
  }
  for (const auto& id : orphans) {
    Call* call = find(id);
    if (call == nullptr) continue;
    // A;1 runs the dialplan: while it is there, so is the call.
    const auto listed = by_linkedid.find(call->a1);
    if (listed != by_linkedid.end() &&
        std::any_of(listed->second.begin(), listed->second.end(), [&](auto* c) { return c->uniqueid == call->a1; })) {
      follow_listed(*call, server, listed->second);
    } else if (call->user_event && call->server == server) {
      // Its result came before we lost sight of it; only the records did not.
      finish(*call, End::seen);
    } else {
      ask_record(*call, server);
    }
  }
}

void CallTracker::follow_listed(Call& call, const std::string& server, const std::vector<const ListedChannel*>& channels) {
  call.orphaned = false;
  call.timer.cancel();
  call.waiting = Call::Wait::none;
  call.candidates.clear();
  call.asked.clear();
  if (!call.counted) {
    call.server = server;
    call.counted = true;
    ++in_flight_[server];
  }
  // Channels that hung up while we were away are gone now.
  std::set<std::string> listed;
  for (const auto* c : channels) listed.insert(c->uniqueid);
  for (auto it = call.live.begin(); it != call.live.end();) {
    if (listed.count(*it) == 0) {
      call.gone.insert(*it);
      it = call.live.erase(it);
    } else {
      ++it;
    }
  }
  // What the listing says of the call (all we know of an adopted one): A up, B's channels,
  // B bridged. Duration counts from a channel's creation (for B: its ringing included).
  const auto now = clock_.now();
  const ListedChannel* b_up = nullptr;
  bool b_seen = false;
  for (const auto* c : channels) {
    if (call.gone.count(c->uniqueid) > 0) continue;
    call.live.insert(c->uniqueid);
    if (c->uniqueid == call.a1) {
      call.a1_seen = true;
      if (call.a_channel.empty()) call.a_channel = c->channel;
      if (c->state == 6 && !call.originate_done) {
        // Up: its OriginateResponse went out while nobody listened.
        call.queued = call.originate_done = call.originate_ok = true;
        if (!call.a_up_at) call.a_up_at = now - c->duration;
        a_answered(call);
      }
    } else if (c->uniqueid != call.a2) {
      b_seen = true;
      call.b_channels.insert(c->uniqueid);
      b_channels_.emplace(c->uniqueid, call.id);
      if (call.b_uniqueid.empty() || c->channel.ends_with(";1")) {
        call.b_uniqueid = c->uniqueid;
        call.b_channel = c->channel;
      }
      if (c->state == 6 && !c->bridge_id.empty()) b_up = c;
    }
  }
  if (b_up != nullptr) {
    if (!call.b_up_at) call.b_up_at = now - b_up->duration;
    b_connected(call);
  } else if (b_seen && call.originate_ok) {
    b_dialing(call);
  }
  // A cancel asked for while we were away goes out now.
  if (call.hangup_requested && !call.hangup_sent) send_hangup(call);
  check_done(call);
}

void CallTracker::ask_record(Call& call, const std::string& server) {
  if (!sink_.send(server, ami::Action("DBGet")
                              .add("ActionID", std::string(dbget_prefix) + call.id)
                              .add("Family", std::string(record_family))
                              .add("Key", call.id)
                              .str())) {
    return;  // gone again: asked after the next reconnect
  }
  call.asked.insert(server);
  // Once every server that may hold it was asked, the answers get a bounded time.
  if (std::includes(call.asked.begin(), call.asked.end(), call.candidates.begin(), call.candidates.end())) {
    wait_then_finish(call, options_.record_wait);
  }
}

void CallTracker::on_record(const std::string& server, std::string_view call_id, std::optional<std::string_view> value) {
  Call* call = find(call_id);
  if (call == nullptr || !call->orphaned || call->asked.erase(server) == 0) return;
  if (value) {
    if (const auto record = parse_call_record(*value)) {
      // The dialplan's result, as its UserEvent would have said it.
      if (!call->counted) {
        call->server = server;
        call->counted = true;
        ++in_flight_[server];
      }
      call->user_event = true;
      call->from_record = true;
      call->dial_status = record->dial_status;
      call->user_hangup_cause = record->hangup_cause;
      call->answered_time = record->answered_time;
      call->limit_header = record->limit_reached;
      call->where_h = record->where_h;
      call->originate_done = call->originate_ok = true;  // the dialplan ran: A answered
      a_answered(*call);
      return finish(*call, End::record);
    }
    log_.warning(component, call->id + " on " + server + ": not a callback record: " + std::string(*value));
  }
  call->candidates.erase(server);
  if (call->candidates.empty()) finish(*call, End::lost);
}

void CallTracker::stop_all() {
  // Calls still up are hung up first: nobody would follow (or bill) them any more.
  for (auto& [id, call] : calls_) {
    if (!call->live.empty() && !call->orphaned) {
      sink_.send(call->server, ami::Action("Hangup")
                                   .add("ActionID", "hangup-" + id)
                                   .add("Channel", call->a_channel.empty() ? call->a1 : call->a_channel)
                                   .add("Cause", "16")
                                   .str());
    }
  }
  std::vector<std::string> open;
  for (auto& [id, call] : calls_) open.push_back(id);
  for (const auto& id : open) {
    // One we had already lost sight of ends as lost: billed up to when it was last seen.
    if (Call* call = find(id)) finish(*call, call->orphaned ? End::lost : End::stopped);
  }
}

}  // namespace callback::engine_ami
