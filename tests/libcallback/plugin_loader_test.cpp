#include "test_context.hpp"

#include <callback/config.hpp>
#include <callback/plugin_loader.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>

#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <sstream>

using namespace callback;
namespace fs = std::filesystem;

namespace {

const fs::path test_plugins{CALLBACK_TEST_PLUGIN_DIR};

struct Fixture : ::testing::Test, test::TestContext {
  PluginLoader loader{{test_plugins}};
  Options no_options;
};
using PluginLoaderTest = Fixture;

std::string load_error(PluginLoader& loader, const std::string& file) {
  auto plugin = loader.load_file(test_plugins / file);
  return plugin ? "loaded" : plugin.error().describe();
}

TEST_F(PluginLoaderTest, SearchPathHasConfigDirsAndTheFolderBesideLibcallback) {
  const auto& path = loader.search_path();
  EXPECT_NE(std::find(path.begin(), path.end(), fs::weakly_canonical(test_plugins)), path.end());
  // The build tree's plugins (beside build/lib/libcallback.so) are found with no config.
  EXPECT_NE(std::find(path.begin(), path.end(), fs::weakly_canonical(fs::path(CALLBACK_PLUGIN_DIR))), path.end());
}

TEST_F(PluginLoaderTest, ReadsTheDescriptorWithoutLoading) {
  auto info = read_plugin_descriptor(test_plugins / "test_trigger.so");
  ASSERT_TRUE(info) << info.error().describe();
  EXPECT_EQ(info->name, "callback.test.trigger");
  EXPECT_EQ(info->kind, "trigger");
  EXPECT_EQ(info->version, "9.8.7");
  EXPECT_EQ(info->fingerprint, CALLBACK_BUILD_FINGERPRINT);
}

TEST_F(PluginLoaderTest, CreatesComponentsThatKeepTheirLibraryLoaded) {
  auto own_loader = std::make_unique<PluginLoader>(std::vector<fs::path>{test_plugins});
  auto plugin = own_loader->find("callback.test.trigger");
  ASSERT_TRUE(plugin) << plugin.error().describe();
  auto options = validate_options((*plugin)->factory->options(), boost::json::parse(R"({"secret": "x"})"),
                                  "triggers[0].config");
  ASSERT_TRUE(options) << options.error().describe();
  auto trigger = own_loader->create<Trigger>("callback.test.trigger", {context, *options, "t1"});
  ASSERT_TRUE(trigger) << trigger.error().describe();
  std::weak_ptr<const void> library = trigger->get_deleter().library;
  // The loader goes away first: the object must keep its library loaded...
  own_loader.reset();
  EXPECT_FALSE(library.expired());
  (*trigger)->stop();  // ...so calling into it is still safe,
  // ...and the library is let go of only with the last object.
  trigger->reset();
  EXPECT_TRUE(library.expired());
}

TEST_F(PluginLoaderTest, RefusesTheWrongKind) {
  auto store = loader.create<Store>("callback.test.trigger", {context, no_options, ""});
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().describe(),
            "callback.test.trigger: is a trigger plugin, but a store plugin is needed here (list it under \"triggers\")");
}

TEST_F(PluginLoaderTest, UnknownNameSaysWhereItLooked) {
  auto plugin = loader.find("callback.engine.nonexistent");
  ASSERT_FALSE(plugin);
  EXPECT_EQ(plugin.error().code, "plugin_unknown");
  EXPECT_NE(plugin.error().message.find(fs::weakly_canonical(test_plugins).string()), std::string::npos);
}

TEST_F(PluginLoaderTest, MissingFile) {
  EXPECT_NE(load_error(loader, "no_such_plugin.so").find("cannot read plugin file"), std::string::npos);
}

TEST_F(PluginLoaderTest, NotASharedLibrary) {
  EXPECT_EQ(load_error(loader, "not_a_library.so"),
            (test_plugins / "not_a_library.so").string() + ": not a shared library (no ELF header)");
}

TEST_F(PluginLoaderTest, SharedLibraryThatIsNotAPlugin) {
  EXPECT_NE(load_error(loader, "not_a_plugin.so").find("not a callback plugin (no \"callback_plugin\" descriptor"),
            std::string::npos);
}

TEST_F(PluginLoaderTest, WrongAbiIsRefusedBeforeAnyCodeRuns) {
  // Its entry point traps: if the loader ran it, this test would crash.
  EXPECT_NE(load_error(loader, "wrong_abi.so").find("built for plugin ABI 999, but this callback"),
            std::string::npos);
}

TEST_F(PluginLoaderTest, OtherBuildOptionsAreRefused) {
  const auto error = load_error(loader, "wrong_fingerprint.so");
  EXPECT_NE(error.find("was built with \"abi1;gcc99;cxx11abi0;boost107400;asan;stl\""), std::string::npos) << error;
}

TEST_F(PluginLoaderTest, MissingEntryPoint) {
  EXPECT_NE(load_error(loader, "missing_symbol.so").find("has no entry point callback_plugin_factory_v1"),
            std::string::npos);
}

TEST_F(PluginLoaderTest, UnresolvedSymbolSaysWhichOne) {
  const auto error = load_error(loader, "unresolved_symbol.so");
  EXPECT_NE(error.find("cannot be loaded"), std::string::npos) << error;
  EXPECT_NE(error.find("callback_test_function_nobody_defines"), std::string::npos) << error;
}

TEST_F(PluginLoaderTest, FactoryConstructorThrowingBecomesAnError) {
  EXPECT_NE(load_error(loader, "factory_throws.so").find("factory could not be created: factory constructor failed"),
            std::string::npos);
}

TEST_F(PluginLoaderTest, ThrowOnCreateBecomesAnError) {
  auto trigger = loader.create<Trigger>("callback.test.throws_on_create", {context, no_options, ""});
  ASSERT_FALSE(trigger);
  EXPECT_EQ(trigger.error().code, "factory_threw");
  EXPECT_EQ(trigger.error().describe(), "callback.test.throws_on_create: factory threw: cannot reach 127.0.0.1:5038");
}

TEST_F(PluginLoaderTest, DiscoverReportsEveryFileWithItsStatus) {
  PluginLoader only_tests{{test_plugins}};
  std::map<std::string, PluginInfo> by_file;
  for (auto& info : only_tests.discover(true)) by_file[info.path.filename().string()] = info;
  EXPECT_EQ(by_file.at("test_trigger.so").status, PluginStatus::loaded);
  EXPECT_EQ(by_file.at("throws_on_create.so").status, PluginStatus::loaded);  // loads; fails only on create
  for (auto broken : {"wrong_abi.so", "wrong_fingerprint.so", "missing_symbol.so", "unresolved_symbol.so",
                      "factory_throws.so", "not_a_plugin.so", "not_a_library.so"}) {
    EXPECT_EQ(by_file.at(broken).status, PluginStatus::failed) << broken;
    EXPECT_FALSE(by_file.at(broken).error.empty()) << broken;
    EXPECT_EQ(by_file.at(broken).error.find('\n'), std::string::npos) << "one line: " << broken;
  }
  EXPECT_EQ(by_file.at("callback_store_sqlite.so").status, PluginStatus::loaded);
}

TEST_F(PluginLoaderTest, EarlierDirectoryShadowsALaterPluginOfTheSameName) {
  const fs::path dir = fs::temp_directory_path() / ("callback-shadow-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::copy_file(test_plugins / "test_trigger.so", dir / "copy_of_test_trigger.so", fs::copy_options::overwrite_existing);
  PluginLoader shadowing{{dir, test_plugins}};
  int loaded = 0, shadowed = 0;
  for (const auto& info : shadowing.discover(true)) {
    if (info.name != "callback.test.trigger") continue;
    if (info.status == PluginStatus::loaded) {
      ++loaded;
      EXPECT_EQ(info.path.parent_path(), fs::weakly_canonical(dir));
    }
    if (info.status == PluginStatus::shadowed) ++shadowed;
  }
  EXPECT_EQ(loaded, 1);
  EXPECT_EQ(shadowed, 1);
  fs::remove_all(dir);
}

TEST_F(PluginLoaderTest, CreateFromConfigValidatesTheBlockAndNamesThePath) {
  auto config = parse_config(R"({"triggers": [
      {"plugin": "callback.test.trigger", "name": "web", "config": {"secret": "x", "host": "10.0.0.9"}},
      {"plugin": "callback.test.trigger", "name": "bad", "config": {"secret": "x", "port": "abc"}},
      {"plugin": "callback.test.throws_on_create"},
      {"plugin": "callback.test.nope"}]})");
  ASSERT_TRUE(config) << config.error().describe();
  auto good = loader.create_from_config<Trigger>(config->triggers[0], context);
  ASSERT_TRUE(good) << good.error().describe();
  auto bad = loader.create_from_config<Trigger>(config->triggers[1], context);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().describe(), "triggers[1].config.port: expected integer, got \"abc\"");
  auto threw = loader.create_from_config<Trigger>(config->triggers[2], context);
  ASSERT_FALSE(threw);
  EXPECT_EQ(threw.error().describe(),
            "triggers[2]: callback.test.throws_on_create: factory threw: cannot reach 127.0.0.1:5038");
  auto unknown = loader.create_from_config<Trigger>(config->triggers[3], context);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().field, "triggers[3].plugin");
  EXPECT_EQ(unknown.error().code, "plugin_unknown");
  auto wrong_kind = loader.create_from_config<Store>(config->triggers[0], context);
  ASSERT_FALSE(wrong_kind);
  EXPECT_EQ(wrong_kind.error().describe(),
            "triggers[0]: callback.test.trigger: is a trigger plugin, but a store plugin is needed here (list it under \"triggers\")");
}

TEST_F(PluginLoaderTest, CheckConfigValidatesEveryComponentAgainstItsPlugin) {
  auto check = [&](std::string_view text) {
    auto config = parse_config(text);
    if (!config) return config.error().describe();
    PluginLoader l{{test_plugins}};
    auto ok = check_config(*config, l);
    return ok ? std::string("ok") : ok.error().describe();
  };
  EXPECT_EQ(check(R"({"triggers": [{"plugin": "callback.test.trigger", "config": {"secret": "x"}}]})"), "ok");
  EXPECT_EQ(check(R"({"triggers": [{"plugin": "callback.test.trigger", "config": {"secret": "x", "port": "abc"}}]})"),
            "triggers[0].config.port: expected integer, got \"abc\"");
  EXPECT_EQ(check(R"({"engines": [{"plugin": "callback.test.trigger"}]})"),
            "engines[0].plugin: callback.test.trigger: is a trigger plugin, but an engine plugin is needed here (list it under \"triggers\")");
  EXPECT_NE(check(R"({"engines": [{"plugin": "callback.engine.nope"}]})").find("engines[0].plugin: callback.engine.nope: no plugin named"),
            std::string::npos);
  // A plugin refused for its ABI has no trustworthy name; the error points at the list.
  const auto wrong_abi = check(R"({"triggers": [{"plugin": "callback.test.wrong_abi"}]})");
  EXPECT_NE(wrong_abi.find("no plugin named"), std::string::npos) << wrong_abi;
  EXPECT_NE(wrong_abi.find("files in the search path could not be read"), std::string::npos) << wrong_abi;
  EXPECT_EQ(check(R"({"store": {"plugin": "callback.store.sqlite", "config": {"synchronous": "sometimes"}}})"),
            "store.config.synchronous: must be one of \"full\", \"normal\", got \"sometimes\"");
}

}  // namespace
