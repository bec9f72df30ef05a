// callbackd: the callback service with its REST API and web page.
//
//   callbackd --config /etc/callback/callback.json
//   callbackd --config examples/config/demo.json --listen 127.0.0.1:8080
//
// SIGTERM or SIGINT: stop taking callbacks, give calls in flight the grace period
// (server.shutdown_grace_seconds), cancel the rest, write their CDRs and settlements, exit.
#include "api_keys.hpp"
#include "server.hpp"

#include <callback/config.hpp>
#include <callback/runtime.hpp>
#include <callback/version.hpp>

#include <csignal>
#include <cstring>
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
  std::optional<std::string> config_file, listen;
  RuntimeOptions runtime_options;
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
      if (arg == "--plugin-dir") runtime_options.plugin_dirs.emplace_back(*v);
    } else {
      return usage_error("unknown argument \"" + std::string(arg) + "\"");
    }
  }
  auto config = config_file ? load_config(*config_file) : Result<ServiceConfig>(default_config());
  if (!config) {
    std::cerr << "callbackd: " << (config_file ? *config_file + ": " : "") << config.error().describe() << '\n';
    return 2;
  }
  if (listen) {
    if (!config->server.is_object()) config->server = boost::json::object{};
    config->server.get_object()["listen"] = *listen;
  }
  auto server_options = rest::parse_server_options(config->server);
  if (!server_options) {
    std::cerr << "callbackd: " << server_options.error().describe() << '\n';
    return 2;
  }
  // Signals go to the main thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto keys = rest::ApiKeys::open(rest::keys_database_path(*config));
  if (!keys) {
    std::cerr << "callbackd: API keys: " << keys.error().describe() << '\n';
    return 1;
  }
  const auto grace = server_options->shutdown_grace;
  const std::string host = server_options->host;
  auto runtime = Runtime::open(std::move(*config), runtime_options);
  if (!runtime) {
    std::cerr << "callbackd: " << runtime.error().describe() << '\n';
    return 2;
  }
  rest::RestServer server(**runtime, std::move(*server_options), std::move(*keys));
  if (auto ok = (*runtime)->start(); !ok) {
    std::cerr << "callbackd: " << ok.error().describe() << '\n';
    return 1;
  }
  if (auto ok = server.start(); !ok) {
    std::cerr << "callbackd: " << ok.error().describe() << '\n';
    (*runtime)->stop(std::chrono::seconds{0});
    return 1;
  }
  if (!(*runtime)->wait_for_engine(std::chrono::seconds(5))) {
    std::cerr << "callbackd: no Asterisk server is ready yet (see /healthz); calls are refused until one is\n";
  }
  std::cout << "callbackd: listening on http://" << host << ":" << server.port() << "/" << std::endl;
  int received = 0;
  sigwait(&signals, &received);
  std::cout << "callbackd: " << strsignal(received) << ": draining (grace " << grace.count() << " s)" << std::endl;
  (*runtime)->drain(grace);
  server.stop();
  (*runtime)->stop(grace);
  std::cout << "callbackd: stopped" << std::endl;
  return 0;
}
