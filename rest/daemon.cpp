#include "daemon.hpp"

#include "api_keys.hpp"
#include "server.hpp"

#include <callback/config.hpp>
#include <callback_internal/runtime.hpp>

#include <csignal>
#include <cstring>
#include <ctime>
#include <iostream>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace callback::rest {

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signals;
}

int run_daemon(const DaemonArgs& args) {
  const auto& config_file = args.config;
  const auto& listen = args.listen;
  RuntimeOptions runtime_options{.plugin_dirs = args.plugin_dirs};
  auto config = config_file ? load_config(*config_file) : Result<ServiceConfig>(default_config());
  if (!config) {
    std::cerr << "callbackd: " << (config_file ? config_file->string() + ": " : "") << config.error().describe() << '\n';
    return 2;
  }
  if (listen) {
    if (!config->server.is_object()) config->server = boost::json::object{};
    config->server.get_object()["listen"] = *listen;
  }
  auto server_options = parse_server_options(config->server);
  if (!server_options) {
    std::cerr << "callbackd: " << server_options.error().describe() << '\n';
    return 2;
  }
  // Signals go to the main thread only: block them before any thread starts.
  sigset_t signals = block_stop_signals();

  const auto grace = server_options->shutdown_grace;
  const std::string host = server_options->host;
  auto runtime = Runtime::open(std::move(*config), runtime_options);
  if (!runtime) {
    std::cerr << "callbackd: " << runtime.error().describe() << '\n';
    return 2;
  }
  auto keys = ApiKeys::over((*runtime)->store());
  if (!keys) {
    std::cerr << "callbackd: API keys: " << keys.error().describe() << '\n';
    return 1;
  }
  RestServer server(**runtime, std::move(*server_options), std::move(*keys));
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
  // Waits for SIGTERM/SIGINT; meanwhile, once a minute, gives the pages glibc's malloc
  // holds free back to the system. Its arenas otherwise keep every page they ever held:
  // under a steady load the live heap stays flat while RSS creeps up to each thread
  // arena's highest point so far (the soak, benchmarks/README.md).
  const timespec minute{.tv_sec = 60, .tv_nsec = 0};
  while (received <= 0) {
    received = sigtimedwait(&signals, nullptr, &minute);
#ifdef __GLIBC__
    if (received < 0) malloc_trim(0);
#endif
  }
  std::cout << "callbackd: " << strsignal(received) << ": draining (grace " << grace.count() << " s)" << std::endl;
  (*runtime)->drain(grace);
  if (!server.flush_webhooks(std::chrono::seconds(10))) {
    std::cerr << "callbackd: some status webhooks could not be delivered before stopping\n";
  }
  server.stop();
  (*runtime)->stop(grace);
  std::cout << "callbackd: stopped" << std::endl;
  return 0;
}

}  // namespace callback::rest
