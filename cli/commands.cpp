#include "commands.hpp"

#include "table.hpp"

#include <callback/config.hpp>
#include <callback/json.hpp>
#include <callback/plugin_loader.hpp>
#include <callback/version.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <ostream>

namespace callback::cli {
namespace json = boost::json;
namespace fs = std::filesystem;

Result<ServiceConfig> service_config(const PluginSource& source) {
  if (source.config) return load_config(*source.config);
  return default_config();
}

int fail(const Output& output, const Error& error, int code) {
  if (output.json) output.out << json::serialize(error_body(error)) << '\n';
  output.err << "callbackctl: " << error.describe() << '\n';
  return code;
}

namespace {

// The search path: --plugin-dir first, then the config's plugin_dirs.
Result<std::vector<fs::path>> plugin_dirs(const PluginSource& source) {
  auto config = service_config(source);
  if (!config) return config.error();
  std::vector<fs::path> dirs = source.plugin_dirs;
  dirs.insert(dirs.end(), config->plugin_dirs.begin(), config->plugin_dirs.end());
  return dirs;
}

std::string default_text(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string() && v.get_string().empty()) return "\"\"";
  return json::serialize(v);
}

}  // namespace

int version_command(const Output& output) {
  if (output.json) {
    output.out << json::serialize(json::object{{"version", callback::version()},
                                               {"plugin_abi", CALLBACK_PLUGIN_ABI_VERSION},
                                               {"build", CALLBACK_BUILD_FINGERPRINT}})
               << '\n';
  } else {
    output.out << "callbackctl " << callback::version() << " (plugin ABI " << CALLBACK_PLUGIN_ABI_VERSION << ", "
               << CALLBACK_BUILD_FINGERPRINT << ")\n";
  }
  return exit_ok;
}

int plugins_list_command(const PluginSource& source, const Output& output) {
  auto dirs = plugin_dirs(source);
  if (!dirs) return fail(output, dirs.error());
  PluginLoader loader(*dirs);
  const auto plugins = loader.discover(true);
  if (output.json) {
    json::array list;
    for (const auto& p : plugins) {
      list.push_back(json::object{{"name", p.name},
                                  {"kind", p.kind},
                                  {"version", p.version},
                                  {"path", p.path.string()},
                                  {"status", to_string(p.status)},
                                  {"error", p.error}});
    }
    json::array search;
    for (const auto& d : loader.search_path()) search.push_back(json::string(d.string()));
    output.out << json::serialize(json::object{{"search_path", search}, {"plugins", list}}) << '\n';
  } else {
    Table table({"NAME", "KIND", "VERSION", "STATUS", "PATH"});
    for (const auto& p : plugins) {
      std::string status(to_string(p.status));
      if (!p.error.empty()) status += ": " + p.error;
      table.add({p.name.empty() ? "-" : p.name, p.kind.empty() ? "-" : p.kind, p.version.empty() ? "-" : p.version,
                 status, p.path.string()});
    }
    table.print(output.out);
    if (plugins.empty()) {
      output.out << "(no plugins found in:";
      for (const auto& d : loader.search_path()) output.out << ' ' << d.string();
      output.out << ")\n";
    }
  }
  // A broken file in the search path is bad input: the table says which and why, one
  // line on stderr says how many, and the exit code tells scripts.
  const auto failed = std::count_if(plugins.begin(), plugins.end(),
                                    [](const PluginInfo& p) { return p.status == PluginStatus::failed; });
  if (failed > 0) {
    output.err << "callbackctl: " << failed << " of " << plugins.size()
               << " files in the plugin search path could not be loaded (see STATUS)\n";
    return exit_bad_input;
  }
  return exit_ok;
}

int plugins_describe_command(const PluginSource& source, const std::string& name, const Output& output) {
  auto dirs = plugin_dirs(source);
  if (!dirs) return fail(output, dirs.error());
  PluginLoader loader(*dirs);
  const bool is_file = name.find('/') != std::string::npos || name.ends_with(".so");
  auto plugin = is_file ? loader.load_file(name) : loader.find(name);
  if (!plugin) return fail(output, plugin.error());
  const auto& info = (*plugin)->info;
  const auto specs = (*plugin)->factory->options();
  if (output.json) {
    json::array options;
    for (const auto& s : specs) {
      json::object o{{"name", s.name},
                     {"type", to_string(s.type)},
                     {"default", s.secret ? json::value(nullptr) : s.default_value},
                     {"required", s.required},
                     {"secret", s.secret},
                     {"description", s.description}};
      if (s.min) o["min"] = *s.min;
      if (s.max) o["max"] = *s.max;
      if (!s.choices.empty()) {
        json::array choices;
        for (const auto& c : s.choices) choices.push_back(json::string(c));
        o["choices"] = choices;
      }
      options.push_back(std::move(o));
    }
    output.out << json::serialize(json::object{{"name", info.name},
                                               {"kind", info.kind},
                                               {"version", info.version},
                                               {"path", info.path.string()},
                                               {"description", (*plugin)->factory->description()},
                                               {"options", options}})
               << '\n';
    return exit_ok;
  }
  output.out << info.name << " " << info.version << " (" << info.kind << " plugin)\n"
             << "  " << (*plugin)->factory->description() << "\n"
             << "  " << info.path.string() << "\n\n";
  if (specs.empty()) {
    output.out << "No options.\n";
    return exit_ok;
  }
  Table table({"OPTION", "TYPE", "DEFAULT", "DESCRIPTION"});
  for (const auto& s : specs) {
    std::string type(to_string(s.type));
    if (s.min || s.max) {
      type.append(" ").append(s.min ? std::to_string(*s.min) : std::string()).append("..");
      type.append(s.max ? std::to_string(*s.max) : std::string());
    }
    std::string description = s.description;
    if (!s.choices.empty()) {
      std::string list;
      for (const auto& c : s.choices) list += (list.empty() ? "" : "|") + c;
      description += " [" + list + "]";
    }
    table.add({s.name, type, s.required ? "(required)" : s.secret ? "(secret)" : default_text(s.default_value),
               description});
  }
  table.print(output.out);
  return exit_ok;
}

int config_check_command(const fs::path& file, const Output& output) {
  auto config = load_config(file);
  if (!config) return fail(output, config.error());
  PluginLoader loader(config->plugin_dirs);
  if (auto ok = check_config(*config, loader); !ok) {
    Error e = ok.error();
    e.field = file.string() + ": " + e.field;
    return fail(output, e);
  }
  const std::size_t components = (config->store ? 1 : 0) + (config->billing ? 1 : 0) + config->engines.size() +
                                 config->triggers.size() + config->frontends.size();
  if (output.json) {
    output.out << json::serialize(json::object{{"ok", true}, {"file", file.string()}, {"components", components}})
               << '\n';
  } else {
    output.out << file.string() << ": OK (" << components << " component" << (components == 1 ? "" : "s")
               << ", every plugin found and its options valid)\n";
  }
  return exit_ok;
}

}  // namespace callback::cli
