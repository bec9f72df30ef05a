// callbackctl: the operator's shell front end. Parses the command line into typed
// arguments and hands them to the commands; every error is one line and an exit code.
#include "commands.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  using namespace callback::cli;
  CLI::App app{"callbackctl: run and inspect a callback service"};
  app.require_subcommand(1);
  bool json = false;
  app.add_flag("--json", json, "print JSON for scripts instead of tables");

  PluginSource source;
  std::string config_path;
  auto add_plugin_source = [&](CLI::App* cmd) {
    cmd->add_option("--config", config_path, "config file whose plugin_dirs to search");
    cmd->add_option("--plugin-dir", source.plugin_dirs, "also search this folder (repeatable)");
  };

  int result = exit_ok;
  const Output output{std::cout, std::cerr, false};
  auto out = [&] { return Output{output.out, output.err, json}; };
  auto finish_source = [&] {
    if (!config_path.empty()) source.config = config_path;
  };

  auto* version = app.add_subcommand("version", "print the version, plugin ABI and build fingerprint");
  version->callback([&] { result = version_command(out()); });

  auto* plugins = app.add_subcommand("plugins", "list and describe plugins");
  plugins->require_subcommand(1);
  auto* list = plugins->add_subcommand("list", "every plugin in the search path: name, kind, version, status, path");
  add_plugin_source(list);
  list->callback([&] {
    finish_source();
    result = plugins_list_command(source, out());
  });
  std::string plugin_name;
  auto* describe = plugins->add_subcommand("describe", "a plugin's options: type, default, description");
  describe->add_option("NAME", plugin_name, "canonical name (callback.store.sqlite) or path to a plugin file")
      ->required();
  add_plugin_source(describe);
  describe->callback([&] {
    finish_source();
    result = plugins_describe_command(source, plugin_name, out());
  });

  auto* config = app.add_subcommand("config", "check configuration files");
  config->require_subcommand(1);
  std::string check_file;
  auto* check = config->add_subcommand("check", "parse a config file and check every plugin and option in it");
  check->add_option("FILE", check_file, "the config file")->required();
  check->callback([&] { result = config_check_command(check_file, out()); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports "a subcommand is required" for a misspelled one; name the word instead.
    const auto unknown = app.remaining(true);
    if (!unknown.empty()) {
      std::cerr << "callbackctl: unknown command or argument \"" << unknown.front() << "\" (see callbackctl --help)\n";
    } else {
      std::cerr << "callbackctl: " << e.what() << " (see callbackctl --help)\n";
    }
    return exit_bad_input;
  } catch (const std::exception& e) {
    std::cerr << "callbackctl: " << e.what() << '\n';
    return exit_failure;
  }
  return result;
}
