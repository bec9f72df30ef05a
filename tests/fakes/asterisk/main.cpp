// callback-fake-asterisk: a TEST AND DEMO DOUBLE of the Asterisk Manager Interface.
#include "../serve_until_signal.hpp"
#include "fake_asterisk.hpp"

#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kHelp =
    "callback-fake-asterisk -- a TEST AND DEMO DOUBLE, NOT Asterisk.\n"
    "\n"
    "Speaks the Asterisk Manager Interface (AMI) on 127.0.0.1, replaying the transcripts\n"
    "recorded from a real Asterisk 23.4.1 (tests/fixtures/asterisk). Phones behave by number\n"
    "(1XXX answers, 3XXX busy, 4XXX no answer, ...; see etc/extensions.conf there).\n"
    "Each callback's result goes to an AstDB kept in memory (DBGet/DBPut/DBDel, family\n"
    "callback, key CB_ID), as the project's dialplan writes it; it is lost on exit.\n"
    "Never use it in place of a real PBX: no call audio, no SIP, nothing is dialled.\n"
    "\n"
    "usage: callback-fake-asterisk [--port N] [--time-scale X] [--interleave MS [--seed N]]\n"
    "                              [--recordings DIR] [--dialplan FILE]\n"
    "                              [--username U] [--secret S] [--write-classes LIST]\n"
    "                              [--no-cdr] [--missing-sound NAME]...\n"
    "  --port N          TCP port on 127.0.0.1 (default 5038; 0 = any free port)\n"
    "  --time-scale X    multiply every delay by X (default 1; 0 = as fast as possible)\n"
    "  --interleave MS   each call's events in a random order that keeps every channel's\n"
    "                    own order, as a busy Asterisk sends them (held back by at most MS\n"
    "                    of recorded time); --seed N repeats one order\n"
    "  --recordings DIR  folder with the ami-*.txt recordings (default: the source tree's)\n"
    "  --username U      AMI user (default callback)\n"
    "  --secret S        AMI secret (default callbacksecret)\n"
    "  --dialplan FILE   the dialplan loaded as callback-extensions.conf, whose [callback]\n"
    "                    context `dialplan show [version@]callback` lists (default: the\n"
    "                    source tree's examples/asterisk/extensions.conf)\n"
    "  --write-classes LIST\n"
    "                    manager.conf write = of the user (default system,call,command,originate);\n"
    "                    an action needing another class gets Permission denied\n"
    "  --no-cdr          cdr_manager suspended (enabled = no): `cdr show status` says so and\n"
    "                    no Cdr event is sent\n"
    "  --missing-sound NAME\n"
    "                    `core show sound NAME` finds nothing (repeatable); installed by\n"
    "                    default: the callback-* prompts (en, zh), vm-youhave, queue-seconds,\n"
    "                    queue-minutes (en)\n"
    "Runs until SIGINT or SIGTERM.\n";

}  // namespace

int main(int argc, char** argv) {
  callback::fake::FakeAsteriskOptions options;
  options.port = 5038;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "callback-fake-asterisk: " << arg << " needs a value\n";
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
      } else if (arg == "--time-scale") {
        options.time_scale = std::stod(value());
        if (options.time_scale < 0) throw std::out_of_range("time scale");
      } else if (arg == "--interleave") {
        options.interleave_window_ms = std::stoll(value());
        if (options.interleave_window_ms < 0) throw std::out_of_range("interleave");
      } else if (arg == "--seed") {
        options.seed = std::stoull(value());
      } else if (arg == "--recordings") {
        options.recordings = value();
      } else if (arg == "--username") {
        options.username = value();
      } else if (arg == "--secret") {
        options.secret = value();
      } else if (arg == "--dialplan") {
        options.dialplan_file = value();
      } else if (arg == "--write-classes") {
        options.write_classes = value();
      } else if (arg == "--no-cdr") {
        options.cdr_manager_enabled = false;
      } else if (arg == "--missing-sound") {
        options.sounds.erase(value());
      } else {
        std::cerr << "callback-fake-asterisk: unknown option " << arg << " (see --help)\n";
        return 2;
      }
    } catch (const std::logic_error&) {
      std::cerr << "callback-fake-asterisk: bad value for " << arg << "\n";
      return 2;
    }
  }
  return callback::fake::serve_until_signal<callback::fake::FakeAsterisk>(options, "callback-fake-asterisk",
                                                                          "fake asterisk listening on 127.0.0.1:");
}
