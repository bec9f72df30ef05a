// Load tool: the CallbackService with the AMI engine against the Asterisk fake on
// loopback, or (--engine ari) with the ARI engine against the ARI fake. Two modes:
//   throughput: keep --in-flight callbacks going until --calls complete; A=9XXX answers
//               at once, B=98XX answers and hangs up at once (ARI: B=2XXX at time scale
//               0.01, see below); prints callbacks/s and the number that did not complete
//               normally (must be 0).
//   hold:       start --calls callbacks (A=9XXX, B=9XXX, both stay up) and wait until all
//               are bridged; prints the resident memory per callback in flight.
// The fake runs in its own process when --port is given (so memory figures are ours
// alone); otherwise in this process, on its own thread. --port (with --host, default
// 127.0.0.1, and --secret) also reaches a REAL Asterisk (../shared/asterisk/peer.sh: user
// callback, secret callbacksecret, the shipped dialplan and the fixtures' phones); --b-first picks other
// B numbers (2000: answer after 1 s, talk 5 s), --a-first other A numbers.
//   callback_load throughput --calls 50000 --in-flight 500
//   callback_load hold --calls 10000 --port 5038
//   callback_load throughput --calls 2000 --in-flight 200 --port 5038   (real Asterisk)
//   callback_load throughput --engine ari --calls 50000 --in-flight 500
//   callback_load hold --engine ari --calls 10000 --port 8088   (callback-fake-ari --port 8088)
#include "ami_engine.hpp"
#include "ari_engine.hpp"
#include "fake_ari.hpp"
// --password is the ARI password (default callbacksecret); --limit S sets the campaign's
// limit (default 300 s, hold 600 s): with B 9XXX, which stays up, each callback then ends
// at its limit with "time up" (outcome time_up counts as completed; benchmarks/raw_ari_loop
// does the same flow by hand on a real Asterisk):
//   callback_load throughput --engine ari --port 8088 --b-first 9000 --limit 2 --calls 400 --in-flight 100
#include "fake_asterisk.hpp"
#include "sqlite_store.hpp"

#include <callback_internal/callback_service.hpp>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

using namespace callback;
using namespace std::chrono_literals;

namespace {

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

class Outcomes final : public CallObserver {
 public:
  std::size_t completed = 0, failed = 0, bridged = 0;
  void on_call_event(const CallEvent& e) override {
    if (e.call.state() == CallState::bridged) ++bridged;
    if (!is_final(e.call.state())) return;
    const bool ok = e.call.state() == CallState::completed && e.call.leg_b().answered.has_value();
    (ok ? completed : failed) += 1;
    if (!ok && failed <= 5) {
      std::cerr << "not completed: " << e.call.id() << " " << to_string(e.call.state()) << " A cause "
                << e.call.leg_a().cause.code() << " B cause " << e.call.leg_b().cause.code() << "\n";
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "throughput";
  std::size_t calls = 20000, in_flight = 500;
  int port = 0;
  std::string host = "127.0.0.1", secret = "callbacksecret", engine_name = "ami";
  int a_first = 9000, b_first = 9800;
  std::chrono::seconds limit = mode == "hold" ? 600s : 300s;
  double scale = mode == "hold" ? 1.0 : 0.0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--calls")) calls = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--in-flight")) in_flight = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--port")) port = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!std::strcmp(argv[i], "--engine")) engine_name = argv[i + 1];
    else if (!std::strcmp(argv[i], "--secret")) secret = argv[i + 1];
    else if (!std::strcmp(argv[i], "--time-scale")) scale = std::stod(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--a-first")) a_first = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--b-first")) b_first = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--password")) secret = argv[i + 1];
    else if (!std::strcmp(argv[i], "--limit")) limit = std::chrono::seconds(std::stol(argv[i + 1]));
    else {
      std::cerr << "callback_load: unknown option " << argv[i] << "\n";
      return 2;
    }
  }
  if (engine_name != "ami" && engine_name != "ari") {
    std::cerr << "callback_load: --engine is ami or ari\n";
    return 2;
  }
  const bool ari = engine_name == "ari";
  // ARI: B 2XXX (rings 10 ms, talks 50 ms at scale 0.01) unless told otherwise, so that every
  // callback runs the whole step flow. A 98XX B hangs up while the bridge is being made (the
  // fake has no delays at scale 0): the addChannel fails, and A hears no "partner hung up".
  if (ari && mode == "throughput") {
    bool b_given = false, scale_given = false;
    for (int i = 2; i + 1 < argc; i += 2) {
      b_given = b_given || !std::strcmp(argv[i], "--b-first");
      scale_given = scale_given || !std::strcmp(argv[i], "--time-scale");
    }
    if (!b_given) b_first = 2000;
    if (!scale_given) scale = 0.01;
  }
  std::unique_ptr<fake::FakeAsterisk> asterisk;
  std::unique_ptr<fake::FakeAri> ari_fake;
  if (port == 0 && !ari) {
    asterisk = std::make_unique<fake::FakeAsterisk>(
        fake::FakeAsteriskOptions{.time_scale = scale, .recordings = CALLBACK_ASTERISK_RECORDINGS});
    asterisk->start();
    port = asterisk->port();
  } else if (port == 0) {
    ari_fake = std::make_unique<fake::FakeAri>(fake::FakeAriOptions{.time_scale = scale});
    ari_fake->start();
    port = ari_fake->port();
  }

  boost::asio::io_context io;
  SystemClock clock{io};
  // CALLBACK_LOAD_DEBUG=1: the engines' and the service's debug log on stderr (every ARI
  // event and REST call, timestamped): where a callback's time goes.
  StreamLogger log{std::cerr, std::getenv("CALLBACK_LOAD_DEBUG") ? LogLevel::debug : LogLevel::warning};
  Metrics metrics;
  Context context{io, clock, log, metrics};
  const auto db = std::filesystem::temp_directory_path() / ("callback-load-" + std::to_string(getpid()) + ".db");
  auto store = store_sqlite::SqliteStore::open({.path = db, .synchronous = "normal"}).value();
  std::unique_ptr<Engine> engine_owner;
  if (ari) {
    engine_ari::AriOptions options;
    options.servers = {host + ":" + std::to_string(port)};
    options.password = secret;
    options.max_connections = std::getenv("ARI_CONNECTIONS") ? std::stoul(std::getenv("ARI_CONNECTIONS")) : 8;
    // ARI_REST=websocket: the engine's rest_over_websocket (REST calls on the event WebSocket).
    options.rest_over_websocket = std::getenv("ARI_REST") != nullptr && std::string_view(std::getenv("ARI_REST")) == "websocket";
    engine_owner = std::make_unique<engine_ari::AriEngine>(context, options);
  } else {
    engine_ami::AmiOptions options;
    options.servers = {host + ":" + std::to_string(port)};
    options.secret = secret;
    engine_owner = std::make_unique<engine_ami::AmiEngine>(context, options);
  }
  Engine& engine = *engine_owner;
  ServiceOptions service_options;
  service_options.campaigns["free"] = CampaignLimits{.limit = limit};
  service_options.stage_grace = 60s;
  service_options.max_in_flight = 0;  // the tool sets its own concurrency
  CallbackService service{context, engine, nullptr, *store, service_options};
  Outcomes counter;
  service.subscribe(counter);
  engine.start();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!engine.status().servers.at(0).connected) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "could not connect to Asterisk (or the fake): " << engine.status().servers.at(0).detail << "\n";
      return 1;
    }
    io.run_for(5ms);
  }
  const NumberingPlan plan{.country_code = "", .trunk_prefix = "", .international_prefixes = {}};
  std::size_t started = 0;
  auto start_one = [&] {
    const std::string a = std::to_string(a_first + static_cast<int>(started % 800));  // 9000-9799: answer, stay up
    const std::string b = mode == "hold" ? std::to_string(a_first + static_cast<int>((started + 1) % 800))
                                         : std::to_string(b_first + static_cast<int>(started % 100));  // 98XX: hang up at once
    CallbackRequest request{.caller = PhoneNumber::parse(a, plan).value(),
                            .callee = PhoneNumber::parse(b, plan).value(),
                            .payer = CampaignId{"free"}};
    if (auto id = service.start(request); !id) {
      std::cerr << "start failed: " << id.error().describe() << "\n";
      ++counter.failed;
    }
    ++started;
  };

  const long rss_before = rss_kib();
  const auto t0 = std::chrono::steady_clock::now();
  if (mode == "hold") {
    while (started < calls) {
      start_one();
      if (started % 200 == 0) io.poll();
    }
    while (counter.bridged < calls && counter.failed == 0) {
      io.run_for(10ms);
      if (std::chrono::steady_clock::now() - t0 > 300s) break;
    }
    const long rss_held = rss_kib();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("hold: %zu callbacks bridged at once (%zu in flight, %zu failed) after %.1f s\n", counter.bridged,
                service.in_flight(), counter.failed, seconds);
    std::printf("memory: RSS %ld KiB idle -> %ld KiB held: %.1f KiB per callback in flight%s\n", rss_before,
                rss_held, static_cast<double>(rss_held - rss_before) / static_cast<double>(calls),
                asterisk || ari_fake ? " (fake in this process: includes its share)" : "");
    engine.stop();
    io.run_for(100ms);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
    return counter.failed == 0 && counter.bridged >= calls ? 0 : 1;
  }
  while (counter.completed + counter.failed < calls) {
    while (started < calls && started - counter.completed - counter.failed < in_flight) start_one();
    io.run_one_for(100ms);
    if (std::chrono::steady_clock::now() - t0 > 600s) break;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("throughput (%s): %zu callbacks in %.2f s = %.0f callbacks/s with %zu in flight; %zu not completed\n",
              engine_name.c_str(), counter.completed + counter.failed, seconds,
              static_cast<double>(counter.completed) / seconds, in_flight, counter.failed);
  if (ari_fake && calls > 0) {
    // What each callback cost the fake (and so a real Asterisk): REST requests by route, events by type.
    const auto per_callback = [calls](const char* what, const std::map<std::string, std::size_t>& counts) {
      std::size_t total = 0;
      for (const auto& [name, count] : counts) total += count;
      std::printf("ARI %s: %.2f a callback;", what, static_cast<double>(total) / static_cast<double>(calls));
      for (const auto& [name, count] : counts) {
        std::printf(" %s %.2f;", name.c_str(), static_cast<double>(count) / static_cast<double>(calls));
      }
      std::printf("\n");
    };
    const auto stats = ari_fake->stats();
    per_callback("requests", stats.requests);
    per_callback("events", stats.events_sent);
  }
  engine.stop();
  io.run_for(100ms);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
  return counter.failed == 0 ? 0 : 1;
}
