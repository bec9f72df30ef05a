// The peer for issue 11's real-Asterisk figure: a minimal raw ARI client doing the step
// flow that CallbackService and callback.engine.ari do for a callback, on the same ARI
// transport (plugins/engine_ari/ari_client), to compare callback_load --engine ari with.
// Per callback, nothing else:
//   POST /ari/channels A (Local/<A>@phones into the app, the engine's query: appArgs,
//     callerId, timeout, channelId <id>-a / otherChannelId <id>-a2, the same variables)
//   StasisStart of A (A answered): POST play sound:callback-please-wait
//   its PlaybackFinished: POST /ari/channels B (<id>-b)
//   StasisStart of B: POST /ari/bridges?type=mixing, then addChannel A,B
//   --talk-ms after the addChannel reply: DELETE B; its ChannelDestroyed: play
//     sound:callback-time-up to A, alone in the bridge (a play to a channel leaving a
//     bridge that goes can be lost, even after its ChannelLeftBridge)
//   its PlaybackFinished: DELETE A; A's ChannelDestroyed: DELETE the bridge; the callback is
//     over then (and at B's: both counted)
// That is the flow the service runs with a campaign limit of --talk-ms and no warning (the
// limit is at most warning_before): callback_load throughput --engine ari --limit S. No
// store, no billing, no CDRs, no state machine, no timers but the talk time, no
// reconnection. failed = an originate or bridge refused, or a leg that ended before it
// was answered or bridged.
// A = --a-first + i % 800 (9XXX: answers at once, stays up), B = --b-first + i % 100 (9400..:
// the same phones; not 98XX, which hang up at once).
//   raw_ari_loop --calls 200 --in-flight 50 --talk-ms 2000     (Asterisk's HTTP on 127.0.0.1:8088)
// Options: --host --port --password --app --calls --in-flight --talk-ms --a-first --b-first
// --time-limit (s). --app defaults to raw-ari-loop (an app of its own: a second WebSocket on
// callback-app would take the app away from a callbackd running beside it).
#include "ari_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_map>

using namespace callback;
namespace json = boost::json;
using verb = boost::beast::http::verb;

namespace {

int fail(const std::string& why) {
  std::cerr << "raw_ari_loop: " << why << "\n";
  return 1;
}

std::string_view str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

struct Callback {
  std::string id, a, b;
  bool a_up = false, b_placed = false, b_up = false, bridged = false, a_gone = false, b_gone = false, failed = false;
  bool time_up = false;
  std::string bridge;
  std::unique_ptr<boost::asio::steady_timer> talk;
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", password = "callbacksecret", app = "raw-ari-loop";
  std::uint16_t port = 8088;
  std::size_t calls = 400, in_flight = 100;
  int a_first = 9000, b_first = 9400, time_limit = 600;
  std::chrono::milliseconds talk{2000};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!std::strcmp(argv[i], "--port")) port = static_cast<std::uint16_t>(std::stoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--password")) password = argv[i + 1];
    else if (!std::strcmp(argv[i], "--app")) app = argv[i + 1];
    else if (!std::strcmp(argv[i], "--calls")) calls = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--in-flight")) in_flight = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--talk-ms")) talk = std::chrono::milliseconds(std::stol(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--a-first")) a_first = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--b-first")) b_first = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--time-limit")) time_limit = std::stoi(argv[i + 1]);
    else {
      std::cerr << "raw_ari_loop: unknown option " << argv[i] << "\n";
      return 2;
    }
  }

  boost::asio::io_context io;
  std::string error;
  bool opened = false;
  std::unordered_map<std::string, std::shared_ptr<Callback>> by_channel;  // <id>-a and <id>-b
  std::unordered_map<std::string, std::shared_ptr<Callback>> by_playback;
  std::size_t sent = 0, finished = 0, failed = 0;
  std::uint64_t playbacks = 0;
  std::chrono::steady_clock::time_point t0;
  std::unique_ptr<ari::Client> client;

  auto request = [&](verb method, std::string target, std::function<void(Result<ari::Response>)> done,
                     json::object body = {}) { client->request(method, std::move(target), std::move(done), std::move(body)); };
  std::function<void()> more;  // places callbacks up to --in-flight
  auto place = [&](const std::shared_ptr<Callback>& cb, bool is_a) {
    const std::string leg = is_a ? "-a" : "-b";
    const std::string number = is_a ? cb->a : cb->b;
    json::object variables{{"CHANNEL(language)", "en"}, {"CHANNEL(accountcode)", "free"}, {"CB_ID", cb->id}};
    by_channel[cb->id + leg] = cb;
    request(verb::post,
            ari::with_query("/ari/channels", {{"endpoint", "Local/" + number + "@phones"},
                                              {"app", app},
                                              {"appArgs", (is_a ? "leg-a," : "leg-b,") + cb->id},
                                              {"callerId", "\"Callback\" <" + (is_a ? cb->b : cb->a) + ">"},
                                              {"timeout", is_a ? "30" : "45"},
                                              {"channelId", cb->id + leg},
                                              {"otherChannelId", cb->id + leg + "2"}}),
            [&, cb](Result<ari::Response> r) {
              if (!r) {
                cb->failed = true;
                std::cerr << "originate " << cb->id << ": " << r.error().describe() << "\n";
              }
            },
            json::object{{"variables", std::move(variables)}});
  };
  auto play = [&](const std::shared_ptr<Callback>& cb, const std::string& sound) {
    const std::string id = cb->id + "-p" + std::to_string(++playbacks);
    by_playback[id] = cb;
    request(verb::post,
            ari::with_query("/ari/channels/" + cb->id + "-a/play",
                            {{"media", "sound:" + sound}, {"playbackId", id}, {"lang", "en"}}),
            nullptr);
  };
  auto hang_up = [&](const std::string& channel) {
    request(verb::delete_, "/ari/channels/" + channel + "?reason_code=16", nullptr);
  };
  auto ended = [&](const std::shared_ptr<Callback>& cb) {
    if (!cb->a_gone || (cb->b_placed && !cb->b_gone)) return;
    by_channel.erase(cb->id + "-a");
    by_channel.erase(cb->id + "-b");
    if (cb->failed || !cb->bridged) ++failed;
    if (++finished >= calls) return io.stop();
    more();
  };
  more = [&] {
    while (sent < calls && sent - finished < in_flight) {
      auto cb = std::make_shared<Callback>();
      cb->id = "raw-" + std::to_string(sent);
      cb->a = std::to_string(a_first + static_cast<int>(sent % 800));
      cb->b = std::to_string(b_first + static_cast<int>(sent % 100));
      ++sent;
      place(cb, true);
    }
  };

  auto on_event = [&](const json::object& e) {
    const auto type = str(e, "type");
    if (type == "PlaybackFinished") {
      const auto* playback = e.if_contains("playback");
      if (playback == nullptr || !playback->is_object()) return;
      auto it = by_playback.find(std::string(str(playback->as_object(), "id")));
      if (it == by_playback.end()) return;
      auto cb = it->second;
      by_playback.erase(it);
      if (cb->a_gone) return;
      if (!cb->b_placed) {  // "please wait" is over: B
        cb->b_placed = true;
        place(cb, false);
      } else {  // "time up" is over: A goes
        hang_up(cb->id + "-a");
      }
      return;
    }
    const auto* channel = e.if_contains("channel");
    if (channel == nullptr || !channel->is_object()) return;
    const std::string id(str(channel->as_object(), "id"));
    auto it = by_channel.find(id);
    if (it == by_channel.end()) return;
    auto cb = it->second;
    const bool is_a = id.size() > 2 && id.compare(id.size() - 2, 2, "-a") == 0;
    if (type == "StasisStart") {
      if (is_a) {
        cb->a_up = true;
        play(cb, "callback-please-wait");
        return;
      }
      cb->b_up = true;
      request(verb::post, ari::with_query("/ari/bridges", {{"type", "mixing"}, {"name", cb->id}}),
              [&, cb](Result<ari::Response> made) {
                if (!made || !made->body.is_object()) {
                  cb->failed = true;
                  hang_up(cb->id + "-a");
                  hang_up(cb->id + "-b");
                  return;
                }
                const std::string bridge(str(made->body.as_object(), "id"));
                request(verb::post,
                        ari::with_query("/ari/bridges/" + bridge + "/addChannel", {{"channel", cb->id + "-a," + cb->id + "-b"}}),
                        [&, cb, bridge](Result<ari::Response> added) {
                          if (!added) {
                            cb->failed = true;
                            hang_up(cb->id + "-a");
                            hang_up(cb->id + "-b");
                            return;
                          }
                          cb->bridged = true;
                          cb->bridge = bridge;
                          cb->talk = std::make_unique<boost::asio::steady_timer>(io, talk);
                          cb->talk->async_wait([&, cb](boost::system::error_code ec) {
                            if (ec || cb->a_gone) return;
                            cb->time_up = true;
                            hang_up(cb->id + "-b");
                          });
                        });
              });
    } else if (type == "ChannelDestroyed") {
      (is_a ? cb->a_gone : cb->b_gone) = true;
      if (!is_a && cb->time_up && !cb->a_gone) play(cb, "callback-time-up");
      if (is_a && cb->bridged) request(verb::delete_, "/ari/bridges/" + cb->bridge, nullptr);
      if (!is_a && !cb->a_gone && !cb->bridged) {  // B never answered: A goes too
        cb->failed = true;
        hang_up(cb->id + "-a");
      }
      if (is_a && cb->b_placed && !cb->b_gone) hang_up(cb->id + "-b");
      if (is_a && !cb->b_placed) cb->failed = true;
      ended(cb);
    }
  };

  client = std::make_unique<ari::Client>(
      io, ari::Endpoint{.host = host, .port = port, .username = "callback", .password = password, .app = app},
      ari::Client::Options{.max_connections = 4},
      ari::Client::Handlers{.opened =
                                [&] {
                                  opened = true;
                                  t0 = std::chrono::steady_clock::now();
                                  more();
                                },
                            .event = on_event,
                            .closed =
                                [&](const Error& why) {
                                  error = "the event WebSocket closed: " + why.describe();
                                  io.stop();
                                },
                            .malformed = nullptr});
  client->open();
  boost::asio::steady_timer limit{io, std::chrono::seconds(time_limit)};
  limit.async_wait([&](boost::system::error_code e) {
    if (!e) {
      error = "stopped after the time limit of " + std::to_string(time_limit) + " s: " + std::to_string(finished) +
              " of " + std::to_string(calls) + " callbacks finished";
      io.stop();
    }
  });
  io.run();

  if (!opened) return fail(error.empty() ? "the event WebSocket never opened" : error);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("raw ARI loop: %zu callbacks in %.2f s = %.1f callbacks/s with %zu in flight, talk %lld ms; %zu failed\n",
              finished, seconds, static_cast<double>(finished - failed) / seconds, in_flight,
              static_cast<long long>(talk.count()), failed);
  if (!error.empty()) return fail(error);
  return failed == 0 ? 0 : 1;
}
