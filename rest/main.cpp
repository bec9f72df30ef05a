// callbackd: the callback service with its REST API and web page.
//
//   callbackd --config /etc/callback/callback.json
//   callbackd --config examples/config/demo.json --listen 127.0.0.1:8080
//
// SIGTERM or SIGINT: stop taking callbacks, give calls in flight the grace period
// (server.shutdown_grace_seconds), cancel the rest, write their CDRs and settlements, exit.
#include "daemon.hpp"

#include <callback/version.hpp>

#include <iostream>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view help =
    "callbackd -- the callback service: REST API, web page, Asterisk engine\n"
    "\n"
    "usage: callbackd [--config FILE] [--listen HOST:PORT] [--plugin-dir DIR]...\n"
    "  --config FILE      the service's config (see examples/config/); without it the\n"
    "                     embedded defaults, which need an engine: use examples/config/demo.json\n"
    "  --listen HOST:PORT overrides server.listen (default 127.0.0.1:8080; port 0: any free)\n"
    "  --plugin-dir DIR   search DIR for plugins first\n"
    "  --version, --help\n"
    "Stops gracefully on SIGTERM or SIGINT.\n";

int usage_error(const std::string& message) {
  std::cerr << "callbackd: " << message << "\n(callbackd --help shows the options)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace callback;
  std::optional<std::filesystem::path> config_file;
  std::optional<std::string> listen;
  std::vector<std::filesystem::path> plugin_dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << help;
      return 0;
    } else if (arg == "--version") {
      std::cout << "callbackd " << CALLBACK_VERSION_STRING << '\n';
      return 0;
    } else if (arg == "--config" || arg == "--listen" || arg == "--plugin-dir") {
      auto v = value();
      if (!v) return usage_error(std::string(arg) + " needs a value");
      if (arg == "--config") config_file = *v;
      if (arg == "--listen") listen = *v;
      if (arg == "--plugin-dir") plugin_dirs.emplace_back(*v);
    } else {
      return usage_error("unknown argument \"" + std::string(arg) + "\"");
    }
  }
  return rest::run_daemon({.config = config_file, .listen = listen, .plugin_dirs = plugin_dirs});
}
