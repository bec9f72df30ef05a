// callbackctl as an operator uses it: real process, real plugins, real files.
#include "run_command.hpp"
#include "temp_dir.hpp"

#include <cstdlib>
#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <fstream>

using callback::test::CommandResult;
using callback::test::run_command;
using callback::test::shell_quote;
using callback::test::TempDir;

namespace {

const std::string ctl = shell_quote(CALLBACKCTL_PATH);
const std::string test_plugins = CALLBACK_TEST_PLUGIN_DIR;

CommandResult ctl_run(const std::string& args) { return run_command(ctl + " " + args); }

std::size_t lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

// A failed command says one line on stderr, starting with the program name, and exits 2.
void expect_bad_input(const CommandResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("callbackctl: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << r.err;
}

struct ConfigFile {
  TempDir dir;
  std::string path;
  explicit ConfigFile(const std::string& text) : path((dir / "callback.json").string()) { std::ofstream(path) << text; }
};

TEST(Callbackctl, VersionPrintsVersionAbiAndBuild) {
  auto r = ctl_run("version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("callbackctl 0.1.0 (plugin ABI 1, abi1;", 0), 0u) << r.out;
  auto j = ctl_run("--json version");
  EXPECT_EQ(boost::json::parse(j.out).at("plugin_abi").as_int64(), 1);
}

TEST(Callbackctl, PluginsListShowsTheTreesPluginsLoaded) {
  auto r = ctl_run("plugins list");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("NAME", 0), 0u);
  // One row per plugin of the tree, each loaded.
  for (const std::string row : {"callback.engine.ami", "callback.store.sqlite"}) {
    const auto at = r.out.find("\n" + row + " ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const auto line = r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
    EXPECT_NE(line.find(" loaded "), std::string::npos) << line;
    EXPECT_NE(line.find(" 0.1.0 "), std::string::npos) << line;
  }
}

TEST(Callbackctl, PluginsListReportsBrokenFilesOneLineEach) {
  auto r = ctl_run("--json plugins list --plugin-dir " + shell_quote(test_plugins));
  // The listing is complete, and the exit code and one stderr line say that some failed.
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("callbackctl: 7 of ", 0), 0u) << r.err;  // 7 broken test plugins
  EXPECT_NE(r.err.find(" files in the plugin search path could not be loaded (see STATUS)\n"), std::string::npos);
  EXPECT_EQ(lines(r.err), 1u);
  const auto listing = boost::json::parse(r.out);
  std::map<std::string, std::pair<std::string, std::string>> by_file;
  for (const auto& p : listing.at("plugins").as_array()) {
    const std::string path(p.at("path").as_string());
    by_file[path.substr(path.rfind('/') + 1)] = {std::string(p.at("status").as_string()),
                                                 std::string(p.at("error").as_string())};
  }
  EXPECT_EQ(by_file.at("test_trigger.so").first, "loaded");
  EXPECT_EQ(by_file.at("wrong_abi.so").first, "failed");
  EXPECT_NE(by_file.at("wrong_abi.so").second.find("plugin ABI 999"), std::string::npos);
  EXPECT_NE(by_file.at("not_a_library.so").second.find("no ELF header"), std::string::npos);
  EXPECT_EQ(by_file.at("callback_store_sqlite.so").first, "loaded");
}

TEST(Callbackctl, PluginsDescribeListsOptionsWithTypesAndDefaults) {
  auto r = ctl_run("plugins describe callback.store.sqlite");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("callback.store.sqlite 0.1.0 (store plugin)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("busy_timeout_ms  integer 0..600000  5000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[full|normal]"), std::string::npos);
  auto j = ctl_run("--json plugins describe callback.store.sqlite");
  const auto options = boost::json::parse(j.out).at("options").as_array();
  EXPECT_EQ(options.size(), 3u);
  EXPECT_EQ(options[0].at("name").as_string(), "path");
}

TEST(Callbackctl, DescribeHidesSecretDefaultsAndMarksRequired) {
  auto r = ctl_run("plugins describe --plugin-dir " + shell_quote(test_plugins) + " callback.test.trigger");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("secret   string"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(required)"), std::string::npos) << r.out;
}

TEST(Callbackctl, DescribeUnknownOrBrokenPluginIsOneLineAndExitTwo) {
  expect_bad_input(ctl_run("plugins describe callback.engine.nope"), "no plugin named \"callback.engine.nope\"");
  expect_bad_input(ctl_run("plugins describe " + shell_quote(test_plugins + "/wrong_abi.so")),
                   "built for plugin ABI 999");
  expect_bad_input(ctl_run("plugins describe " + shell_quote(test_plugins + "/not_a_library.so")),
                   "not a shared library");
  expect_bad_input(ctl_run("plugins describe " + shell_quote(test_plugins + "/missing_symbol.so")),
                   "has no entry point");
}

TEST(Callbackctl, ConfigCheckAcceptsAGoodFile) {
  ConfigFile file(R"({
    // The store with its options, and the test trigger from a plugin_dirs folder.
    "plugin_dirs": [")" + test_plugins + R"("],
    "store": {"plugin": "callback.store.sqlite", "config": {"synchronous": "normal"}},
    "triggers": [{"plugin": "callback.test.trigger", "config": {"secret": "${HOME}", "port": 5039}}]
  })");
  auto r = ctl_run("config check " + shell_quote(file.path));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(": OK (3 components"), std::string::npos) << r.out;  // + the default billing
}

TEST(Callbackctl, TheShippedExampleConfigIsValid) {
  auto r = ctl_run("config check " + shell_quote(CALLBACK_SOURCE_DIR "/examples/config/callback.json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Callbackctl, TheAccessNumbersExampleConfigIsValid) {
  ::setenv("ARI_PASSWORD", "not-a-secret", 1);  // the file takes it from the environment
  auto r = ctl_run("config check " + shell_quote(CALLBACK_SOURCE_DIR "/examples/config/access-numbers.json"));
  ::unsetenv("ARI_PASSWORD");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(": OK (5 components"), std::string::npos) << r.out;
}

TEST(Callbackctl, TheTwoNodeExampleConfigsAreValid) {
  ::setenv("CALLBACK_AMI_SECRET", "not-a-secret", 1);  // the files take them from the environment
  ::setenv("CALLBACK_WEB_TOKEN_SECRET", "0123456789abcdef0123456789abcdef", 1);
  for (const char* node : {"a", "b"}) {
    auto r = ctl_run("config check " + shell_quote(std::string(CALLBACK_SOURCE_DIR "/examples/systemd/node-") + node +
                                                   ".json"));
    EXPECT_EQ(r.exit_code, 0) << node << ": " << r.err;
  }
  ::unsetenv("CALLBACK_AMI_SECRET");
  ::unsetenv("CALLBACK_WEB_TOKEN_SECRET");
}

TEST(Callbackctl, ConfigCheckRejectsBadConfigWithOneLineAndExitTwo) {
  const std::string dirs = R"("plugin_dirs": [")" + test_plugins + R"("], )";
  const std::pair<std::string, std::string> cases[] = {
      {"", "line 1, column 1: not valid JSON: the file is empty"},
      {"this is not json", "line 1, column 1: not valid JSON"},
      {"{\n\"store\": {\"plugin\": \"callback.store.sqlite\",\n}", "line 3, column 2: not valid JSON"},
      {R"({"stores": {}})", "stores: unknown key"},
      {R"({"store": {"plugin": "callback.store.sqlite", "config": {"busy_timeout_ms": "abc"}}})",
       "store.config.busy_timeout_ms: expected integer, got \"abc\""},
      {R"({"store": {"plugin": "callback.store.sqlite", "config": {"pth": "/x"}}})",
       "store.config.pth: unknown option (known: path, synchronous, busy_timeout_ms)"},
      {R"({"engines": [{"plugin": "callback.engine.nope"}]})", "engines[0].plugin: callback.engine.nope: no plugin named"},
      {"{" + dirs + R"("triggers": [{"plugin": "callback.test.trigger", "config": {"secret": "x", "port": "abc"}}]})",
       "triggers[0].config.port: expected integer, got \"abc\""},
      {"{" + dirs + R"("engines": [{"plugin": "callback.test.trigger"}]})",
       "engines[0].plugin: callback.test.trigger: is a trigger plugin, but an engine plugin is needed here (list it under \"triggers\")"},
      {R"({"engines": [{"plugin": "x", "config": {"secret": "${CALLBACK_TEST_UNSET_VARIABLE}"}}]})",
       "engines[0].config.secret: environment variable CALLBACK_TEST_UNSET_VARIABLE is not set"},
      {R"({"service": {"node": "a b"}})", "service.node: expected node id: 1 to 64 letters, digits, '.', '_' or '-'"},
      {R"({"service": {"node": "n1", "node_lease_seconds": 1}})",
       "service.node_lease_seconds: must be between 2 and 3600 seconds, got 1"},
      // A secret too short to sign with; the message never shows it.
      {R"({"triggers": [{"plugin": "callback.trigger.web", "config": {"token_secret": "hunter2"}}]})",
       "triggers[0].config.token_secret: must be empty or at least 32 and at most 1024 characters long, got 7"},
  };
  for (const auto& [text, fragment] : cases) {
    SCOPED_TRACE(text);
    ConfigFile file(text);
    auto r = ctl_run("config check " + shell_quote(file.path));
    expect_bad_input(r, fragment);
    EXPECT_NE(r.err.find(file.path + ": "), std::string::npos) << "names the file: " << r.err;
    EXPECT_EQ(r.err.find("hunter2"), std::string::npos) << "a secret is never printed: " << r.err;
  }
}

TEST(Callbackctl, ConfigCheckOnMissingFileOrFolder) {
  expect_bad_input(ctl_run("config check /nonexistent/callback.json"), "cannot open config file");
  TempDir dir;
  expect_bad_input(ctl_run("config check " + shell_quote(dir.path().string())), "is a directory");
}

TEST(Callbackctl, UsageErrorsExitTwo) {
  expect_bad_input(ctl_run(""), "A subcommand is required");
  expect_bad_input(ctl_run("frobnicate"), "unknown command or argument \"frobnicate\"");
  expect_bad_input(ctl_run("plugins lst"), "unknown command or argument \"lst\"");
  expect_bad_input(ctl_run("plugins list --no-such-flag"), "--no-such-flag");
  expect_bad_input(ctl_run("plugins describe"), "NAME is required");
  auto help = ctl_run("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("plugins"), std::string::npos);
}

}  // namespace
