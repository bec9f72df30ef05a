#pragma once
// The daemon's life, shared by `callbackd` and `callbackctl serve`: load the config,
// compose the runtime, serve HTTP, stop gracefully on SIGTERM or SIGINT.
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace callback::rest {

struct DaemonArgs {
  std::optional<std::filesystem::path> config;  // none: the embedded defaults
  std::optional<std::string> listen;            // overrides server.listen
  std::vector<std::filesystem::path> plugin_dirs;
};

// Blocks SIGTERM and SIGINT in this thread and the threads it starts later (the caller
// then waits for them with sigwait on the returned set) and ignores SIGPIPE.
sigset_t block_stop_signals();

// Returns the exit code: 0 after a graceful stop, 1 when it could not start, 2 for a
// bad config.
int run_daemon(const DaemonArgs& args);

}  // namespace callback::rest
