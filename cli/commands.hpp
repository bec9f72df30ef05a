#pragma once
// callbackctl's commands: each takes a typed argument struct, calls the library and
// prints the result, and returns the process exit code. No business rule lives here.
#include <callback/config.hpp>
#include <callback/error.hpp>

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace callback::cli {

// Exit codes: scripts can tell a mistake in what they asked for from a failure.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;    // the operation failed (I/O, database, ...)
inline constexpr int exit_bad_input = 2;  // usage, config, unknown names, bad plugin files

struct Output {
  std::ostream& out;
  std::ostream& err;
  bool json = false;
};

// Prints the error (as {"error": ...} with --json, always one line on stderr); returns `code`.
int fail(const Output& output, const Error& error, int code = exit_bad_input);

struct PluginSource {
  std::optional<std::filesystem::path> config;  // --config: its plugin_dirs join the search path
  std::vector<std::filesystem::path> plugin_dirs;  // --plugin-dir
};

// The --config file, or the embedded defaults without one.
[[nodiscard]] Result<ServiceConfig> service_config(const PluginSource& source);

int version_command(const Output& output);
int plugins_list_command(const PluginSource& source, const Output& output);
// `name` is a canonical plugin name or a path to a plugin file.
int plugins_describe_command(const PluginSource& source, const std::string& name, const Output& output);
int config_check_command(const std::filesystem::path& file, const Output& output);

}  // namespace callback::cli
