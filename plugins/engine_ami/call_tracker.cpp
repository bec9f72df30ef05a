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

}  // namespace

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
  // Waiting.
  enum class Wait { none, channels, records, lost };
  Wait waiting = Wait::none;
  bool orphaned = false;  // its server connection was lost
  bool done = false;
  TimerHandle timer;
};

CallTracker::CallTracker(Clock& clock, Logger& log, Sink& sink, TrackerOptions options)
    : clock_(clock), log_(log), sink_(sink), options_(options) {}

CallTracker::~CallTracker() {
  for (auto& [id, call] : calls_) call->timer.cancel();
}

void CallTracker::add(const std::string& call_id, const std::string& server,
                      std::optional<std::chrono::milliseconds> limit) {
  auto call = std::make_unique<Call>();
  call->id = call_id;
  call->limit = limit;
  call->a1 = call_id + std::string(a1_suffix);
  call->a2 = call_id + std::string(a2_suffix);
  call->server = server;
  ++in_flight_[server];
  calls_.insert_or_assign(call_id, std::move(call));
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
  emit(call, LegRole::b, LegEventType::connected);
}

// --- messages ----------------------------------------------------------------------------

void CallTracker::on_message(const std::string& server, const ami::MessageView& m) {
  if (m.is_response()) {
    // The Originate's acknowledgement (ActionID = callback id).
    Call* call = find(m.action_id());
    if (call == nullptr || call->server != server || call->done) return;
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
    if (uniqueid == call->a1 && state == 6) a_answered(*call);
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
  if (call.done || call.orphaned || !call.originate_done) return;
  if (call.refused) return finish(call, false);
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
    return finish(call, false);
  }
  // A answered: the dialplan's result and A;1's end make the call over.
  if (!call.user_event || !call.a1_gone) return;
  const bool need_b = call.dial_status == "ANSWER" && !call.b_answered_record;
  if (call.a_billsec && !need_b) return finish(call, false);
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
    finish(*c, waiting == Call::Wait::lost);
  });
}

void CallTracker::finish(Call& call, bool engine_lost) {
  if (call.done) return;
  call.done = true;
  call.timer.cancel();
  const bool we_hung_up = call.hangup_requested;
  a_dialing(call);
  if (call.b_dialing || !call.b_channels.empty() || (call.user_event && call.originate_ok)) {
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
  // A that never answered has nothing to bill, whether or not its record came yet.
  a.billsec = call.originate_ok ? call.a_billsec : call.a_billsec.value_or(std::chrono::seconds{0});
  a.far_end_hung_up = !engine_lost && !we_hung_up && call.where_h;
  if (auto n = in_flight_.find(call.server); n != in_flight_.end() && n->second > 0) --n->second;
  for (const auto& b_id : call.b_channels) b_channels_.erase(b_id);
  auto node = calls_.extract(call.id);  // keeps `call` alive until the end of this scope
  sink_.on_leg_event(a);
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

void CallTracker::hangup(const std::string& call_id, LegRole leg, HangupCause cause) {
  Call* call = find(call_id);
  if (call == nullptr || call->done) return;
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
    return;
  }
  call->hangup_requested = true;
  call->requested_cause = cause;
  if (!call->orphaned) send_hangup(*call);
}

void CallTracker::connection_lost(const std::string& server) {
  // We no longer see these calls. They wait for the reconnect to tell whether they are
  // still up; past lost_call_grace they end as "engine lost".
  for (auto& [id, call] : calls_) {
    if (call->server != server || call->orphaned) continue;
    call->orphaned = true;
    call->waiting = Call::Wait::lost;
    wait_then_finish(*call, options_.lost_call_grace);
  }
}

bool CallTracker::has_orphans(const std::string& server) const {
  return std::any_of(calls_.begin(), calls_.end(),
                     [&](const auto& entry) { return entry.second->server == server && entry.second->orphaned; });
}

void CallTracker::reconcile(const std::string& server, const std::set<std::string>& linkedids,
                            const std::set<std::string>& uniqueids) {
  std::vector<std::string> gone, kept;
  for (auto& [id, call] : calls_) {
    if (call->server != server || !call->orphaned) continue;
    // A;1 runs the dialplan: when it went while we were away, so did the call's result.
    if (linkedids.count(call->a1) > 0 && uniqueids.count(call->a1) > 0) {
      kept.push_back(id);
    } else {
      gone.push_back(id);
    }
  }
  for (const auto& id : gone) {
    if (Call* call = find(id)) finish(*call, true);
  }
  for (const auto& id : kept) {
    Call* call = find(id);
    if (call == nullptr) continue;
    call->orphaned = false;
    call->timer.cancel();
    call->waiting = Call::Wait::none;
    // Channels that hung up while we were away are gone now.
    for (auto it = call->live.begin(); it != call->live.end();) {
      if (uniqueids.count(*it) == 0) {
        call->gone.insert(*it);
        it = call->live.erase(it);
      } else {
        ++it;
      }
    }
    // A cancel asked for while we were away goes out now.
    if (call->hangup_requested && !call->hangup_sent) send_hangup(*call);
    check_done(*call);
  }
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
    if (Call* call = find(id)) finish(*call, true);
  }
}

}  // namespace callback::engine_ami
