#include <callback/config.hpp>
#include <callback/plugin_loader.hpp>

#include <boost/json/parse_options.hpp>
#include <boost/json/stream_parser.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>
#include <climits>

namespace callback {
namespace fs = std::filesystem;
namespace json = boost::json;

EnvironmentLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

namespace {

std::string join_path(const std::string& base, std::string_view key) {
  return base.empty() ? std::string(key) : base + "." + std::string(key);
}

bool all_numbers_finite(const json::value& value, const std::string& path, std::string& where) {
  if (value.is_double()) {
    if (std::isfinite(value.get_double())) return true;
    where = path;
    return false;
  }
  if (value.is_object()) {
    for (const auto& [key, child] : value.get_object()) {
      if (!all_numbers_finite(child, join_path(path, key), where)) return false;
    }
  } else if (value.is_array()) {
    const auto& array = value.get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      if (!all_numbers_finite(array[i], path + "[" + std::to_string(i) + "]", where)) return false;
    }
  }
  return true;
}

}  // namespace

Result<json::value> parse_json_with_comments(std::string_view text) {
  json::parse_options options;
  options.allow_comments = true;
  options.allow_trailing_commas = true;
  options.max_depth = 64;
  json::stream_parser parser({}, options);
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    // Locate the byte the parser stopped at as line and column, for people.
    const std::size_t at = std::min(consumed, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = ec.message();
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) what = "the file is empty";
    return Error{"config.syntax", "not valid JSON: " + what, "line " + std::to_string(line) + ", column " +
                                                                    std::to_string(column)};
  }
  json::value value = parser.release();
  // A number past a double's range (1e400) parses as infinity, which no JSON can hold; say where.
  std::string where;
  if (!all_numbers_finite(value, "", where)) {
    return Error{"config.range", "a number too large to hold", where.empty() ? std::string("value") : where};
  }
  return value;
}

namespace {

// Replaces ${NAME} in every string, in place.
Status substitute_environment(json::value& value, const std::string& path, const EnvironmentLookup& env) {
  if (value.is_object()) {
    for (auto& [key, child] : value.get_object()) {
      if (auto ok = substitute_environment(child, join_path(path, key), env); !ok) return ok;
    }
  } else if (value.is_array()) {
    auto& array = value.get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      if (auto ok = substitute_environment(array[i], path + "[" + std::to_string(i) + "]", env); !ok) return ok;
    }
  } else if (value.is_string()) {
    const std::string_view text = value.get_string();
    if (text.find('$') == std::string_view::npos) return ok_status();
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text.compare(i, 3, "$${") == 0) {
        out += "${";
        i += 2;
      } else if (text.compare(i, 2, "${") == 0) {
        const auto close = text.find('}', i + 2);
        if (close == std::string_view::npos) {
          return Error{"config.env", "unterminated ${ in string (write $${ for a literal ${)", path};
        }
        const auto name = text.substr(i + 2, close - i - 2);
        if (name.empty()) return Error{"config.env", "empty variable name in ${}", path};
        auto found = env(name);
        if (!found) return Error{"config.env", "environment variable " + std::string(name) + " is not set", path};
        out += *found;
        i = close;
      } else {
        out += text[i];
      }
    }
    value = json::string(out);
  }
  return ok_status();
}

Error type_error(const std::string& field, std::string_view expected, const json::value& got) {
  return Error{"config.type", "expected " + std::string(expected) + ", got " + describe_json(got), field};
}

Status check_keys(const json::object& object, const std::string& path, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object) {
    bool ok = false;
    for (auto k : known) ok = ok || k == key;
    if (!ok) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return Error{"config.unknown_key", "unknown key (known: " + list + ")", join_path(path, key)};
    }
  }
  return ok_status();
}

Result<std::vector<std::string>> string_list(const json::value& value, const std::string& path) {
  if (!value.is_array()) return type_error(path, "array of strings", value);
  std::vector<std::string> out;
  const auto& array = value.get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_string()) return type_error(path + "[" + std::to_string(i) + "]", "string", array[i]);
    out.emplace_back(array[i].get_string());
  }
  return out;
}

Result<std::optional<ComponentConfig>> parse_component(const json::value& value, const std::string& path) {
  if (!value.is_object()) return type_error(path, "object with \"plugin\"", value);
  const auto& object = value.get_object();
  if (auto ok = check_keys(object, path, {"plugin", "name", "config", "enabled"}); !ok) return ok.error();
  ComponentConfig component;
  component.path = path;
  const auto* plugin = object.if_contains("plugin");
  if (plugin == nullptr) return Error{"config.missing", "\"plugin\" is missing (a canonical plugin name)", path + ".plugin"};
  if (!plugin->is_string() || plugin->get_string().empty()) return type_error(path + ".plugin", "plugin name", *plugin);
  component.plugin = std::string(plugin->get_string());
  component.name = component.plugin;
  if (const auto* name = object.if_contains("name")) {
    if (!name->is_string() || name->get_string().empty()) return type_error(path + ".name", "non-empty string", *name);
    component.name = std::string(name->get_string());
  }
  if (const auto* config = object.if_contains("config")) {
    if (!config->is_object()) return type_error(path + ".config", "object", *config);
    component.config = *config;
  }
  if (const auto* enabled = object.if_contains("enabled")) {
    if (!enabled->is_bool()) return type_error(path + ".enabled", "boolean", *enabled);
    if (!enabled->get_bool()) return std::optional<ComponentConfig>{};
  }
  return std::optional<ComponentConfig>{std::move(component)};
}

Status parse_component_list(const json::object& root, std::string_view key, std::vector<ComponentConfig>& out) {
  const auto* value = root.if_contains(key);
  if (value == nullptr) return ok_status();
  if (!value->is_array()) return type_error(std::string(key), "array", *value);
  const auto& array = value->get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    auto component = parse_component(array[i], std::string(key) + "[" + std::to_string(i) + "]");
    if (!component) return component.error();
    if (*component) out.push_back(std::move(**component));
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (out[i].name == out[j].name) {
        return Error{"config.duplicate", "instance name \"" + out[i].name + "\" is used twice (also " + out[j].path +
                                             "); give each a distinct \"name\"", out[i].path + ".name"};
      }
    }
  }
  return ok_status();
}

Result<NumberingPlan> parse_numbering(const json::value& value) {
  const std::string path = "numbering";
  if (!value.is_object()) return type_error(path, "object", value);
  const auto& object = value.get_object();
  if (auto ok = check_keys(object, path, {"country_code", "trunk_prefix", "international_prefixes",
                                          "emergency_numbers", "min_subscriber_digits"});
      !ok) {
    return ok.error();
  }
  NumberingPlan plan;
  for (auto [key, target] : {std::pair<std::string_view, std::string*>{"country_code", &plan.country_code},
                             {"trunk_prefix", &plan.trunk_prefix}}) {
    if (const auto* v = object.if_contains(key)) {
      if (!v->is_string()) return type_error(join_path(path, key), "string of digits", *v);
      *target = std::string(v->get_string());
    }
  }
  if (const auto* v = object.if_contains("international_prefixes")) {
    auto list = string_list(*v, path + ".international_prefixes");
    if (!list) return list.error();
    plan.international_prefixes = std::move(*list);
  }
  if (const auto* v = object.if_contains("emergency_numbers")) {
    auto list = string_list(*v, path + ".emergency_numbers");
    if (!list) return list.error();
    plan.emergency_numbers = std::move(*list);
  }
  if (const auto* v = object.if_contains("min_subscriber_digits")) {
    if (!v->is_int64() || v->get_int64() < 0 || v->get_int64() > 15) {
      return type_error(path + ".min_subscriber_digits", "whole number from 0 (no check) to 15", *v);
    }
    plan.min_subscriber_digits = static_cast<std::size_t>(v->get_int64());
  }
  if (auto ok = plan.validate(); !ok) return ok.error().within(path);
  return plan;
}

// A whole number of seconds in [min, max].
Status seconds_field(const json::object& object, const std::string& path, std::string_view key,
                     std::chrono::seconds& out, std::int64_t min, std::int64_t max) {
  const auto* v = object.if_contains(key);
  if (v == nullptr) return ok_status();
  const std::string field = join_path(path, key);
  if (!v->is_int64() && !v->is_uint64()) return type_error(field, "whole number of seconds", *v);
  const std::int64_t n = v->is_int64() ? v->get_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), INT64_MAX));
  if (n < min || n > max) {
    return Error{"config.range", "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                     " seconds, got " + std::to_string(n), field};
  }
  out = std::chrono::seconds{n};
  return ok_status();
}

Result<ServiceOptions> parse_service(const json::value& value) {
  const std::string path = "service";
  if (!value.is_object()) return type_error(path, "object", value);
  const auto& object = value.get_object();
  if (auto ok = check_keys(object, path,
                           {"campaigns", "a_ring_timeout_seconds", "b_ring_timeout_seconds", "warning_before_seconds",
                            "warning_repeat_seconds", "max_duration_seconds", "show_callee_to_caller", "service_number",
                            "max_in_flight", "node", "node_lease_seconds"});
      !ok) {
    return ok.error();
  }
  ServiceOptions options;
  constexpr std::int64_t day = 86'400;
  for (auto [key, target, min] : {std::tuple<std::string_view, std::chrono::seconds*, std::int64_t>{
                                      "a_ring_timeout_seconds", &options.a_ring_timeout, 1},
                                  {"b_ring_timeout_seconds", &options.b_ring_timeout, 1},
                                  {"warning_before_seconds", &options.warning_before, 0},
                                  {"warning_repeat_seconds", &options.warning_repeat, 1},
                                  {"max_duration_seconds", &options.max_duration, 1}}) {
    if (auto ok = seconds_field(object, path, key, *target, min, day); !ok) return ok.error();
  }
  if (auto ok = seconds_field(object, path, "node_lease_seconds", options.node_lease, 2, 3600); !ok) return ok.error();
  if (const auto* v = object.if_contains("node")) {
    const bool fits = v->is_string() && !v->get_string().empty() && v->get_string().size() <= 64 &&
                      std::all_of(v->get_string().begin(), v->get_string().end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
                      });
    if (!fits) return type_error(path + ".node", "node id: 1 to 64 letters, digits, '.', '_' or '-'", *v);
    options.node = std::string(v->get_string());
  }
  if (const auto* v = object.if_contains("max_in_flight")) {
    if (!v->is_int64() || v->get_int64() < 0 || v->get_int64() > 10'000'000) {
      return type_error(path + ".max_in_flight", "whole number from 0 (no limit) to 10000000", *v);
    }
    options.max_in_flight = static_cast<std::size_t>(v->get_int64());
  }
  if (const auto* v = object.if_contains("show_callee_to_caller")) {
    if (!v->is_bool()) return type_error(path + ".show_callee_to_caller", "boolean", *v);
    options.show_callee_to_caller = v->get_bool();
  }
  if (const auto* v = object.if_contains("service_number")) {
    if (!v->is_string()) return type_error(path + ".service_number", "string of digits", *v);
    auto number = PhoneNumber::from_e164(v->get_string());
    if (!number) return number.error().at(path + ".service_number");
    options.service_number = *number;
  }
  if (const auto* v = object.if_contains("campaigns")) {
    const std::string campaigns_path = path + ".campaigns";
    if (!v->is_object()) return type_error(campaigns_path, "object of campaign id -> limits", *v);
    for (const auto& [id, limits] : v->get_object()) {
      const std::string at = join_path(campaigns_path, id);
      if (!limits.is_object()) return type_error(at, "object", limits);
      if (auto ok = check_keys(limits.get_object(), at,
                               {"limit_seconds", "warning_before_seconds", "warning_repeat_seconds"});
          !ok) {
        return ok.error();
      }
      CampaignLimits campaign;
      for (auto [key, target, min] : {std::tuple<std::string_view, std::chrono::seconds*, std::int64_t>{
                                          "limit_seconds", &campaign.limit, 1},
                                      {"warning_before_seconds", &campaign.warning_before, 0},
                                      {"warning_repeat_seconds", &campaign.warning_repeat, 1}}) {
        if (auto ok = seconds_field(limits.get_object(), at, key, *target, min, day); !ok) return ok.error();
      }
      options.campaigns.emplace(std::string(id), campaign);
    }
  }
  return options;
}

}  // namespace

Result<ServiceConfig> parse_config(std::string_view text, const EnvironmentLookup& env) {
  auto parsed = parse_json_with_comments(text);
  if (!parsed) return parsed.error();
  json::value root_value = std::move(*parsed);
  if (!root_value.is_object()) return type_error("(top level)", "object", root_value);
  if (auto ok = substitute_environment(root_value, "", env); !ok) return ok.error();
  const auto& root = root_value.get_object();
  if (auto ok = check_keys(root, "", {"plugin_dirs", "numbering", "store", "billing", "engines", "triggers",
                                      "frontends", "log", "service", "server"});
      !ok) {
    return ok.error();
  }
  ServiceConfig config;
  if (const auto* v = root.if_contains("plugin_dirs")) {
    auto list = string_list(*v, "plugin_dirs");
    if (!list) return list.error();
    for (auto& dir : *list) config.plugin_dirs.emplace_back(std::move(dir));
  }
  if (const auto* v = root.if_contains("numbering")) {
    auto plan = parse_numbering(*v);
    if (!plan) return plan.error();
    config.numbering = std::move(*plan);
  }
  for (auto [key, slot] : {std::pair<std::string_view, std::optional<ComponentConfig>*>{"store", &config.store},
                           {"billing", &config.billing}}) {
    if (const auto* v = root.if_contains(key)) {
      auto component = parse_component(*v, std::string(key));
      if (!component) return component.error();
      *slot = std::move(*component);
    }
  }
  if (auto ok = parse_component_list(root, "engines", config.engines); !ok) return ok.error();
  if (auto ok = parse_component_list(root, "triggers", config.triggers); !ok) return ok.error();
  if (auto ok = parse_component_list(root, "frontends", config.frontends); !ok) return ok.error();
  if (const auto* v = root.if_contains("log")) {
    if (!v->is_object()) return type_error("log", "object", *v);
    if (auto ok = check_keys(v->get_object(), "log", {"level"}); !ok) return ok.error();
    if (const auto* level = v->get_object().if_contains("level")) {
      bool found = false;
      for (auto l : {LogLevel::debug, LogLevel::info, LogLevel::warning, LogLevel::error}) {
        if (level->is_string() && level->get_string() == to_string(l)) {
          config.log_level = l;
          found = true;
        }
      }
      if (!found) return type_error("log.level", "one of \"debug\", \"info\", \"warning\", \"error\"", *level);
    }
  }
  if (const auto* v = root.if_contains("service")) {
    auto service = parse_service(*v);
    if (!service) return service.error();
    config.service = std::move(*service);
  }
  if (const auto* v = root.if_contains("server")) {
    if (!v->is_object()) return type_error("server", "object", *v);
    config.server = *v;
  }
  if (!config.store) config.store = default_config().store;
  if (!root.contains("billing")) config.billing = default_config().billing;
  return config;
}

Result<ServiceConfig> load_config(const fs::path& file, const EnvironmentLookup& env) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) return Error{"config.read", "is a directory, not a config file", file.string()};
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{"config.read", "cannot open config file: " + std::string(std::strerror(errno)), file.string()};
  std::ostringstream text;
  text << in.rdbuf();
  auto config = parse_config(text.str(), env);
  if (!config) {
    Error e = config.error();
    e.field = file.string() + ": " + e.field;
    return e;
  }
  for (auto& dir : config->plugin_dirs) {
    if (dir.is_relative()) dir = file.parent_path() / dir;
  }
  return config;
}

ServiceConfig default_config() {
  ServiceConfig config;
  config.store = ComponentConfig{"callback.store.sqlite", "callback.store.sqlite", json::value(), "store"};
  config.billing = ComponentConfig{"callback.billing.sqlite", "callback.billing.sqlite", json::value(), "billing"};
  return config;
}

namespace {
Status check_component(PluginLoader& loader, const ComponentConfig& component, PluginKind kind) {
  auto plugin = loader.find(component.plugin);
  if (!plugin) return plugin.error().at(component.path + ".plugin");
  if (auto ok = PluginLoader::check_kind((*plugin)->info, kind); !ok) return ok.error().at(component.path + ".plugin");
  auto options = validate_options((*plugin)->factory->options(), component.config, component.path + ".config");
  if (!options) return options.error();
  return ok_status();
}
}  // namespace

Status check_config(const ServiceConfig& config, PluginLoader& loader) {
  if (config.store) {
    if (auto ok = check_component(loader, *config.store, PluginKind::store); !ok) return ok;
  }
  if (config.billing) {
    if (auto ok = check_component(loader, *config.billing, PluginKind::billing); !ok) return ok;
  }
  for (const auto& [list, kind] : {std::pair{&config.engines, PluginKind::engine},
                                   std::pair{&config.triggers, PluginKind::trigger},
                                   std::pair{&config.frontends, PluginKind::frontend}}) {
    for (const auto& component : *list) {
      if (auto ok = check_component(loader, component, kind); !ok) return ok;
    }
  }
  return ok_status();
}

}  // namespace callback
