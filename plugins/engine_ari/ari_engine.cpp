#include "ari_engine.hpp"

#include <callback/callback_request.hpp>
#include <callback/timestamp.hpp>

#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <functional>
#include <optional>

namespace callback::engine_ari {
namespace json = boost::json;
using verb = boost::beast::http::verb;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view component = "callback.engine.ari";

std::string_view str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}
const json::object* obj(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}
int integer(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return static_cast<int>(v->as_int64());
  if (v->is_uint64()) return static_cast<int>(v->as_uint64());
  return 0;
}
bool boolean(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_bool() && v->as_bool();
}

int to_int(std::string_view text, int fallback = 0) {
  int value = fallback;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && ptr == text.data() + text.size() ? value : fallback;
}

// A channel operation's failure, in the Engine's terms.
Error engine_error_for(const Error& e, std::string_view what) {
  std::string message = std::string(what) + ": " + e.message;
  if (e.code == "ari.not_found") return engine_error(engine_errc::channel_gone, std::move(message));
  if (e.code == "ari.timeout") return engine_error(engine_errc::timeout, std::move(message));
  if (e.code == "ari.unreachable" || e.code == "ari.closed") {
    return engine_error(engine_errc::unavailable, std::move(message));
  }
  return engine_error(engine_errc::refused, std::move(message));
}

// The Q.850 cause Asterisk takes in DELETE ?reason_code=; ours that are not Q.850
// (canceled, engine lost) hang up as normal clearing.
int q850(HangupCause cause) { return cause.code() > 0 && cause.code() < 128 ? cause.code() : 16; }

// Why a leg that never answered ended (see the fixtures README: ;1 says 0 for busy and
// congestion; the Dial event's status says which).
HangupCause cause_of_failure(std::string_view dial_status, int cause1, int cause2) {
  if (cause1 > 0) return HangupCause{cause1};
  if (dial_status == "BUSY") return HangupCause{17};
  if (dial_status == "CONGESTION") return HangupCause{34};
  if (dial_status == "NOANSWER") return HangupCause{19};
  if (cause2 > 0) return HangupCause{cause2};
  return HangupCause{3};  // no such number here (CHANUNAVAIL with no cause), as the AMI engine says
}

std::string dial_status_for(HangupCause cause) {
  switch (cause.code()) {
    case 17: return "BUSY";
    case 19:
    case 18: return "NOANSWER";
    case 34: return "CONGESTION";
    default: return "CHANUNAVAIL";
  }
}

// The event types on_event() reads. Set as the app's event filter once its WebSocket is up
// (PUT /applications/{app}/eventFilter, fixtures: ari-event-filter), Asterisk sends only
// these: a callback's ~60 events become ~25, half the bytes to parse here and to write there.
// (ChannelLeftBridge, read while plays waited for it, is no longer: the bridge goes with the
// last leg, whose prompts are over.)
// RESTResponse too: Asterisk filters the replies to REST calls made over the WebSocket
// (rest_over_websocket) as events.
constexpr std::array<std::string_view, 10> kEventsRead = {
    "StasisStart",      "StasisEnd",           "ChannelStateChange", "Dial",                "ChannelHangupRequest",
    "ChannelDestroyed", "ChannelDtmfReceived", "PlaybackFinished",   "ApplicationReplaced", "RESTResponse"};

json::object event_filter() {
  json::array allowed;
  for (const auto type : kEventsRead) allowed.push_back(json::object{{"type", type}});
  return json::object{{"allowed", std::move(allowed)}};
}


}  // namespace

Status validate(const AriOptions& options) {
  if (auto ok = validate_servers(options.servers); !ok) return ok;
  if (auto ok = validate_dial_string(options.dial_string); !ok) return ok;
  if (options.leg_end_context.find_first_of(",()|\\ \t\r\n") != std::string::npos) {
    return Error{"config.value", "a dialplan context name, without ',', '(', ')', '|', '\\' or spaces", "leg_end_context"};
  }
  if (options.app.empty() || options.app.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                                 std::string::npos) {
    return Error{"config.value", "the Stasis application name is letters, digits, '_', '-' and '.'", "app"};
  }
  return ok_status();
}

// --- state ----------------------------------------------------------------------------

struct AriEngine::Leg {
  std::string id;   // the ;1 half: the Channel handle's id
  std::string id2;  // the ;2 half of a Local channel we placed
  std::string server;
  std::string call_id;  // empty: an inbound call
  LegRole role = LegRole::a;
  bool inbound = false;
  std::string name;
  bool placing = false;  // the originate's reply has not come
  bool dialing = false, ringing = false, up = false, ended = false;
  Timestamp started{}, answered_at{};
  std::optional<Timestamp> up_at;  // the answer events' time; answered once in Stasis
  // The first sign of its end: the phone's half (;2) hanging up, or either half destroyed
  // or hung up hard. Under load the ;1's own ChannelDestroyed comes a second or more after
  // (a burst of 200: B billsec 6 where Asterisk's CDR says 5); the talk ends here.
  std::optional<Timestamp> end_seen;
  std::string dial_status;
  int cause1 = 0, cause2 = 0, requested_cause = 0;  // requested: the last hard ChannelHangupRequest
  std::optional<HangupCause> hung_up_by_us;
  bool hangup_sent = false;
  bool hangup_pending = false;  // asked for while its server was away
  bool limit_reached = false;
  std::string bridge;
  std::weak_ptr<Leg> other;
  // The time limit, on the leg that hears the warnings.
  TimerHandle limit_timer;
  Timestamp limit_end{};
  std::chrono::milliseconds warning_repeat{0};
  std::string language;
  std::vector<std::string> playbacks;  // in flight on this channel
  std::string typeahead;               // DTMF that came while no collection ran
  bool orphaned = false;    // its server is away: we do not know whether it is still up
  Timestamp last_seen{};    // when it was last known up
  std::chrono::seconds recovered_limit{0};  // adopted after a restart: the call's limit
  bool adopted = false;                     // from recover(), not yet found on a server
  std::string taken_from;                   // adopted from that node: its channel is in that node's app
  bool moving = false;                      // move_here() under way (a reconcile does not start another)
  std::optional<Timestamp> b_answered;      // adopted: B's answer, as the service has it
  bool record_asked = false;                // its end record is being read (end_unobserved)
  std::optional<bool> recorded_up;          // its end record came: whether it had answered
};

// A B leg's end as [callback-ari-leg-end] recorded it: "cause|state|epoch.ms".
struct EndRecord {
  int cause = 0;
  bool up = false;  // it was answered (state Up when it hung up)
  Timestamp at{};
};
std::optional<EndRecord> parse_end_record(std::string_view text) {
  const auto bar1 = text.find('|');
  const auto bar2 = bar1 == std::string_view::npos ? bar1 : text.find('|', bar1 + 1);
  if (bar2 == std::string_view::npos) return std::nullopt;
  const int cause = to_int(text.substr(0, bar1), -1);
  const std::string_view state = text.substr(bar1 + 1, bar2 - bar1 - 1);
  const std::string_view when = text.substr(bar2 + 1);
  const auto dot = when.find('.');
  long long seconds = -1;
  auto [ptr, ec] = std::from_chars(when.data(), when.data() + std::min(dot, when.size()), seconds);
  if (cause < 0 || ec != std::errc{} || ptr != when.data() + std::min(dot, when.size()) || seconds <= 0) return std::nullopt;
  const int ms = dot == std::string_view::npos ? 0 : to_int(when.substr(dot + 1), -1);
  if (ms < 0 || ms > 999) return std::nullopt;
  return EndRecord{cause, state == "Up", Timestamp{std::chrono::seconds{seconds} + std::chrono::milliseconds{ms}}};
}

// A callback id goes into the hangup handler's argument: only characters that cannot end it.
bool fits_handler_argument(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}
constexpr std::size_t kForgetPerOriginate = 20;  // ids in one B's CB_FORGET
constexpr std::size_t kForgetKept = 1000;        // beyond that the oldest records stay on Asterisk

struct AriEngine::Collection {
  DigitRequest request;
  Completion<Digits> done;
  std::string digits;
  TimerHandle timer;
  std::string prompt_playback;  // stopped by the first digit
};

struct AriEngine::Server {
  std::string name;
  std::unique_ptr<ari::Client> client;
  enum class State { idle, connecting, ready, backoff } state = State::idle;
  std::string detail = "not connected";
  bool attempted = false;
  std::string version;
  std::chrono::milliseconds backoff{0};
  TimerHandle timer;        // reconnect backoff
  TimerHandle grace_timer;  // legs of a lost connection wait for it this long
  std::size_t legs = 0;
  // Callbacks whose end the service has on disk: their end records on this server go with
  // the next B placed here (CB_FORGET).
  std::deque<std::string> forgotten;
};

// --- the engine -----------------------------------------------------------------------

AriEngine::AriEngine(Context& context, AriOptions options)
    : context_(context), options_(std::move(options)), app_(options_.app) {
  for (const auto& address : options_.servers) {
    auto server = std::make_unique<Server>();
    server->name = address;
    const auto colon = address.rfind(':');
    ari::Endpoint endpoint{.host = address.substr(0, colon),
                           .port = static_cast<std::uint16_t>(to_int(address.substr(colon + 1))),
                           .username = options_.username,
                           .password = options_.password,
                           .app = app_};
    Server* s = server.get();
    std::weak_ptr<bool> alive = alive_;
    server->client = std::make_unique<ari::Client>(
        context_.io, std::move(endpoint),
        ari::Client::Options{.request_timeout = options_.request_timeout,
                             .max_connections = options_.max_connections,
                             .event_idle_timeout = options_.event_idle_timeout,
                             .rest_over_websocket = options_.rest_over_websocket},
        ari::Client::Handlers{
            .opened = [this, s, alive] { if (!alive.expired()) on_opened(*s); },
            .event = [this, s, alive](const json::object& e) { if (!alive.expired()) on_event(*s, e); },
            .closed = [this, s, alive](const Error& why) { if (!alive.expired()) on_closed(*s, why); },
            .malformed =
                [this, s, alive](const Error& why) {
                  if (!alive.expired()) context_.log.warning(component, s->name + ": event skipped: " + why.message);
                },
        });
    servers_.push_back(std::move(server));
  }
}

AriEngine::~AriEngine() {
  *alive_ = false;
  for (auto& server : servers_) {
    server->timer.cancel();
    server->grace_timer.cancel();
  }
  for (auto& [id, leg] : legs_) leg->limit_timer.cancel();
  for (auto& [id, c] : collections_) c->timer.cancel();
  servers_.clear();  // the clients drop everything without calling back
}

Subscription AriEngine::subscribe(std::function<void(const LegEvent&)> on_event) {
  return subscribers_.add(std::move(on_event));
}

Subscription AriEngine::route_inbound(InboundRoute route, std::function<void(const InboundCall&)> on_call) {
  return routes_.add(std::make_shared<Route>(Route{std::move(route), std::move(on_call)}));
}

void AriEngine::later(std::function<void()> f) {
  boost::asio::post(context_.io, [f = std::move(f), alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) f();
  });
}

void AriEngine::request(Server& server, verb method, std::string target,
                        std::function<void(Result<ari::Response>)> done, json::object body) {
  server.client->request(method, std::move(target),
                         [done = std::move(done), alive = std::weak_ptr<bool>(alive_)](Result<ari::Response> r) {
                           if (!alive.expired() && done) done(std::move(r));
                         },
                         std::move(body));
}

void AriEngine::start() {
  stopping_ = false;
  // Claimed by now (the service claims its journal before it starts the engine).
  if (options_.journal != nullptr && options_.journal->shared() && app_ == options_.app) {
    app_ = options_.app + "-" + options_.journal->node();
    context_.log.info(component, "node " + options_.journal->node() + " runs the Stasis application " + app_ +
                                     ": list it in the dialplan's CB_ARI_APPS for inbound calls");
    for (auto& server : servers_) server->client->set_app(app_);
  }
  for (auto& server : servers_) {
    if (server->state != Server::State::idle) continue;
    server->state = Server::State::connecting;
    server->detail = "connecting";
    server->client->open();
  }
}

void AriEngine::stop() {
  // Every leg still up is hung up and ends as engine lost: nobody would follow or bill it.
  stopping_ = true;
  std::vector<std::shared_ptr<Leg>> up;
  for (auto& [id, leg] : legs_) {
    if (id == leg->id && !leg->ended) up.push_back(leg);
  }
  const Timestamp now = context_.clock.now();
  for (auto& leg : up) {
    if (Server* s = server_named(leg->server); s != nullptr && s->state == Server::State::ready) {
      request(*s, verb::delete_, "/ari/channels/" + ari::encode(leg->id) + "?reason_code=16", nullptr);
    }
    leg->hung_up_by_us = HangupCause::engine_lost();
    leg_ended(*leg, now, false);
  }
  for (auto& server : servers_) {
    server->timer.cancel();
    server->grace_timer.cancel();
  }
  // The hangups go out before the connections close.
  later([this] {
    for (auto& server : servers_) {
      server->client->close();
      server->state = Server::State::idle;
      server->detail = "stopped";
    }
  });
}

EngineStatus AriEngine::status() const {
  EngineStatus status;
  for (const auto& server : servers_) {
    EngineStatus::Server out{.name = server->name,
                             .connected = server->state == Server::State::ready,
                             .detail = server->detail};
    if (server->state == Server::State::ready) {
      out.checks.push_back({.name = "login", .ok = true,
                            .detail = "events of " + app_ + " as " + options_.username +
                                      (server->version.empty() ? "" : ", Asterisk " + server->version) +
                                      (server->client->rest_on_websocket() ? ", REST over the WebSocket" : "")});
      out.checked = true;
    } else if (server->attempted) {
      out.checks.push_back({.name = "login", .ok = false, .detail = server->detail});
      out.checked = true;
    }
    status.servers.push_back(std::move(out));
  }
  status.calls_in_flight = legs_in_flight_;
  return status;
}

AriEngine::Server* AriEngine::pick_server() {
  Server* best = nullptr;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    Server* s = servers_[(next_server_ + i) % servers_.size()].get();
    if (s->state == Server::State::ready && (best == nullptr || s->legs < best->legs)) best = s;
  }
  ++next_server_;
  return best;
}

AriEngine::Server* AriEngine::server_named(const std::string& name) {
  for (auto& s : servers_) {
    if (s->name == name) return s.get();
  }
  return nullptr;
}

std::shared_ptr<AriEngine::Leg> AriEngine::find(const Channel& channel) {
  auto it = legs_.find(channel.id);
  if (it == legs_.end() || it->second->ended || it->second->id != channel.id) return nullptr;
  if (!channel.server.empty() && it->second->server != channel.server && !it->second->server.empty()) return nullptr;
  return it->second;
}

void AriEngine::emit(const LegEvent& event) { subscribers_.each(event); }

// --- connections ------------------------------------------------------------------------

void AriEngine::on_opened(Server& server) {
  server.state = Server::State::ready;
  server.attempted = true;
  server.backoff = 0ms;
  server.detail = "connected";
  server.grace_timer.cancel();
  context_.log.info(component, server.name + ": events of " + app_ + " connected");
  // Only the events we read. An Asterisk without eventFilter (before 16.3) sends them all,
  // which costs time but changes nothing.
  request(server, verb::put, "/ari/applications/" + ari::encode(app_) + "/eventFilter",
          [this, &server](Result<ari::Response> set) {
            if (!set) context_.log.info(component, server.name + ": the event filter was not set: " + set.error().message);
          },
          event_filter());
  request(server, verb::get, "/ari/asterisk/info", [this, &server](Result<ari::Response> info) {
    if (!info || !info->body.is_object()) return;
    if (const auto* system = obj(info->body.as_object(), "system")) server.version = std::string(str(*system, "version"));
  });
  // What became of the legs while we were away (or before a restart): still up, or gone.
  request(server, verb::get, "/ari/channels", [this, &server](Result<ari::Response> list) {
    if (!list || !list->body.is_array()) {
      context_.log.warning(component, server.name + ": listing the channels failed: " +
                                          (list ? std::string("not a list") : list.error().message));
      return;
    }
    reconcile(server, list->body.as_array());
  });
}

void AriEngine::on_closed(Server& server, const Error& why) {
  const bool was_up = server.state == Server::State::ready;
  server.attempted = true;
  server.detail = why.message;
  if (stopping_) {
    server.state = Server::State::idle;
    return;
  }
  if (was_up) context_.log.warning(component, server.name + ": " + why.message + "; reconnecting");
  server.state = Server::State::backoff;
  server.backoff = server.backoff.count() == 0 ? options_.reconnect_min : std::min(server.backoff * 2, options_.reconnect_max);
  // REST calls under way go on: Asterisk's HTTP may well be up; if not, they fail by themselves.
  // Its legs wait for the reconnect to say whether they are still up.
  const Timestamp now = context_.clock.now();
  bool orphans = false;
  for (auto& [id, leg] : legs_) {
    if (leg->server != server.name || leg->ended || leg->orphaned || id != leg->id) continue;
    leg->orphaned = true;
    leg->last_seen = now;
    orphans = true;
  }
  if (orphans) {
    server.grace_timer.cancel();
    server.grace_timer = context_.clock.schedule(options_.lost_call_grace, [this, name = server.name] {
      // Past the grace: what is still unaccounted for ended as engine lost.
      std::vector<std::shared_ptr<Leg>> lost;
      for (auto& [id, leg] : legs_) {
        if (leg->server == name && leg->orphaned && !leg->ended && id == leg->id) lost.push_back(leg);
      }
      for (auto& leg : lost) leg_ended(*leg, leg->last_seen, true);
    });
  }
  server.timer.cancel();
  server.timer = context_.clock.schedule(server.backoff, [this, &server] {
    if (stopping_ || server.state != Server::State::backoff) return;
    server.state = Server::State::connecting;
    server.client->open();
  });
}

void AriEngine::reconcile(Server& server, const json::array& channels) {
  std::unordered_map<std::string, const json::object*> listed;
  for (const auto& c : channels) {
    if (c.is_object()) listed.emplace(std::string(str(c.as_object(), "id")), &c.as_object());
  }
  std::vector<std::shared_ptr<Leg>> gone;
  for (auto& [id, leg] : legs_) {
    if (id != leg->id || leg->ended || !leg->orphaned) continue;
    if (!leg->server.empty() && leg->server != server.name) continue;
    auto found = listed.find(id);
    if (found == listed.end()) {
      if (leg->server == server.name) gone.push_back(leg);  // adopted legs may be on another server
      continue;
    }
    if (leg->server.empty()) {
      leg->server = server.name;
      ++server.legs;
    }
    leg->orphaned = false;
    if (leg->adopted) {
      // Taken up after a restart: the service learns the leg's channel (to hang it up, to
      // play to it) from this event; the leg was dialed before, so nothing else moves.
      leg->adopted = false;
      emit({.call_id = leg->call_id, .leg = leg->role, .type = LegEventType::dialing, .at = context_.clock.now(),
            .handle = {leg->server, leg->id}, .channel = std::string(str(*found->second, "name")),
            .uniqueid = leg->id, .server = leg->server});
    }
    if (!leg->taken_from.empty() && !leg->moving) move_here(server, leg);
    if (leg->hangup_pending) {  // asked for while the server was away
      leg->hangup_pending = false;
      leg->hangup_sent = true;
      request(server, verb::delete_,
              "/ari/channels/" + ari::encode(leg->id) + "?reason_code=" +
                  std::to_string(q850(leg->hung_up_by_us.value_or(HangupCause::normal()))),
              nullptr);
    }
    if (str(*found->second, "state") == "Up" && !leg->up) {
      // B's answer as the service has it; else its channel's creation, a ring's time early.
      leg->up = true;
      leg->answered_at = leg->role == LegRole::b && leg->b_answered
                             ? *leg->b_answered
                             : parse_timestamp(str(*found->second, "creationtime")).value_or(context_.clock.now());
    }
    if (leg->recovered_limit.count() > 0 && leg->role == LegRole::a) {
      // Adopted after a restart: the limit runs on from B's answer, as the service has it
      // (else from B's channel's creation, at best: under load seconds before its answer).
      auto b = legs_.find(leg->call_id + "-b");
      const Timestamp from = leg->b_answered ? *leg->b_answered
                             : b != legs_.end() && b->second->up ? b->second->answered_at
                                                                 : leg->answered_at;
      leg->limit_end = from + leg->recovered_limit;
      if (b != legs_.end()) {
        leg->other = b->second;
        b->second->other = legs_[leg->id];
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(leg->limit_end - context_.clock.now());
      leg->limit_timer = context_.clock.schedule(std::max(left, 0ms), [this, id = leg->id] { warn_or_end(id); });
    }
  }
  const Timestamp now = context_.clock.now();
  for (auto& leg : gone) end_unobserved(leg, std::min(now, leg->last_seen));
  if (!adopting_.empty()) find_bridges(server);
}

void AriEngine::find_bridges(Server& server) {
  // Calls taken up after a restart: their bridges (named by callback id) are ours again,
  // to delete when the first leg leaves; one left empty is deleted now.
  request(server, verb::get, "/ari/bridges", [this, &server](Result<ari::Response> list) {
    if (!list || !list->body.is_array()) return;
    for (const auto& b : list->body.as_array()) {
      if (!b.is_object()) continue;
      const auto& bridge = b.as_object();
      const std::string name(str(bridge, "name")), id(str(bridge, "id"));
      if (adopting_.count(name) == 0 || id.empty()) continue;
      std::size_t members = 0;
      std::shared_ptr<Leg> first;
      if (const auto* channels = bridge.if_contains("channels"); channels != nullptr && channels->is_array()) {
        for (const auto& c : channels->as_array()) {
          if (!c.is_string()) continue;
          auto leg = legs_.find(std::string(c.as_string()));
          if (leg == legs_.end() || leg->second->ended) continue;
          ++members;
          leg->second->bridge = id;
          if (first) {
            first->other = leg->second;
            leg->second->other = first;
          }
          first = leg->second;
        }
      }
      if (members < 2) {
        if (first) first->bridge.clear();
        request(server, verb::delete_, "/ari/bridges/" + ari::encode(id), nullptr);
      }
    }
  });
}

void AriEngine::move_here(Server& server, const std::shared_ptr<Leg>& leg, int attempt) {
  // Taken over from a node whose lease ran out: the channel is still in that node's Stasis
  // application, whose events nobody reads any more. Moved into ours it comes with a
  // StasisStart ["takeover"], and stays in its bridge, talking (ari-takeover-move). Some
  // events still go only to the application that placed it (the ChannelDestroyed of both
  // halves): both are subscribed to first, so that none is missed once it is ours.
  const std::string from = leg->taken_from;
  leg->moving = true;
  // What became of it when a request failed: gone (404, or 422 for a subscription to a
  // half that went), not in Stasis yet (409: still ringing; when the phone answers,
  // Stasis() fails as the app is gone and Asterisk hangs it up at once:
  // ari-takeover-ringing), or a passing failure, tried again.
  auto failed = [this, leg, &server, from, attempt](const std::string& what, const Error& why) {
    if (leg->ended || stopping_) return;
    if (why.code == "ari.not_found" || why.code == "ari.unprocessable") {
      leg->taken_from.clear();
      return end_unobserved(leg, leg->last_seen);
    }
    if (why.code == "ari.conflict") {
      leg->taken_from.clear();
      context_.log.warning(component, server.name + ": " + leg->id + " of node " + escape_control(from) +
                                          " is not in Stasis (it rings): it cannot be moved into " + app_ +
                                          "; hanging it up");
      leg->hung_up_by_us = HangupCause::engine_lost();
      leg->hangup_sent = true;
      request(server, verb::delete_, "/ari/channels/" + ari::encode(leg->id) + "?reason_code=16", nullptr);
      return leg_ended(*leg, context_.clock.now(), false);
    }
    context_.log.warning(component, server.name + ": " + what + " of " + leg->id + " failed (" + why.message + ")" +
                                        (attempt < 5 ? "; trying again" : "; giving up: the service ends it"));
    if (attempt >= 5) return;
    auto timer = std::make_shared<TimerHandle>();
    *timer = context_.clock.schedule(std::chrono::milliseconds(500) * (1 << attempt),
                                     [this, leg, &server, attempt, timer, alive = std::weak_ptr<bool>(alive_)] {
                                       if (alive.expired() || leg->ended || stopping_) return;
                                       move_here(server, leg, attempt + 1);
                                     });
  };
  request(server, verb::post,
          ari::with_query("/ari/applications/" + ari::encode(app_) + "/subscription",
                          {{"eventSource", "channel:" + leg->id + ",channel:" + leg->id2}}),
          [this, leg, &server, failed](Result<ari::Response> subscribed) {
            if (leg->ended || stopping_) return;
            if (!subscribed) return failed("the subscription", subscribed.error());
            request(server, verb::post,
                    ari::with_query("/ari/channels/" + ari::encode(leg->id) + "/move",
                                    {{"app", app_}, {"appArgs", "takeover"}}),
                    [leg, failed](Result<ari::Response> moved) {
                      if (moved) {
                        leg->taken_from.clear();
                        return;
                      }
                      failed("the move", moved.error());
                    });
          });
}

// --- events -----------------------------------------------------------------------------

void AriEngine::on_event(Server& server, const json::object& e) {
  const auto type = str(e, "type");
  const Timestamp at = parse_timestamp(str(e, "timestamp")).value_or(context_.clock.now());
  if (type == "PlaybackFinished") {
    const auto* playback = obj(e, "playback");
    if (playback == nullptr) return;
    auto it = playbacks_.find(std::string(str(*playback, "id")));
    if (it == playbacks_.end()) return;
    auto done = std::move(it->second);
    playbacks_.erase(it);
    const auto state = str(*playback, "state");
    if (!done) return;
    if (state == "done") return done(ok_status());
    done(engine_error(engine_errc::not_found, "the prompt " + std::string(str(*playback, "media_uri")) +
                                                  " was not played (" + std::string(state) +
                                                  "): not installed in that language, or the channel went"));
    return;
  }
  if (type == "ApplicationReplaced") {
    // Another WebSocket took our app (a second callbackd, or callbackctl beside this one):
    // nothing more comes on ours, not even after that one leaves (ari-app-replaced). A
    // new connection takes it back; GET /ari/channels then says what became of our legs.
    if (server.state != Server::State::ready) return;
    context_.log.error(component, server.name + ": another client connected to the Stasis application " +
                                      app_ + " and took its events; reconnecting");
    later([this, &server] {
      if (server.state != Server::State::ready) return;
      server.client->drop_events();  // REST calls under way (a bridge, a hangup) go on
      on_closed(server, Error{"ari.replaced", "another client took the Stasis application " + app_,
                              "/ari/events"});
    });
    return;
  }
  const json::object* channel = obj(e, type == "Dial" ? "peer" : "channel");
  if (channel == nullptr) return;
  const std::string id(str(*channel, "id"));
  if (context_.log.enabled(LogLevel::debug)) {
    context_.log.debug(component, server.name + " <- " + escape_control(type) + " " + escape_control(id) + " " +
                                      escape_control(str(*channel, "state")) + " " + escape_control(str(e, "dialstatus")));
  }
  auto it = legs_.find(id);
  if (it == legs_.end()) {
    if (type != "StasisStart") return;  // not ours (another app's, or a leg that ended)
    const auto* args = e.if_contains("args");
    if (args == nullptr || !args->is_array() || args->as_array().empty() || !args->as_array()[0].is_string() ||
        args->as_array()[0].as_string() != "access") {
      return;
    }
    std::string dialed;
    if (args->as_array().size() > 1 && args->as_array()[1].is_string()) dialed = args->as_array()[1].as_string();
    if (dialed.empty()) {
      if (const auto* plan = obj(*channel, "dialplan")) dialed = str(*plan, "exten");
    }
    return inbound(server, *channel, dialed, at);
  }
  std::shared_ptr<Leg> leg = it->second;
  if (leg->ended) return;
  const bool half2 = id == leg->id2;
  if (leg->name.empty() && !half2) leg->name = str(*channel, "name");
  if (leg->orphaned) leg->orphaned = false;  // it speaks: it is up
  const auto dialing = [&] {
    if (leg->dialing || leg->inbound) return;
    leg->dialing = true;
    emit({.call_id = leg->call_id, .leg = leg->role, .type = LegEventType::dialing, .at = at,
          .handle = {leg->server, leg->id}, .channel = leg->name, .uniqueid = leg->id, .server = leg->server});
  };
  const auto ringing = [&] {
    dialing();
    if (leg->ringing || leg->up || leg->inbound) return;
    leg->ringing = true;
    emit({.call_id = leg->call_id, .leg = leg->role, .type = LegEventType::ringing, .at = at,
          .handle = {leg->server, leg->id}, .channel = leg->name, .uniqueid = leg->id, .server = leg->server});
  };
  // A placed leg counts as answered at its StasisStart: the answer events (Dial ANSWER,
  // ChannelStateChange Up) come first, and until StasisStart Asterisk refuses a play with
  // 409 "Channel not in Stasis application" (seen under load). Its talk time starts at them.
  if (type == "Dial") {
    const auto status = str(e, "dialstatus");
    if (!status.empty()) leg->dial_status = status;
    if (status.empty()) {
      dialing();
    } else if (status == "RINGING") {
      ringing();
    } else if (status == "ANSWER") {
      dialing();
      if (!leg->up_at) leg->up_at = at;
    }
  } else if (type == "ChannelStateChange" && !half2) {
    const auto state = str(*channel, "state");
    if (state == "Ringing") ringing();
    if (state == "Up") {
      dialing();
      if (!leg->up_at) leg->up_at = at;
    }
  } else if (type == "StasisStart" && !half2) {
    if (str(*channel, "state") == "Up") {
      dialing();
      answered(*leg, leg->up_at.value_or(at));
    }
  } else if (type == "ChannelHangupRequest") {
    const bool soft = boolean(e, "soft");
    if (!soft && integer(e, "cause") > 0 && !half2) leg->requested_cause = integer(e, "cause");
    if ((!soft || half2) && !leg->end_seen) leg->end_seen = at;
  } else if (type == "ChannelDestroyed") {
    if (!leg->end_seen) leg->end_seen = at;
    if (half2) {
      leg->cause2 = integer(e, "cause");
    } else {
      leg->cause1 = integer(e, "cause");
      dialing();
      leg_ended(*leg, std::min(at, *leg->end_seen), false);
    }
  } else if (type == "StasisEnd" && leg->inbound) {
    leg_ended(*leg, at, false);  // an inbound channel gets no ChannelDestroyed
  } else if (type == "ChannelDtmfReceived" && !half2) {
    const auto digit = str(e, "digit");
    if (digit.size() == 1) feed_digit(*leg, digit[0]);
  }
}

void AriEngine::feed_digit(Leg& leg, char digit) {
  auto c = collections_.find(leg.id);
  if (c == collections_.end()) {
    // Typed ahead (before a collection, or between two): kept for the next one.
    if (leg.typeahead.size() < 64) leg.typeahead.push_back(digit);
    return;
  }
  auto collection = c->second;
  if (!collection->prompt_playback.empty()) {
    if (Server* s = server_named(leg.server)) {
      request(*s, verb::delete_, "/ari/playbacks/" + ari::encode(collection->prompt_playback), nullptr);
    }
    collection->prompt_playback.clear();
  }
  const auto& r = collection->request;
  if (r.terminator != '\0' && digit == r.terminator) {
    return end_collection(leg.id, Digits{collection->digits, Digits::Stop::terminator});
  }
  collection->digits.push_back(digit);
  if (collection->digits.size() >= r.max_digits) {
    return end_collection(leg.id, Digits{collection->digits, Digits::Stop::max_digits});
  }
  collection->timer.cancel();
  collection->timer = context_.clock.schedule(r.inter_digit_timeout, [this, id = leg.id] {
    auto found = collections_.find(id);
    if (found == collections_.end()) return;
    end_collection(id, Digits{found->second->digits, Digits::Stop::inter_digit_timeout});
  });
}

void AriEngine::delete_bridge(Leg& leg) {
  // Only the last leg to leave deletes it (leg_ended): nobody is left in it to hear a prompt.
  // (Plays sent to a channel leaving a bridge being destroyed can be lost:
  // ari-play-bridge-destroyed.)
  if (leg.bridge.empty()) return;
  const std::string bridge = std::exchange(leg.bridge, {});
  if (auto other = leg.other.lock(); other && other->bridge == bridge) other->bridge.clear();
  Server* s = server_named(leg.server);
  if (s == nullptr || s->state != Server::State::ready) return;  // the reconcile deletes it
  request(*s, verb::delete_, "/ari/bridges/" + ari::encode(bridge), nullptr);
}

void AriEngine::answered(Leg& leg, Timestamp at) {
  if (leg.up) return;
  leg.up = true;
  leg.answered_at = at;
  emit({.call_id = leg.call_id, .leg = leg.role, .type = LegEventType::answered, .at = at,
        .handle = {leg.server, leg.id}, .channel = leg.name, .uniqueid = leg.id, .server = leg.server});
}

void AriEngine::inbound(Server& server, const json::object& channel, const std::string& dialed, Timestamp at) {
  auto leg = std::make_shared<Leg>();
  leg->id = std::string(str(channel, "id"));
  leg->server = server.name;
  leg->inbound = true;
  leg->name = str(channel, "name");
  leg->started = at;
  legs_[leg->id] = leg;
  ++server.legs;
  ++legs_in_flight_;
  // The dialplan context it entered Stasis from ([callback-access], or an operator's own
  // per group of access numbers), as the AMI engine reports its AGI's: routes name it.
  InboundCall call{.channel = {server.name, leg->id}, .name = leg->name, .caller = {}, .dialed = dialed,
                   .context = {}, .at = at};
  if (const auto* plan = obj(channel, "dialplan")) call.context = str(*plan, "context");
  if (const auto* caller = obj(channel, "caller")) call.caller = str(*caller, "number");
  // The most specific route: one naming this number, else one taking any.
  std::shared_ptr<Route> best;
  routes_.visit([&](const std::shared_ptr<Route>& r) {
    if (!r->route.context.empty() && r->route.context != call.context) return;
    const bool named = std::find(r->route.dialed.begin(), r->route.dialed.end(), dialed) != r->route.dialed.end();
    if (named && (best == nullptr || best->route.dialed.empty())) best = r;
    if (r->route.dialed.empty() && best == nullptr) best = r;
  });
  if (best == nullptr) {
    context_.log.warning(component, server.name + ": inbound call to " + escape_control(dialed) +
                                        " has no route; rejected (congestion)");
    return reject({server.name, leg->id}, HangupCause{34}, 0ms, nullptr);
  }
  best->on_call(call);
}

void AriEngine::leg_ended(Leg& leg, Timestamp at, bool unobserved) {
  if (leg.ended) return;
  leg.ended = true;
  leg.limit_timer.cancel();
  --legs_in_flight_;
  if (Server* s = server_named(leg.server); s != nullptr && s->legs > 0) --s->legs;
  // Operations still waiting on it learn that it went.
  for (const auto& playback : leg.playbacks) {
    auto p = playbacks_.find(playback);
    if (p == playbacks_.end()) continue;
    auto done = std::move(p->second);
    playbacks_.erase(p);
    if (done) later([done] { done(engine_error(engine_errc::channel_gone, "the channel hung up during the prompt")); });
  }
  if (collections_.count(leg.id) != 0) {
    end_collection(leg.id, engine_error(engine_errc::channel_gone, "the channel hung up while digits were collected"));
  }
  if (auto other = leg.other.lock(); other && leg.limit_reached) other->limit_reached = true;
  // The bridge goes with the last leg to leave it (Asterisk keeps an empty one for ever).
  // The other stays in it, alone, and hears its last prompt there: a play to a channel
  // leaving a bridge that is being destroyed can be lost, even one sent after its
  // ChannelLeftBridge (ari-play-bridge-destroyed; a loaded Asterisk, tests/README.md).
  if (auto other = leg.other.lock(); other && !other->ended && !leg.bridge.empty() && other->bridge == leg.bridge) {
    other->other.reset();
  } else {
    delete_bridge(leg);
  }
  leg.bridge.clear();
  LegEvent event{.call_id = leg.call_id, .leg = leg.role, .type = LegEventType::ended, .at = at,
                 .handle = {leg.server, leg.id}, .channel = leg.name, .uniqueid = leg.id,
                 .server = leg.server};
  if (unobserved) {
    event.unobserved = true;
    event.cause = HangupCause::engine_lost();
  } else if (leg.hung_up_by_us) {
    event.cause = *leg.hung_up_by_us;
  } else if (leg.up) {
    event.cause = HangupCause{leg.requested_cause > 0 ? leg.requested_cause : (leg.cause1 > 0 ? leg.cause1 : 16)};
  } else {
    event.cause = cause_of_failure(leg.dial_status, leg.cause1 > 0 ? leg.cause1 : leg.requested_cause, leg.cause2);
  }
  event.limit_reached = leg.limit_reached;
  event.far_end_hung_up = !unobserved && !leg.hung_up_by_us && !leg.limit_reached;
  if (leg.recorded_up) {
    // Ended while we were away, at the time its record says: the service bills from B's
    // answer in its journal to then (no billsec of ours: we did not see the answer).
    event.dial_status = *leg.recorded_up ? "ANSWER" : dial_status_for(HangupCause{leg.cause1});
  } else if (leg.up) {
    event.billsec = std::chrono::duration_cast<std::chrono::seconds>(std::max(at - leg.answered_at, Timestamp::duration{}));
    event.dial_status = "ANSWER";
  } else {
    event.billsec = 0s;
    event.dial_status = leg.hung_up_by_us ? "CANCEL" : (leg.dial_status.empty() || leg.dial_status == "RINGING"
                                                             ? dial_status_for(event.cause)
                                                             : leg.dial_status);
  }
  // Forget both halves: late events for them are not ours any more.
  const std::string id = leg.id, id2 = leg.id2;
  auto keep = legs_[id];  // `leg` lives until this returns
  legs_.erase(id);
  if (!id2.empty()) legs_.erase(id2);
  emit(event);
}

// --- operations -------------------------------------------------------------------------

void AriEngine::originate(const OriginateRequest& r, Completion<Channel> placed) {
  if (!placed) placed = [](Result<Channel>) {};  // the events tell the rest
  const Timestamp now = context_.clock.now();
  Server* server = stopping_ ? nullptr : pick_server();
  if (server == nullptr) {
    answer_later(std::move(placed), Result<Channel>(engine_error(engine_errc::unavailable,
                                                                 "no Asterisk server is connected")));
    later([this, id = r.call_id, role = r.leg, now] {
      emit({.call_id = id, .leg = role, .type = LegEventType::dialing, .at = now});
      emit({.call_id = id, .leg = role, .type = LegEventType::ended, .at = now, .cause = HangupCause::engine_lost()});
    });
    return;
  }
  auto leg = std::make_shared<Leg>();
  const std::string suffix = r.leg == LegRole::a ? "-a" : "-b";
  leg->id = r.call_id + suffix;
  leg->id2 = r.call_id + suffix + "2";
  leg->server = server->name;
  leg->call_id = r.call_id;
  leg->role = r.leg;
  leg->placing = true;
  leg->started = now;
  leg->language = r.language;
  if (legs_.count(leg->id) != 0) {
    answer_later(std::move(placed), Result<Channel>(engine_error(engine_errc::invalid,
                                                                 "leg " + leg->id + " is placed already")));
    return;
  }
  legs_[leg->id] = leg;
  legs_[leg->id2] = leg;
  ++server->legs;
  ++legs_in_flight_;
  const std::string endpoint = expand_dial_string(options_.dial_string, r.number.digits());
  const std::string caller_id = "\"" + r.caller_name + "\" <" + r.caller_id.digits() + ">";
  const std::string timeout = std::to_string(r.ring_timeout.count());
  const std::string app_args = std::string(r.leg == LegRole::a ? "leg-a," : "leg-b,") + r.call_id;
  json::object variables;
  if (!r.language.empty()) variables["CHANNEL(language)"] = r.language;
  if (!r.account_code.empty()) variables["CHANNEL(accountcode)"] = r.account_code;
  variables["CB_ID"] = r.call_id;
  std::vector<std::string> forgetting;
  if (r.leg == LegRole::b && !options_.leg_end_context.empty() && fits_handler_argument(r.call_id)) {
    // B's end, recorded by Asterisk itself, for a B that ends while we are away.
    variables["CHANNEL(hangup_handler_push)"] = options_.leg_end_context + ",s,1(" + r.call_id + ")";
    std::string list;
    while (!server->forgotten.empty() && forgetting.size() < kForgetPerOriginate) {
      forgetting.push_back(std::move(server->forgotten.front()));
      server->forgotten.pop_front();
      list += (list.empty() ? "" : ",") + forgetting.back();
    }
    variables["CB_FORGET"] = list;
    recorded_on_[r.call_id] = server->name;
  }
  json::object body;
  body["variables"] = std::move(variables);
  request(*server, verb::post,
          ari::with_query("/ari/channels", {{"endpoint", endpoint},
                                            {"app", app_},
                                            {"appArgs", app_args},
                                            {"callerId", caller_id},
                                            {"timeout", timeout},
                                            {"channelId", leg->id},
                                            {"otherChannelId", leg->id2}}),
          [this, leg, placed = std::move(placed), forgetting = std::move(forgetting)](Result<ari::Response> reply) mutable {
            leg->placing = false;
            if (!reply && !forgetting.empty()) {  // not placed: the next B carries them
              if (Server* s = server_named(leg->server)) {
                s->forgotten.insert(s->forgotten.begin(), std::make_move_iterator(forgetting.begin()),
                                    std::make_move_iterator(forgetting.end()));
              }
            }
            if (leg->ended) return placed(Result<Channel>(engine_error(engine_errc::channel_gone, "it ended already")));
            const Timestamp at = context_.clock.now();
            if (!reply) {
              placed(engine_error_for(reply.error(), "the originate"));
              // Refused: the leg ends here (a 200 that never comes has no events either).
              if (!leg->dialing) {
                leg->dialing = true;
                emit({.call_id = leg->call_id, .leg = leg->role, .type = LegEventType::dialing, .at = at,
                      .handle = {leg->server, leg->id}, .server = leg->server});
              }
              leg->hung_up_by_us = reply.error().code == "ari.unreachable" || reply.error().code == "ari.timeout"
                                       ? HangupCause::engine_lost()
                                       : HangupCause{3};
              context_.log.warning(component, leg->server + ": originate " + leg->id + " failed: " +
                                                  reply.error().describe());
              return leg_ended(*leg, at, false);
            }
            if (reply->body.is_object() && leg->name.empty()) leg->name = str(reply->body.as_object(), "name");
            placed(Channel{leg->server, leg->id});
            if (!leg->dialing) {
              leg->dialing = true;
              emit({.call_id = leg->call_id, .leg = leg->role, .type = LegEventType::dialing, .at = at,
                    .handle = {leg->server, leg->id}, .channel = leg->name, .uniqueid = leg->id,
                    .server = leg->server});
            }
            if (leg->hung_up_by_us && !leg->hangup_sent) {  // a hangup came while it was being placed
              leg->hangup_sent = true;
              if (Server* s = server_named(leg->server)) {
                request(*s, verb::delete_,
                        "/ari/channels/" + ari::encode(leg->id) + "?reason_code=" + std::to_string(q850(*leg->hung_up_by_us)),
                        nullptr);
              }
            }
          },
          std::move(body));
}

void AriEngine::hangup(const Channel& channel, HangupCause cause, StatusCompletion done) {
  if (stopping_) return answer_later(std::move(done), ok_status());  // stop() hangs up every leg
  auto leg = find(channel);
  if (!leg) return answer_later(std::move(done), Status(engine_error(engine_errc::channel_gone, "no channel " + channel.id + " up")));
  if (!leg->hung_up_by_us) leg->hung_up_by_us = cause;
  if (leg->placing) return answer_later(std::move(done), ok_status());  // sent once the originate is answered
  Server* server = server_named(leg->server);
  if (server == nullptr || server->state != Server::State::ready) {
    // Sent once the server is back and lists the channel (or the leg ends as lost).
    leg->hangup_pending = true;
    return answer_later(std::move(done), ok_status());
  }
  leg->hangup_sent = true;
  request(*server, verb::delete_, "/ari/channels/" + ari::encode(leg->id) + "?reason_code=" + std::to_string(q850(cause)),
          [this, leg, cause, done = std::move(done)](Result<ari::Response> reply) mutable {
            const bool lost = !reply && (reply.error().code == "ari.closed" || reply.error().code == "ari.unreachable");
            if (lost && !leg->ended && !stopping_) {
              // The connection went under it (the app taken over, Asterisk restarting): a
              // hangup is never dropped. Tried again shortly; if the server is away by then,
              // it waits for the reconnect (hangup_pending, sent by reconcile).
              leg->hangup_sent = false;
              leg->hangup_pending = true;
              auto timer = std::make_shared<TimerHandle>();
              *timer = context_.clock.schedule(200ms, [this, timer, leg, cause] {
                if (leg->ended || !leg->hangup_pending) return;
                Server* s = server_named(leg->server);
                if (s == nullptr || s->state != Server::State::ready) return;  // reconcile sends it
                leg->hangup_pending = false;
                hangup({leg->server, leg->id}, cause, nullptr);
              });
              if (done) done(ok_status());
              return;
            }
            if (!done) return;
            done(reply ? ok_status() : Status(engine_error_for(reply.error(), "the hangup")));
          });
}

void AriEngine::forget(const std::string& call_id) {
  auto it = recorded_on_.find(call_id);
  if (it == recorded_on_.end()) return;
  if (Server* server = server_named(it->second)) {
    server->forgotten.push_back(call_id);
    if (server->forgotten.size() > kForgetKept) server->forgotten.pop_front();  // stays on Asterisk
  }
  recorded_on_.erase(it);
}

// A leg we did not see end. A B leg left its end record on its server ([callback-ari-leg-end]):
// read it first, so that the talk while we were away is billed as Asterisk measured it;
// without one, the leg ends as last seen.
void AriEngine::end_unobserved(const std::shared_ptr<Leg>& leg, Timestamp last_seen) {
  if (leg->ended || leg->record_asked) return;
  std::vector<Server*> ask;
  if (leg->role == LegRole::b && !leg->call_id.empty() && !options_.leg_end_context.empty()) {
    for (auto& server : servers_) {  // an adopted leg's server may be unknown: every one that is up
      if (server->state == Server::State::ready && (leg->server.empty() || leg->server == server->name)) {
        ask.push_back(server.get());
      }
    }
  }
  if (ask.empty()) return leg_ended(*leg, last_seen, true);
  leg->record_asked = true;
  auto pending = std::make_shared<std::size_t>(ask.size());
  for (Server* server : ask) {
    request(*server, verb::get, ari::with_query("/ari/asterisk/variable", {{"variable", "CB_END_" + leg->call_id}}),
            [this, leg, last_seen, pending, name = server->name](Result<ari::Response> reply) {
              --*pending;
              if (leg->ended) return;
              std::optional<EndRecord> record;
              if (reply && reply->body.is_object()) record = parse_end_record(str(reply->body.as_object(), "value"));
              if (!reply) {
                context_.log.warning(component, name + ": reading the end record of " + leg->id + " failed: " +
                                                    reply.error().message);
              }
              if (record) {
                leg->recorded_up = record->up;
                if (leg->cause1 == 0) leg->cause1 = record->cause;
                if (leg->server.empty()) leg->server = name;
                recorded_on_[leg->call_id] = name;  // forget() deletes it
                context_.log.info(component, name + ": " + leg->id + " ended while we were away; its record says cause " +
                                                 std::to_string(record->cause) + (record->up ? ", answered" : ", unanswered") +
                                                 ", at " + format_timestamp(record->at));
                return leg_ended(*leg, record->at, true);
              }
              if (*pending == 0) leg_ended(*leg, last_seen, true);
            });
  }
}

void AriEngine::recover(const std::vector<Recovered>& calls) {
  // Each leg of each call waits for a server's channel list (or the grace) to say whether
  // it is still up. Ids are ours (channelId), so they are found by name.
  const Timestamp now = context_.clock.now();
  for (const auto& call : calls) {
    for (LegRole role : {LegRole::a, LegRole::b}) {
      if (role == LegRole::b && !call.b_dialed) continue;
      auto leg = std::make_shared<Leg>();
      const std::string suffix = role == LegRole::a ? "-a" : "-b";
      leg->id = call.call_id + suffix;
      leg->id2 = call.call_id + suffix + "2";
      if (legs_.count(leg->id) != 0) continue;
      leg->server = server_named(call.server) != nullptr ? call.server : std::string();
      leg->call_id = call.call_id;
      leg->role = role;
      leg->dialing = true;
      leg->started = now;
      leg->orphaned = true;
      leg->last_seen = now;
      leg->recovered_limit = call.limit;
      leg->adopted = true;
      leg->taken_from = call.taken_from;
      leg->b_answered = call.b_answered;
      adopting_.insert(call.call_id);
      legs_[leg->id] = leg;
      legs_[leg->id2] = leg;
      ++legs_in_flight_;
      if (Server* s = server_named(leg->server)) ++s->legs;
    }
  }
  // Those no server lists within the grace ended while we were away.
  auto timer = std::make_shared<TimerHandle>();
  *timer = context_.clock.schedule(options_.lost_call_grace, [this, timer] {
    std::vector<std::shared_ptr<Leg>> lost;
    for (auto& [id, leg] : legs_) {
      if (leg->orphaned && !leg->ended && id == leg->id && leg->recovered_limit.count() >= 0) lost.push_back(leg);
    }
    for (auto& leg : lost) end_unobserved(leg, leg->last_seen);
  });
  for (auto& server : servers_) {
    if (server->state != Server::State::ready) continue;
    Server* s = server.get();
    request(*s, verb::get, "/ari/channels", [this, s](Result<ari::Response> list) {
      if (list && list->body.is_array()) reconcile(*s, list->body.as_array());
    });
  }
}

void AriEngine::answer(const Channel& channel, StatusCompletion done) {
  auto leg = find(channel);
  Server* server = leg ? server_named(leg->server) : nullptr;
  if (!leg || server == nullptr) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::channel_gone, "no channel " + channel.id + " up")));
  }
  request(*server, verb::post, "/ari/channels/" + ari::encode(leg->id) + "/answer",
          [this, leg, done = std::move(done)](Result<ari::Response> reply) {
            if (reply) answered(*leg, context_.clock.now());
            if (done) done(reply ? ok_status() : Status(engine_error_for(reply.error(), "the answer")));
          });
}

void AriEngine::reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first,
                       StatusCompletion done) {
  auto leg = find(channel);
  Server* server = leg ? server_named(leg->server) : nullptr;
  if (!leg || server == nullptr) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::channel_gone, "no channel " + channel.id + " up")));
  }
  if (leg->up) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::refused,
                                                             "channel " + channel.id + " is answered: hang it up instead")));
  }
  leg->hung_up_by_us = cause;
  auto hang_up = [this, leg, server, cause, done = std::move(done)]() mutable {
    if (leg->ended) {
      if (done) done(engine_error(engine_errc::channel_gone, "the caller hung up first"));
      return;
    }
    request(*server, verb::delete_, "/ari/channels/" + ari::encode(leg->id) + "?reason_code=" + std::to_string(q850(cause)),
            [done = std::move(done)](Result<ari::Response> reply) {
              if (done) done(reply ? ok_status() : Status(engine_error_for(reply.error(), "the reject")));
            });
  };
  if (ring_first <= 0ms) return hang_up();
  request(*server, verb::post, "/ari/channels/" + ari::encode(leg->id) + "/ring", nullptr);
  auto timer = std::make_shared<TimerHandle>();
  *timer = context_.clock.schedule(ring_first, [timer, hang_up = std::move(hang_up)]() mutable { hang_up(); });
}

void AriEngine::play(const Channel& channel, const Prompt& prompt, StatusCompletion done) {
  auto leg = find(channel);
  Server* server = leg ? server_named(leg->server) : nullptr;
  if (!leg || server == nullptr) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::channel_gone, "no channel " + channel.id + " up")));
  }
  std::string media;
  if (prompt.time_left) {
    // Asterisk's own "timeleft": vm-youhave, the number, queue-seconds (the sounds L() plays).
    media = "sound:vm-youhave,number:" + std::to_string(prompt.time_left->count()) + ",sound:queue-seconds";
  } else if (!prompt.name.empty() &&
             prompt.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/") ==
                 std::string::npos) {
    media = "sound:" + prompt.name;
  } else {
    return answer_later(std::move(done), Status(engine_error(engine_errc::invalid,
                                                             "a prompt name is letters, digits, '_', '-' and '/'")));
  }
  const std::string language = prompt.language.empty() ? leg->language : prompt.language;
  if (!language.empty() && !check_language(language)) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::invalid, "bad prompt language")));
  }
  const std::string playback = leg->id + "-p" + std::to_string(++sequence_);
  playbacks_[playback] = std::move(done);
  leg->playbacks.push_back(playback);
  std::string target = ari::with_query("/ari/channels/" + ari::encode(leg->id) + "/play",
                                       {{"media", media}, {"playbackId", playback}});
  if (!language.empty()) target += "&lang=" + ari::encode(language);
  auto send = [this, leg, server, playback, target = std::move(target)] {
    request(*server, verb::post, target, [this, leg, playback](Result<ari::Response> reply) {
      std::erase(leg->playbacks, playback);  // its PlaybackFinished still finds it in playbacks_
      if (reply) {
        leg->playbacks.push_back(playback);
        return;
      }
      auto it = playbacks_.find(playback);
      if (it == playbacks_.end()) return;
      auto finished = std::move(it->second);
      playbacks_.erase(it);
      if (finished) finished(engine_error_for(reply.error(), "the prompt"));
    });
  };
  send();
}

void AriEngine::bridge(const Channel& a, const Channel& b, StatusCompletion done) {
  auto la = find(a), lb = find(b);
  Server* server = la ? server_named(la->server) : nullptr;
  if (!la || !lb || server == nullptr) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::channel_gone, "a leg to bridge is gone")));
  }
  if (la->server != lb->server) {
    return answer_later(std::move(done), Status(engine_error(engine_errc::invalid, "the legs are on different servers")));
  }
  request(*server, verb::post, ari::with_query("/ari/bridges", {{"type", "mixing"}, {"name", la->call_id}}),
          [this, la, lb, server, done = std::move(done)](Result<ari::Response> made) mutable {
            if (!made || !made->body.is_object()) {
              if (done) done(made ? Status(engine_error(engine_errc::refused, "the bridge reply has no id"))
                                  : Status(engine_error_for(made.error(), "the bridge")));
              return;
            }
            const std::string id(str(made->body.as_object(), "id"));
            if (la->ended || lb->ended) {
              request(*server, verb::delete_, "/ari/bridges/" + ari::encode(id), nullptr);
              if (done) done(engine_error(engine_errc::channel_gone, "a leg hung up before the bridge"));
              return;
            }
            la->bridge = lb->bridge = id;
            la->other = lb;
            lb->other = la;
            request(*server, verb::post,
                    ari::with_query("/ari/bridges/" + ari::encode(id) + "/addChannel", {{"channel", la->id + "," + lb->id}}),
                    [la, lb, done = std::move(done)](Result<ari::Response> added) {
                      if (!done) return;
                      if (added) return done(ok_status());
                      // A leg that hung up meanwhile makes Asterisk answer 400 or 404 ("Channel
                      // not found") or 422 (not in Stasis any more), maybe before its events come.
                      const auto& code = added.error().code;
                      if (la->ended || lb->ended || code == "ari.bad_request" || code == "ari.not_found" ||
                          code == "ari.unprocessable") {
                        return done(engine_error(engine_errc::channel_gone,
                                                 "a leg hung up before the bridge: " + added.error().message));
                      }
                      done(engine_error_for(added.error(), "adding the legs"));
                    });
          });
}

void AriEngine::set_time_limit(const Channel& warn, const Channel& other, const TimeLimit& limit,
                               StatusCompletion done) {
  auto a = find(warn), b = find(other);
  if (!a || !b) return answer_later(std::move(done), Status(engine_error(engine_errc::channel_gone, "a leg is gone")));
  a->other = b;
  b->other = a;
  a->limit_end = context_.clock.now() + limit.limit;
  a->warning_repeat = limit.warning_repeat;
  if (!limit.language.empty()) a->language = limit.language;
  const auto first = limit.warning_before.count() > 0 && limit.warning_before < limit.limit
                         ? limit.limit - limit.warning_before
                         : limit.limit;
  a->limit_timer.cancel();
  a->limit_timer = context_.clock.schedule(first, [this, id = a->id] { warn_or_end(id); });
  answer_later(std::move(done), ok_status());
}

void AriEngine::warn_or_end(const std::string& id) {
  auto it = legs_.find(id);
  if (it == legs_.end() || it->second->ended) return;
  auto a = it->second;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(a->limit_end - context_.clock.now());
  auto b = a->other.lock();
  if (left > 500ms) {
    // "You have N seconds", to the one who pays.
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left + 500ms);
    play({a->server, a->id}, Prompt::seconds_left(seconds, a->language), nullptr);
    emit({.call_id = a->call_id, .leg = a->role, .type = LegEventType::warning, .at = context_.clock.now(),
          .handle = {a->server, a->id}, .server = a->server});
    const auto next = a->warning_repeat.count() > 0 ? std::min(a->warning_repeat, left) : left;
    a->limit_timer = context_.clock.schedule(next, [this, id] { warn_or_end(id); });
    return;
  }
  // Time up: B goes; A hears "time up" (still in the bridge, alone), then goes too, and the
  // bridge with it.
  a->limit_reached = true;
  if (b && !b->ended) {
    b->limit_reached = true;
    hangup({b->server, b->id}, HangupCause::normal(), nullptr);
  }
  play({a->server, a->id}, Prompt::announcement(Announcement::time_up, a->language), [this, id](Status) {
    auto found = legs_.find(id);
    if (found != legs_.end() && !found->second->ended) {
      hangup({found->second->server, found->second->id}, HangupCause::normal(), nullptr);
    }
  });
}

void AriEngine::collect_digits(const Channel& channel, const DigitRequest& request_, Completion<Digits> done) {
  auto leg = find(channel);
  if (!leg) return answer_later(std::move(done), Result<Digits>(engine_error(engine_errc::channel_gone, "no channel " + channel.id + " up")));
  if (request_.max_digits == 0 || request_.max_digits > 64) {
    return answer_later(std::move(done), Result<Digits>(engine_error(engine_errc::invalid, "max_digits is 1 to 64")));
  }
  if (collections_.count(leg->id) != 0) {
    return answer_later(std::move(done), Result<Digits>(engine_error(engine_errc::refused, "digits are being collected already")));
  }
  auto c = std::make_shared<Collection>();
  c->request = request_;
  c->done = std::move(done);
  collections_[leg->id] = c;
  const std::string id = leg->id;
  auto arm_first = [this, id] {
    auto found = collections_.find(id);
    if (found == collections_.end() || !found->second->digits.empty()) return;
    found->second->timer = context_.clock.schedule(found->second->request.first_digit_timeout, [this, id] {
      auto again = collections_.find(id);
      if (again == collections_.end()) return;
      end_collection(id, Digits{again->second->digits, again->second->digits.empty()
                                                              ? Digits::Stop::first_digit_timeout
                                                              : Digits::Stop::inter_digit_timeout});
    });
  };
  // Digits typed ahead count first; they may complete the collection at once.
  for (const char digit : std::exchange(leg->typeahead, {})) {
    if (collections_.count(id) == 0) {
      leg->typeahead.push_back(digit);  // the rest waits for the next collection
      continue;
    }
    feed_digit(*leg, digit);
  }
  if (collections_.count(id) == 0) return;
  if (!request_.prompt || !c->digits.empty()) return arm_first();
  // The first digit's wait starts when the prompt has played (or was cut by a digit).
  play(channel, *request_.prompt, [arm_first](Status) { arm_first(); });
  c->prompt_playback = leg->id + "-p" + std::to_string(sequence_);
}

void AriEngine::end_collection(const std::string& channel_id, Result<Digits> result) {
  auto it = collections_.find(channel_id);
  if (it == collections_.end()) return;
  auto c = it->second;
  collections_.erase(it);
  c->timer.cancel();
  if (c->done) later([done = std::move(c->done), result = std::move(result)] { done(result); });
}

}  // namespace callback::engine_ari
