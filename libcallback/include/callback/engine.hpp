#pragma once
// Engine: the callback engine of the seed, the part that talks to Asterisk. An engine
// places legs, connects them and reports what happens to them as events; the service
// (engine-independent) decides what to do next. Two ways to run a callback exist, and an
// engine says which it supports:
//
//  * server_side_connect (AMI): one originate carries the whole plan; Asterisk's dialplan
//    calls A, plays the welcome, dials B with the time limit and warnings, and reports
//    the result (the seed's web_callback.conf). Fewer round trips, survives our restarts.
//  * primitives (ARI): originate each leg, bridge, play, collect digits, hang up, with
//    the service in charge of every step.
//
//   engine->set_observer(&service);
//   engine->start();
//   engine->originate({.call_id = id, .leg = LegRole::a, .number = a, .caller_id = b,
//                      .ring_timeout = 30s,
//                      .connect = Connect{.number = b, .caller_id = a, .limit = 300s,
//                                         .warning_before = 20s, .warning_repeat = 20s}});
//   // events: on_leg_event(dialing A), (ringing), (answered A), (dialing B) ...
//
// Inbound calls (ANI missed calls, DID access numbers) arrive as on_inbound_call; the
// service answers or rejects them and may collect DTMF digits (the destination number).
// All methods are called on, and all events delivered on, the engine's executor.
#include <callback/call.hpp>
#include <callback/component.hpp>
#include <callback/export.hpp>
#include <callback/hangup_cause.hpp>
#include <callback/phone_number.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace callback {

// Announcements are names of sound files the operator installs (as in the seed).
enum class Announcement {
  welcome,         // A answered: "please wait, connecting your call"
  time_warning,    // "you have N seconds left"
  time_up,         // limit reached
  partner_hangup,  // B hung up first
  partner_busy,    // B: 17, 21
  partner_away,    // B: 18, 19
  system_busy,     // B: 34, 38, 42
  call_failed,     // any other B failure
  enter_number,    // ANI/DID: "please dial the number you want, then #"
};
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(Announcement a) noexcept;

// Leg B and the time limit, for engines that connect server-side.
struct Connect {
  PhoneNumber number;
  PhoneNumber caller_id;  // what B sees (A's number by default)
  std::chrono::seconds ring_timeout{45};
  std::chrono::seconds limit{300};  // the seed's free campaign
  std::chrono::seconds warning_before{20};
  std::chrono::seconds warning_repeat{20};
};

struct OriginateRequest {
  std::string call_id;  // the service's callback id; every event carries it
  LegRole leg = LegRole::a;
  PhoneNumber number;
  PhoneNumber caller_id;  // what this leg's phone shows (B's number for leg A, in the seed)
  std::string caller_name;
  std::chrono::seconds ring_timeout{30};
  std::optional<Connect> connect;  // server_side_connect engines only
  std::string account_code;        // becomes CDR accountcode
  std::string language;  // Asterisk sound language for A's announcements ("en", "zh"); empty: the server's default
};

enum class LegEventType {
  dialing,    // the engine accepted the originate
  ringing,    // the far end is alerting
  answered,   // the leg is up
  connected,  // A and B are bridged (server-side connect reports this for B)
  warning,    // a time-left warning was played
  digits,     // DTMF digits collected (see `digits`)
  ended,      // the leg is gone; `cause` says why
};
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(LegEventType t) noexcept;

struct LegEvent {
  std::string call_id;
  LegRole leg = LegRole::a;
  LegEventType type = LegEventType::dialing;
  Timestamp at{};
  std::string channel;
  std::string uniqueid;
  HangupCause cause;           // for ended
  bool limit_reached = false;  // for ended: the time limit cut the call
  bool far_end_hung_up = false;  // for ended: this leg's own phone hung up (not the limit, not us)
  std::string digits;          // for digits
  std::string server;          // which Asterisk
  // for ended: talk time as the engine's peer measured it (Asterisk's BillableSeconds),
  // preferred over our own timestamps; and the peer's dial status ("BUSY", "ANSWER").
  std::optional<std::chrono::seconds> billsec;
  std::string dial_status;
  // for ended: the engine did not see this end happen (its connection, or this process,
  // was away). billsec is then what the server recorded of the call (AstDB, CDR), or
  // the time up to the last moment the call was known to be up. The outcome is
  // "engine_lost" whatever the cause says.
  bool unobserved = false;
};

struct InboundCall {
  std::string channel;  // to answer, play to, collect from, hang up
  std::optional<PhoneNumber> caller;  // ANI; absent when withheld
  std::string dialed;                 // DNIS: the access number that was called
  std::string server;
};

struct EngineStatus {
  // What an engine found out about a server it connected to (callbackctl asterisk
  // check, /healthz): "login", "permissions", "cdr", "dialplan", "prompts", ...
  struct Check {
    std::string name;
    bool ok = false;
    std::string detail;  // what was found, or what is wrong and how to fix it
  };
  struct Server {
    std::string name;  // "127.0.0.1:5038"
    bool connected = false;
    std::string detail;  // why not: "login failed: Authentication failed"
    std::vector<Check> checks;  // in a fixed order; empty until the first connect attempt
    bool checked = false;       // every check has its answer (or the connection failed)
  };
  std::vector<Server> servers;
  std::size_t calls_in_flight = 0;
};

class CALLBACK_EXPORT EngineObserver {
 public:
  virtual ~EngineObserver();
  virtual void on_leg_event(const LegEvent& event) = 0;
  virtual void on_inbound_call(const InboundCall& call) = 0;
};

class CALLBACK_EXPORT Engine : public Component {
 public:
  struct Capabilities {
    bool server_side_connect = false;
    bool primitives = false;
    bool inbound_calls = false;
  };
  [[nodiscard]] virtual Capabilities capabilities() const = 0;

  virtual void set_observer(EngineObserver* observer) = 0;
  virtual void start() = 0;  // connect; reconnects by itself until stop()
  virtual void stop() = 0;   // log off, end every in-flight leg with an `ended` event
  [[nodiscard]] virtual EngineStatus status() const = 0;

  // Places a leg; the result arrives as events, ending with `ended` (exactly once).
  virtual void originate(const OriginateRequest& request) = 0;
  // Hangs up a leg of a call (cancel). Unknown or finished legs are ignored.
  virtual void hangup(const std::string& call_id, LegRole leg, HangupCause cause) = 0;

  // After a restart: callbacks the service had in flight (from its journal). The engine
  // looks for each on its servers (`server` when known, else on every one): a call still
  // up is followed to its end as if nothing had happened; one that ended meanwhile ends
  // with what the server recorded of it, else with no talk time; either way its leg
  // events end in `ended` for each leg that was dialed, with `unobserved` set. The
  // default finds nothing (the service's stage timer ends them as engine lost).
  struct Recovered {
    std::string call_id;
    std::string server;  // where it was placed, when known
    std::chrono::seconds limit{0};
    bool b_dialed = false;  // B was (maybe) dialed: its end is reported too
  };
  virtual void recover(const std::vector<Recovered>& calls) { (void)calls; }
  // The service has this ended call's end on disk (its final journal entry, or its CDRs):
  // what the engine kept on the server to recover it (AMI: the dialplan's AstDB record) may
  // go now. Until then it stays, so that a crash between the end and that write still finds
  // what the call was. Unknown ids are ignored.
  virtual void forget(const std::string& call_id) { (void)call_id; }

  // Primitives (capabilities().primitives).
  virtual void bridge(const std::string& call_id) = 0;  // A with B
  virtual void set_time_limit(const std::string& call_id, std::chrono::seconds limit,
                              std::chrono::seconds warning_before, std::chrono::seconds warning_repeat) = 0;
  virtual void play(const std::string& call_id, LegRole leg, Announcement announcement) = 0;
  // Reports a `digits` event once `max_digits` arrive, `terminator` is pressed or
  // `timeout` passes after the last digit.
  virtual void collect_digits(const std::string& call_id, LegRole leg, std::size_t max_digits, char terminator,
                              std::chrono::seconds timeout) = 0;
};

}  // namespace callback
