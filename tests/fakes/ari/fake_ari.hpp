#pragma once
// TEST AND DEMO DOUBLE — not Asterisk. A fake Asterisk REST Interface (ARI): HTTP and the
// event WebSocket on 127.0.0.1, answering as the recordings in tests/fixtures/asterisk
// (ari-*.http.jsonl / *.events.jsonl, Asterisk 23.4.1) show: the same headers
// (`Server: Asterisk/23.4.1`, `Content-type: application/json`, 204 without a body, the
// 401 with its WWW-Authenticate), the same JSON field order, the same events per channel
// half, in the recorded order.
//
// Phones are Local channels `Local/<number>@phones`, behaving by number as the fixtures'
// etc/extensions.conf says (the AMI fake's table):
//
//   1XXX rings 1 s, answers, stays up        2XXX rings 1 s, answers, hangs up 5 s later
//   3XXX busy (;2 cause 17, ;1 cause 0)       4XXX rings until the originate/dial timeout (19)
//   5XXX congestion (34)   55XX Hangup(38)    58XX Hangup(1)     6XXX Hangup(21)
//   9XXX answers at once, stays up            98XX answers and hangs up at once
//   7XXX answers at once, keys 2XXX# (its last three digits) 1.7 s later, stays up
//        (tests/real_asterisk/testcallers.conf [phones]; ari-outbound-dtmf)
//   0XXX / anything else: no such extension (both halves destroyed with cause 0)
//
// Supported: GET asterisk/info, asterisk/ping, applications[/{app}], channels[/{id}],
// channels/{id}/variable, bridges/{id}, playbacks/{id}; POST channels (originate),
// channels/create, channels/{id}/dial|answer|ring|play|move, bridges, bridges/{id}/addChannel|
// removeChannel, applications/{app}/subscription; PUT applications/{app}/eventFilter;
// DELETE channels/{id}, bridges/{id}, playbacks/{id}, applications/{app}/subscription.
// Error replies carry Asterisk's own messages (res/ari/resource_*.c, and ari-errors).
// The same requests also as RESTRequest text frames on an app's WebSocket (REST over
// WebSocket, ari-rest-websocket): each answered by a RESTResponse frame before the events
// it caused, held back by the app's event filter like an event.
//
// An application exists only while a WebSocket for it is open (`GET /ari/events?app=X`).
// Its channels stay when it closes, their events dropped, until they end or are moved into
// another application (POST channels/{id}/move, or a subscription: ari-takeover-move).
// Control endpoints, not ARI, with no authentication:
//   POST /fake/inbound?from=1234&to=5000[&name=N][&app=A][&dtmf=123%23][&dtmf_delay_ms=1000]
//        [&dtmf_interval_ms=350][&dtmf_duration_ms=100][&hangup_after_ms=N][&give_up_ms=N]
//        a call enters the app as an inbound channel (StasisStart, state Ring, args
//        ["access", to]); once the app answered it, the caller sends the digits as
//        ChannelDtmfReceived; 200 {"id":"<channel id>"}, 409 if the app has no WebSocket
//   POST /fake/drop   close every WebSocket in the middle of a frame
//   POST /fake/send[?app=A]  the request body, as is, as one text frame to every WebSocket
//   POST /fake/hangup?channel=<id>[&cause=16]  the far end of that channel hangs up
//   GET  /fake/stats  {"channels":N,"bridges":N,"playbacks":N,"websockets":N,"requests":{..}}
//
//   callback::fake::FakeAri ari({.time_scale = 0.01});
//   ari.start();                       // ari.port() is bound now
//   ... a client connects ws://127.0.0.1:<port>/ari/events?app=callback-app&api_key=u:p ...
//   ari.wait_for_idle(std::chrono::seconds(5));  // no channel, bridge or playback left
//
// Everything runs on one thread (its own io_context); the methods below are thread-safe.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace callback::fake {

struct FakeAriOptions {
  std::string username = "callback";
  std::string password = "callbacksecret";
  std::uint16_t port = 0;    // 0: any free port
  double time_scale = 1.0;   // multiply every delay by this (0 = as fast as possible)
  // Asterisk's Stasis() fails for an app with no WebSocket: the originate is accepted (200)
  // and the channel is hung up when it would enter the app. false: every app is taken as
  // registered (events still go only to connected WebSockets).
  bool app_check = true;
  // How long each sound plays (unscaled seconds), by name without the "sound:" scheme.
  std::map<std::string, double> sound_seconds;
  double default_sound_seconds = 1.0;
  // Sounds that are not installed: a play of one ends "failed" (ari-play). Only "sound:"
  // media can be missing.
  std::set<std::string> missing_sounds;
  // Under load Asterisk sends StasisStart a while after the answer events (Dial ANSWER,
  // ChannelStateChange Up); until then the channel is not in Stasis (409 to a play). Unscaled.
  std::int64_t stasis_start_delay_ms = 0;
  // A play on a channel in a bridge waits in the bridge channel's queue this long (unscaled);
  // if the channel leaves the bridge meanwhile, the play is dropped without a PlaybackStarted
  // or PlaybackFinished (ari-play-bridge-destroyed). So is a play sent within this long after
  // the channel left a bridge alive (seen on a loaded Asterisk after ChannelLeftBridge).
  std::int64_t bridge_play_delay_ms = 0;
  // Phones that key digits once they answered an originate into the app (the IVR asks a
  // called-back caller for the number): phone number -> the digits, sent as
  // ChannelDtmfReceived on the channel in Stasis 1.7 s after the answer and 0.35 s apart,
  // as the 7XXX phones key theirs (ari-outbound-dtmf). The phone otherwise behaves by its
  // number (1XXX stays up, 2XXX hangs up...).
  std::map<std::string, std::string> phone_dtmf;
};

struct InboundCallOptions {
  std::string from;            // caller number
  std::string to;              // the dialled number (DID): the Stasis args and dialplan exten
  std::string name;            // caller name
  std::string app = "callback-app";
  std::string dtmf;            // digits the caller sends once answered
  // tests/real_asterisk/testcallers.conf `dtmf`: 1 s after the answer, SendDTMF(...,250),
  // which the app sees 0.35 s apart.
  std::int64_t dtmf_delay_ms = 1000;    // after the answer, before the first digit
  std::int64_t dtmf_interval_ms = 350;  // between digits
  std::int64_t dtmf_duration_ms = 100;  // reported duration_ms
  std::int64_t hangup_after_ms = -1;    // after the last digit the caller hangs up (-1: never)
  std::int64_t give_up_ms = -1;         // unanswered this long, the caller hangs up (-1: never)
};

struct FakeAriStats {
  std::size_t channels = 0;
  std::size_t bridges = 0;
  std::size_t playbacks = 0;
  std::size_t websockets = 0;
  std::map<std::string, std::size_t> requests;  // "POST /ari/channels/{id}/answer" -> count
  std::size_t rest_over_websocket = 0;          // of those, RESTRequest frames on a WebSocket
  // Events by type: sent to an app's WebSockets, and held back by its eventFilter.
  std::map<std::string, std::size_t> events_sent, events_filtered;
  std::map<std::string, std::string> globals;  // Asterisk's global variables (the B legs' end records)
};

class FakeAri {
 public:
  explicit FakeAri(FakeAriOptions options = {});
  ~FakeAri();  // stops
  FakeAri(const FakeAri&) = delete;
  FakeAri& operator=(const FakeAri&) = delete;

  void start();  // binds and starts the thread; port() is valid afterwards
  void stop();   // closes every connection, joins the thread
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

  [[nodiscard]] FakeAriStats stats() const;
  [[nodiscard]] std::string stats_json() const;  // the body of GET /fake/stats
  bool wait_for_websockets(std::size_t n, std::chrono::milliseconds timeout) const;
  // No channel, bridge or playback left.
  bool wait_for_idle(std::chrono::milliseconds timeout) const;

  // An inbound call into options.app; returns its channel id ("" if the app is not
  // registered and app_check is on: the call fails as Stasis() does).
  std::string inbound(const InboundCallOptions& options);
  void drop_websockets();  // every WebSocket closed in the middle of a frame
  // One text frame, as given, to every WebSocket: malformed JSON, events of unknown channels.
  void send_raw(const std::string& frame);
  // The far end of a channel hangs up with this cause: the phone behind a Local ;1 (its ;2
  // runs Hangup(cause)), or the caller of an inbound call. False if there is no such channel.
  bool hang_up(const std::string& channel_id, int cause = 16);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

}  // namespace callback::fake
