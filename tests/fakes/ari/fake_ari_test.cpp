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
#include <map>
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
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return events_.size();
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
      events_.push_back(json::parse(beast::buffers_to_string(buffer_.data())));
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
  std::vector<json::value> events_;
  std::optional<beast::error_code> error_;
};

// --- normalising what must differ --------------------------------------------------------

const std::regex kLocalCounter("(Local/[^@]+@[a-z]+)-[0-9a-f]{8}(;[12])");

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

// How many frames of the recorded WebSocket had come before `t`.
std::size_t frames_seen_before(const std::vector<json::value>& timeline, double t) {
  std::size_t n = 0;
  for (const auto& entry : timeline) {
    const auto& o = entry.as_object();
    if (o.at("kind").as_string() == "ws" && o.at("t").to_number<double>() < t) ++n;
  }
  return n;
}

Replay replay(const std::string& scenario, callback::fake::FakeAri& fake) {
  Replay result;
  result.recorded_events = read_jsonl(kRecordings + "/" + scenario + ".events.jsonl");
  const auto timeline = read_jsonl(kRecordings + "/" + scenario + ".timeline.jsonl");
  EventClient client(fake.port());
  EXPECT_TRUE(fake.wait_for_websockets(1, 5s));
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
    const auto found = ours.headers.find(name);
    EXPECT_EQ(recorded.headers.at(name), found == ours.headers.end() ? "(missing)" : found->second) << label << ": " << name;
  }
  EXPECT_EQ(json::serialize(normalise_body(recorded.body)), json::serialize(normalise_body(ours.body))) << label;
}

class RecordedScenario : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordedScenario, RepliesAndEventsMatchTheRecordingFieldByField) {
  callback::fake::FakeAri fake({.time_scale = 0.1});
  fake.start();
  const Replay r = replay(GetParam(), fake);
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
                                           "ari-create-dial-noanswer", "ari-app-replaced"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param.substr(4);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(FakeAri, HttpBasicsMatchTheRecording) {
  callback::fake::FakeAri fake;
  fake.start();
  for (const auto& entry : read_jsonl(kRecordings + "/ari-http-basics.http.jsonl")) {
    const auto& o = entry.as_object();
    const HttpReply recorded = parse_reply(std::string(o.at("response").as_string()));
    const HttpReply ours = parse_reply(raw_request(fake.port(), std::string(o.at("request").as_string())));
    expect_same_reply(recorded, ours, std::string(o.at("label").as_string()));
  }
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
