#pragma once
// The AMI engine's call tracker: everything Asterisk says about our callbacks, turned into
// the service's leg events. It has no socket: the connection part (ami_engine.cpp) hands
// it parsed messages and sends what it asks for, so tests feed it recorded traffic
// straight from tests/fixtures/asterisk, in any order.
//
//   CallTracker tracker(clock, log, sink, {});
//   tracker.add("cb-1", "127.0.0.1:5038");            // after sending the Originate
//   tracker.on_message("127.0.0.1:5038", message);    // every message from that server
//   // sink.on_leg_event(...): A dialing, ringing, answered; B dialing, ringing,
//   // connected; then B ended and A ended, exactly once per call.
//
// Correlation: the Originate's ActionID is the callback id and ChannelId/OtherChannelId
// name A's two channels "<id>-A1"/"<id>-A2", so every channel of the call has Linkedid
// "<id>-A1"; with cdr_manager.conf's `linkedid => LinkedID` mapping every Cdr names its
// call too. Lookups are exact, so "cb-x-1" never takes "cb-x-10"'s events.
//
// Order: Asterisk keeps each channel's own events in order, but a busy server delivers
// different channels' events, the OriginateResponse and the Cdr records in any order
// (fixtures README, "AMI, bursts"). So a call ends on what has arrived, never on what
// has not yet: it is done when its Originate has an answer, A;1 is gone, the dialplan's
// UserEvent is in (for an answered A), and the talk-time records are in, or a bounded
// wait for them has passed. What it emits keeps the order of a call (A answered before
// B dialing, B connected before the ends), whatever order the messages came in.
//
// A lost connection: each call remembers the moment it was last known up (lost_at). On the
// reconnect CoreShowChannels says which calls are still there; for one that is not, the
// dialplan's AstDB record (`callback/<id>`, written right after its UserEvent, see
// examples/asterisk/extensions.conf) is read with DBGet, and the call ends from it as the
// UserEvent would have ended it; without a record (or past lost_call_grace) it ends as
// engine lost, billed up to lost_at. Either way its `ended` events say `unobserved`. A call
// whose result was read (UserEvent or record) has its record deleted (DBDel).
//
// After a restart of this process, recover() adopts the calls the service had in flight:
// they are found (or not) the same way, on their server or on every server.
//
// Bad input never touches another call or ends one twice: events for unknown channels,
// duplicates, events after a call ended, a Cdr before its Hangup (or before its channel's
// Newchannel: it is held until the channel is known), a UserEvent with a foreign or
// missing CallbackID or one sent from another call's channel.
#include "ami_codec.hpp"

#include <callback/context.hpp>
#include <callback/engine.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace callback::engine_ami {

struct TrackerOptions {
  // When no Cdr has come from a server yet (CDR events may be off): how long a finished
  // call waits for its talk-time records before it ends on its own timestamps.
  std::chrono::milliseconds cdr_grace{1'000};
  // Once Cdrs flow on a server, how long a call waits for its records (a busy Asterisk
  // sends them seconds after the Hangups).
  std::chrono::milliseconds cdr_wait{15'000};
  // A failed Originate whose channels have not been seen: how long they may still come.
  std::chrono::milliseconds channel_grace{2'000};
  // Calls on a lost connection: how long they wait for it to come back (then engine lost).
  std::chrono::milliseconds lost_call_grace{30'000};
  // Cdrs for channels not (yet) known, held for when their Newchannel arrives.
  std::size_t max_held_cdrs = 4096;
  // A call gone from a server we were away from: how long the DBGet of its AstDB record
  // may take before the call ends as engine lost.
  std::chrono::milliseconds record_wait{5'000};
};

// The dialplan's AstDB record of a callback: `DIALSTATUS|HANGUPCAUSE|ANSWEREDTIME|
// LimitReached|end`, or `DIALSTATUS|HANGUPCAUSE|ANSWEREDTIME||h` from the `h` path
// (fixtures README, "AMI, the dialplan's AstDB record").
struct CallRecord {
  std::string dial_status;
  int hangup_cause = 0;
  std::optional<std::chrono::seconds> answered_time;  // empty: B never answered
  int limit_reached = -1;                              // 1/0; -1 on the h path
  bool where_h = false;
};
// Nullopt when `value` is not such a record (another dialplan's, or damaged).
[[nodiscard]] std::optional<CallRecord> parse_call_record(std::string_view value);

// One CoreShowChannel entry: what the reconcile needs of it.
struct ListedChannel {
  std::string channel;
  std::string uniqueid;
  std::string linkedid;
  int state = 0;  // ChannelState: 6 is Up
  std::string bridge_id;
  std::chrono::seconds duration{0};  // since the channel was created
};
// Reads one `Event: CoreShowChannel` (its Duration is HH:MM:SS).
[[nodiscard]] ListedChannel listed_channel(const ami::MessageView& message);

class CallTracker {
 public:
  // Where the tracker's output goes: leg events to the service, actions to a server.
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void on_leg_event(const LegEvent& event) = 0;
    // Sends an action's bytes to `server`; false when that server is not connected.
    virtual bool send(const std::string& server, std::string bytes) = 0;
  };

  CallTracker(Clock& clock, Logger& log, Sink& sink, TrackerOptions options);
  ~CallTracker();
  CallTracker(const CallTracker&) = delete;
  CallTracker& operator=(const CallTracker&) = delete;

  // A callback whose Originate was sent to `server` (with CB_LIMIT = `limit` when it
  // connects B). Its events arrive from then on.
  void add(const std::string& call_id, const std::string& server,
           std::optional<std::chrono::milliseconds> limit = std::nullopt);
  // The limit of a callback placed without one (the IVR's: known once B is).
  void set_limit(const std::string& call_id, std::chrono::milliseconds limit);
  // Every message from `server` that the connection does not handle itself.
  void on_message(const std::string& server, const ami::MessageView& message);
  // Cancel: hangs up A (which ends the dialplan and B) or B alone. Before A's channel
  // exists, or while its server is away, the Hangup goes out once it can. False: no such
  // call in flight (unknown, or ended).
  bool hangup(const std::string& call_id, LegRole leg, HangupCause cause);

  // After a restart: a call the service had in flight. It waits (lost_call_grace) for
  // `servers` (its own, or every configured one when unknown) to list it or give its
  // record; a call already tracked is left alone.
  void adopt(const Engine::Recovered& call, const std::vector<std::string>& servers);

  // The service has the end of `call_id` on disk: its AstDB record is deleted (DBDel) now,
  // not when the call ended. At most `forget_kept` ended calls wait for this; beyond that
  // the oldest's record is deleted anyway.
  void forget(const std::string& call_id);
  static constexpr std::size_t forget_kept = 65'536;

  // The connection to `server` is gone: its calls wait lost_call_grace for it.
  void connection_lost(const std::string& server);
  // (Re)connected: true when calls wait for CoreShowChannels to say which are still up.
  [[nodiscard]] bool has_orphans(const std::string& server) const;
  // CoreShowChannels' answer: calls whose A;1 is listed go on; for the rest the record is
  // asked for (DBGet) and the call ends from the answer.
  void reconcile(const std::string& server, const std::vector<ListedChannel>& channels);
  // Engine stop: hangs up what is still up on connected servers and ends every call as
  // engine lost (those on a lost connection, or adopted and not found yet, as unobserved,
  // billed up to lost_at).
  void stop_all();

  [[nodiscard]] std::size_t size() const noexcept { return calls_.size(); }
  [[nodiscard]] std::size_t in_flight(const std::string& server) const;
  [[nodiscard]] bool tracking(const std::string& call_id) const { return calls_.count(call_id) > 0; }

  struct Call;

 private:
  // Ended calls whose AstDB record waits for forget(): id -> server, and their order.
  std::unordered_map<std::string, std::string> unforgotten_;
  std::deque<std::string> unforgotten_order_;
  void delete_record(const std::string& server, const std::string& call_id);
  struct HeldCdr {
    std::string destination_channel;
    std::string disposition;
    std::chrono::seconds billsec{};
  };

  enum class End {
    seen,     // as Asterisk reported it
    lost,     // not seen and no record: engine lost, billed up to lost_at
    record,   // not seen, ended from the AstDB record
    stopped,  // the engine stops
  };

  void on_event(const std::string& server, const ami::MessageView& m, std::string_view event);
  void on_cdr(const std::string& server, const ami::MessageView& m);
  void on_record(const std::string& server, std::string_view call_id, std::optional<std::string_view> value);
  void ask_record(Call& call, const std::string& server);
  void follow_listed(Call& call, const std::string& server, const std::vector<const ListedChannel*>& channels);
  void apply_cdr(Call& call, std::string_view uniqueid, std::string_view destination_channel,
                 std::string_view disposition, std::chrono::seconds billsec);
  void check_done(Call& call);
  void wait_then_finish(Call& call, std::chrono::milliseconds delay);
  void finish(Call& call, End how);
  void send_hangup(Call& call);
  Call* find(std::string_view call_id);
  Call* for_linkedid(std::string_view linkedid);

  // Canonical order of a call's events: each step first emits what it implies.
  void a_dialing(Call& call);
  void a_ringing(Call& call);
  void a_answered(Call& call);
  void b_dialing(Call& call);
  void b_ringing(Call& call);
  void b_connected(Call& call);
  void emit(Call& call, LegRole leg, LegEventType type);

  Clock& clock_;
  Logger& log_;
  Sink& sink_;
  TrackerOptions options_;
  std::unordered_map<std::string, std::unique_ptr<Call>> calls_;  // by callback id
  std::unordered_map<std::string, std::string> b_channels_;        // B Uniqueid -> callback id
  std::unordered_set<std::string> cdr_servers_;                    // servers that sent a Cdr
  // Cdrs of channels not yet known (only without the LinkedID mapping), oldest first.
  std::unordered_map<std::string, std::vector<HeldCdr>> held_cdrs_;  // by UniqueID
  std::deque<std::string> held_order_;
  std::unordered_map<std::string, std::size_t> in_flight_;  // by server
};

}  // namespace callback::engine_ami
