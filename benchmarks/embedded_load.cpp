// embedded_load: the C++ side of the Python figure (issue 14). The same loop as
// benchmarks/python_load.py, through the same embedding API: submit callbacks (A 9XXX
// answers at once, B 98XX answers and hangs up at once), keep --in-flight going, wait for
// the oldest; with --events, every callback has an event handler that counts its events.
//   embedded_load --config callback.json [--calls 20000] [--in-flight 500] [--events]
#include <callback/embedded.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>

int main(int argc, char** argv) {
  std::string config;
  std::size_t calls = 20'000, in_flight = 500;
  bool events = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    else if (!std::strcmp(argv[i], "--calls") && i + 1 < argc) calls = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--in-flight") && i + 1 < argc) in_flight = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--events")) events = true;
    else {
      std::fprintf(stderr, "usage: embedded_load --config FILE [--calls N] [--in-flight N] [--events]\n");
      return 2;
    }
  }
  auto service = callback::EmbeddedService::open(config);
  if (!service) {
    std::fprintf(stderr, "embedded_load: %s\n", service.error().describe().c_str());
    return 1;
  }
  if (auto ok = (*service)->start(); !ok) {
    std::fprintf(stderr, "embedded_load: %s\n", ok.error().describe().c_str());
    return 1;
  }
  std::atomic<std::size_t> seen{0};
  std::deque<std::shared_ptr<callback::CallbackTicket>> pending;
  std::size_t completed = 0;
  auto settle = [&] {
    auto end = pending.front()->wait(std::chrono::minutes(1));
    if (end && end->call.state() == callback::CallState::completed) ++completed;
    pending.pop_front();
  };
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < calls; ++i) {
    char a[8], b[8];
    std::snprintf(a, sizeof a, "9%03zu", i % 800);
    std::snprintf(b, sizeof b, "98%02zu", i % 100);
    callback::EmbeddedService::EventHandler handler;
    if (events) handler = [&](const callback::CallEvent&) { seen.fetch_add(1, std::memory_order_relaxed); };
    auto ticket = (*service)->submit({.caller = a, .callee = b, .payer = callback::CampaignId{"free"}},
                                     std::move(handler));
    if (!ticket) {
      std::fprintf(stderr, "embedded_load: %s\n", ticket.error().describe().c_str());
      return 1;
    }
    pending.push_back(std::move(*ticket));
    if (pending.size() >= in_flight) settle();
  }
  while (!pending.empty()) settle();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("C++: %zu callbacks in %.2f s = %.0f callbacks/s with %zu in flight; %zu completed; %zu events handled\n",
              calls, seconds, static_cast<double>(calls) / seconds, in_flight, completed, seen.load());
  (*service)->stop();
  return completed == calls ? 0 : 1;
}
