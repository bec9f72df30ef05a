#pragma once
// Config: one JSON file (comments and trailing commas allowed) that composes the service
// from plugins by canonical name, each with its own config block:
//
//   {
//     "plugin_dirs": ["/opt/callback/plugins"],
//     "numbering": {"country_code": "86", "trunk_prefix": "0", "international_prefixes": ["00"]},
//     "store":   {"plugin": "callback.store.sqlite", "config": {"path": "/var/lib/callback/callback.db"}},
//     "billing": {"plugin": "callback.billing.sqlite"},
//     "engines": [{"plugin": "callback.engine.ami", "name": "ast1",
//                  "config": {"host": "127.0.0.1", "secret": "${AMI_SECRET}"}}],
//     "triggers": [], "frontends": [],
//     "service": {"campaigns": {"free": {"limit_seconds": 300}}, "a_ring_timeout_seconds": 30},
//     "server": {"listen": "127.0.0.1:8080"},
//     "log": {"level": "info"}
//   }
//
// ${NAME} in any string is replaced by the environment variable (for secrets); $${ is a
// literal ${. Every mistake is an Error whose field is the JSON path:
// "engines[0].config.port: expected integer, got \"abc\"".
#include <callback/context.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/phone_number.hpp>
#include <callback/service.hpp>

#include <boost/json/value.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

class PluginLoader;

struct ComponentConfig {
  std::string plugin;  // canonical name: "callback.engine.ami"
  std::string name;    // instance name; defaults to the plugin name
  boost::json::value config;  // the plugin's own block (object or null)
  std::string path;    // where it sits in the file: "engines[0]"
};

struct ServiceConfig {
  std::vector<std::filesystem::path> plugin_dirs;
  NumberingPlan numbering;
  std::optional<ComponentConfig> store;
  std::optional<ComponentConfig> billing;
  std::vector<ComponentConfig> engines;
  std::vector<ComponentConfig> triggers;
  std::vector<ComponentConfig> frontends;
  LogLevel log_level = LogLevel::info;
  // "service": how calls run (ring timeouts, warnings, campaigns' limits).
  ServiceOptions service;
  // "server": callbackd's own block (listen address, threads, limits), read by callbackd;
  // null when absent.
  boost::json::value server;
};

using EnvironmentLookup = std::function<std::optional<std::string>(std::string_view name)>;
[[nodiscard]] CALLBACK_EXPORT EnvironmentLookup process_environment();

// JSON with comments; errors say "line L, column C: <what>".
[[nodiscard]] CALLBACK_EXPORT Result<boost::json::value> parse_json_with_comments(std::string_view text);

// Parses and checks the file's own structure (not yet the plugins' blocks).
[[nodiscard]] CALLBACK_EXPORT Result<ServiceConfig> parse_config(std::string_view text,
                                                                 const EnvironmentLookup& env = process_environment());
// As parse_config; relative plugin_dirs are taken relative to the file's folder.
[[nodiscard]] CALLBACK_EXPORT Result<ServiceConfig> load_config(const std::filesystem::path& file,
                                                                const EnvironmentLookup& env = process_environment());

// The embedded defaults: the SQLite store and SQLite billing in the default location
// (a config without "store" or "billing" gets these; "billing": {"plugin": ..., "enabled":
// false} turns billing off).
[[nodiscard]] CALLBACK_EXPORT ServiceConfig default_config();

// Checks every component: the plugin exists and loads, it is of the kind its slot needs,
// its block passes the factory's options. The first problem is returned.
[[nodiscard]] CALLBACK_EXPORT Status check_config(const ServiceConfig& config, PluginLoader& loader);

}  // namespace callback
