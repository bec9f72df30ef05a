// TEST AND DEMO DOUBLE — the fake ARI (see fake_ari.hpp). One io_context thread owns all
// state; HTTP responses are written as raw bytes so that every header and its spelling
// is the recorded one. Event JSON is built by string appends in the recorded field order.
//
// The event sequences below follow tests/fixtures/asterisk/ari-*.events.jsonl; each
// function names the recording it comes from. Where nothing is recorded (congestion,
// Hangup(N) before answer, inbound, playback), the sequence follows the nearest recording
// and Asterisk's source, and says so.
#include "fake_ari.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace callback::fake {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

constexpr std::string_view kAsteriskId = "02:fc:00:00:00:01";

// ---------------------------------------------------------------------------------------
// Small text helpers.

void append_escaped(std::string& out, std::string_view text) {
  std::size_t run = 0;  // start of the run of characters that need no escape
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20) continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[(c >> 4) & 0xF];
        out += kHex[c & 0xF];
      }
    }
  }
  out.append(text.data() + run, text.size() - run);
}

void append_string(std::string& out, std::string_view text) {
  out += '"';
  append_escaped(out, text);
  out += '"';
}

std::string url_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      const int hi = hex(in[i + 1]);
      const int lo = hex(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += in[i] == '+' ? ' ' : in[i];
  }
  return out;
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find(sep, start);
    parts.emplace_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return parts;
}

std::string base64_decode(std::string_view in) {
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int value = 0;
  int bits = -8;
  for (const char c : in) {
    const std::size_t index = kChars.find(c);
    if (index == std::string_view::npos) break;
    value = (value << 6) + static_cast<int>(index);
    bits += 6;
    if (bits >= 0) {
      out += static_cast<char>((value >> bits) & 0xFF);
      bits -= 8;
    }
  }
  return out;
}

// 2026-11-26T05:50:05.731+0000, as every ARI timestamp.
std::string ari_time(std::chrono::system_clock::time_point when) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buffer;
}

std::string http_date() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buffer;
}

std::string_view cause_text(int cause) {
  switch (cause) {
    case 1: return "Unallocated (unassigned) number";
    case 16: return "Normal Clearing";
    case 17: return "User busy";
    case 18: return "No user responding";
    case 19: return "User alerting, no answer";
    case 21: return "Call Rejected";
    case 28: return "Invalid number format";
    case 31: return "Normal, unspecified";
    case 34: return "Circuit/channel congestion";
    case 38: return "Network out of order";
    case 58: return "Bearer capability not available";
    default: return "Unknown";
  }
}

// DELETE /channels/{id}?reason=...: convert_reason_to_hangup_code() of resource_channels.c.
int reason_to_cause(std::string_view reason) {
  if (reason == "normal") return 16;
  if (reason == "busy") return 17;
  if (reason == "congestion") return 34;
  if (reason == "no_answer") return 19;
  if (reason == "timeout") return 18;
  if (reason == "rejected") return 21;
  if (reason == "unallocated") return 1;
  if (reason == "normal_unspecified") return 31;
  if (reason == "number_incomplete") return 28;
  if (reason == "codec_mismatch") return 58;
  if (reason == "interworking") return 127;
  if (reason == "failure") return 27;
  if (reason == "answered_elsewhere") return 26;
  return -1;
}

// The number decides the phone (etc/extensions.conf [phones]).
enum class Phone { kStaysUp, kHangsUp, kBusy, kNoAnswer, kCongestion, kHangupCause, kBench, kBenchHangup, kKeys, kInvalid };

struct PhoneInfo {
  Phone kind = Phone::kInvalid;
  int cause = 0;           // kHangupCause: the Hangup(N)
  std::string_view noop;   // the NoOp text after "phone NNNN: "
};

PhoneInfo classify(std::string_view number) {
  const bool four_digits = number.size() == 4 && std::all_of(number.begin(), number.end(),
                                                             [](char c) { return c >= '0' && c <= '9'; });
  if (!four_digits) return {};
  switch (number[0]) {
    case '1': return {Phone::kStaysUp, 0, "rings 1s, answers, stays up"};
    case '2': return {Phone::kHangsUp, 0, "rings 1s, answers, hangs up after 5s"};
    case '3': return {Phone::kBusy, 0, "busy"};
    case '4': return {Phone::kNoAnswer, 0, "rings forever"};
    case '5':
      if (number[1] == '5') return {Phone::kHangupCause, 38, "network out of order"};
      if (number[1] == '8') return {Phone::kHangupCause, 1, "unallocated number"};
      return {Phone::kCongestion, 0, "congestion"};
    case '6': return {Phone::kHangupCause, 21, "rejected"};
    case '7': return {Phone::kKeys, 0, "answers, keys "};  // + 2XXX# (tests/real_asterisk/testcallers.conf)
    case '9': return {number[1] == '8' ? Phone::kBenchHangup : Phone::kBench, 0, ""};
    default: return {};
  }
}

// ---------------------------------------------------------------------------------------
// The model.

struct Call;
struct Bridge;
struct WsSession;

struct Channel {
  std::uint64_t serial = 0;
  std::string id;
  std::string name;
  std::string state;
  std::string caller_name, caller_number, connected_name, connected_number;
  std::string context, exten;
  int priority = 1;
  std::string app_name, app_data;
  std::string creationtime;
  std::string language = "en";

  std::weak_ptr<Call> call;
  int half = 1;             // 1 or 2 of a Local pair
  // The app gets the channel's events while it is subscribed to it (the channels it
  // originated or created) or while the channel is in Stasis (an inbound call, which
  // therefore has no ChannelDestroyed: ari-inbound-dtmf).
  bool subscribed = false;
  bool in_stasis = false;
  bool created = false;     // POST /channels/create (in Stasis at once, dialled later)
  bool alive = true;
  // ;2: its ;1's connected line changed; the ;2 takes it as its caller only when its
  // dialplan next runs (ari-bridge-answered: B;2 at its Wait, A;2 only when destroyed).
  bool callerid_pending = false;
  std::string pending_caller_name, pending_caller_number;
  std::string app;
  std::string app_args;           // raw appArgs
  std::string bridge_id;
  std::string bridgepeer;         // BRIDGEPEER, as set by the bridge
  std::map<std::string, std::string> variables;
  std::deque<std::string> playback_queue;  // the first one is playing
  std::optional<std::chrono::steady_clock::time_point> left_bridge;  // when it last left one alive
};
using ChannelPtr = std::shared_ptr<Channel>;

struct Playback {
  std::string id;
  std::vector<std::string> media;
  std::size_t index = 0;
  std::string target;      // "channel:<id>"
  std::string channel_id;
  std::string language;
  std::string state = "queued";
  std::string bridge_id;  // queued behind the bridge channel of this bridge (bridge_play_delay_ms)
  std::string app;
  std::unique_ptr<asio::steady_timer> timer;
};

struct Bridge {
  std::string id, name, creationtime;
  std::string app;  // the app of the first channel that entered: it gets BridgeDestroyed
  std::vector<std::string> channels;
};

struct Call : std::enable_shared_from_this<Call> {
  explicit Call(asio::io_context& io) : timer(io), timeout(io), dtmf(io) {}
  ChannelPtr one, two;  // inbound: only one
  std::string number;
  PhoneInfo phone;
  bool inbound = false;
  bool dialplan = false;  // originated into the dialplan, not into an app
  bool caller_id_given = false;
  int timeout_seconds = 30;
  asio::steady_timer timer;    // the phone's dialplan
  asio::steady_timer timeout;  // originate / dial timeout, inbound give-up
  asio::steady_timer dtmf;     // inbound digits
  InboundCallOptions in;
  std::size_t dtmf_next = 0;
};

// ---------------------------------------------------------------------------------------

struct Server {
  explicit Server(FakeAriOptions o) : options(std::move(o)), acceptor(io), epoch(std::time(nullptr)) {}

  FakeAriOptions options;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
  std::time_t epoch;
  std::uint64_t next_uniqueid = 1;
  std::uint32_t next_local = 1;
  std::uint64_t next_serial = 1;
  std::mt19937_64 rng{std::random_device{}()};

  std::unordered_map<const Call*, std::shared_ptr<Call>> calls;  // owns every call in progress
  std::unordered_map<std::string, ChannelPtr> channels;
  std::map<std::uint64_t, ChannelPtr> channels_in_order;
  std::unordered_map<std::string, Bridge> bridges;
  std::unordered_map<std::string, std::unique_ptr<Playback>> playbacks;
  // The WebSocket each app's events go to: the newest one (ari-app-replaced: a second
  // WebSocket for an app takes it over, the first gets ApplicationReplaced, then nothing).
  std::unordered_map<std::string, std::vector<std::shared_ptr<WsSession>>> apps;
  std::vector<std::shared_ptr<WsSession>> replaced;  // still open, told nothing any more
  std::map<std::string, std::size_t> requests;
  std::size_t ws_requests = 0;  // RESTRequest frames among them
  std::map<std::string, std::string> globals;  // GET /ari/asterisk/variable
  std::map<std::string, std::size_t, std::less<>> events_sent, events_filtered;  // FakeAriStats

  // Read by other threads.
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::size_t websockets_open = 0;
  std::size_t live_objects = 0;  // channels + bridges + playbacks

  void publish_counts() {
    std::lock_guard lock(mutex);
    std::size_t ws = replaced.size();
    for (const auto& [name, sessions] : apps) ws += sessions.size();
    websockets_open = ws;
    live_objects = channels.size() + bridges.size() + playbacks.size();
    changed.notify_all();
  }

  // Runs fn on the io thread and waits for it.
  template <typename Fn>
  auto on_io(Fn fn) const -> decltype(fn()) {
    auto& self = const_cast<Server&>(*this);
    if (!thread.joinable() || std::this_thread::get_id() == thread.get_id()) return fn();
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    asio::post(self.io, [&task] { task(); });
    return result.get();
  }

  std::chrono::steady_clock::duration scaled(double seconds) const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(seconds * options.time_scale));
  }

  std::string new_uniqueid() {
    return std::to_string(static_cast<long long>(std::time(nullptr))) + "." + std::to_string(next_uniqueid++);
  }
  std::string new_uuid() {
    const std::uint64_t a = rng();
    const std::uint64_t b = rng();
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFF),
                  static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3FFF)),
                  static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
    return buffer;
  }

  bool app_registered(const std::string& app) const {
    if (!options.app_check) return true;
    const auto found = apps.find(app);
    return found != apps.end() && !found->second.empty();
  }

  // --- JSON -----------------------------------------------------------------------------

  static void put_channel(std::string& out, const Channel& c) {
    out += "{\"id\":";
    append_string(out, c.id);
    out += ",\"name\":";
    append_string(out, c.name);
    out += ",\"state\":\"";
    out += c.state;
    out += "\",\"protocol_id\":\"\",\"caller\":{\"name\":";
    append_string(out, c.caller_name);
    out += ",\"number\":";
    append_string(out, c.caller_number);
    out += "},\"connected\":{\"name\":";
    append_string(out, c.connected_name);
    out += ",\"number\":";
    append_string(out, c.connected_number);
    out += "},\"accountcode\":\"\",\"dialplan\":{\"context\":";
    append_string(out, c.context);
    out += ",\"exten\":";
    append_string(out, c.exten);
    out += ",\"priority\":";
    out += std::to_string(c.priority);
    out += ",\"app_name\":";
    append_string(out, c.app_name);
    out += ",\"app_data\":";
    append_string(out, c.app_data);
    out += "},\"creationtime\":\"";
    out += c.creationtime;
    out += "\",\"language\":";
    append_string(out, c.language);
    out += '}';
  }

  static void put_bridge(std::string& out, const Bridge& b) {
    out += "{\"id\":";
    append_string(out, b.id);
    out += ",\"technology\":\"simple_bridge\",\"bridge_type\":\"mixing\",\"bridge_class\":\"stasis\","
           "\"creator\":\"Stasis\",\"name\":";
    append_string(out, b.name);
    out += ",\"channels\":[";
    for (std::size_t i = 0; i < b.channels.size(); ++i) {
      if (i) out += ',';
      append_string(out, b.channels[i]);
    }
    out += "],\"creationtime\":\"";
    out += b.creationtime;
    out += "\",\"video_mode\":\"talker\"}";
  }

  static void put_playback(std::string& out, const Playback& p) {
    out += "{\"id\":";
    append_string(out, p.id);
    out += ",\"media_uri\":";
    append_string(out, p.media[std::min(p.index, p.media.size() - 1)]);
    if (p.index + 1 < p.media.size()) {
      out += ",\"next_media_uri\":";
      append_string(out, p.media[p.index + 1]);
    }
    out += ",\"target_uri\":";
    append_string(out, p.target);
    out += ",\"language\":";
    append_string(out, p.language);
    out += ",\"state\":\"";
    out += p.state;
    out += "\"}";
  }

  // {<prefix>"type":"T","timestamp":"..."<middle>,"<key>":<channel>,"asterisk_id":..,"application":..}
  static std::string event(std::string_view prefix, std::string_view type, std::string_view middle,
                           const Channel* c, std::string_view key, std::string_view app) {
    std::string out;
    out.reserve(900);
    out += '{';
    out += prefix;
    out += "\"type\":\"";
    out += type;
    out += "\",\"timestamp\":\"";
    out += ari_time(std::chrono::system_clock::now());
    out += '"';
    out += middle;
    if (c != nullptr) {
      out += ",\"";
      out += key;
      out += "\":";
      put_channel(out, *c);
    }
    out += ",\"asterisk_id\":\"";
    out += kAsteriskId;
    out += "\",\"application\":";
    append_string(out, app);
    out += '}';
    return out;
  }

  // --- events to the app ------------------------------------------------------------------

  // PUT /applications/{app}/eventFilter (res/stasis/app.c): an event goes out unless its
  // type is disallowed, and, when an allowed list is set, only if its type is in it.
  struct EventFilter {
    std::vector<std::string> allowed, disallowed;
    std::string allowed_json = "[]", disallowed_json = "[]";  // as set, for the app object
  };
  std::unordered_map<std::string, EventFilter> filters;

  bool event_allowed(const std::string& app, std::string_view type) const {
    const auto found = filters.find(app);
    if (found == filters.end()) return true;
    const auto& f = found->second;
    const auto listed = [&](const std::vector<std::string>& types) {
      return std::find(types.begin(), types.end(), type) != types.end();
    };
    return !listed(f.disallowed) && (f.allowed.empty() || listed(f.allowed));
  }

  // The body of the PUT: {"allowed":[{"type":"X"},...],"disallowed":[...]}; {} resets both,
  // a list left out stays. False: not that format.
  bool set_event_filter(const std::string& app, const std::string& body) {
    boost::system::error_code ec;
    const boost::json::value parsed = boost::json::parse(body.empty() ? std::string("{}") : body, ec);
    if (ec || !parsed.is_object()) return false;
    const auto& object = parsed.as_object();
    EventFilter next = filters[app];
    for (const char* which : {"allowed", "disallowed"}) {
      std::vector<std::string>& types = std::string_view(which) == "allowed" ? next.allowed : next.disallowed;
      std::string& text = std::string_view(which) == "allowed" ? next.allowed_json : next.disallowed_json;
      if (object.empty()) {
        types.clear();
        text = "[]";
        continue;
      }
      const auto* list = object.if_contains(which);
      if (list == nullptr) continue;
      if (!list->is_array()) return false;
      types.clear();
      for (const auto& item : list->as_array()) {
        const auto* type = item.is_object() ? item.as_object().if_contains("type") : nullptr;
        if (type == nullptr || !type->is_string() || type->as_string().empty()) return false;
        types.emplace_back(type->as_string());
      }
      text = boost::json::serialize(*list);
    }
    filters[app] = std::move(next);
    return true;
  }

  void send_to_app(const std::string& app, std::string_view type, const std::string& frame);
  static void count(std::map<std::string, std::size_t, std::less<>>& counts, std::string_view type) {
    auto found = counts.find(type);
    if (found == counts.end()) found = counts.emplace(std::string(type), 0).first;
    ++found->second;
  }

  void emit(const Channel& c, std::string_view type, std::string_view prefix = {}, std::string_view middle = {},
            std::string_view key = "channel") {
    if (!c.subscribed && !c.in_stasis) return;
    if (apps.find(c.app) == apps.end()) return;
    if (!event_allowed(c.app, type)) {
      count(events_filtered, type);
      return;
    }
    send_to_app(c.app, type, event(prefix, type, middle, &c, key, c.app));
  }

  // ari-create-dial-answered: a caller id with no number is presented as 67.
  void ev_callerid(Channel& c) {
    emit(c, "ChannelCallerId", {},
         c.caller_number.empty()
             ? ",\"caller_presentation\":67,\"caller_presentation_txt\":\"Number Unavailable\""
             : ",\"caller_presentation\":0,\"caller_presentation_txt\":\"Presentation Allowed, Not Screened\"");
  }
  void ev_connected(Channel& c) { emit(c, "ChannelConnectedLine"); }
  void ev_state(Channel& c, std::string_view state) {
    c.state = std::string(state);
    emit(c, "ChannelStateChange");
  }
  void ev_dialplan(Channel& c, int priority, std::string_view app_name, std::string_view app_data) {
    c.priority = priority;
    c.app_name = std::string(app_name);
    c.app_data = std::string(app_data);
    std::string middle = ",\"dialplan_app\":";
    append_string(middle, app_name);
    middle += ",\"dialplan_app_data\":";
    append_string(middle, app_data);
    emit(c, "ChannelDialplan", {}, middle);
  }
  void ev_dial(Channel& peer, std::string_view status, std::string_view dialstring) {
    std::string middle = ",\"dialstatus\":\"";
    middle += status;
    middle += "\",\"forward\":\"\",\"dialstring\":";
    append_string(middle, dialstring);
    emit(peer, "Dial", {}, middle, "peer");
  }
  void ev_varset(Channel& c, std::string_view variable, std::string_view value) {
    std::string prefix = "\"variable\":";
    append_string(prefix, variable);
    prefix += ",\"value\":";
    append_string(prefix, value);
    prefix += ',';
    emit(c, "ChannelVarset", prefix);
  }
  void ev_hangup_request(Channel& c, int cause, bool soft) {
    std::string prefix = "\"cause\":" + std::to_string(cause) + (soft ? ",\"soft\":true," : ",");
    emit(c, "ChannelHangupRequest", prefix);
  }
  void ev_bridge(Channel& c, std::string_view type, const Bridge& b) {
    std::string middle = ",\"bridge\":";
    put_bridge(middle, b);
    emit(c, type, {}, middle);
  }

  // --- channel lifecycle ------------------------------------------------------------------

  ChannelPtr new_channel(std::string id, std::string name) {
    auto c = std::make_shared<Channel>();
    c->serial = next_serial++;
    c->id = std::move(id);
    c->name = std::move(name);
    c->creationtime = ari_time(std::chrono::system_clock::now());
    channels.emplace(c->id, c);
    channels_in_order.emplace(c->serial, c);
    return c;
  }

  // The hangup handler of examples/asterisk/extensions.conf [callback-ari-leg-end], pushed by
  // the originate's CHANNEL(hangup_handler_push) (ari-leg-end-record): the global
  // CB_END_<id> = cause|state|epoch with milliseconds, then the CB_FORGET ones deleted.
  void run_hangup_handler(const Channel& c, int cause) {
    // A function, run when the originate set it: on the channel made, the ;1 (the ;2 copies
    // only variables).
    const auto pushed = c.variables.find("CHANNEL(hangup_handler_push)");
    if (pushed == c.variables.end() || c.half != 1) return;
    const std::string_view handler = pushed->second;
    constexpr std::string_view target = "callback-ari-leg-end,s,1(";
    if (handler.substr(0, target.size()) != target || handler.back() != ')') return;  // not ours: nothing we know
    const std::string id(handler.substr(target.size(), handler.size() - target.size() - 1));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
    char end[32];
    std::snprintf(end, sizeof end, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
    globals["CB_END_" + id] = std::to_string(cause) + "|" + c.state + "|" + end;
    if (const auto forget = c.variables.find("CB_FORGET"); forget != c.variables.end()) {
      std::string_view list = forget->second;
      while (!list.empty()) {
        const auto comma = list.find(',');
        const auto one = list.substr(0, comma);
        if (!one.empty()) globals.erase("CB_END_" + std::string(one));
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      }
    }
  }

  void destroy(Channel& c, int cause) {
    if (!c.alive) return;
    const ChannelPtr keep = find(c.id);  // the maps may hold the last reference
    run_hangup_handler(c, cause);
    std::string middle = ",\"cause\":" + std::to_string(cause) + ",\"cause_txt\":";
    append_string(middle, cause_text(cause));
    emit(c, "ChannelDestroyed", {}, middle);
    c.alive = false;
    stop_playbacks_of(c, "failed");
    const std::string id = c.id;
    const std::uint64_t serial = c.serial;
    channels_in_order.erase(serial);
    channels.erase(id);
    // A call is over when none of its channels is left.
    if (const auto call = c.call.lock()) {
      const bool one_alive = call->one && call->one->alive;
      const bool two_alive = call->two && call->two->alive;
      if (!one_alive && !two_alive) {
        call->timer.cancel();
        call->timeout.cancel();
        call->dtmf.cancel();
        calls.erase(call.get());
      }
    }
    publish_counts();
  }

  void enter_stasis(Channel& c) {
    c.app_name = "Stasis";
    c.app_data = c.app + (c.app_args.empty() ? "" : "," + c.app_args);
    ev_varset(c, "STASISSTATUS", "");
    c.in_stasis = true;
    emit(c, "StasisStart", {}, stasis_args(c));
  }

  // StasisStart's ,"args":[...] from the channel's raw appArgs.
  static std::string stasis_args(const Channel& c) {
    std::string middle = ",\"args\":[";
    if (!c.app_args.empty()) {
      const auto args = split(c.app_args, ',');
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (i) middle += ',';
        append_string(middle, args[i]);
      }
    }
    return middle + ']';
  }

  // ari-bridge-answered: [Varset BRIDGEPEER ""], ChannelLeftBridge, StasisEnd, Varset SUCCESS;
  // ari-play: a prompt cut by the hang-up ends "failed" before StasisEnd.
  void leave_stasis(Channel& c) {
    stop_playbacks_of(c, "failed");
    if (!c.bridge_id.empty()) leave_bridge(c, true);
    if (!c.in_stasis) return;
    emit(c, "StasisEnd");
    c.in_stasis = false;
    ev_varset(c, "STASISSTATUS", "SUCCESS");
  }

  // After Stasis the originated ;1 is back in its dial (ari-*: ChannelDestroyed shows
  // AppDial2); a /channels/create one and an inbound one have no application left.
  void after_stasis_dialplan(Channel& c) {
    const auto call = c.call.lock();
    if (c.half == 1 && !c.created && call && !call->inbound) {
      c.app_name = "AppDial2";
      c.app_data = "(Outgoing Line)";
    } else {
      c.app_name.clear();
      c.app_data.clear();
    }
  }

  ChannelPtr find(const std::string& id) {
    const auto found = channels.find(id);
    return found == channels.end() ? nullptr : found->second;
  }

  void apply_pending_caller(Channel& two) {
    if (!two.callerid_pending) return;
    two.caller_name = two.pending_caller_name;
    two.caller_number = two.pending_caller_number;
  }
  void send_callerid_if_pending(Channel& two) {
    if (!two.callerid_pending) return;
    two.callerid_pending = false;
    ev_callerid(two);
  }

  // The far phone (;2) hangs up by itself (Hangup(N) in its dialplan), ari-b-hangs-up.
  void far_hangup(const std::shared_ptr<Call>& call, int cause, int priority) {
    Channel& two = *call->two;
    ev_dialplan(two, priority, "Hangup", std::to_string(cause));
    ev_hangup_request(two, cause, true);
    ChannelPtr one = call->one;
    if (one->alive) ev_hangup_request(*one, cause, false);
    two.app_name.clear();
    two.app_data.clear();
    destroy(two, cause);
    if (one->alive) {
      leave_stasis(*one);
      after_stasis_dialplan(*one);
      destroy(*one, cause);
    }
    end_call(call);
  }

  // The call's channels are all gone (destroy() has already forgotten it).
  void end_call(const std::shared_ptr<Call>& call) {
    call->timer.cancel();
    call->timeout.cancel();
    call->dtmf.cancel();
  }

  // DELETE /channels/{id} (ari-bridge-answered): the soft hangup (32), the channel leaves the
  // bridge and the app, then the other half goes with the given cause.
  void app_hangup(const ChannelPtr& c, int cause) {
    const auto call = c->call.lock();
    ev_hangup_request(*c, 32, true);
    leave_stasis(*c);
    if (call && call->inbound) {
      // ari-inbound-reject-subscribed: seen only by an app subscribed to the channel.
      ev_hangup_request(*c, 16, true);
    }
    after_stasis_dialplan(*c);
    ChannelPtr other;
    if (call && !call->inbound) other = c->half == 1 ? call->two : call->one;
    if (other && other->alive) {
      if (other->half == 2) {
        ev_hangup_request(*other, cause, false);
        ev_hangup_request(*other, 16, true);
        other->app_name.clear();
        other->app_data.clear();
        apply_pending_caller(*other);
        destroy(*other, cause);
        send_callerid_if_pending(*other);
        destroy(*c, cause);
      } else {
        destroy(*c, cause);
        ev_hangup_request(*other, cause, false);
        leave_stasis(*other);
        after_stasis_dialplan(*other);
        destroy(*other, cause);
      }
    } else {
      if (c->half == 2) {
        c->app_name.clear();
        c->app_data.clear();
      }
      destroy(*c, cause);
    }
    if (call) end_call(call);
  }

  // --- bridges ----------------------------------------------------------------------------

  // hanging_up: the channel leaves because it is hung up. Otherwise (moved, removed, the
  // bridge destroyed) the app's subscription to the bridge goes with its last channel:
  // ari-errors has no BridgeDestroyed, ari-b-busy (A hung up, then DELETE) has one.
  void leave_bridge(Channel& c, bool hanging_up) {
    // A play still queued behind the bridge channel is dropped silently (ari-play-bridge-destroyed).
    for (auto it = playbacks.begin(); it != playbacks.end();) {
      if (it->second->channel_id == c.id && it->second->state == "queued" && !c.bridge_id.empty() &&
          it->second->bridge_id == c.bridge_id) {
        it->second->timer->cancel();
        std::erase(c.playback_queue, it->first);
        it = playbacks.erase(it);
      } else {
        ++it;
      }
    }
    const auto found = bridges.find(c.bridge_id);
    if (!hanging_up && !c.bridge_id.empty()) c.left_bridge = std::chrono::steady_clock::now();
    c.bridge_id.clear();
    if (found == bridges.end()) return;
    Bridge& b = found->second;
    b.channels.erase(std::remove(b.channels.begin(), b.channels.end(), c.id), b.channels.end());
    if (!c.bridgepeer.empty()) {
      c.bridgepeer.clear();
      ev_varset(c, "BRIDGEPEER", "");
    }
    ev_bridge(c, "ChannelLeftBridge", b);
    if (!hanging_up && b.channels.empty()) b.app.clear();
  }

  // ari-bridge-answered: ChannelEnteredBridge per channel; with two in the bridge, BRIDGEPEER
  // on each and the connected line of each set to the other's caller.
  void enter_bridge(Bridge& b, Channel& c) {
    if (c.bridge_id == b.id) return;
    if (!c.bridge_id.empty()) leave_bridge(c, false);
    c.bridge_id = b.id;
    b.channels.push_back(c.id);
    if (b.app.empty()) b.app = c.app;
    ev_bridge(c, "ChannelEnteredBridge", b);
    if (b.channels.size() != 2) return;
    ChannelPtr first = find(b.channels[0]);
    if (!first) return;
    first->bridgepeer = c.name;
    ev_varset(*first, "BRIDGEPEER", c.name);
    c.bridgepeer = first->name;
    ev_varset(c, "BRIDGEPEER", first->name);
    const std::string first_name = first->caller_name, first_number = first->caller_number;
    c.connected_name = first_name;
    c.connected_number = first_number;
    ev_connected(c);
    first->connected_name = c.caller_name;
    first->connected_number = c.caller_number;
    ev_connected(*first);
    // Each ;1's new connected line reaches its ;2 as a caller id update.
    for (Channel* one : {&c, first.get()}) {
      const auto call = one->call.lock();
      if (call && call->two && call->two->alive && one->half == 1) {
        call->two->pending_caller_name = one->connected_name;
        call->two->pending_caller_number = one->connected_number;
        call->two->callerid_pending = true;
      }
    }
  }

  void destroy_bridge(const std::string& id) {
    const auto found = bridges.find(id);
    if (found == bridges.end()) return;
    const std::vector<std::string> members = found->second.channels;
    for (const auto& member : members) {
      if (ChannelPtr c = find(member)) leave_bridge(*c, false);
    }
    Bridge b = std::move(found->second);
    bridges.erase(found);
    if (!b.app.empty() && apps.count(b.app) != 0) {
      std::string middle = ",\"bridge\":";
      put_bridge(middle, b);
      send_to_app(b.app, "BridgeDestroyed", event({}, "BridgeDestroyed", middle, nullptr, {}, b.app));
    }
    publish_counts();
  }

  // --- playbacks --------------------------------------------------------------------------

  double sound_seconds(const std::string& media) const {
    const std::size_t colon = media.find(':');
    const std::string name = colon == std::string::npos ? media : media.substr(colon + 1);
    const auto found = options.sound_seconds.find(name);
    return found == options.sound_seconds.end() ? options.default_sound_seconds : found->second;
  }

  bool sound_exists(const std::string& media) const {
    return media.rfind("sound:", 0) != 0 || options.missing_sounds.count(media.substr(6)) == 0;
  }

  void playback_event(Playback& p, std::string_view type) {
    if (apps.count(p.app) == 0) return;
    std::string middle = ",\"playback\":";
    put_playback(middle, p);
    if (!event_allowed(p.app, type)) {
      count(events_filtered, type);
      return;
    }
    send_to_app(p.app, type, event({}, type, middle, nullptr, {}, p.app));
  }

  // ari-play: PlaybackStarted (with next_media_uri while more follow); between two media,
  // PlaybackContinuing for the one ending, then PlaybackStarted for the next; at the end
  // PlaybackFinished "done", or "failed" when the last media does not exist (2 ms after
  // its start). A missing media among several is skipped at once.
  void start_playback(const std::string& id) {
    const auto found = playbacks.find(id);
    if (found == playbacks.end()) return;
    Playback& p = *found->second;
    p.state = "playing";
    playback_event(p, "PlaybackStarted");
    schedule_media_end(p);
  }

  void schedule_media_end(Playback& p) {
    const std::string& media = p.media[p.index];
    const bool missing = !sound_exists(media);
    const bool last = p.index + 1 == p.media.size();
    p.timer->expires_after(scaled(missing ? (last ? 0.002 : 0.0) : sound_seconds(media)));
    p.timer->async_wait([this, id = p.id](const boost::system::error_code& ec) {
      if (!ec) media_ended(id);
    });
  }

  void media_ended(const std::string& id) {
    const auto found = playbacks.find(id);
    if (found == playbacks.end()) return;
    Playback& p = *found->second;
    if (p.index + 1 < p.media.size()) {
      p.state = "continuing";
      playback_event(p, "PlaybackContinuing");
      ++p.index;
      p.state = "playing";
      playback_event(p, "PlaybackStarted");
      schedule_media_end(p);
      return;
    }
    finish_playback(id, sound_exists(p.media[p.index]) ? "done" : "failed");
  }

  // DELETE /playbacks/{id} ends it "done", the channel's hang-up "failed" (ari-play). The
  // next play queued on the channel starts then. A play still queued is dropped silently.
  void finish_playback(const std::string& id, std::string_view state) {
    const auto found = playbacks.find(id);
    if (found == playbacks.end()) return;
    Playback& p = *found->second;
    p.timer->cancel();
    const bool started = p.state != "queued";
    p.state = std::string(state);
    if (started) playback_event(p, "PlaybackFinished");
    const ChannelPtr c = find(p.channel_id);
    playbacks.erase(found);
    publish_counts();
    if (!c) return;
    auto& queue = c->playback_queue;
    const bool was_playing = !queue.empty() && queue.front() == id;
    queue.erase(std::remove(queue.begin(), queue.end(), id), queue.end());
    if (was_playing && !queue.empty() && c->alive && c->in_stasis) {
      asio::post(io, [this, next = queue.front()] { start_playback(next); });
    }
  }

  void stop_playbacks_of(Channel& c, std::string_view state) {
    if (c.playback_queue.empty()) return;
    const std::deque<std::string> queue = std::move(c.playback_queue);
    c.playback_queue.clear();
    for (const auto& id : queue) finish_playback(id, state);
  }

  // --- phones -----------------------------------------------------------------------------

  template <typename Fn>
  void after(const std::shared_ptr<Call>& call, asio::steady_timer& timer, double seconds, Fn fn) {
    timer.expires_after(scaled(seconds));
    timer.async_wait([this, weak = std::weak_ptr<Call>(call), fn](const boost::system::error_code& ec) {
      if (ec) return;
      auto locked = weak.lock();
      if (!locked || !locked->one->alive) return;
      fn(locked);
    });
  }

  // The dial of the far phone starts: POST /channels (t = 0) or POST /channels/{id}/dial.
  // ari-a-busy, ari-a-noanswer, ari-a-invalid, ari-bridge-answered, ari-create-dial-*.
  void start_phone(const std::shared_ptr<Call>& call) {
    Channel& one = *call->one;
    Channel& two = *call->two;
    const bool created = one.created;
    const std::string dialstring = call->number + "@phones";
    const std::string later_dialstring = created ? std::string() : dialstring;
    const PhoneInfo& phone = call->phone;
    if (call->caller_id_given) {
      // Setting the originate's callerId (ari-bridge-answered); none without it (ari-errors).
      ev_callerid(two);
      ev_connected(two);
    }
    if (phone.kind == Phone::kInvalid) {
      // ari-a-invalid: no Dial event, both halves destroyed with cause 0 at once.
      if (created) {
        ev_dial(one, "", dialstring);
        ev_dial(one, "CHANUNAVAIL", later_dialstring);
        destroy(two, 0);
        return;
      }
      destroy(two, 0);
      destroy(one, 0);
      end_call(call);
      return;
    }
    ev_dial(one, "", dialstring);
    std::string noop = "phone " + call->number + ": " + std::string(phone.noop);
    if (phone.kind == Phone::kKeys) noop += keys_of(call->number);
    switch (phone.kind) {
      case Phone::kKeys:
        // ari-outbound-dtmf: NoOp, Answer() at once.
        ev_dialplan(two, 1, "NoOp", noop);
        phone_answers(call, 2);
        return;
      case Phone::kStaysUp:
      case Phone::kHangsUp:
      case Phone::kNoAnswer: {
        ev_dialplan(two, 1, "NoOp", noop);
        ev_dialplan(two, 2, "Ringing", "");
        ev_state(one, "Ringing");
        ev_dialplan(two, 3, "Wait", phone.kind == Phone::kNoAnswer ? "3600" : "1");
        ev_dial(one, "RINGING", later_dialstring);
        if (phone.kind != Phone::kNoAnswer) {
          after(call, call->timer, 1.0, [this](const std::shared_ptr<Call>& c) { phone_answers(c, 4); });
        }
        arm_timeout(call);
        return;
      }
      case Phone::kBench:
      case Phone::kBenchHangup:
        phone_answers(call, 1);
        return;
      case Phone::kBusy:
      case Phone::kCongestion: {
        // ari-a-busy: Busy() is an indication: ;1 ends with cause 0, ;2 with 17 (34).
        const bool busy = phone.kind == Phone::kBusy;
        ev_dialplan(two, 1, "NoOp", noop);
        ev_dialplan(two, 2, busy ? "Busy" : "Congestion", "10");
        ev_state(two, "Busy");
        ev_dial(one, busy ? "BUSY" : "CONGESTION", later_dialstring);
        ev_hangup_request(two, 0, false);
        if (!created) destroy(one, 0);
        ev_hangup_request(two, 16, true);
        two.app_name.clear();
        two.app_data.clear();
        destroy(two, busy ? 17 : 34);
        if (!created) end_call(call);
        return;
      }
      case Phone::kHangupCause: {
        // Not recorded on ARI: Hangup(N) before the answer gives cause N on both halves
        // (ami-originate-a-rejected); the far half's events as in ari-b-hangs-up.
        ev_dialplan(two, 1, "NoOp", noop);
        ev_dialplan(two, 2, "Hangup", std::to_string(phone.cause));
        ev_hangup_request(two, phone.cause, true);
        ev_hangup_request(one, phone.cause, false);
        two.app_name.clear();
        two.app_data.clear();
        destroy(two, phone.cause);
        leave_stasis(one);
        after_stasis_dialplan(one);
        destroy(one, phone.cause);
        end_call(call);
        return;
      }
      case Phone::kInvalid: return;
    }
  }

  void arm_timeout(const std::shared_ptr<Call>& call) {
    if (call->timeout_seconds <= 0) return;
    after(call, call->timeout, call->timeout_seconds, [this](const std::shared_ptr<Call>& c) { ring_timeout(c); });
  }

  // ari-a-noanswer (originate timeout): cause 19 on both halves, no final Dial event.
  // ari-create-dial-noanswer (dial timeout): the ;1 in Stasis gets the soft hangup.
  void ring_timeout(const std::shared_ptr<Call>& call) {
    Channel& one = *call->one;
    Channel& two = *call->two;
    call->timer.cancel();
    if (one.created) {
      ev_hangup_request(one, 32, true);
      leave_stasis(one);
      after_stasis_dialplan(one);
      destroy(one, 19);
      two.subscribed = false;
      destroy(two, 19);
    } else {
      ev_hangup_request(two, 19, false);
      ev_hangup_request(two, 16, true);
      destroy(one, 19);
      two.app_name.clear();
      two.app_data.clear();
      destroy(two, 19);
    }
    end_call(call);
  }

  // Answer() in the far phone's dialplan: ari-bridge-answered at +1 s.
  void phone_answers(const std::shared_ptr<Call>& call, int priority) {
    call->timeout.cancel();
    Channel& one = *call->one;
    Channel& two = *call->two;
    ev_dialplan(two, priority, "Answer", "");
    ev_state(two, "Up");
    ev_state(one, "Up");
    ev_dial(one, "ANSWER", one.created ? std::string() : call->number + "@phones");
    if (call->dialplan) {
      one.app_name = "Wait";  // whatever the extension runs, until the app hangs it up
      one.app_data = "3600";
    } else if (!one.created) {
      if (!app_registered(one.app)) {
        // res_stasis: "Stasis app '...' not registered": Stasis() fails, the channel hangs up.
        one.subscribed = two.subscribed = false;
        destroy(two, 16);
        destroy(one, 16);
        end_call(call);
        return;
      }
      if (auto keys = options.phone_dtmf.find(call->number); keys != options.phone_dtmf.end()) {
        call->in.dtmf = keys->second;  // the 7XXX phones' timing (ari-outbound-dtmf): 1.7 s after the answer
        call->in.dtmf_delay_ms = 1700;
        call->in.hangup_after_ms = -1;
        after(call, call->dtmf, static_cast<double>(call->in.dtmf_delay_ms) / 1000.0,
              [this](const std::shared_ptr<Call>& c) { send_digit(c); });
      }
      if (options.stasis_start_delay_ms <= 0) {
        enter_stasis(one);
      } else {
        auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(options.stasis_start_delay_ms));
        timer->async_wait([this, timer, weak = std::weak_ptr<Channel>(call->one)](const boost::system::error_code& ec) {
          const auto late = weak.lock();
          if (!ec && late && late->alive) enter_stasis(*late);
        });
      }
    }
    // Answer() on a Local channel waits 0.5 s for media, then the next priority runs.
    after(call, call->timer, 0.5, [this, priority](const std::shared_ptr<Call>& c) {
      if (!c->two->alive) return;
      Channel& far = *c->two;
      switch (c->phone.kind) {
        case Phone::kHangsUp:
          apply_pending_caller(far);
          ev_dialplan(far, priority + 1, "Wait", "5");
          send_callerid_if_pending(far);
          after(c, c->timer, 5.0, [this, priority](const std::shared_ptr<Call>& c2) {
            far_hangup(c2, 16, priority + 2);
          });
          return;
        case Phone::kBenchHangup:
          far_hangup(c, 16, priority + 1);
          return;
        case Phone::kKeys: {
          // ari-outbound-dtmf: Wait(1), then SendDTMF(2XXX#,250): the app sees each key on
          // the ;1 half, the first 0.2 s after SendDTMF starts, then 0.35 s apart, 100 ms
          // each. (The Wait(60) after it is not sent: the recording ended before it.)
          ev_dialplan(far, priority + 1, "Wait", "1");
          after(c, c->timer, 1.0, [this, priority](const std::shared_ptr<Call>& c2) {
            Channel& phone = *c2->two;
            if (!phone.alive) return;
            const std::string keys = keys_of(c2->number);
            ev_dialplan(phone, priority + 2, "SendDTMF", keys + ",250");
            c2->in.dtmf = keys;
            c2->in.dtmf_delay_ms = 200;
            c2->in.hangup_after_ms = -1;
            after(c2, c2->dtmf, 0.2, [this](const std::shared_ptr<Call>& c3) { send_digit(c3); });
          });
          return;
        }
        default:
          apply_pending_caller(far);
          ev_dialplan(far, priority + 1, "Wait", "3600");
          send_callerid_if_pending(far);
          return;
      }
    });
  }

  // --- inbound (POST /fake/inbound) -----------------------------------------------------
  // ari-inbound-*: a call into [callback-access] (examples/asterisk/extensions.conf:
  // Stasis(callback-app,access,${EXTEN}), no Answer) is the ;2 half of a Local channel that
  // enters Stasis unanswered, state Ring, args ["access", DID]; its ;1 (the caller) is never
  // seen by the app.

  std::string start_inbound(const InboundCallOptions& in) {
    if (!app_registered(in.app)) return {};
    auto call = std::make_shared<Call>(io);
    calls.emplace(call.get(), call);
    call->inbound = true;
    call->in = in;
    char counter[16];
    std::snprintf(counter, sizeof counter, "%08x", next_local++);
    next_uniqueid++;  // the ;1 half the app never sees
    auto c = new_channel(new_uniqueid(), "Local/" + in.to + "@callback-access-" + counter + ";2");
    c->call = call;
    c->half = 2;
    c->state = "Ring";
    c->caller_name = in.name;
    c->caller_number = in.from;
    c->connected_name = in.name;
    c->connected_number = in.from;
    c->context = "callback-access";
    c->exten = in.to;
    c->priority = 1;
    c->app = in.app;
    c->app_args = "access," + in.to;  // Stasis(callback-app,access,${EXTEN}) in [callback-access]
    call->one = c;
    enter_stasis(*c);
    if (in.give_up_ms >= 0) {
      after(call, call->timeout, static_cast<double>(in.give_up_ms) / 1000.0,
            [this](const std::shared_ptr<Call>& c2) { caller_hangs_up(c2); });
    }
    publish_counts();
    return c->id;
  }

  // ari-inbound-caller-hangup: ChannelHangupRequest with the real cause (not soft), the
  // prompt "failed", StasisEnd.
  void caller_hangs_up(const std::shared_ptr<Call>& call, int cause = 16) {
    Channel& c = *call->one;
    ev_hangup_request(c, cause, false);
    leave_stasis(c);
    after_stasis_dialplan(c);
    destroy(c, cause);
    end_call(call);
  }

  // POST /fake/hangup: the far end of a channel hangs up (the phone behind a Local ;1, the
  // caller of an inbound call). False: no such channel.
  bool far_end_hangs_up(const std::string& id, int cause) {
    const ChannelPtr c = find(id);
    if (!c) return false;
    const auto call = c->call.lock();
    if (!call) return false;
    if (call->inbound) {
      caller_hangs_up(call, cause);
    } else if (call->two && call->two->alive) {
      far_hangup(call, cause, call->two->priority + 1);
    } else {
      ev_hangup_request(*c, cause, false);
      leave_stasis(*c);
      after_stasis_dialplan(*c);
      destroy(*c, cause);
      end_call(call);
    }
    return true;
  }

  void send_raw_to_all(const std::string& frame, const std::string& app);

  // What a 7XXX phone keys: 2 and its last three digits, then # (7005 -> 2005#).
  static std::string keys_of(const std::string& number) { return "2" + number.substr(1) + "#"; }

  void inbound_answered(const std::shared_ptr<Call>& call) {
    call->timeout.cancel();
    if (call->in.dtmf.empty()) {
      schedule_caller_hangup(call);
      return;
    }
    after(call, call->dtmf, static_cast<double>(call->in.dtmf_delay_ms) / 1000.0,
          [this](const std::shared_ptr<Call>& c) { send_digit(c); });
  }

  void send_digit(const std::shared_ptr<Call>& call) {
    Channel& c = *call->one;
    std::string middle = ",\"digit\":";
    append_string(middle, std::string(1, call->in.dtmf[call->dtmf_next++]));
    middle += ",\"duration_ms\":" + std::to_string(call->in.dtmf_duration_ms);
    emit(c, "ChannelDtmfReceived", {}, middle);
    if (call->dtmf_next < call->in.dtmf.size()) {
      after(call, call->dtmf, static_cast<double>(call->in.dtmf_interval_ms) / 1000.0,
            [this](const std::shared_ptr<Call>& c2) { send_digit(c2); });
    } else {
      schedule_caller_hangup(call);
    }
  }

  void schedule_caller_hangup(const std::shared_ptr<Call>& call) {
    if (call->in.hangup_after_ms < 0) return;
    after(call, call->timer, static_cast<double>(call->in.hangup_after_ms) / 1000.0,
          [this](const std::shared_ptr<Call>& c) { caller_hangs_up(c); });
  }

  // --- HTTP -------------------------------------------------------------------------------

  struct Reply {
    int status = 200;
    std::string reason = "OK";
    std::string body;          // empty with status 204
    std::string extra_headers; // "Location: ...\r\n"
    bool json = true;
  };

  static Reply error(int status, std::string reason, std::string_view message) {
    Reply r;
    r.status = status;
    r.reason = std::move(reason);
    r.body = "{\"message\":";
    append_string(r.body, message);
    r.body += '}';
    return r;
  }
  static Reply ok(std::string body) {
    Reply r;
    r.body = std::move(body);
    return r;
  }
  static Reply no_content() {
    Reply r;
    r.status = 204;
    r.reason = "No Content";
    r.json = false;
    return r;
  }

  static std::string render(const Reply& r, bool keep_alive) {
    std::string out;
    out.reserve(256 + r.body.size());
    out += "HTTP/1.1 " + std::to_string(r.status) + " " + r.reason + "\r\n";
    out += "Server: Asterisk/23.4.1\r\nDate: " + http_date() + "\r\n";
    out += keep_alive ? "Connection: Keep-Alive\r\n" : "Connection: close\r\n";
    out += "Cache-Control: no-cache, no-store\r\n";
    if (r.status == 401) out += "WWW-Authenticate: Basic realm=\"Asterisk REST Interface\"\r\n";
    out += r.extra_headers;
    if (r.json) out += "Content-type: application/json\r\n";
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
    out += r.body;
    return out;
  }

  bool authorized(const http::request<http::string_body>& req, const std::map<std::string, std::string>& query) const {
    const std::string expected = options.username + ":" + options.password;
    const auto key = query.find("api_key");
    if (key != query.end()) return key->second == expected;
    const auto header = req.find(http::field::authorization);
    if (header == req.end()) return false;
    const std::string_view value = header->value();
    if (value.substr(0, 6) != "Basic ") return false;
    return base64_decode(value.substr(6)) == expected;
  }

  static std::map<std::string, std::string> parse_query(std::string_view query) {
    std::map<std::string, std::string> out;
    if (query.empty()) return out;
    for (const auto& pair : split(query, '&')) {
      const std::size_t eq = pair.find('=');
      std::string key = url_decode(pair.substr(0, eq));
      std::string value = eq == std::string::npos ? std::string() : url_decode(pair.substr(eq + 1));
      auto [it, inserted] = out.emplace(key, value);
      if (!inserted) it->second += "," + value;  // media=a&media=b, channel=a&channel=b
    }
    return out;
  }

  Reply handle(const http::request<http::string_body>& req);
  // A text frame from an app's WebSocket: a RESTRequest (ARI REST over WebSocket, Asterisk
  // 20.14/21.9/22.4+; ari-rest-websocket). Returns the RESTResponse frame, sent like an event.
  std::string handle_ws_request(std::string_view frame, const std::string& app);
  Reply handle_ari(const std::string& method, const std::vector<std::string>& path,
                   const std::map<std::string, std::string>& query, const std::string& body, std::string& key);
  Reply handle_fake(const std::string& method, const std::string& path, const std::map<std::string, std::string>& query,
                    const std::string& body);

  Reply originate(const std::map<std::string, std::string>& query, const std::string& body, bool create);
  Reply channel_action(const std::string& method, const std::string& id, const std::string& action,
                       const std::map<std::string, std::string>& query);
  Reply bridge_request(const std::string& method, const std::vector<std::string>& path,
                       const std::map<std::string, std::string>& query);

  std::string channels_json() const {
    std::string out = "[";
    bool first = true;
    for (const auto& [serial, c] : channels_in_order) {
      if (!first) out += ',';
      first = false;
      put_channel(out, *c);
    }
    out += ']';
    return out;
  }

  // GET /ari/applications/{app} finds it while a WebSocket for it is open (taken over or
  // not), or while channels are in it (ari-app-replaced: 200 after the second WebSocket left).
  bool application_exists(const std::string& name) const;

  std::string application_json(const std::string& name) const {
    std::string out = "{\"name\":";
    append_string(out, name);
    out += ",\"channel_ids\":[";
    bool first = true;
    for (const auto& [serial, c] : channels_in_order) {
      if (c->app != name || !c->subscribed) continue;
      if (!first) out += ',';
      first = false;
      append_string(out, c->id);
    }
    out += "],\"bridge_ids\":[],\"endpoint_ids\":[],\"device_names\":[],\"events_allowed\":";
    const auto filter = filters.find(name);
    out += filter == filters.end() ? "[]" : filter->second.allowed_json;
    out += ",\"events_disallowed\":";
    out += filter == filters.end() ? "[]" : filter->second.disallowed_json;
    out += '}';
    return out;
  }

  std::string stats_json_now() const {
    std::string out = "{\"channels\":" + std::to_string(channels.size()) +
                      ",\"bridges\":" + std::to_string(bridges.size()) +
                      ",\"playbacks\":" + std::to_string(playbacks.size()) + ",\"websockets\":";
    std::size_t ws = replaced.size();
    for (const auto& [name, sessions] : apps) ws += sessions.size();
    out += std::to_string(ws) + ",\"requests\":{";
    bool first = true;
    for (const auto& [key, count] : requests) {
      if (!first) out += ',';
      first = false;
      append_string(out, key);
      out += ':' + std::to_string(count);
    }
    out += "}}";
    return out;
  }

  // --- connections ------------------------------------------------------------------------

  void accept();
  void register_ws(const std::shared_ptr<WsSession>& s);
  void unregister_ws(const std::shared_ptr<WsSession>& s);
  void drop_all();
};

// One WebSocket of an app. Beast does the handshake; after it the session writes the
// frames itself, every frame queued meanwhile in one write (a busy fake sends tens of
// thousands of events a second), and reads the client's frames only to answer a ping
// and a close.
struct WsSession : std::enable_shared_from_this<WsSession> {
  WsSession(Server& server, beast::tcp_stream stream, std::string app_name)
      : impl(server), ws(std::move(stream)), socket(server.io), app(std::move(app_name)) {}

  Server& impl;
  websocket::stream<beast::tcp_stream> ws;  // the handshake only
  tcp::socket socket;
  std::string app;
  std::string pending;   // frames not yet written
  std::string inflight;  // frames being written
  std::string input;     // the client's bytes not yet parsed
  std::array<char, 4096> read_buffer{};
  bool writing = false;
  bool open = false;
  bool dropping = false;
  bool holding = false;  // frames queue without a write while a RESTRequest is handled

  void start(http::request<http::string_body> req) {
    ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.erase(http::field::server);
    }));
    auto self = shared_from_this();
    ws.async_accept(req, [self](const beast::error_code& ec) {
      if (ec) return;
      self->socket = self->ws.next_layer().release_socket();
      self->open = true;
      self->impl.register_ws(self);
      self->read();
    });
  }

  static void append_frame(std::string& out, unsigned char opcode, std::string_view payload) {
    out += static_cast<char>(0x80 | opcode);
    const std::size_t n = payload.size();
    if (n < 126) {
      out += static_cast<char>(n);
    } else if (n < 65536) {
      out += static_cast<char>(126);
      out += static_cast<char>((n >> 8) & 0xFF);
      out += static_cast<char>(n & 0xFF);
    } else {
      out += static_cast<char>(127);
      for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFF);
    }
    out += payload;
  }

  void send(std::string_view frame) { queue_frame(0x1, frame); }

  void queue_frame(unsigned char opcode, std::string_view payload) {
    if (!open || dropping) return;
    append_frame(pending, opcode, payload);
    if (!writing && !holding) write_pending();
  }

  void write_pending() {
    if (pending.empty() || !open) {
      writing = false;
      if (dropping) drop_now();
      return;
    }
    writing = true;
    inflight.clear();
    inflight.swap(pending);
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(inflight), [self](const beast::error_code& ec, std::size_t) {
      if (ec) {
        self->writing = false;
        self->close();
        return;
      }
      self->write_pending();
    });
  }

  void read() {
    auto self = shared_from_this();
    socket.async_read_some(asio::buffer(read_buffer), [self](const beast::error_code& ec, std::size_t n) {
      if (ec || !self->open) {
        self->close();
        return;
      }
      self->input.append(self->read_buffer.data(), n);
      if (self->parse_input()) self->read();
    });
  }

  // The client's frames are masked (RFC 6455 5.3). Returns false once closed.
  bool parse_input() {
    while (input.size() >= 2) {
      const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(input[i]); };
      const unsigned char opcode = byte(0) & 0x0F;
      std::size_t length = byte(1) & 0x7F;
      std::size_t at = 2;
      if (length == 126) {
        if (input.size() < 4) return true;
        length = (std::size_t{byte(2)} << 8) | byte(3);
        at = 4;
      } else if (length == 127) {
        if (input.size() < 10) return true;
        length = 0;
        for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | byte(i);
        at = 10;
      }
      const bool masked = (byte(1) & 0x80) != 0;
      const std::size_t mask_at = at;
      if (masked) at += 4;
      if (input.size() < at + length) return true;
      std::string payload = input.substr(at, length);
      if (masked) {
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= input[mask_at + (i % 4)];
      }
      input.erase(0, at + length);
      if (opcode == 0x8) {  // close: answer it, then close the socket
        queue_frame(0x8, payload.substr(0, std::min<std::size_t>(payload.size(), 2)));
        dropping = true;
        if (!writing) drop_now();
        return false;
      }
      if (opcode == 0x9) queue_frame(0xA, payload);  // ping -> pong
      if (opcode == 0x1) {
        // Asterisk sends the reply before the events the request caused (a DELETE's
        // ChannelHangupRequest...: ari-rest-websocket): those are held and go after it.
        const std::size_t held_from = pending.size();
        holding = true;
        const std::string reply = impl.handle_ws_request(payload, app);
        holding = false;
        if (!open) return false;
        if (!dropping && impl.event_allowed(app, "RESTResponse")) {  // the app's eventFilter applies
          impl.count(impl.events_sent, "RESTResponse");
          std::string framed;
          append_frame(framed, 0x1, reply);
          pending.insert(std::min(held_from, pending.size()), framed);
        } else {
          impl.count(impl.events_filtered, "RESTResponse");
        }
        if (!writing) write_pending();
      }
    }
    return true;
  }

  // /fake/drop: a text frame header announcing 200 bytes, 12 of them, then the TCP close.
  void drop() {
    if (!open) return;
    dropping = true;
    pending.clear();
    pending.append(reinterpret_cast<const char*>(kPartial), sizeof kPartial);
    if (!writing) drop_now();
  }
  // Writes what is pending (the partial frame, or the answer to a close), then closes.
  void drop_now() {
    beast::error_code ec;
    if (!pending.empty()) asio::write(socket, asio::buffer(pending), ec);
    pending.clear();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    close();
  }
  static constexpr unsigned char kPartial[] = {0x81, 126, 0x00, 200, '{', '"', 't', 'y', 'p', 'e', '"', ':', '"', 'C', 'h', 'a'};

  void close() {
    if (!open) return;
    open = false;
    pending.clear();
    beast::error_code ec;
    socket.close(ec);
    impl.unregister_ws(shared_from_this());
  }
};

// One HTTP connection (keep-alive supported; the recordings used Connection: close).
struct HttpSession : std::enable_shared_from_this<HttpSession> {
  HttpSession(Server& server, tcp::socket socket) : impl(server), stream(std::move(socket)) {}

  Server& impl;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::unique_ptr<http::request_parser<http::string_body>> parser;
  std::string out;

  void read() {
    parser = std::make_unique<http::request_parser<http::string_body>>();
    parser->body_limit(1 << 20);
    auto self = shared_from_this();
    http::async_read(stream, buffer, *parser, [self](const beast::error_code& ec, std::size_t) {
      if (ec) {
        beast::error_code ignored;
        self->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        return;
      }
      self->on_request(self->parser->release());
    });
  }

  void on_request(http::request<http::string_body> req) {
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (websocket::is_upgrade(req) && path == "/ari/events") {
      const std::size_t q = target.find('?');
      const auto query = Server::parse_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
      if (!impl.authorized(req, query)) {
        write(Server::error(401, "Unauthorized", "Authentication required"), false);
        return;
      }
      const auto app = query.find("app");
      if (app == query.end() || app->second.empty()) {
        write(Server::error(400, "Bad Request", "Missing param 'app'"), false);
        return;
      }
      ++impl.requests["GET /ari/events"];
      auto session = std::make_shared<WsSession>(impl, std::move(stream), app->second);
      session->start(std::move(req));
      return;
    }
    const bool keep_alive = req.keep_alive();
    write(impl.handle(req), keep_alive);
  }

  void write(const Server::Reply& reply, bool keep_alive) {
    out = Server::render(reply, keep_alive);
    auto self = shared_from_this();
    asio::async_write(stream, asio::buffer(out), [self, keep_alive](const beast::error_code& ec, std::size_t) {
      if (ec) return;
      if (keep_alive) {
        self->read();
      } else {
        beast::error_code ignored;
        self->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      }
    });
  }
};

void Server::send_to_app(const std::string& app, std::string_view type, const std::string& frame) {
  const auto found = apps.find(app);
  if (found == apps.end()) return;
  if (!event_allowed(app, type)) {
    count(events_filtered, type);
    return;
  }
  count(events_sent, type);
  for (const auto& session : found->second) session->send(frame);
}

void Server::send_raw_to_all(const std::string& frame, const std::string& app) {
  for (const auto& [name, sessions] : apps) {
    if (!app.empty() && name != app) continue;
    for (const auto& session : sessions) session->send(frame);
  }
}

bool Server::application_exists(const std::string& name) const {
  if (apps.count(name) != 0) return true;
  for (const auto& s : replaced) {
    if (s->app == name) return true;
  }
  for (const auto& [id, c] : channels) {
    if (c->app == name && c->subscribed) return true;
  }
  return false;
}

void Server::register_ws(const std::shared_ptr<WsSession>& s) {
  auto& sessions = apps[s->app];
  for (auto& old : sessions) {
    std::string frame = "{\"type\":\"ApplicationReplaced\",\"timestamp\":\"" + ari_time(std::chrono::system_clock::now()) +
                        "\",\"application\":";
    append_string(frame, s->app);
    frame += ",\"asterisk_id\":\"" + std::string(kAsteriskId) + "\"}";
    old->send(std::move(frame));
    replaced.push_back(std::move(old));
  }
  sessions.assign({s});
  publish_counts();
}

void Server::unregister_ws(const std::shared_ptr<WsSession>& s) {
  if (const auto r = std::find(replaced.begin(), replaced.end(), s); r != replaced.end()) {
    replaced.erase(r);
    publish_counts();
    return;
  }
  const auto found = apps.find(s->app);
  if (found == apps.end()) return;
  auto& sessions = found->second;
  sessions.erase(std::remove(sessions.begin(), sessions.end(), s), sessions.end());
  if (sessions.empty()) apps.erase(found);
  publish_counts();
}

void Server::drop_all() {
  std::vector<std::shared_ptr<WsSession>> all;
  for (const auto& [name, sessions] : apps) all.insert(all.end(), sessions.begin(), sessions.end());
  all.insert(all.end(), replaced.begin(), replaced.end());
  for (const auto& s : all) s->drop();
}

void Server::accept() {
  acceptor.async_accept([this](const beast::error_code& ec, tcp::socket socket) {
    if (ec) return;
    socket.set_option(tcp::no_delay(true));
    std::make_shared<HttpSession>(*this, std::move(socket))->read();
    accept();
  });
}

Server::Reply Server::handle(const http::request<http::string_body>& req) {
  const std::string_view target = req.target();
  const std::size_t q = target.find('?');
  const std::string path(target.substr(0, q));
  const auto query = parse_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
  const std::string method(req.method_string());
  if (path.rfind("/fake/", 0) == 0) {
    ++requests[method + " " + path];
    return handle_fake(method, path, query, req.body());
  }
  if (path.rfind("/ari/", 0) != 0) return error(404, "Not Found", "Not found");
  if (!authorized(req, query)) return error(401, "Unauthorized", "Authentication required");
  std::vector<std::string> parts = split(std::string_view(path).substr(5), '/');
  for (auto& part : parts) part = url_decode(part);
  std::string key;
  Reply reply = handle_ari(method, parts, query, req.body(), key);
  ++requests[method + " /ari/" + key];
  return reply;
}

// res/ari/ari_websocket_requests.c: {"type":"RESTResponse","transaction_id":..,"request_id":..,
// "status_code":..,"reason_phrase":..,"uri":..[,"content_type","message_body"]} (the body as a
// JSON string), then "application", "timestamp" and "asterisk_id" as every event has them
// (ari-rest-websocket). The uri is echoed without its query, and only once the type passed.
std::string Server::handle_ws_request(std::string_view frame, const std::string& app) {
  boost::system::error_code ec;
  const auto parsed = boost::json::parse(frame, ec);
  const auto field = [&](std::string_view key) -> std::string {
    if (ec || !parsed.is_object()) return {};
    const auto* v = parsed.as_object().if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  const std::string transaction = field("transaction_id"), request_id = field("request_id");
  std::string uri = field("uri");
  std::string query_text;
  if (const auto q = uri.find('?'); q != std::string::npos) {
    query_text = uri.substr(q + 1);
    uri.resize(q);
  }
  Reply reply;
  bool parse_failed = false, type_ok = false;
  const std::string method = field("method"), type = field("type"), body = field("message_body");
  static const std::set<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"};
  if (ec || !parsed.is_object()) {
    parse_failed = true;
    reply = error(400, "Failed to parse request message JSON", "");
  } else if (type.empty()) {
    reply = error(400, "Bad request", "No 'type' property.");
  } else if (type != "RESTRequest") {
    reply = error(400, "Bad request", "Unknown request type.");
  } else if ((type_ok = true), uri.empty()) {
    reply = error(400, "Bad request", "Empty or missing 'uri' property.");
  } else if (kMethods.count(method) == 0) {
    reply = error(400, "Bad request", "Unknown or missing 'method' property.");
  } else if (!body.empty() && field("content_type").empty()) {
    reply = error(400, "Bad request", "No 'content_type' for 'message_body'.");
  } else if (!body.empty() && field("content_type") != "application/json") {
    reply = error(400, "Bad request", "Unknown content type.");
  } else {
    std::vector<std::string> parts = split(uri, '/');
    for (auto& part : parts) part = url_decode(part);
    std::string key;
    reply = handle_ari(method, parts, parse_query(query_text), body, key);
    ++requests[method + " /ari/" + key];
    ++ws_requests;
  }
  std::string out = "{\"type\":\"RESTResponse\",\"transaction_id\":";
  append_string(out, parse_failed ? std::string() : transaction);
  out += ",\"request_id\":";
  append_string(out, parse_failed ? std::string() : request_id);
  out += ",\"status_code\":" + std::to_string(reply.status) + ",\"reason_phrase\":";
  append_string(out, reply.reason);
  out += ",\"uri\":";
  append_string(out, type_ok ? uri : std::string());
  if (!parse_failed && !reply.body.empty()) {
    out += ",\"content_type\":\"application/json\",\"message_body\":";
    append_string(out, reply.body);
  }
  out += ",\"application\":";
  append_string(out, app);
  out += ",\"timestamp\":\"" + ari_time(std::chrono::system_clock::now()) + "\",\"asterisk_id\":\"";
  out += kAsteriskId;
  out += "\"}";
  return out;
}

Server::Reply Server::handle_fake(const std::string& method, const std::string& path,
                                  const std::map<std::string, std::string>& query, const std::string& body) {
  auto get = [&](const char* name, std::string fallback = {}) {
    const auto found = query.find(name);
    return found == query.end() ? fallback : found->second;
  };
  auto number = [&](const char* name, std::int64_t fallback) -> std::int64_t {
    const auto found = query.find(name);
    if (found == query.end()) return fallback;
    try {
      return std::stoll(found->second);
    } catch (const std::exception&) {
      return fallback;
    }
  };
  if (path == "/fake/stats" && method == "GET") return ok(stats_json_now());
  if (path == "/fake/drop" && method == "POST") {
    drop_all();
    return no_content();
  }
  if (path == "/fake/send" && method == "POST") {
    send_raw_to_all(body, get("app"));
    return no_content();
  }
  if (path == "/fake/hangup" && method == "POST") {
    const std::int64_t cause = number("cause", 16);
    if (cause < 0 || cause > 127) return error(400, "Bad Request", "cause: 0 to 127");
    if (!far_end_hangs_up(get("channel"), static_cast<int>(cause))) return error(404, "Not Found", "Channel not found");
    return no_content();
  }
  if (path == "/fake/inbound" && method == "POST") {
    InboundCallOptions in;
    in.from = get("from");
    in.to = get("to");
    if (in.from.empty() || in.to.empty()) return error(400, "Bad Request", "from and to are required");
    in.name = get("name");
    in.app = get("app", "callback-app");
    in.dtmf = get("dtmf");
    in.dtmf_delay_ms = number("dtmf_delay_ms", in.dtmf_delay_ms);
    in.dtmf_interval_ms = number("dtmf_interval_ms", in.dtmf_interval_ms);
    in.dtmf_duration_ms = number("dtmf_duration_ms", in.dtmf_duration_ms);
    in.hangup_after_ms = number("hangup_after_ms", in.hangup_after_ms);
    in.give_up_ms = number("give_up_ms", in.give_up_ms);
    const std::string id = start_inbound(in);
    if (id.empty()) return error(409, "Conflict", "Stasis app not registered");
    std::string reply = "{\"id\":";
    append_string(reply, id);
    reply += '}';
    return ok(reply);
  }
  return error(404, "Not Found", "Not found");
}

Server::Reply Server::handle_ari(const std::string& method, const std::vector<std::string>& path,
                                               const std::map<std::string, std::string>& query,
                                               const std::string& body, std::string& key) {
  const std::size_t n = path.size();
  const std::string& resource = path[0];
  key = resource;
  if (resource == "asterisk" && n == 2 && method == "GET") {
    key += "/" + path[1];
    if (path[1] == "info") {
      return ok(
          "{\"build\":{\"os\":\"Linux\",\"kernel\":\"6.18.44-fc-v669\",\"machine\":\"x86_64\",\"options\":"
          "\"OPTIONAL_API\",\"date\":\"2026-11-26 05:43:34 UTC\",\"user\":\"root\"},\"system\":{\"version\":"
          "\"23.4.1\",\"entity_id\":\"02:fc:00:00:00:01\"},\"config\":{\"name\":\"\",\"default_language\":\"en\","
          "\"setid\":{\"user\":\"\",\"group\":\"\"}},\"status\":{\"startup_time\":\"" +
          ari_time(std::chrono::system_clock::from_time_t(epoch)) + "\",\"last_reload_time\":\"" +
          ari_time(std::chrono::system_clock::from_time_t(epoch)) + "\"}}");
    }
    if (path[1] == "variable") {  // a global; functions are not read here (ari-leg-end-record)
      const auto name = query.find("variable");
      if (name == query.end() || name->second.empty()) return error(400, "Bad Request", "Variable name is required");
      const auto found = globals.find(name->second);
      std::string out = "{\"value\":";
      append_string(out, found == globals.end() ? std::string() : found->second);
      return ok(out + "}");
    }
    if (path[1] == "ping") {
      return ok("{\"ping\":\"pong\",\"timestamp\":\"" + ari_time(std::chrono::system_clock::now()) +
                "\",\"asterisk_id\":\"02:fc:00:00:00:01\"}");
    }
  }
  if (resource == "applications" && n == 3 && path[2] == "subscription" && (method == "POST" || method == "DELETE")) {
    // ari-inbound-reject-subscribed; messages of res/ari/resource_applications.c.
    key += "/{app}/subscription";
    const auto source = query.find("eventSource");
    if (source == query.end() || source->second.empty()) {
      return error(400, "Bad Request", "Missing parameter eventSource");
    }
    if (apps.count(path[1]) == 0) return error(404, "Not Found", "Application not found");
    for (const auto& item : split(source->second, ',')) {
      if (item.rfind("channel:", 0) != 0) return error(400, "Bad Request", "Invalid event source URI scheme");
      const ChannelPtr c = find(item.substr(8));
      if (!c) return error(422, "Unprocessable Entity", "Event source does not exist");
      c->subscribed = method == "POST";
      // One application per channel here: the channel of an application that went (its
      // WebSocket closed) is the subscriber's from now on (ari-takeover-move).
      if (method == "POST" && !app_registered(c->app)) c->app = path[1];
    }
    return ok(application_json(path[1]));
  }
  if (resource == "applications" && n == 3 && path[2] == "eventFilter" && method == "PUT") {
    key += "/{app}/eventFilter";
    if (apps.count(path[1]) == 0) return error(404, "Not Found", "Application not found");
    if (!set_event_filter(path[1], body)) return error(400, "Bad Request", "Invalid format definition");
    return ok(application_json(path[1]));
  }
  if (resource == "applications" && method == "GET") {
    if (n == 1) {
      std::string out = "[";
      bool first = true;
      for (const auto& [name, sessions] : apps) {
        if (!first) out += ',';
        first = false;
        out += application_json(name);
      }
      return ok(out + "]");
    }
    if (n == 2) {
      key += "/{app}";
      if (!application_exists(path[1])) return error(404, "Not Found", "Application not found");
      return ok(application_json(path[1]));
    }
  }
  if (resource == "channels") {
    if (n == 1 && method == "GET") return ok(channels_json());
    if (n == 1 && method == "POST") return originate(query, body, false);
    if (n == 2 && path[1] == "create" && method == "POST") {
      key += "/create";
      return originate(query, body, true);
    }
    if (n >= 2) {
      key += "/{id}";
      std::string action;
      if (n == 3) {
        action = path[2];
        key += "/" + action;
      }
      if (n <= 3) return channel_action(method, path[1], action, query);
    }
  }
  if (resource == "bridges") {
    if (n >= 2) key += "/{id}";
    if (n == 3) key += "/" + path[2];
    return bridge_request(method, path, query);
  }
  if (resource == "playbacks" && n == 2) {
    key += "/{id}";
    const auto found = playbacks.find(path[1]);
    if (method == "GET") {
      if (found == playbacks.end()) return error(404, "Not Found", "Playback not found");
      std::string out;
      put_playback(out, *found->second);
      return ok(out);
    }
    if (method == "DELETE") {
      if (found == playbacks.end()) return error(404, "Not Found", "Playback not found");
      finish_playback(path[1], "done");
      return no_content();
    }
  }
  return error(404, "Not Found", "Not found");
}

// POST /channels and POST /channels/create (ari-bridge-answered, ari-create-dial-*).
Server::Reply Server::originate(const std::map<std::string, std::string>& query,
                                              const std::string& body, bool create) {
  auto get = [&](const char* name) {
    const auto found = query.find(name);
    return found == query.end() ? std::string() : found->second;
  };
  // ari-errors: the order of the checks and their replies.
  const std::string endpoint = get("endpoint");
  if (endpoint.empty()) return error(400, "Bad Request", "Endpoint must be specified");
  const std::size_t slash = endpoint.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == endpoint.size()) {
    return error(400, "Bad Request", "Invalid endpoint specified");
  }
  const std::string app = get("app");
  const bool dialplan = app.empty() && !get("extension").empty();
  if (app.empty() && !dialplan) {
    return error(400, "Bad Request", create ? "app is required" : "Application or extension must be specified");
  }
  // Only Local channels exist here (no SIP): any other technology cannot be allocated.
  if (endpoint.substr(0, slash) != "Local") {
    Reply r = error(500, "Internal Server Error", "");
    r.body = "{\"error\":\"Allocation failed\"}";
    return r;
  }
  // Local/<number>@<context>; only [phones] has extensions.
  const std::size_t at = endpoint.find('@');
  const std::string number = endpoint.substr(slash + 1, at == std::string::npos ? std::string::npos : at - slash - 1);
  const std::string phone_context = at == std::string::npos ? "default" : endpoint.substr(at + 1);
  std::map<std::string, std::string> variables;
  if (!body.empty()) {
    boost::system::error_code ec;
    const boost::json::value parsed = boost::json::parse(body, ec);
    if (ec || !parsed.is_object()) return error(400, "Bad Request", "Error parsing request body");
    if (const auto* vars = parsed.as_object().if_contains("variables")) {
      if (!vars->is_object()) return error(400, "Bad Request", "The 'variables' field must be a JSON object");
      for (const auto& [name, value] : vars->as_object()) {
        if (!value.is_string()) {
          return error(400, "Bad Request",
                       "Each value in 'variables' must be a string or an object with 'value' and optional "
                       "'report_events'");
        }
        variables[std::string(name)] = std::string(value.as_string());
      }
    }
  }
  std::string id1 = get("channelId");
  std::string id2 = get("otherChannelId");
  if ((!id1.empty() && channels.count(id1)) || (!id2.empty() && channels.count(id2))) {
    return error(409, "Conflict", "Channel with given unique ID already exists");
  }
  int timeout = 30;
  if (const std::string t = get("timeout"); !t.empty()) {
    try {
      timeout = std::stoi(t);
    } catch (const std::exception&) {
      return error(400, "Bad Request", "timeout: not an integer");
    }
  }
  // callerId: "Name" <number>, Name <number>, or a bare number.
  std::string cid_name, cid_number;
  if (const std::string cid = get("callerId"); !cid.empty()) {
    const std::size_t lt = cid.rfind('<');
    const std::size_t gt = cid.rfind('>');
    if (lt != std::string::npos && gt != std::string::npos && gt > lt) {
      cid_number = cid.substr(lt + 1, gt - lt - 1);
      cid_name = cid.substr(0, lt);
      while (!cid_name.empty() && cid_name.back() == ' ') cid_name.pop_back();
      if (cid_name.size() >= 2 && cid_name.front() == '"' && cid_name.back() == '"') {
        cid_name = cid_name.substr(1, cid_name.size() - 2);
      }
    } else {
      cid_number = cid;
    }
  }
  auto call = std::make_shared<Call>(io);
  calls.emplace(call.get(), call);
  call->number = number;
  call->phone = phone_context == "phones" ? classify(number) : PhoneInfo{};
  call->timeout_seconds = timeout;
  call->caller_id_given = !get("callerId").empty();
  char counter[16];
  std::snprintf(counter, sizeof counter, "%08x", next_local++);
  const std::string base = "Local/" + number + "@" + phone_context + "-" + counter;
  if (id1.empty()) id1 = new_uniqueid();
  if (id2.empty()) id2 = new_uniqueid();
  auto one = new_channel(id1, base + ";1");
  auto two = new_channel(id2, base + ";2");
  for (const ChannelPtr& c : {one, two}) {
    c->call = call;
    c->caller_name = cid_name;
    c->caller_number = cid_number;
    c->connected_name = cid_name;
    c->connected_number = cid_number;
    c->context = phone_context;
    c->exten = number;
    c->app = app;
    c->app_args = get("appArgs");
    c->variables = variables;
  }
  one->half = 1;
  two->half = 2;
  two->state = "Ring";
  one->state = "Down";
  call->one = one;
  call->two = two;
  std::string response;
  if (create) {
    // ari-create-dial-*: only ;1 is subscribed; it enters Stasis at once, in state Down.
    one->created = true;
    one->subscribed = true;
    put_channel(response, *one);
    if (!app_registered(app)) {
      one->subscribed = false;
      destroy(*two, 16);
      destroy(*one, 16);
      publish_counts();
      return ok(response);
    }
    ev_dialplan(*one, 1, "Stasis", app + (one->app_args.empty() ? "" : "," + one->app_args));
    enter_stasis(*one);
  } else {
    // ari-bridge-answered: both halves are subscribed; AppDial2 runs the ;1 dial. Into the
    // dialplan (extension=, no app; ari-errors), the app is subscribed to neither and the
    // answered ;1 runs that extension, never in Stasis.
    one->subscribed = two->subscribed = !dialplan;
    call->dialplan = dialplan;
    one->app_name = "AppDial2";
    one->app_data = "(Outgoing Line)";
    put_channel(response, *one);
    // The events of t = 0 go out before the 200, as in ari-a-noanswer.timeline.jsonl.
    start_phone(call);
  }
  publish_counts();
  return ok(response);
}

Server::Reply Server::channel_action(const std::string& method, const std::string& id,
                                                   const std::string& action,
                                                   const std::map<std::string, std::string>& query) {
  auto get = [&](const char* name) {
    const auto found = query.find(name);
    return found == query.end() ? std::string() : found->second;
  };
  ChannelPtr c = find(id);
  if (action.empty()) {
    if (method == "GET") {
      if (!c) return error(404, "Not Found", "Channel not found");
      std::string out;
      put_channel(out, *c);
      return ok(out);
    }
    if (method == "DELETE") {
      if (!c) return error(404, "Not Found", "Channel not found");
      const std::string reason = get("reason");
      const std::string reason_code = get("reason_code");
      if (!reason.empty() && !reason_code.empty()) {
        return error(400, "Bad Request", "The reason and reason_code can't both be specified");
      }
      int cause = 16;
      if (!reason_code.empty()) {
        try {
          cause = std::stoi(reason_code);
        } catch (const std::exception&) {
          return error(400, "Invalid Reason Code", "Invalid reason for hangup reason code provided");
        }
      } else if (!reason.empty()) {
        cause = reason_to_cause(reason);
        if (cause < 0) return error(400, "Invalid Reason", "Invalid reason for hangup reason provided");
      }
      app_hangup(c, cause);
      return no_content();
    }
    return error(405, "Method Not Allowed", "Invalid method");
  }
  if (action == "variable" && method == "GET") {
    const std::string variable = get("variable");
    if (variable.empty()) return error(400, "Bad Request", "Variable name is required");
    if (!c) return error(404, "Channel Not Found", "Provided channel was not found");
    std::string value;
    if (variable.rfind("DB(", 0) == 0 || variable.rfind("DB_DELETE(", 0) == 0) {
      // Escalating functions: "Dangerous function DB read blocked" in the log (ari-leg-end-record).
      return error(500, "Error With Function", "Unable to read provided function");
    }
    if (variable == "CHANNEL(state)") {
      value = c->state;
    } else if (variable == "CHANNEL(name)") {
      value = c->name;
    } else if (variable == "CHANNEL(language)") {
      value = c->language;
    } else if (variable == "BRIDGEPEER") {
      value = c->bridgepeer;
    } else if (variable == "STASISSTATUS") {
      value = "";
    } else {
      const auto found = c->variables.find(variable);
      if (found == c->variables.end()) return error(404, "Variable Not Found", "Provided variable was not found");
      value = found->second;
    }
    std::string out = "{\"value\":";
    append_string(out, value);
    return ok(out + "}");
  }
  if (method != "POST") return error(405, "Method Not Allowed", "Invalid method");
  // find_control(): 404 for no channel, 409 for a channel outside Stasis.
  if (!c) return error(404, "Not Found", "Channel not found");
  if (!c->in_stasis) return error(409, "Conflict", "Channel not in Stasis application");
  if (action == "answer") {
    if (c->state != "Up") {
      ev_state(*c, "Up");
      const auto call = c->call.lock();
      if (call && call->inbound) inbound_answered(call);
    }
    return no_content();
  }
  if (action == "ring") {
    // ari-inbound-ring-reject: the caller hears ringing; the channel itself stays Ring.
    return no_content();
  }
  if (action == "move") {
    // ari-takeover-move: a channel left in the application of a client that went (its
    // WebSocket closed) moves into another; it stays in its bridge. The old application
    // gets StasisEnd (dropped: nobody reads it), the new one StasisStart with the args,
    // and then only what a channel in Stasis gets: its ChannelDestroyed goes to the app
    // that placed it, unless the new one subscribes to it. A channel not in Stasis yet
    // (ringing) is 409, above (ari-takeover-ringing).
    const std::string app = get("app");
    if (app.empty()) return error(400, "Bad Request", "app: required");
    if (!app_registered(app)) {
      // res_stasis: "Could not move to Stasis app '...' - not registered"; the channel stays.
      return no_content();
    }
    if (app == c->app) return no_content();
    emit(*c, "StasisEnd");
    c->app = app;
    c->app_args = get("appArgs");
    c->subscribed = false;
    c->app_data = c->app + (c->app_args.empty() ? "" : "," + c->app_args);
    emit(*c, "StasisStart", {}, stasis_args(*c));
    if (!c->bridge_id.empty()) {
      if (auto b = bridges.find(c->bridge_id); b != bridges.end() && !app_registered(b->second.app)) b->second.app = app;
    }
    return no_content();
  }
  if (action == "dial") {
    if (!c->created) return error(409, "Conflict", "Dialing a channel not created by ARI");
    if (c->state != "Down") return error(409, "Conflict", "Channel is not in the 'Down' state");
    const auto call = c->call.lock();
    if (!call || !call->two || !call->two->alive) return error(409, "Conflict", "Channel is not in the 'Down' state");
    int timeout = 0;
    if (const std::string t = get("timeout"); !t.empty()) {
      try {
        timeout = std::stoi(t);
      } catch (const std::exception&) {
        return error(400, "Bad Request", "timeout: not an integer");
      }
    }
    call->timeout_seconds = timeout;
    // ari-create-dial-*: the Dial events arrive after the 204.
    asio::post(io, [this, call] {
      if (call->one->alive && call->two->alive) start_phone(call);
    });
    return no_content();
  }
  if (action == "play") {
    const std::string media = get("media");
    if (media.empty()) return error(400, "Bad Request", "media: required");
    auto p = std::make_unique<Playback>();
    p->id = get("playbackId");
    if (p->id.empty()) p->id = new_uuid();
    if (playbacks.count(p->id)) return error(409, "Conflict", "Playback with given ID already exists");
    p->media = split(media, ',');
    p->target = "channel:" + c->id;
    p->channel_id = c->id;
    p->language = get("lang").empty() ? c->language : get("lang");
    p->app = c->app;
    p->timer = std::make_unique<asio::steady_timer>(io);
    if (c->bridge_id.empty() && c->left_bridge && options.bridge_play_delay_ms > 0 &&
        std::chrono::steady_clock::now() - *c->left_bridge < std::chrono::milliseconds(options.bridge_play_delay_ms)) {
      // Just out of a bridge that is going: Asterisk still hands the play to the departed
      // bridge channel, answers 201 and never starts it (a loaded Asterisk, even after the
      // ChannelLeftBridge; tests/README.md). No PlaybackStarted, no PlaybackFinished.
      Reply r;
      r.status = 201;
      r.reason = "Created";
      put_playback(r.body, *p);
      r.extra_headers = "Location: /ari/playbacks/" + p->id + "\r\n";
      return r;
    }
    c->playback_queue.push_back(p->id);
    const std::string pid = p->id;
    if (c->playback_queue.size() == 1) {
      if (!c->bridge_id.empty() && options.bridge_play_delay_ms > 0) {
        // Queued behind the bridge channel first (ari-play-bridge-destroyed).
        p->bridge_id = c->bridge_id;
        p->timer->expires_after(std::chrono::milliseconds(options.bridge_play_delay_ms));
        p->timer->async_wait([this, pid](const boost::system::error_code& ec) {
          if (!ec && playbacks.count(pid) != 0) start_playback(pid);
        });
      } else {
        asio::post(io, [this, pid] { start_playback(pid); });
      }
    }
    Reply r;
    r.status = 201;
    r.reason = "Created";
    put_playback(r.body, *p);
    r.extra_headers = "Location: /ari/playbacks/" + p->id + "\r\n";
    playbacks.emplace(pid, std::move(p));
    publish_counts();
    return r;
  }
  return error(404, "Not Found", "Not found");
}

Server::Reply Server::bridge_request(const std::string& method, const std::vector<std::string>& path,
                                                   const std::map<std::string, std::string>& query) {
  auto get = [&](const char* name) {
    const auto found = query.find(name);
    return found == query.end() ? std::string() : found->second;
  };
  const std::size_t n = path.size();
  // POST bridges?bridgeId=X, or POST bridges/X (ast_ari_bridges_create_with_id: 409 for an
  // id in use; ari-rest-websocket creates its bridge so).
  if ((n == 1 || (n == 2 && bridges.count(path[1]) == 0)) && method == "POST") {
    Bridge b;
    b.id = n == 2 ? path[1] : get("bridgeId");
    if (b.id.empty()) b.id = new_uuid();
    if (bridges.count(b.id)) return error(409, "Conflict", "Bridge with id already exists");
    b.name = get("name");
    b.creationtime = ari_time(std::chrono::system_clock::now());
    std::string out;
    put_bridge(out, b);
    bridges.emplace(b.id, std::move(b));
    publish_counts();
    return ok(out);
  }
  if (n == 1 && method == "GET") {
    std::string out = "[";
    bool first = true;
    for (const auto& [id, b] : bridges) {
      if (!first) out += ',';
      first = false;
      put_bridge(out, b);
    }
    return ok(out + "]");
  }
  if (n < 2) return error(404, "Not Found", "Not found");
  const auto found = bridges.find(path[1]);
  // find_bridge() of resource_bridges.c: "Not found" with a small f.
  if (found == bridges.end()) return error(404, "Not found", "Bridge not found");
  Bridge& b = found->second;
  if (n == 2 && method == "POST") return error(409, "Conflict", "Bridge with id '" + path[1] + "' already exists");
  if (n == 2 && method == "GET") {
    std::string out;
    put_bridge(out, b);
    return ok(out);
  }
  if (n == 2 && method == "DELETE") {
    destroy_bridge(b.id);
    return no_content();
  }
  if (n == 3 && method == "POST" && (path[2] == "addChannel" || path[2] == "removeChannel")) {
    std::vector<ChannelPtr> members;
    for (const auto& id : split(get("channel"), ',')) {
      if (id.empty()) continue;
      ChannelPtr c = find(id);
      if (!c) return error(400, "Bad Request", "Channel not found");
      if (!c->in_stasis) return error(422, "Unprocessable Entity", "Channel not in Stasis application");
      members.push_back(c);
    }
    if (members.empty()) return error(400, "Bad Request", "Missing parameter channel");
    if (path[2] == "addChannel") {
      for (const auto& c : members) enter_bridge(b, *c);
    } else {
      for (const auto& c : members) {
        if (c->bridge_id != b.id) return error(422, "Unprocessable Entity", "Channel not in this bridge");
      }
      for (const auto& c : members) leave_bridge(*c, false);
    }
    return no_content();
  }
  return error(404, "Not Found", "Not found");
}

}  // namespace

struct FakeAri::Impl : Server {
  using Server::Server;
};

FakeAri::FakeAri(FakeAriOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

FakeAri::~FakeAri() { stop(); }

void FakeAri::start() {
  auto& impl = *impl_;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), impl.options.port);
  impl.acceptor.open(endpoint.protocol());
  impl.acceptor.set_option(asio::socket_base::reuse_address(true));
  impl.acceptor.bind(endpoint);
  impl.acceptor.listen(asio::socket_base::max_listen_connections);
  port_ = impl.acceptor.local_endpoint().port();
  impl.accept();
  impl.thread = std::thread([&impl] { impl.io.run(); });
}

void FakeAri::stop() {
  auto& impl = *impl_;
  if (!impl.thread.joinable()) return;
  asio::post(impl.io, [&impl] {
    beast::error_code ec;
    impl.acceptor.close(ec);
    std::vector<std::shared_ptr<WsSession>> all;
    for (const auto& [name, sessions] : impl.apps) all.insert(all.end(), sessions.begin(), sessions.end());
    for (const auto& s : all) s->close();
    impl.io.stop();
  });
  impl.thread.join();
}

FakeAriStats FakeAri::stats() const {
  return impl_->on_io([this] {
    FakeAriStats s;
    s.channels = impl_->channels.size();
    s.bridges = impl_->bridges.size();
    s.playbacks = impl_->playbacks.size();
    for (const auto& [name, sessions] : impl_->apps) s.websockets += sessions.size();
    s.requests = impl_->requests;
    s.rest_over_websocket = impl_->ws_requests;
    s.events_sent.insert(impl_->events_sent.begin(), impl_->events_sent.end());
    s.events_filtered.insert(impl_->events_filtered.begin(), impl_->events_filtered.end());
    s.globals = impl_->globals;
    return s;
  });
}

std::string FakeAri::stats_json() const {
  return impl_->on_io([this] { return impl_->stats_json_now(); });
}

bool FakeAri::wait_for_websockets(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->websockets_open == n; });
}

bool FakeAri::wait_for_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->live_objects == 0; });
}

std::string FakeAri::inbound(const InboundCallOptions& options) {
  return impl_->on_io([this, &options] { return impl_->start_inbound(options); });
}

void FakeAri::drop_websockets() {
  impl_->on_io([this] { impl_->drop_all(); });
}

void FakeAri::send_raw(const std::string& frame) {
  impl_->on_io([this, &frame] { impl_->send_raw_to_all(frame, {}); });
}

bool FakeAri::hang_up(const std::string& channel_id, int cause) {
  return impl_->on_io([this, &channel_id, cause] { return impl_->far_end_hangs_up(channel_id, cause); });
}

}  // namespace callback::fake
