#pragma once
// Engine: the part that talks to Asterisk. An engine places legs and reports what happens
// to them as leg events; the service (engine-independent) decides what to do next. It
// offers one or both of two call flows, and says which in capabilities():
//
//  * dialplan_flow (AMI): one originate carries the whole plan (OriginateRequest::connect);
//    Asterisk's dialplan calls A, plays the welcome, dials B with the time limit and the
//    warnings, and reports the result (the seed's web_callback.conf). Fewer round trips,
//    and it survives our restarts.
//  * step_flow (ARI): the service runs the call with the engine's primitives: originate
//    each leg, play, bridge, a time limit, hang up; each answers with a Result.
//
//   Subscription events = engine->subscribe([&](const LegEvent& e) { ... });
//   engine->start();
//   engine->originate({.call_id = id, .leg = LegRole::a, .number = a, .caller_id = b},
//                     [](Result<Channel> placed) { ... });  // accepted (or why not)
//   // events: dialing A, ringing, answered A (with its Channel), ... ended (exactly once)
//   engine->play(a_channel, Prompt::sound("welcome", "en"), [](Status played) { ... });
//
// Inbound calls (ANI missed calls, DID access numbers) go to whoever routed their dialled
// number or access context (route_inbound); it answers or rejects them, plays to them
// and collects digits, by their Channel.
//
// Every operation's result comes asynchronously, on the engine's executor (never from
// inside the call that asked for it), as ok or an Error with one of the codes in
// `engine_errc`. No exception leaves an engine. All methods are called on, and all events
// delivered on, the engine's executor (the Context's io_context).
#include <callback/call.hpp>
#include <callback/component.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/hangup_cause.hpp>
#include <callback/phone_number.hpp>
#include <callback/subscription.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
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
// Its sound file, as examples/asterisk/extensions.conf plays it ("callback-partner-busy").
[[nodiscard]] CALLBACK_EXPORT std::string_view sound_name(Announcement a) noexcept;

// A handle to one channel on one server. Opaque to everyone but the engine that made it;
// engines hand them out (originate's result, leg events, inbound calls) and take them back.
struct Channel {
  std::string server;  // which Asterisk ("127.0.0.1:8088")
  std::string id;      // the engine's id for the channel there
  [[nodiscard]] bool empty() const noexcept { return id.empty(); }
  friend bool operator==(const Channel&, const Channel&) = default;
};

// The codes of the Errors engines answer with.
namespace engine_errc {
inline constexpr std::string_view channel_gone = "engine.channel_gone";  // hung up meanwhile
inline constexpr std::string_view not_found = "engine.not_found";        // no such channel/bridge/prompt
inline constexpr std::string_view unavailable = "engine.unavailable";    // no server reachable
inline constexpr std::string_view unsupported = "engine.unsupported";    // not in capabilities()
inline constexpr std::string_view refused = "engine.refused";            // the server said no (409, 422, Error)
inline constexpr std::string_view invalid = "engine.invalid";            // a bad argument (empty digits, ...)
inline constexpr std::string_view timeout = "engine.timeout";            // the server did not answer in time
inline constexpr std::string_view canceled = "engine.canceled";          // stopped by a hangup or stop()
}  // namespace engine_errc
[[nodiscard]] inline Error engine_error(std::string_view code, std::string message) {
  return Error{std::string(code), std::move(message), {}};
}

// What every engine's options share. Servers are "host:port" (IPv6 as "[::1]:5038"): ok, or
// config.value naming the bad one ("servers[1]"). A dial string holds {number}
// ("PJSIP/{number}@gateway"); expand_dial_string puts the number in each place.
[[nodiscard]] CALLBACK_EXPORT Status validate_servers(const std::vector<std::string>& servers);
[[nodiscard]] CALLBACK_EXPORT Status validate_dial_string(const std::string& dial_string);
[[nodiscard]] CALLBACK_EXPORT std::string expand_dial_string(const std::string& pattern, const std::string& number);

template <class T>
using Completion = std::function<void(Result<T>)>;
using StatusCompletion = std::function<void(Status)>;

// What to play: a prompt by name in a language, or "you have N seconds" (time_left).
struct Prompt {
  std::string name;      // a sound file's name, without extension ("welcome", "vm-youhave")
  std::string language;  // its language folder ("en", "zh"); empty: the channel's own
  std::optional<std::chrono::seconds> time_left;  // set: "you have N seconds" instead of `name`

  [[nodiscard]] static Prompt sound(std::string name, std::string language = {}) {
    return {std::move(name), std::move(language), std::nullopt};
  }
  [[nodiscard]] static Prompt announcement(Announcement a, std::string language = {}) {
    return sound(std::string(sound_name(a)), std::move(language));
  }
  [[nodiscard]] static Prompt seconds_left(std::chrono::seconds n, std::string language = {}) {
    return {{}, std::move(language), n};
  }
};

// Collect DTMF digits: stops at `max_digits`, at the terminator (not included in the
// result), when no first digit comes within `first_digit_timeout`, or when the next does
// not come within `inter_digit_timeout`.
struct DigitRequest {
  std::size_t max_digits = 20;
  char terminator = '#';  // '\0': none
  std::chrono::milliseconds first_digit_timeout{10'000};
  std::chrono::milliseconds inter_digit_timeout{5'000};
  std::optional<Prompt> prompt;  // played first; a digit pressed during it is kept and stops it
};
struct Digits {
  enum class Stop { max_digits, terminator, first_digit_timeout, inter_digit_timeout };
  std::string digits;
  Stop stop = Stop::terminator;
};
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(Digits::Stop stop) noexcept;

// A time limit on two bridged legs: warnings to `warn` ("you have N seconds") at
// `warning_before` before the end and then every `warning_repeat`; at the end "time up"
// to `warn`, and both legs end with LegEvent::limit_reached.
struct TimeLimit {
  std::chrono::milliseconds limit{300'000};
  std::chrono::milliseconds warning_before{20'000};
  std::chrono::milliseconds warning_repeat{20'000};
  std::string language;  // of the warnings
};

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
  std::optional<Connect> connect;  // dialplan_flow engines only
  // dialplan_ivr engines, leg A without `connect` (no callee yet): once answered, A waits in
  // the engine's IVR for collect_digits, then connect_b.
  bool ivr = false;
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
  Channel handle;        // this leg's channel, for the primitives (from `dialing` on, when known)
  std::string channel;   // its name on the server ("Local/1001@phones-00000001;1")
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
  Channel channel;      // to answer or reject, play to, collect from, hang up
  std::string name;     // the channel's name on the server
  std::string caller;   // ANI as the network gave it (digits, maybe a leading +); empty when withheld
  std::string dialed;   // DNIS: the access number that was called
  std::string context;  // the dialplan context it came in through ("callback-access"; AMI: its AGI's)
  Timestamp at{};
};
// Which inbound calls a subscriber takes: those to one of `dialed` (any when empty) that
// came in through `context` (any when empty). A call goes to the first subscriber whose
// route matches, most specific first (a dialled number beats "any"); with none, the
// engine rejects it (congestion) without answering.
struct InboundRoute {
  std::vector<std::string> dialed;
  std::string context;
};
// Inbound channels end with a LegEvent of type `ended` whose call_id is empty and whose
// handle is the inbound channel.

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

class CALLBACK_EXPORT Engine : public Component {
 public:
  struct Capabilities {
    bool dialplan_flow = false;   // originate with `connect`: the dialplan runs the call
    bool step_flow = false;       // the primitives below: play, bridge, time limit
    bool inbound_calls = false;   // route_inbound, answer, reject
    bool collect_digits = false;  // collect_digits
    // dialplan_flow without a callee: A (OriginateRequest::ivr) answers into the engine's
    // IVR, where collect_digits asks it for B; connect_b then runs the dialplan's B part.
    bool dialplan_ivr = false;
  };
  [[nodiscard]] virtual Capabilities capabilities() const = 0;

  // Every leg event, to each subscriber, until its Subscription goes.
  [[nodiscard]] virtual Subscription subscribe(std::function<void(const LegEvent&)> on_event) = 0;
  // Inbound calls that match `route` (see InboundRoute). Engines without inbound_calls
  // return an inactive Subscription.
  [[nodiscard]] virtual Subscription route_inbound(InboundRoute route,
                                                   std::function<void(const InboundCall&)> on_call) = 0;

  virtual void start() = 0;  // connect; reconnects by itself until stop()
  virtual void stop() = 0;   // log off, end every in-flight leg with an `ended` event
  [[nodiscard]] virtual EngineStatus status() const = 0;

  // Places a leg. `placed` says whether a server took it (with the leg's Channel) or why
  // not (engine.unavailable: no server; engine.refused). What happens to the leg then
  // comes as its events, ending with `ended` exactly once, also after a refusal.
  virtual void originate(const OriginateRequest& request, Completion<Channel> placed) = 0;
  // Hangs up a channel (cancel, the end of a step). Its `ended` event follows. A channel
  // that is gone already answers engine.channel_gone (and its `ended` came or comes).
  virtual void hangup(const Channel& channel, HangupCause cause, StatusCompletion done) = 0;

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
    // Taken over from another node whose lease ran out (its id), not left by this one's
    // own restart: that node's engine had the call (ARI: in its own Stasis application).
    std::string taken_from;
    // When B answered, as the service has it: an engine that times the limit itself (ARI)
    // runs it on from there.
    std::optional<Timestamp> b_answered;
  };
  virtual void recover(const std::vector<Recovered>& calls) { (void)calls; }
  // The service has this ended call's end on disk (its final journal entry, or its CDRs):
  // what the engine kept on the server to recover it (AMI: the dialplan's AstDB record) may
  // go now. Until then it stays, so that a crash between the end and that write still finds
  // what the call was. Unknown ids are ignored.
  virtual void forget(const std::string& call_id) { (void)call_id; }

  // --- inbound_calls -----------------------------------------------------------------
  virtual void answer(const Channel& channel, StatusCompletion done) = 0;
  // Ends an unanswered inbound call without answering it, so the caller pays nothing;
  // the caller hears `cause` (busy 17, congestion 34). After ringing for `ring_first`.
  virtual void reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first,
                      StatusCompletion done) = 0;

  // --- step_flow ----------------------------------------------------------------------
  // Plays to one channel; `done` when it has finished (or why not: the channel went, the
  // prompt is missing).
  virtual void play(const Channel& channel, const Prompt& prompt, StatusCompletion done) = 0;
  // Bridges two answered channels; `done` once both are in the bridge. The bridge goes
  // when either leaves it.
  virtual void bridge(const Channel& a, const Channel& b, StatusCompletion done) = 0;
  // Limits a bridged call (see TimeLimit), timed by the engine from now. `done` once armed.
  virtual void set_time_limit(const Channel& warn, const Channel& other, const TimeLimit& limit,
                              StatusCompletion done) = 0;

  // --- collect_digits -----------------------------------------------------------------
  virtual void collect_digits(const Channel& channel, const DigitRequest& request, Completion<Digits> done) = 0;

  // --- dialplan_ivr -------------------------------------------------------------------
  // A, placed with OriginateRequest::ivr and waiting in the IVR, goes on with B as if it had
  // been placed with `connect`: B's leg and the call's end come as events, as then. The
  // default answers engine.unsupported.
  virtual void connect_b(const Channel& a, const Connect& connect, StatusCompletion done);
};

}  // namespace callback
