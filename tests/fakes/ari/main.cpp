// callback-fake-ari: a TEST AND DEMO DOUBLE of the Asterisk REST Interface.
#include "fake_ari.hpp"

#include <pthread.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kHelp =
    "callback-fake-ari -- a TEST AND DEMO DOUBLE, NOT Asterisk.\n"
    "\n"
    "Speaks the Asterisk REST Interface (HTTP and the event WebSocket) on 127.0.0.1 as the\n"
    "ari-* recordings of a real Asterisk 23.4.1 show (tests/fixtures/asterisk). Phones are\n"
    "Local/<number>@phones and behave by number (1XXX answers, 3XXX busy, 4XXX no answer, ...;\n"
    "see etc/extensions.conf there). No audio, no SIP, nothing is dialled.\n"
    "\n"
    "usage: callback-fake-ari [--port N] [--user U] [--password P] [--time-scale X]\n"
    "                         [--app-check on|off] [--sound NAME=SECONDS]... [--sound-default S]\n"
    "  --port N           TCP port on 127.0.0.1 (default 8088; 0 = any free port, printed)\n"
    "  --user U           ARI user (default callback)\n"
    "  --password P       ARI password (default callbacksecret)\n"
    "  --time-scale X     multiply every delay by X (default 1; 0 = as fast as possible)\n"
    "  --app-check on|off on (default): an app exists only while its WebSocket is open, and a\n"
    "                     call into an app without one is hung up as Stasis() does; off: every\n"
    "                     app is taken as registered\n"
    "  --sound NAME=S     the sound NAME plays S seconds (repeatable; default 1)\n"
    "  --sound-default S  every other sound plays S seconds\n"
    "Control endpoints (no authentication): POST /fake/inbound?from=&to=[&dtmf=&name=&app=\n"
    "&dtmf_delay_ms=&dtmf_interval_ms=&dtmf_duration_ms=&hangup_after_ms=&give_up_ms=],\n"
    "POST /fake/drop (close every WebSocket mid-frame), GET /fake/stats.\n"
    "Runs until SIGINT or SIGTERM.\n";

}  // namespace

int main(int argc, char** argv) {
  callback::fake::FakeAriOptions options;
  options.port = 8088;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "callback-fake-ari: " << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (arg == "--help" || arg == "-h") {
        std::cout << kHelp;
        return 0;
      } else if (arg == "--port") {
        const int port = std::stoi(value());
        if (port < 0 || port > 65535) throw std::out_of_range("port");
        options.port = static_cast<std::uint16_t>(port);
      } else if (arg == "--user") {
        options.username = value();
      } else if (arg == "--password") {
        options.password = value();
      } else if (arg == "--time-scale") {
        options.time_scale = std::stod(value());
        if (options.time_scale < 0) throw std::out_of_range("time scale");
      } else if (arg == "--app-check") {
        const std::string v = value();
        if (v != "on" && v != "off") throw std::invalid_argument("app-check");
        options.app_check = v == "on";
      } else if (arg == "--sound") {
        const std::string v = value();
        const std::size_t eq = v.find('=');
        if (eq == std::string::npos || eq == 0) throw std::invalid_argument("sound");
        const double seconds = std::stod(v.substr(eq + 1));
        if (seconds < 0) throw std::out_of_range("sound");
        options.sound_seconds[v.substr(0, eq)] = seconds;
      } else if (arg == "--sound-default") {
        options.default_sound_seconds = std::stod(value());
        if (options.default_sound_seconds < 0) throw std::out_of_range("sound-default");
      } else {
        std::cerr << "callback-fake-ari: unknown option " << arg << " (see --help)\n";
        return 2;
      }
    } catch (const std::logic_error&) {
      std::cerr << "callback-fake-ari: bad value for " << arg << "\n";
      return 2;
    }
  }
  try {
    // Block the signals before the fake's thread starts (it inherits the mask), then
    // wait for them here: no handler runs on the fake's thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    callback::fake::FakeAri fake(options);
    fake.start();
    std::cout << "fake ari listening on 127.0.0.1:" << fake.port() << std::endl;
    int signal = 0;
    sigwait(&signals, &signal);
    fake.stop();
  } catch (const std::exception& e) {
    std::cerr << "callback-fake-ari: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
