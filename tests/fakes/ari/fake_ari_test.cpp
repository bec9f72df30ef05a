// Tests of the fake ARI: each recorded scenario (tests/fixtures/asterisk/ari-*.timeline.jsonl)
// is replayed against the fake, the same REST calls at the same points of the event
// stream, and its replies and events are compared with the recording field by field: the
// events of each channel half in order, every key in order, every value except the ones
// that must differ (ids, timestamps, the Local channel counter, bridge ids).
#include "fake_ari.hpp"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

const std::string kRecordings = CALLBACK_ASTERISK_RECORDINGS;
const std::string kAuth = "Authorization: Basic Y2FsbGJhY2s6Y2FsbGJhY2tzZWNyZXQ=\r\n";  // callback:callbacksecret

std::vector<json::value> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<json::value> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

// --- clients ---------------------------------------------------------------------------

struct HttpReply {
  int status = 0;
  std::vector<std::string> header_names;  // in order
  std::map<std::string, std::string> headers;
  std::string body;
};

HttpReply parse_reply(const std::string& raw) {
  HttpReply r;
  const std::size_t end = raw.find("\r\n\r\n");
  const std::string head = raw.substr(0, end);
  r.body = end == std::string::npos ? std::string() : raw.substr(end + 4);
  std::size_t pos = head.find("\r\n");
  r.status = std::stoi(head.substr(9, 3));
  while (pos != std::string::npos && pos < head.size()) {
    const std::size_t next = head.find("\r\n", pos + 2);
    const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
      r.header_names.push_back(line.substr(0, colon));
      r.headers[line.substr(0, colon)] = line.substr(colon + 2);
    }
    pos = next;
  }
  return r;
}

// One request on a new connection (the recordings' `Connection: close`), raw bytes back.
std::string raw_request(std::uint16_t port, const std::string& request) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(socket, asio::buffer(request));
  std::string out;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(out), ec);
  return out;
}

HttpReply call(std::uint16_t port, const std::string& method, const std::string& target, const std::string& body = {}) {
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + kAuth;
  if (method != "GET" && method != "DELETE") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "Connection: close\r\n\r\n" + body;
  return parse_reply(raw_request(port, request));
}

// The event WebSocket: frames collected on its own thread.
class EventClient {
 public:
  EventClient(std::uint16_t port, const std::string& app = "callback-app") : ws_(io_) {
    tcp::resolver resolver(io_);
    asio::connect(ws_.next_layer(), resolver.resolve("127.0.0.1", std::to_string(port)));
    ws_.handshake("127.0.0.1", "/ari/events?app=" + app + "&api_key=callback:callbacksecret");
    read();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EventClient() {
    asio::post(io_, [this] {
      boost::system::error_code ec;
      ws_.next_layer().close(ec);
    });
    thread_.join();
  }

  std::vector<json::value> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  bool wait_for_frame(const std::string& frame, std::chrono::milliseconds timeout = 10s) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return std::find(frames_.begin(), frames_.end(), frame) != frames_.end(); });
  }
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout = 10s) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
  }
  // Waits for an event that matches; returns it (null if none came).
  json::value wait_for(const std::function<bool(const json::object&)>& match, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    json::value found;
    changed_.wait_for(lock, timeout, [&] {
      for (const auto& e : events_) {
        if (match(e.as_object())) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  // One text frame to the server (a RESTRequest); returns once it is written.
  void send(const std::string& text) {
    std::promise<beast::error_code> done;
    asio::post(io_, [&] {
      ws_.text(true);
      ws_.async_write(asio::buffer(text), [&](const beast::error_code& ec, std::size_t) { done.set_value(ec); });
    });
    EXPECT_FALSE(done.get_future().get());
  }
  // A clean close: our close frame, the server's answer. Returns the close's error.
  beast::error_code close() {
    std::promise<beast::error_code> done;
    asio::post(io_, [&] { ws_.async_close(beast::websocket::close_code::normal, [&](const beast::error_code& ec) { done.set_value(ec); }); });
    return done.get_future().get();
  }
  bool wait_for_error(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return error_.has_value(); });
  }
  std::optional<beast::error_code> error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  void read() {
    ws_.async_read(buffer_, [this](const beast::error_code& ec, std::size_t) {
      std::lock_guard lock(mutex_);
      if (ec) {
        error_ = ec;
        changed_.notify_all();
        return;
      }
      frames_.push_back(beast::buffers_to_string(buffer_.data()));
      boost::system::error_code parse_error;
      json::value event = json::parse(frames_.back(), parse_error);
      if (!parse_error && event.is_object()) events_.push_back(std::move(event));
      buffer_.consume(buffer_.size());
      changed_.notify_all();
      asio::post(io_, [this] { read(); });
    });
  }

  asio::io_context io_;
  beast::websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buffer_;
  std::thread thread_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<json::value> events_;  // the frames that are JSON objects
  std::vector<std::string> frames_;  // every frame as received
  std::optional<beast::error_code> error_;
};

// --- normalising what must differ --------------------------------------------------------

const std::regex kLocalCounter("(Local/[^@]+@[a-z-]+)-[0-9a-f]{8}(;[12])");

std::string strip_counter(const std::string& name) { return std::regex_replace(name, kLocalCounter, "$1$2"); }

// Masks ids and times, strips the Local counter from names; key order is kept.
json::value normalise(const json::value& v, const std::string& key = {}) {
  if (v.is_object()) {
    json::object out;
    for (const auto& [k, child] : v.as_object()) out[k] = normalise(child, std::string(k));
    return out;
  }
  if (v.is_array()) {
    json::array out;
    for (const auto& child : v.as_array()) {
      out.push_back((key == "channels" || key == "channel_ids") && child.is_string() ? json::value("*")
                                                                                       : normalise(child));
    }
    return out;
  }
  if (v.is_string()) {
    static const std::vector<std::string> kMasked = {"id", "creationtime", "timestamp", "startup_time",
                                                      "last_reload_time"};
    if (std::find(kMasked.begin(), kMasked.end(), key) != kMasked.end()) return "*";
    if (key == "target_uri") return "channel:*";  // a channel id
    if (key == "value") {
      // A leg's end record (ari-leg-end-record): cause|state|epoch.ms. The cause and the
      // state must match; the clock cannot.
      static const std::regex record(R"(^(\d+)\|([A-Za-z]+)\|\d{10}\.\d{3}$)");
      std::smatch m;
      const std::string text(v.as_string());
      if (std::regex_match(text, m, record)) return json::value(m[1].str() + "|" + m[2].str() + "|*");
    }
    return json::value(strip_counter(std::string(v.as_string())));
  }
  return v;
}

// Sorted so that a listing compares as a set (Asterisk lists channels in hash order).
json::value normalise_body(const std::string& body) {
  if (body.empty()) return nullptr;
  json::value v = normalise(json::parse(body));
  if (v.is_array()) {
    std::vector<std::string> items;
    for (const auto& item : v.as_array()) items.push_back(json::serialize(item));
    std::sort(items.begin(), items.end());
    json::array sorted;
    for (const auto& item : items) sorted.push_back(json::parse(item));
    return sorted;
  }
  return v;
}

// Events grouped by whom they are about (a channel half, or the bridge), in order.
std::map<std::string, std::vector<std::string>> by_channel(const std::vector<json::value>& events) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& e : events) {
    const auto& o = e.as_object();
    std::string who = std::string(o.at("type").as_string());
    if (who.rfind("Playback", 0) == 0) who = "Playback";  // one channel's playbacks, in order
    for (const char* key : {"channel", "peer"}) {
      if (const auto* c = o.if_contains(key)) who = strip_counter(std::string(c->at("name").as_string()));
    }
    out[who].push_back(json::serialize(normalise(e)));
  }
  return out;
}

// --- replaying a recording ----------------------------------------------------------------

struct Replay {
  std::vector<json::value> recorded_events;
  std::vector<HttpReply> recorded_replies, replies;
  std::vector<std::string> labels;
  std::vector<json::value> events;
};

// The id of every object a reply names, recorded -> ours.
void learn_ids(const std::string& recorded_body, const std::string& our_body, std::map<std::string, std::string>& ids) {
  if (recorded_body.empty() || our_body.empty() || recorded_body[0] != '{' || our_body[0] != '{') return;
  const auto a = json::parse(recorded_body).as_object();
  const auto b = json::parse(our_body).as_object();
  if (a.contains("id") && b.contains("id")) ids[std::string(a.at("id").as_string())] = std::string(b.at("id").as_string());
}

std::string substitute(std::string text, const std::map<std::string, std::string>& ids) {
  std::vector<std::pair<std::string, std::string>> by_length(ids.begin(), ids.end());
  std::sort(by_length.begin(), by_length.end(), [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  for (const auto& [from, to] : by_length) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

// The ids of the channels the events so far name, recorded -> ours, matched by name.
void learn_event_ids(const std::vector<json::value>& recorded, std::size_t n, const std::vector<json::value>& ours,
                     std::map<std::string, std::string>& ids) {
  std::map<std::string, std::string> our_ids;
  for (const auto& e : ours) {
    if (const auto* c = e.as_object().if_contains("channel")) {
      our_ids[strip_counter(std::string(c->at("name").as_string()))] = std::string(c->at("id").as_string());
    }
  }
  for (std::size_t i = 0; i < n && i < recorded.size(); ++i) {
    if (const auto* c = recorded[i].as_object().if_contains("channel")) {
      const auto found = our_ids.find(strip_counter(std::string(c->at("name").as_string())));
      if (found != our_ids.end()) ids.emplace(std::string(c->at("id").as_string()), found->second);
    }
  }
}

// How many frames of the recorded WebSocket had come before `t`.
std::size_t frames_seen_before(const std::vector<json::value>& timeline, double t) {
  std::size_t n = 0;
  for (const auto& entry : timeline) {
    const auto& o = entry.as_object();
    if (o.at("kind").as_string() == "ws" && o.at("t").to_number<double>() < t) ++n;
  }
  return n;
}

// start: what the recording's other side did once the WebSocket was up (an inbound call).
// settle: the requests the recorder sent after waiting for the server to finish something
// that sends the app no event (a channel into an app nobody listens to, hung up).
// keep_time: each request also waits for its recorded moment (t_request), for the recorder's
// pauses that no event marks (ari-leg-end-record: B hung up after 1 s of talk).
Replay replay(const std::string& scenario, callback::fake::FakeAri& fake, const std::function<void()>& start = {},
              const std::vector<std::string>& settle = {}, bool keep_time = false) {
  Replay result;
  result.recorded_events = read_jsonl(kRecordings + "/" + scenario + ".events.jsonl");
  const auto timeline = read_jsonl(kRecordings + "/" + scenario + ".timeline.jsonl");
  EventClient client(fake.port());
  EXPECT_TRUE(fake.wait_for_websockets(1, 5s));
  const auto began = std::chrono::steady_clock::now();
  if (start) start();
  std::map<std::string, std::string> ids;
  std::unique_ptr<EventClient> other;  // a second WebSocket for the app (ari-app-replaced)
  for (const auto& entry : timeline) {
    const auto& o = entry.as_object();
    const std::string kind(o.at("kind").as_string());
    if (kind == "ws-handshake" && o.contains("label")) {
      EXPECT_TRUE(client.wait_for_count(frames_seen_before(timeline, o.at("t").to_number<double>()))) << scenario;
      other = std::make_unique<EventClient>(fake.port());
    }
    if (kind == "ws-close") other.reset();
    if (kind != "http") continue;
    // The recorder sent this request once it had seen this many events.
    const std::size_t frames_before = frames_seen_before(timeline, o.at("t_request").to_number<double>());
    EXPECT_TRUE(client.wait_for_count(frames_before)) << scenario << ": before " << o.at("label").as_string();
    learn_event_ids(result.recorded_events, frames_before, client.events(), ids);
    if (std::find(settle.begin(), settle.end(), std::string(o.at("label").as_string())) != settle.end()) {
      EXPECT_TRUE(fake.wait_for_idle(10s)) << fake.stats_json();
    }
    if (keep_time) {
      std::this_thread::sleep_until(began + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                std::chrono::duration<double>(o.at("t_request").to_number<double>())));
    }
    const std::string request = substitute(std::string(o.at("request").as_string()), ids);
    HttpReply ours = parse_reply(raw_request(fake.port(), request));
    HttpReply recorded = parse_reply(std::string(o.at("response").as_string()));
    learn_ids(recorded.body, ours.body, ids);
    result.labels.emplace_back(o.at("label").as_string());
    result.recorded_replies.push_back(std::move(recorded));
    result.replies.push_back(std::move(ours));
  }
  EXPECT_TRUE(client.wait_for_count(result.recorded_events.size())) << scenario;
  EXPECT_TRUE(fake.wait_for_idle(10s)) << scenario << ": " << fake.stats_json();
  // Anything more the fake sends after the last recorded event is a difference too.
  client.wait_for_count(result.recorded_events.size() + 1, 100ms);
  result.events = client.events();
  return result;
}

void expect_same_reply(const HttpReply& recorded, const HttpReply& ours, const std::string& label) {
  EXPECT_EQ(recorded.status, ours.status) << label << "\n" << ours.body;
  EXPECT_EQ(recorded.header_names, ours.header_names) << label;
  for (const auto& name : recorded.header_names) {
    if (name == "Date" || name == "Content-Length") continue;  // ids differ in length
    if (name == "Location") {  // /ari/playbacks/<id>
      EXPECT_EQ(ours.headers.count(name) ? ours.headers.at(name).substr(0, 15) : "", "/ari/playbacks/") << label;
      continue;
    }
    const auto found = ours.headers.find(name);
    EXPECT_EQ(recorded.headers.at(name), found == ours.headers.end() ? "(missing)" : found->second) << label << ": " << name;
  }
  json::value expected = normalise_body(recorded.body);
  json::value actual = normalise_body(ours.body);
  if (recorded.status == 201) {
    // A new playback is "queued" or already "playing": both were recorded (ari-play).
    for (json::value* v : {&expected, &actual}) {
      if (v->is_object() && v->as_object().contains("state")) v->as_object()["state"] = "queued or playing";
    }
  }
  EXPECT_EQ(json::serialize(expected), json::serialize(actual)) << label;
}

// The test callers of tests/real_asterisk/testcallers.conf behind the ari-inbound-* files.
std::optional<callback::fake::InboundCallOptions> inbound_caller(const std::string& scenario) {
  if (scenario.rfind("ari-inbound-", 0) != 0) return std::nullopt;
  callback::fake::InboundCallOptions in;
  in.from = "1234";
  in.name = "Test caller";
  in.to = "5000";
  if (scenario == "ari-inbound-dtmf") {
    in.dtmf = "5551234#";
    in.hangup_after_ms = 5000;
  } else if (scenario == "ari-inbound-caller-hangup") {
    in.hangup_after_ms = 1000;  // `bye`
  }
  return in;
}

class RecordedScenario : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordedScenario, RepliesAndEventsMatchTheRecordingFieldByField) {
  // In these the recorder acted within the 0.5 s a phone waits after its Answer() (bridged
  // both legs, hung up): real time keeps that window wide under a sanitizer or a busy
  // machine; the others run ten times faster.
  const std::vector<std::string> in_real_time = {"ari-bridge-answered", "ari-b-hangs-up", "ari-errors",
                                                 "ari-leg-end-record"};
  const bool real_time = std::find(in_real_time.begin(), in_real_time.end(), GetParam()) != in_real_time.end();
  // The prompts as long as recorded (ari-play: callback-please-wait 2.4 s), one missing.
  callback::fake::FakeAri fake({.time_scale = real_time ? 1.0 : 0.1,
                                .sound_seconds = {{"callback-please-wait", 2.4}},
                                .missing_sounds = {"callback-no-such-prompt"}});
  fake.start();
  const auto caller = inbound_caller(GetParam());
  const Replay r = replay(
      GetParam(), fake,
      [&] {
        if (caller) {
          EXPECT_FALSE(fake.inbound(*caller).empty());
        }
      },
      {"that channel, 2.5 s later"}, GetParam() == "ari-leg-end-record");
  ASSERT_EQ(r.recorded_replies.size(), r.replies.size());
  for (std::size_t i = 0; i < r.replies.size(); ++i) expect_same_reply(r.recorded_replies[i], r.replies[i], r.labels[i]);
  const auto recorded = by_channel(r.recorded_events);
  const auto ours = by_channel(r.events);
  for (const auto& [who, events] : recorded) {
    const auto found = ours.find(who);
    ASSERT_NE(found, ours.end()) << "no event for " << who;
    const std::size_t n = std::max(events.size(), found->second.size());
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(i < events.size() ? events[i] : "(none)", i < found->second.size() ? found->second[i] : "(none)")
          << who << " event " << i;
    }
  }
  for (const auto& [who, events] : ours) EXPECT_TRUE(recorded.count(who)) << "events for " << who << " not recorded";
  const auto stats = fake.stats();
  EXPECT_EQ(stats.channels, 0U);
  EXPECT_EQ(stats.bridges, 0U);
}

INSTANTIATE_TEST_SUITE_P(Recordings, RecordedScenario,
                         ::testing::Values("ari-bridge-answered", "ari-b-hangs-up", "ari-b-busy", "ari-b-noanswer",
                                           "ari-a-busy", "ari-a-busy-channelid", "ari-a-noanswer", "ari-a-invalid",
                                           "ari-create-dial-answered", "ari-create-dial-busy",
                                           "ari-create-dial-noanswer", "ari-play", "ari-errors",
                                           "ari-inbound-dtmf", "ari-inbound-caller-hangup", "ari-inbound-reject",
                                           "ari-inbound-reject-congestion", "ari-inbound-ring-reject",
                                           "ari-inbound-reject-subscribed", "ari-app-replaced",
                                           "ari-event-filter", "ari-leg-end-record", "ari-outbound-dtmf"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param.substr(4);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The REST-only recordings (no WebSocket). settle: as in replay().
void replay_http(const std::string& scenario, callback::fake::FakeAri& fake, const std::vector<std::string>& settle = {}) {
  for (const auto& entry : read_jsonl(kRecordings + "/" + scenario + ".http.jsonl")) {
    const auto& o = entry.as_object();
    const std::string label(o.at("label").as_string());
    if (std::find(settle.begin(), settle.end(), label) != settle.end()) {
      EXPECT_TRUE(fake.wait_for_idle(10s)) << fake.stats_json();
    }
    const HttpReply recorded = parse_reply(std::string(o.at("response").as_string()));
    const HttpReply ours = parse_reply(raw_request(fake.port(), std::string(o.at("request").as_string())));
    expect_same_reply(recorded, ours, label);
  }
}

// A RESTResponse as compared: its message_body parsed and normalised like any reply.
json::value normalise_rest_response(const json::value& frame) {
  json::object o = frame.as_object();
  if (const auto* body = o.if_contains("message_body")) o["message_body"] = normalise_body(std::string(body->as_string()));
  return normalise(o);
}

// ari-rest-websocket: the recorder's RESTRequest frames sent in its order, each once as many
// frames had come as had come to the recorder; every RESTResponse the same field by field,
// in the same place among the events (a DELETE's before the hangup events it causes), and
// none for the request the app's event filter held back.
TEST(FakeAri, RestOverTheWebSocketIsAnsweredAsRecorded) {
  callback::fake::FakeAri fake({.time_scale = 0.1, .sound_seconds = {{"callback-please-wait", 2.4}}});
  fake.start();
  const std::string scenario = "ari-rest-websocket";
  const auto recorded = read_jsonl(kRecordings + "/" + scenario + ".events.jsonl");
  const auto timeline = read_jsonl(kRecordings + "/" + scenario + ".timeline.jsonl");
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  for (const auto& entry : timeline) {
    const auto& o = entry.as_object();
    if (o.at("kind").as_string() != "ws-sent") continue;
    ASSERT_TRUE(client.wait_for_count(frames_seen_before(timeline, o.at("t").to_number<double>())))
        << "before " << o.at("label").as_string();
    client.send(std::string(o.at("data").as_string()));
  }
  // Once the fake has read every frame (18 well-formed requests), the filter is reset over
  // HTTP, then one more request: had the filtered one been answered, its reply would have
  // come before this one's.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fake.stats().rest_over_websocket < 18 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);  // polling the fake's count, not waiting for time to pass
  }
  ASSERT_EQ(fake.stats().rest_over_websocket, 18u);
  const auto reset = parse_reply(raw_request(
      fake.port(), "PUT /ari/applications/callback-app/eventFilter HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                       std::string("Y2FsbGJhY2s6Y2FsbGJhY2tzZWNyZXQ=") +
                       "\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"));
  ASSERT_EQ(reset.status, 200);
  client.send(R"({"type":"RESTRequest","request_id":"last","method":"GET","uri":"asterisk/ping"})");
  ASSERT_FALSE(client.wait_for([](const json::object& e) {
                      const auto* id = e.if_contains("request_id");
                      return id != nullptr && *id == "last";
                    }).is_null());
  const auto ours = client.events();
  const auto responses = [](const std::vector<json::value>& events) {
    std::vector<json::value> out;
    for (const auto& e : events) {
      if (e.at("type") == "RESTResponse" && e.at("request_id") != "last") out.push_back(normalise_rest_response(e));
    }
    return out;
  };
  const auto want = responses(recorded), got = responses(ours);
  const auto ids = [](const std::vector<json::value>& replies) {
    std::string out;
    for (const auto& r : replies) out += std::string(r.at("request_id").as_string()) + " ";
    return out;
  };
  ASSERT_EQ(want.size(), got.size()) << "the same replies (none for the filtered request): " << ids(want) << "/ " << ids(got);
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(want[i], got[i]) << "reply " << i;
  // Where the DELETE of A's reply falls among A's events.
  const auto position = [](const std::vector<json::value>& events) {
    std::vector<std::string> seen;
    for (const auto& e : events) {
      const auto& o = e.as_object();
      if (o.at("type") == "RESTResponse" && o.at("request_id") == "hang-up-A") seen.emplace_back("reply");
      const auto* c = o.if_contains("channel");
      if (c != nullptr && c->at("id") == "cb-rws-1-a" && o.at("type") != "StasisStart") seen.emplace_back(o.at("type").as_string());
    }
    return seen;
  };
  EXPECT_EQ(position(recorded), position(ours));
  EXPECT_TRUE(fake.wait_for_idle(10s)) << fake.stats_json();
  EXPECT_EQ(fake.stats().rest_over_websocket, 19u) << "the well-formed requests, the filtered one too";
}

// ari-rest-websocket-replaced: after ApplicationReplaced the old WebSocket still gets the
// replies to what is asked on it, as recorded.
TEST(FakeAri, ARestRequestOnAReplacedWebSocketIsAnsweredThere) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  const auto recorded = read_jsonl(kRecordings + "/ari-rest-websocket-replaced.events.jsonl");
  EventClient old_one(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  EventClient new_one(fake.port());
  ASSERT_FALSE(old_one.wait_for([](const json::object& e) { return e.at("type") == "ApplicationReplaced"; }).is_null());
  old_one.send(R"({"type":"RESTRequest","request_id":"after-replaced","method":"GET","uri":"asterisk/ping"})");
  old_one.send(R"({"type":"RESTRequest","request_id":"after-replaced-404","method":"DELETE","uri":"channels/cb-rws-none"})");
  ASSERT_TRUE(old_one.wait_for_count(3));
  const auto ours = old_one.events();
  EXPECT_EQ(normalise(ours[0]), normalise(recorded[1])) << "ApplicationReplaced";
  EXPECT_EQ(normalise_rest_response(ours[1]), normalise_rest_response(recorded[2]));
  EXPECT_EQ(normalise_rest_response(ours[2]), normalise_rest_response(recorded[3]));
  EXPECT_TRUE(new_one.events().empty()) << "nothing of it on the new one";
}

TEST(FakeAri, HttpBasicsMatchTheRecording) {
  callback::fake::FakeAri fake;
  fake.start();
  replay_http("ari-http-basics", fake);
}

// ari-no-app: with no WebSocket the app does not exist, the originate is still accepted,
// and the channel is hung up once the phone answered (Stasis() fails).
TEST(FakeAri, OriginateIntoAnAppWithNoWebSocketIsAcceptedThenHungUp) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  replay_http("ari-no-app", fake, {"that channel, 2.5 s later"});
  EXPECT_EQ(fake.stats().channels, 0U);
}

// Phones the ARI recordings do not cover end as the AMI recordings and the dialplan say
// (README "Hangup causes with Local channels"): the causes of ChannelDestroyed per half.
TEST(FakeAri, UnrecordedPhonesEndWithTheirDialplanCauses) {
  callback::fake::FakeAri fake({.time_scale = 0.01});
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  struct Case {
    std::string number;
    int cause_1, cause_2;
    bool stasis;  // StasisStart before the end
  };
  const std::vector<Case> cases = {{"5001", 0, 34, false}, {"5501", 38, 38, false}, {"5801", 1, 1, false},
                                   {"6001", 21, 21, false}, {"9801", 16, 16, true}, {"0001", 0, 0, false}};
  for (const auto& c : cases) {
    const auto reply = call(fake.port(), "POST",
                            "/ari/channels?endpoint=Local/" + c.number + "@phones&app=callback-app&appArgs=x&channelId=" +
                                c.number + "-1&otherChannelId=" + c.number + "-2");
    ASSERT_EQ(reply.status, 200) << reply.body;
    for (const auto& [id, cause] : {std::pair{c.number + "-1", c.cause_1}, std::pair{c.number + "-2", c.cause_2}}) {
      const json::value destroyed = client.wait_for([&](const json::object& e) {
        return e.at("type") == "ChannelDestroyed" && e.at("channel").at("id") == id.c_str();
      });
      ASSERT_TRUE(destroyed.is_object()) << id;
      EXPECT_EQ(destroyed.at("cause").as_int64(), cause) << id;
    }
    const bool started = client.wait_for([&](const json::object& e) {
      return e.at("type") == "StasisStart" && e.at("channel").at("id") == (c.number + "-1").c_str();
    }, 0ms).is_object();
    EXPECT_EQ(started, c.stasis) << c.number;
  }
  // 9XXX answers at once and stays up: no ringing, StasisStart in state Up.
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/9001@phones&app=callback-app&channelId=b1").status, 200);
  const json::value start = client.wait_for([](const json::object& e) {
    return e.at("type") == "StasisStart" && e.at("channel").at("id") == "b1";
  });
  ASSERT_TRUE(start.is_object());
  EXPECT_EQ(start.at("channel").at("state"), "Up");
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/channels/b1").status, 204);
  EXPECT_TRUE(fake.wait_for_idle(5s)) << fake.stats_json();
}

// /fake/drop: the WebSocket ends in the middle of a frame (not a clean close), the app is
// gone with it, the calls go on; a new WebSocket gets their events again.
TEST(FakeAri, DropClosesTheWebSocketMidFrameAndCallsSurviveForTheNextOne) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  auto client = std::make_unique<EventClient>(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/1001@phones&app=callback-app&channelId=a1").status, 200);
  ASSERT_TRUE(client->wait_for([](const json::object& e) { return e.at("type") == "StasisStart"; }).is_object());
  EXPECT_EQ(call(fake.port(), "POST", "/fake/drop").status, 204);
  ASSERT_TRUE(client->wait_for_error(5s));
  EXPECT_NE(*client->error(), beast::websocket::error::closed);  // no close frame
  ASSERT_TRUE(fake.wait_for_websockets(0, 5s));
  EXPECT_EQ(call(fake.port(), "GET", "/ari/applications").body, "[]");
  EXPECT_EQ(json::parse(call(fake.port(), "GET", "/ari/channels").body).as_array().size(), 2U);
  client = std::make_unique<EventClient>(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/channels/a1").status, 204);
  EXPECT_TRUE(client->wait_for([](const json::object& e) {
    return e.at("type") == "StasisEnd" && e.at("channel").at("id") == "a1";
  }).is_object());
  EXPECT_TRUE(fake.wait_for_idle(5s)) << fake.stats_json();
}

// Text from the request reaches the events escaped: the args and the caller name parse
// back as they were sent.
TEST(FakeAri, TextFromRequestsIsEscapedInTheEvents) {
  callback::fake::FakeAri fake({.time_scale = 0.01});
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  // appArgs a"b\c,d<TAB>e ; callerId "Dr \"X\"" <0042> (URL-encoded)
  ASSERT_EQ(call(fake.port(), "POST",
                 "/ari/channels?endpoint=Local/9001@phones&app=callback-app&channelId=q&appArgs=a%22b%5Cc,d%09e"
                 "&callerId=%22Dr%20%5C%22X%5C%22%22%20%3C0042%3E")
                .status,
            200);
  const json::value start = client.wait_for([](const json::object& e) { return e.at("type") == "StasisStart"; });
  ASSERT_TRUE(start.is_object());
  EXPECT_EQ(start.at("args"), (json::array{"a\"b\\c", "d\te"}));
  EXPECT_EQ(start.at("channel").at("caller").at("number"), "0042");
  EXPECT_EQ(start.at("channel").at("caller").at("name"), "Dr \\\"X\\\"");
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/channels/q").status, 204);
  EXPECT_TRUE(fake.wait_for_idle(5s));
}

// The far end hangs up: a real cause on ChannelHangupRequest (not the soft 32 of a DELETE),
// both halves destroyed with it; an inbound caller's hang-up as in ari-inbound-caller-hangup.
TEST(FakeAri, FarEndHangupGivesTheCauseOfThePhoneOrCaller) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/1001@phones&app=callback-app&channelId=a&otherChannelId=a2").status, 200);
  ASSERT_TRUE(client.wait_for([](const json::object& e) { return e.at("type") == "StasisStart"; }).is_object());
  EXPECT_EQ(call(fake.port(), "POST", "/fake/hangup?channel=nope").status, 404);
  EXPECT_EQ(call(fake.port(), "POST", "/fake/hangup?channel=a&cause=21").status, 204);
  const json::value request = client.wait_for([](const json::object& e) {
    return e.at("type") == "ChannelHangupRequest" && e.at("channel").at("id") == "a";
  });
  ASSERT_TRUE(request.is_object());
  EXPECT_EQ(request.at("cause"), 21);
  EXPECT_FALSE(request.as_object().contains("soft"));
  for (const char* id : {"a", "a2"}) {
    const json::value destroyed = client.wait_for([&](const json::object& e) {
      return e.at("type") == "ChannelDestroyed" && e.at("channel").at("id") == id;
    });
    ASSERT_TRUE(destroyed.is_object()) << id;
    EXPECT_EQ(destroyed.at("cause"), 21) << id;
  }
  callback::fake::InboundCallOptions in;
  in.from = "1234";
  in.to = "5000";
  const std::string inbound = fake.inbound(in);
  ASSERT_FALSE(inbound.empty());
  EXPECT_TRUE(fake.hang_up(inbound, 16));
  EXPECT_TRUE(client.wait_for([&](const json::object& e) {
    return e.at("type") == "StasisEnd" && e.at("channel").at("id") == inbound.c_str();
  }).is_object());
  EXPECT_FALSE(fake.hang_up(inbound, 16));
  EXPECT_TRUE(fake.wait_for_idle(5s)) << fake.stats_json();
}

// /fake/send puts any text on the WebSocket, for the engine's bad-input tests.
TEST(FakeAri, SendPutsRawFramesOnTheWebSocket) {
  callback::fake::FakeAri fake;
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  EXPECT_EQ(call(fake.port(), "POST", "/fake/send", "{\"type\":\"StasisEnd\",\"chan").status, 204);
  EXPECT_TRUE(client.wait_for_frame("{\"type\":\"StasisEnd\",\"chan"));
  fake.send_raw("{\"type\":\"ChannelDestroyed\",\"channel\":{\"id\":\"unknown\"}}");
  EXPECT_TRUE(client.wait_for([](const json::object& e) { return e.at("type") == "ChannelDestroyed"; }).is_object());
  EXPECT_EQ(call(fake.port(), "POST", "/fake/send?app=other-app", "not for you").status, 204);
  EXPECT_EQ(call(fake.port(), "POST", "/fake/send", "last").status, 204);
  ASSERT_TRUE(client.wait_for_frame("last"));
  EXPECT_FALSE(client.wait_for_frame("not for you", 0ms));  // frames arrive in order: it would be before "last"
}

// PUT /applications/{app}/eventFilter cuts the stream to the types an engine reads (fewer
// bytes at 2,000 callbacks/s), as res/stasis/app.c filters.
TEST(FakeAri, EventFilterKeepsOnlyTheAllowedTypes) {
  callback::fake::FakeAri fake({.time_scale = 0.01});
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  auto put = [&](const std::string& body) {
    std::string request = "PUT /ari/applications/callback-app/eventFilter HTTP/1.1\r\nHost: x\r\n" + kAuth +
                          "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n" + body;
    return parse_reply(raw_request(fake.port(), request));
  };
  EXPECT_EQ(put("{\"allowed\":[{\"no-type\":1}]}").status, 400);
  const HttpReply set = put(R"({"allowed":[{"type":"StasisStart"},{"type":"StasisEnd"},{"type":"ChannelDestroyed"}],)"
                            R"("disallowed":[{"type":"StasisEnd"}]})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(json::parse(set.body).at("events_allowed").as_array().size(), 3U);
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/1001@phones&app=callback-app&channelId=f&otherChannelId=f2").status, 200);
  ASSERT_TRUE(client.wait_for([](const json::object& e) { return e.at("type") == "StasisStart"; }).is_object());
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/channels/f").status, 204);
  ASSERT_TRUE(fake.wait_for_idle(5s));
  fake.send_raw(R"({"type":"Marker"})");  // raw frames are not filtered: the end of the stream
  ASSERT_TRUE(client.wait_for([](const json::object& e) { return e.at("type") == "Marker"; }).is_object());
  std::vector<std::string> types;
  for (const auto& e : client.events()) types.emplace_back(e.at("type").as_string());
  EXPECT_EQ(types, (std::vector<std::string>{"StasisStart", "ChannelDestroyed", "ChannelDestroyed", "Marker"}));
  // {} resets the filter.
  EXPECT_EQ(json::parse(put("{}").body).at("events_allowed").as_array().size(), 0U);
}

// A client's close frame is answered, and the app is gone with its WebSocket.
TEST(FakeAri, CleanCloseIsAnsweredAndUnregistersTheApp) {
  callback::fake::FakeAri fake;
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  EXPECT_EQ(json::parse(call(fake.port(), "GET", "/ari/applications/callback-app").body).at("name"), "callback-app");
  EXPECT_FALSE(client.close());
  ASSERT_TRUE(fake.wait_for_websockets(0, 5s));
  EXPECT_EQ(call(fake.port(), "GET", "/ari/applications/callback-app").status, 404);
}

// ari-takeover-move / ari-takeover-ringing: node n1's WebSocket goes (kill -9) with a
// bridged call and a ringing one; node n2 moves the channels into its own application.
// As recorded: the moves answer 204 (409 for the ringing channel, not in Stasis yet) and
// n2 gets StasisStart with the move's args; the channels stay in their bridge; what n2
// then gets of a moved ;1 that is not subscribed to is what a channel in Stasis gets (up
// to its StasisEnd, no ChannelDestroyed: that went to n1's application).
TEST(FakeAri, ChannelsOfAnApplicationThatWentAreMovedIntoAnotherAsRecorded) {
  // The recorded events of n2, by channel: their types.
  std::map<std::string, std::vector<std::string>> recorded;
  for (const auto& e : read_jsonl(kRecordings + "/ari-takeover-move.n2.events.jsonl")) {
    const auto& o = e.as_object();
    if (const auto* c = o.if_contains("channel")) {
      recorded[std::string(c->at("id").as_string())].emplace_back(o.at("type").as_string());
    }
  }
  ASSERT_FALSE(recorded["cb-t-b"].empty());
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  auto n1 = std::make_unique<EventClient>(fake.port(), "callback-app-n1");
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  for (const char* leg : {"cb-t-a", "cb-t-b"}) {
    const std::string id(leg);
    ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/9001@phones&app=callback-app-n1&channelId=" + id +
                                            "&otherChannelId=" + id + "2").status, 200);
    ASSERT_TRUE(n1->wait_for([&](const json::object& e) {
      return e.at("type") == "StasisStart" && e.at("channel").at("id") == id.c_str();
    }).is_object());
  }
  const auto bridge = json::parse(call(fake.port(), "POST", "/ari/bridges?type=mixing&name=cb-t").body);
  const std::string bridge_id(bridge.at("id").as_string());
  ASSERT_EQ(call(fake.port(), "POST", "/ari/bridges/" + bridge_id + "/addChannel?channel=cb-t-a,cb-t-b").status, 204);
  ASSERT_TRUE(n1->wait_for([](const json::object& e) {
    return e.at("type") == "ChannelEnteredBridge" && e.at("channel").at("id") == "cb-t-b";
  }).is_object());
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/4001@phones&app=callback-app-n1&channelId=cb-r-a"
                                      "&otherChannelId=cb-r-a2").status, 200);
  n1.reset();  // no close frame
  ASSERT_TRUE(fake.wait_for_websockets(0, 5s));
  EventClient n2(fake.port(), "callback-app-n2");
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  const auto ringing = call(fake.port(), "POST", "/ari/channels/cb-r-a/move?app=callback-app-n2&appArgs=takeover");
  EXPECT_EQ(ringing.status, 409);
  EXPECT_EQ(ringing.body, R"({"message":"Channel not in Stasis application"})");
  EXPECT_EQ(call(fake.port(), "POST", "/ari/channels/nope/move?app=callback-app-n2").status, 404);
  for (const char* leg : {"cb-t-a", "cb-t-b"}) {
    EXPECT_EQ(call(fake.port(), "POST", std::string("/ari/channels/") + leg + "/move?app=callback-app-n2&appArgs=takeover")
                  .status, 204);
    const json::value start = n2.wait_for([&](const json::object& e) {
      return e.at("type") == "StasisStart" && e.at("channel").at("id") == leg;
    });
    ASSERT_TRUE(start.is_object()) << leg;
    EXPECT_EQ(json::serialize(start.at("args")), R"(["takeover"])");
  }
  const auto still = json::parse(call(fake.port(), "GET", "/ari/bridges/" + bridge_id).body);
  EXPECT_EQ(json::serialize(still.at("channels")), R"(["cb-t-a","cb-t-b"])") << "they talk on";
  // As the recording: A;1, A;2 and B;2 subscribed to, B;1 not. B's phone hangs up, then A.
  ASSERT_EQ(call(fake.port(), "POST", "/ari/applications/callback-app-n2/subscription?eventSource=channel%3Acb-t-a2%2C"
                                      "channel%3Acb-t-b2%2Cchannel%3Acb-t-a").status, 200);
  ASSERT_EQ(call(fake.port(), "POST", "/fake/hangup?channel=cb-t-b&cause=16").status, 204);
  ASSERT_TRUE(n2.wait_for([](const json::object& e) {
    return e.at("type") == "ChannelDestroyed" && e.at("channel").at("id") == "cb-t-b2";
  }).is_object());
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/bridges/" + bridge_id).status, 204);
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/channels/cb-t-a").status, 204);
  const json::value a_gone = n2.wait_for([](const json::object& e) {
    return e.at("type") == "ChannelDestroyed" && e.at("channel").at("id") == "cb-t-a";
  });
  ASSERT_TRUE(a_gone.is_object()) << "subscribed: its ChannelDestroyed comes";
  // B;1's events as recorded, among those the engine reads to follow a leg.
  const std::set<std::string> followed = {"StasisStart", "ChannelLeftBridge", "StasisEnd", "ChannelDestroyed"};
  auto of_b = [&](const std::vector<std::string>& types) {
    std::vector<std::string> out;
    for (const auto& t : types) {
      if (followed.count(t) != 0) out.push_back(t);
    }
    return out;
  };
  std::vector<std::string> ours;
  for (const auto& e : n2.events()) {
    const auto& o = e.as_object();
    if (const auto* c = o.if_contains("channel"); c != nullptr && c->at("id") == "cb-t-b") {
      ours.emplace_back(o.at("type").as_string());
    }
  }
  EXPECT_EQ(of_b(ours), of_b(recorded["cb-t-b"]));
  EXPECT_TRUE(fake.wait_for_idle(10s)) << fake.stats_json();
}

// Each fake is its own Asterisk: its own port, channels, ids and counts.
TEST(FakeAri, SeveralFakesRunSideBySide) {
  callback::fake::FakeAri one({.time_scale = 0.1});
  callback::fake::FakeAri two({.time_scale = 0.1});
  one.start();
  two.start();
  ASSERT_NE(one.port(), two.port());
  EventClient client_one(one.port());
  EventClient client_two(two.port());
  ASSERT_TRUE(one.wait_for_websockets(1, 5s));
  ASSERT_TRUE(two.wait_for_websockets(1, 5s));
  ASSERT_EQ(call(one.port(), "POST", "/ari/channels?endpoint=Local/4001@phones&app=callback-app&channelId=x").status, 200);
  ASSERT_TRUE(client_one.wait_for([](const json::object& e) { return e.at("type") == "Dial"; }).is_object());
  EXPECT_EQ(one.stats().channels, 2U);
  EXPECT_EQ(two.stats().channels, 0U);
  EXPECT_EQ(call(two.port(), "GET", "/ari/channels/x").status, 404);
  // The same channelId is free on the other one.
  ASSERT_EQ(call(two.port(), "POST", "/ari/channels?endpoint=Local/4001@phones&app=callback-app&channelId=x").status, 200);
  EXPECT_EQ(call(one.port(), "DELETE", "/ari/channels/x").status, 204);
  EXPECT_EQ(call(two.port(), "DELETE", "/ari/channels/x").status, 204);
  EXPECT_TRUE(one.wait_for_idle(5s));
  EXPECT_TRUE(two.wait_for_idle(5s));
  EXPECT_EQ(client_two.wait_for([](const json::object& e) { return e.at("type") == "ChannelDestroyed"; }).at("cause"), 16);
}

// GET /fake/stats: what is alive and how many requests each endpoint got.
TEST(FakeAri, StatsShowNothingLeftAfterTheCallsAndCountRequestsByEndpoint) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/1001@phones&app=callback-app&channelId=a").status, 200);
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels?endpoint=Local/1002@phones&app=callback-app&channelId=b").status, 200);
  for (const char* id : {"a", "b"}) {
    ASSERT_TRUE(client.wait_for([&](const json::object& e) {
      return e.at("type") == "StasisStart" && e.at("channel").at("id") == id;
    }).is_object());
  }
  const std::string bridge(json::parse(call(fake.port(), "POST", "/ari/bridges?type=mixing").body).at("id").as_string());
  ASSERT_EQ(call(fake.port(), "POST", "/ari/bridges/" + bridge + "/addChannel?channel=a,b").status, 204);
  ASSERT_EQ(call(fake.port(), "POST", "/ari/channels/a/play?media=sound:hello").status, 201);
  auto stats = json::parse(call(fake.port(), "GET", "/fake/stats").body).as_object();
  EXPECT_EQ(stats.at("channels"), 4);
  EXPECT_EQ(stats.at("bridges"), 1);
  EXPECT_EQ(stats.at("websockets"), 1);
  ASSERT_EQ(call(fake.port(), "DELETE", "/ari/channels/a").status, 204);
  ASSERT_EQ(call(fake.port(), "DELETE", "/ari/channels/b?reason_code=16").status, 204);
  ASSERT_EQ(call(fake.port(), "DELETE", "/ari/bridges/" + bridge).status, 204);
  ASSERT_TRUE(fake.wait_for_idle(5s));
  stats = json::parse(call(fake.port(), "GET", "/fake/stats").body).as_object();
  EXPECT_EQ(stats.at("channels"), 0);
  EXPECT_EQ(stats.at("bridges"), 0);
  EXPECT_EQ(stats.at("playbacks"), 0);
  const auto& requests = stats.at("requests").as_object();
  EXPECT_EQ(requests.at("POST /ari/channels"), 2);
  EXPECT_EQ(requests.at("DELETE /ari/channels/{id}"), 2);
  EXPECT_EQ(requests.at("POST /ari/bridges/{id}/addChannel"), 1);
  EXPECT_EQ(requests.at("POST /ari/channels/{id}/play"), 1);
  EXPECT_EQ(requests.at("GET /ari/events"), 1);
}

// An inbound call needs its app: refused without a WebSocket (Stasis() would fail at once,
// ari-inbound-no-app), unless app_check is off.
TEST(FakeAri, InboundCallNeedsItsApp) {
  callback::fake::FakeAri fake;
  fake.start();
  EXPECT_EQ(call(fake.port(), "POST", "/fake/inbound?from=1234&to=5000").status, 409);
  EXPECT_EQ(call(fake.port(), "POST", "/fake/inbound?to=5000").status, 400);
  EXPECT_EQ(fake.stats().channels, 0U);
  callback::fake::FakeAri lenient({.app_check = false});
  lenient.start();
  const auto reply = call(lenient.port(), "POST", "/fake/inbound?from=1234&to=5000");
  ASSERT_EQ(reply.status, 200);
  const std::string id(json::parse(reply.body).at("id").as_string());
  EXPECT_EQ(json::parse(call(lenient.port(), "GET", "/ari/channels/" + id).body).at("state"), "Ring");
  EXPECT_EQ(call(lenient.port(), "DELETE", "/ari/channels/" + id + "?reason=busy").status, 204);
  EXPECT_TRUE(lenient.wait_for_idle(5s));
}

// The WebSocket needs the ARI credentials too.
TEST(FakeAri, EventsNeedCredentials) {
  callback::fake::FakeAri fake;
  fake.start();
  const HttpReply r = parse_reply(raw_request(
      fake.port(),
      "GET /ari/events?app=callback-app&api_key=callback:wrong HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers.at("WWW-Authenticate"), "Basic realm=\"Asterisk REST Interface\"");
  EXPECT_EQ(fake.stats().websockets, 0U);
}

// Asterisk's messages (res/ari/resource_channels.c, resource_bridges.c) for what the
// recordings do not show.
TEST(FakeAri, ErrorRepliesCarryAsterisksStatusesAndMessages) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  EventClient client(fake.port());
  ASSERT_TRUE(fake.wait_for_websockets(1, 5s));
  auto expect = [](const HttpReply& r, int status, const std::string& message) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.body, "{\"message\":\"" + message + "\"}");
    EXPECT_EQ(r.headers.at("Content-type"), "application/json");
  };
  expect(call(fake.port(), "DELETE", "/ari/channels/nope"), 404, "Channel not found");
  expect(call(fake.port(), "POST", "/ari/channels/nope/answer"), 404, "Channel not found");
  expect(call(fake.port(), "POST", "/ari/channels/nope/play?media=sound:hello"), 404, "Channel not found");
  expect(call(fake.port(), "GET", "/ari/bridges/nope"), 404, "Bridge not found");
  expect(call(fake.port(), "DELETE", "/ari/playbacks/nope"), 404, "Playback not found");
  expect(call(fake.port(), "POST", "/ari/channels?app=callback-app"), 400, "Endpoint must be specified");
  // A ringing A;1 is not in Stasis yet; its ;2 never is.
  const auto a = json::parse(call(fake.port(), "POST",
                                  "/ari/channels?endpoint=Local/4001@phones&app=callback-app&appArgs=x&timeout=-1&"
                                  "channelId=a1&otherChannelId=a2")
                                 .body);
  EXPECT_EQ(a.at("id").as_string(), "a1");
  expect(call(fake.port(), "POST", "/ari/channels?endpoint=Local/1001@phones&app=callback-app&channelId=a1"), 409,
         "Channel with given unique ID already exists");
  expect(call(fake.port(), "POST", "/ari/channels/a1/answer"), 409, "Channel not in Stasis application");
  expect(call(fake.port(), "POST", "/ari/channels/a2/play?media=sound:hello"), 409,
         "Channel not in Stasis application");
  const auto bridge = json::parse(call(fake.port(), "POST", "/ari/bridges?type=mixing").body);
  const std::string bridge_id(bridge.at("id").as_string());
  expect(call(fake.port(), "POST", "/ari/bridges/" + bridge_id + "/addChannel?channel=a2"), 422,
         "Channel not in Stasis application");
  expect(call(fake.port(), "POST", "/ari/bridges/" + bridge_id + "/addChannel?channel=nope"), 400, "Channel not found");
  expect(call(fake.port(), "DELETE", "/ari/channels/a1?reason=nonsense"), 400,
         "Invalid reason for hangup reason provided");
  expect(call(fake.port(), "DELETE", "/ari/channels/a1?reason=busy&reason_code=17"), 400,
         "The reason and reason_code can't both be specified");
  const HttpReply gone = call(fake.port(), "DELETE", "/ari/channels/a1?reason=normal");
  EXPECT_EQ(gone.status, 204);
  EXPECT_TRUE(gone.body.empty());
  EXPECT_EQ(gone.headers.count("Content-type"), 0U);
  expect(call(fake.port(), "DELETE", "/ari/channels/a1"), 404, "Channel not found");
  EXPECT_EQ(call(fake.port(), "DELETE", "/ari/bridges/" + bridge_id).status, 204);
  EXPECT_TRUE(fake.wait_for_idle(5s)) << fake.stats_json();
}

}  // namespace
