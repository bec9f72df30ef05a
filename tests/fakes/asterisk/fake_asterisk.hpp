#pragma once
// TEST AND DEMO DOUBLE — not Asterisk. A fake Asterisk Manager Interface server that
// speaks AMI byte for byte as the recordings in tests/fixtures/asterisk/ (Asterisk
// 23.4.1) show, with "phones" that behave by number exactly as the fixtures'
// etc/extensions.conf says:
//
//   1XXX rings 1 s, answers, stays up        2XXX rings 1 s, answers, hangs up 5 s later
//   3XXX busy (17)                           4XXX rings forever
//   5XXX congestion (34)                     55XX Hangup(38)      58XX Hangup(1)
//   6XXX Hangup(21)                          9XXX answers at once, stays up (benchmarks)
//   98XX answers and hangs up at once         0XXX / anything else: no such extension
//
// With interleave_window_ms > 0 the events of a call come in a random order that keeps
// each channel's own order, as on a real Asterisk under load.
//
// and that runs the `callback` context's contract: Originate Local/<A>@phones into
// context `callback`, exten <B>; when A answers, B is dialed with the time limit
// (CB_LIMIT ms, default 300000) and the UserEvent CallbackResult is sent at the end.
// Time can be scaled (time_scale 0.01 runs 100 times faster), so tests do not wait real
// minutes. It binds 127.0.0.1 only and runs on its own thread until stop().
//
// The dialplan's record of each callback (examples/asterisk/extensions.conf) is kept in an
// AstDB of this fake: right after each UserEvent CallbackResult, whether or not a client is
// connected, family `callback`, key CB_ID, value DIALSTATUS|HANGUPCAUSE|ANSWEREDTIME|
// LimitReached|end, or DIALSTATUS|HANGUPCAUSE|ANSWEREDTIME||h from the `h` path (ami-db-record
// in tests/fixtures/asterisk). DBGet, DBPut and DBDel answer as recorded there. The AstDB
// lives as long as the fake object, as astdb.sqlite3 outlives an Asterisk restart:
// close_all_connections() keeps it.
//
// Inbound calls into [callback-access-ami] (`AGI(agi:async)`), from the ami-inbound-asyncagi
// and ami-inbound-reject recordings: inbound() starts one; the AGI action runs its commands
// (ANSWER, STREAM FILE, WAIT FOR DIGIT, SAY NUMBER, SET VARIABLE) with AsyncAGIExec results,
// the caller's keys come as DTMFBegin/DTMFEnd of the ;2 half, and a Hangup action with
// Cause ends it (inbound_end() says what the caller got).
//
// The AMI engine's IVR (ami-outbound-ivr): an Originate into [callback-ivr-ami] places A as
// usual; once A answers, A's ;1 half waits in Async AGI (AsyncAGIStart, state Up). AGI
// actions on it run as on an inbound call; the phone keys its digits (`phone_dtmf`). SET
// VARIABLE sets CB_B and the limits, and ASYNCAGI BREAK (AsyncAGIExec result=0, then
// AsyncAGIEnd) lets the dialplan go on into [callback] with B: the rest of the recording
// for a 2XXX B, the rest of B's own ami-originate-* recording for the others (their A
// Cdr's times then leave out the seconds A spent in the IVR). A Hangup action while A
// waits (and a failed prompt, or a BREAK without CB_B) ends A as ami-outbound-ivr-hangup
// does: AsyncAGIEnd, then [callback-ivr-ami]'s h extension with its UserEvent (always the
// recorded Cause 16). GET DATA collects digits as ami-inbound-getdata shows.
//
// The Commands an operator's checker sends (`manager show user`, `cdr show status`,
// `dialplan show version@callback`, `core show sound`, ...) are answered as in the
// ami-asterisk-check* recordings, from the options below (manager.conf permissions,
// cdr_manager, the dialplan file, the installed sounds).
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace callback::fake {

// The prompts the callback dialplan plays, as a lab has them installed: the seven
// callback-* prompts in en and zh, the core sounds of the time-left warning in en (Debian)
// and zh (the project's, examples/asterisk/sounds/prompts.tsv).
std::map<std::string, std::vector<std::string>> default_sounds();

struct FakeAsteriskOptions {
  std::string username = "callback";
  std::string secret = "callbacksecret";
  double time_scale = 1.0;  // multiply every delay by this (0 = as fast as possible)
  std::filesystem::path recordings;  // folder with the ami-*.txt / *.timeline.jsonl recordings
  bool callback_dialplan_loaded = true;  // `dialplan show callback` finds the context
  std::uint16_t port = 0;                // 0: any free port
  // Interleave each call's events the way a busy Asterisk does (tests/fixtures/asterisk
  // README, "AMI, bursts"): every channel's own events stay in order, but the
  // OriginateResponse, the Cdr records and different channels' events overtake one
  // another; a message is held back, never sent early, by at most this much recorded
  // time (0: the recorded order). The flow tests run with it.
  std::int64_t interleave_window_ms = 0;
  std::uint64_t seed = 0;  // for the interleaving; 0: random
  // manager.conf's read = / write = for `username`, as `manager show user` lists them.
  // The write classes are enforced as manager.c does (Originate: originate; Hangup: system
  // or call; Command: command; CoreShowChannels and DBGet: system or reporting; DBPut and
  // DBDel: system), else "Permission denied". The read classes are only shown: events are not filtered by them (the call
  // recordings were made with a wider read =, dialplan events included).
  std::string read_classes = "system,call,user,cdr,originate";
  std::string write_classes = "system,call,command,originate";
  // cdr_manager.conf `enabled`: false shows `cdr_manager (suspended) ` in `cdr show status`
  // and sends no `Event: Cdr` at all, as Asterisk then does.
  bool cdr_manager_enabled = true;
  // The dialplan loaded as callback-extensions.conf: `dialplan show [<exten>@]callback`
  // lists its [callback] context. Empty: the project's examples/asterisk/extensions.conf.
  std::filesystem::path dialplan_file;
  // `core show sound <name>`: the languages each sound is installed in; any other name
  // is "not found in index".
  std::map<std::string, std::vector<std::string>> sounds = default_sounds();
  // How long STREAM FILE plays an installed sound on an inbound call (seconds, scaled).
  double sound_seconds = 1.0;
  // Phones that key digits once they answered an Originate into [callback-ivr-ami]: phone
  // number -> digits, sent as DTMFBegin/DTMFEnd on A's ;1 half 1.2 s after AsyncAGIStart
  // and 0.35 s apart (ami-outbound-ivr). Without an entry, a 7XXX phone keys 2XXX# as the
  // real test phone does, and the others key nothing.
  std::map<std::string, std::string> phone_dtmf;
};

// A call into [callback-access-ami] (`AGI(agi:async)`): what the ami-inbound-* recordings
// test caller did (a Local channel; its ;2 half is what AsyncAGIStart names).
struct AmiInboundCallOptions {
  std::string from = "1234";  // the caller's number
  std::string to = "5000";    // the dialled number (the extension)
  std::string name = "Test caller";
  std::string dtmf;                     // keys the caller presses once answered (0-9, *, #)
  std::int64_t dtmf_delay_ms = 1000;    // after the answer, before the first key (recorded: 1 s)
  std::int64_t dtmf_interval_ms = 350;  // between keys (recorded: SendDTMF(...,250) with 100 ms keys)
  // After its last key (or the answer, without keys) the caller hangs up (-1: never). Not
  // recorded over AMI: the events are those of a Hangup action on the answered call, cause 16.
  std::int64_t hangup_after_ms = -1;
};
// How an inbound call ended for its caller.
struct InboundEnd {
  bool answered = false;
  int cause = 0;  // the Hangup's cause the caller got (17: busy, 34: congestion)
};

class FakeAsterisk {
 public:
  explicit FakeAsterisk(FakeAsteriskOptions options);
  ~FakeAsterisk();  // stops
  FakeAsterisk(const FakeAsterisk&) = delete;
  FakeAsterisk& operator=(const FakeAsterisk&) = delete;

  void start();  // binds and starts the thread; port() is valid afterwards
  void stop();   // closes every connection, joins the thread
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

  // --- what tests observe (thread-safe) ---
  [[nodiscard]] std::size_t connections() const;   // logged-in connections now open
  [[nodiscard]] std::size_t active_calls() const;  // callbacks whose channels are not all gone
  [[nodiscard]] std::vector<std::string> actions() const;  // every action received, raw text
  bool wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const;
  bool wait_for_active_calls(std::size_t n, std::chrono::milliseconds timeout) const;
  // The AstDB entry family/key, as DBGet would read it; nullopt if there is none.
  [[nodiscard]] std::optional<std::string> db_get(const std::string& family, const std::string& key) const;
  // Writes an AstDB entry, as DBPut or the dialplan's Set(DB(family/key)=value) do.
  void db_put(const std::string& family, const std::string& key, const std::string& value);

  // --- inbound calls (thread-safe) ---
  // Starts one: the recorded Newchannel ... AsyncAGIStart go out now. Returns the name of
  // the channel AGI runs on. AGI actions run its commands (ANSWER, STREAM FILE, WAIT FOR
  // DIGIT, SAY NUMBER, SET VARIABLE); a Hangup action (with Cause) ends it.
  std::string inbound(const AmiInboundCallOptions& call);
  [[nodiscard]] std::optional<InboundEnd> inbound_end(const std::string& channel) const;
  bool wait_for_inbound_end(const std::string& channel, std::chrono::milliseconds timeout) const;

  // --- faults (thread-safe) ---
  void close_all_connections();                 // TCP close, as when Asterisk dies
  void send_raw_to_all(std::string bytes);      // garbage, truncated frames, oversized headers
  void set_accepting(bool accepting);           // refuse new connections (server down)
  void set_answering_pings(bool answering);     // false: Ping goes unanswered (a stalled Asterisk)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

}  // namespace callback::fake
