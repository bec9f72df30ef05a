#include <callback/config.hpp>
#include <callback/options.hpp>

#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <map>

using namespace callback;

namespace {

EnvironmentLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(std::string_view text, const EnvironmentLookup& env = fake_env({})) {
  auto config = parse_config(text, env);
  if (config) return "no error";
  return config.error().describe();
}

const std::vector<OptionSpec> engine_options{
    {.name = "host", .type = OptionType::string, .default_value = "127.0.0.1", .description = "address"},
    {.name = "port", .type = OptionType::integer, .default_value = 5038, .description = "port", .min = 1,
     .max = 65535},
    {.name = "secret", .type = OptionType::string, .description = "password", .required = true, .secret = true},
    {.name = "events", .type = OptionType::boolean, .default_value = true, .description = "events"},
    {.name = "dirs", .type = OptionType::string_list, .default_value = boost::json::array{}, .description = "d"},
    {.name = "mode", .type = OptionType::string, .default_value = "ami", .description = "m", .choices = {"ami", "x"}},
    {.name = "key", .type = OptionType::string, .default_value = "", .description = "k", .secret = true, .min = 4,
     .max = 8},
};

std::string option_error(std::string_view block) {
  auto options = validate_options(engine_options, boost::json::parse(block), "engines[0].config");
  return options ? "no error" : options.error().describe();
}

TEST(Config, ParsesAFullFileWithCommentsAndTrailingCommas) {
  auto config = parse_config(R"({
    // where the site's own plugins live
    "plugin_dirs": ["/opt/callback/plugins"],
    "numbering": {"country_code": "86", "trunk_prefix": "0", "international_prefixes": ["00"]},
    "store": {"plugin": "callback.store.sqlite", "config": {"path": "/tmp/x.db"}},
    "billing": {"plugin": "callback.billing.sqlite"},
    /* two Asterisk servers */
    "engines": [
      {"plugin": "callback.engine.ami", "name": "ast1", "config": {"secret": "${AMI_SECRET}"}},
      {"plugin": "callback.engine.ami", "name": "ast2", "config": {"secret": "literal $${NOT_ENV}"}},
    ],
    "triggers": [{"plugin": "callback.trigger.sms", "enabled": false}],
    "frontends": [],
    "log": {"level": "debug"},
  })",
                             fake_env({{"AMI_SECRET", "s3cret"}}));
  ASSERT_TRUE(config) << config.error().describe();
  EXPECT_EQ(config->plugin_dirs.at(0), "/opt/callback/plugins");
  EXPECT_EQ(config->numbering.country_code, "86");
  EXPECT_EQ(config->store->plugin, "callback.store.sqlite");
  EXPECT_EQ(config->billing->name, "callback.billing.sqlite");
  ASSERT_EQ(config->engines.size(), 2u);
  EXPECT_EQ(config->engines[0].name, "ast1");
  EXPECT_EQ(config->engines[0].path, "engines[0]");
  EXPECT_EQ(config->engines[0].config.at("secret").as_string(), "s3cret");
  EXPECT_EQ(config->engines[1].config.at("secret").as_string(), "literal ${NOT_ENV}");
  EXPECT_TRUE(config->triggers.empty());  // disabled
  EXPECT_EQ(config->log_level, LogLevel::debug);
}

TEST(Config, EmptyObjectMeansEmbeddedDefaults) {
  auto config = parse_config("{}");
  ASSERT_TRUE(config);
  ASSERT_TRUE(config->store);
  EXPECT_EQ(config->store->plugin, "callback.store.sqlite");
  EXPECT_EQ(default_config().store->plugin, "callback.store.sqlite");
  ASSERT_TRUE(config->billing);
  EXPECT_EQ(config->billing->plugin, "callback.billing.sqlite");
  auto without = parse_config(R"({"billing": {"plugin": "callback.billing.sqlite", "enabled": false}})");
  ASSERT_TRUE(without);
  EXPECT_FALSE(without->billing);
}

TEST(Config, SyntaxErrorsSayLineAndColumn) {
  EXPECT_EQ(error_of("{\n  \"store\": {\"plugin\": \"x\",,}\n}"), "line 2, column 27: not valid JSON: syntax error");
  EXPECT_EQ(error_of(""), "line 1, column 1: not valid JSON: the file is empty");
  EXPECT_EQ(error_of("  \n "), "line 2, column 2: not valid JSON: the file is empty");
  EXPECT_NE(error_of("{\"a\": 1} trailing").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"a\": \"unterminated").find("line 1"), std::string::npos);
  EXPECT_EQ(error_of("[1, 2]"), "(top level): expected object, got array");
  // Absurd nesting is refused, not a stack overflow.
  EXPECT_NE(error_of(std::string(100000, '[')).find("not valid JSON"), std::string::npos);
  // A number past a double's range would read as infinity, which JSON cannot write back (found by fuzz_config).
  EXPECT_EQ(error_of(R"({"log": {"x": [1, 5061160e070611369]}})"), "log.x[1]: a number too large to hold");
  EXPECT_EQ(error_of("5061160e070611369"), "value: a number too large to hold");
}

TEST(Config, StructuralMistakesNameTheJsonPath) {
  EXPECT_EQ(error_of(R"({"engine": []})"),
            "engine: unknown key (known: plugin_dirs, numbering, store, billing, engines, triggers, frontends, log, "
            "service, server)");
  EXPECT_EQ(error_of(R"({"engines": {}})"), "engines: expected array, got object");
  EXPECT_EQ(error_of(R"({"engines": [{"config": {}}]})"),
            "engines[0].plugin: \"plugin\" is missing (a canonical plugin name)");
  EXPECT_EQ(error_of(R"({"engines": [{"plugin": 5}]})"), "engines[0].plugin: expected plugin name, got integer 5");
  EXPECT_EQ(error_of(R"({"engines": [{"plugin": "a", "confg": {}}]})"),
            "engines[0].confg: unknown key (known: plugin, name, config, enabled)");
  EXPECT_EQ(error_of(R"({"engines": [{"plugin": "a", "config": []}]})"), "engines[0].config: expected object, got array");
  EXPECT_EQ(error_of(R"({"engines": [{"plugin": "a"}, {"plugin": "a"}]})"),
            "engines[1].name: instance name \"a\" is used twice (also engines[0]); give each a distinct \"name\"");
  EXPECT_EQ(error_of(R"({"plugin_dirs": ["a", 3]})"), "plugin_dirs[1]: expected string, got integer 3");
  EXPECT_EQ(error_of(R"({"numbering": {"country_code": "086"}})"),
            "numbering.country_code: country code must be 1 to 3 digits not starting with 0, got \"086\"");
  EXPECT_EQ(error_of(R"({"log": {"level": "loud"}})"),
            "log.level: expected one of \"debug\", \"info\", \"warning\", \"error\", got \"loud\"");
}

TEST(Config, ServiceBlockSetsTimeoutsAndCampaignLimits) {
  auto config = parse_config(R"({"service": {"a_ring_timeout_seconds": 20, "show_callee_to_caller": false,
                                             "service_number": "861055550000",
                                             "campaigns": {"free": {"limit_seconds": 120, "warning_before_seconds": 30}}},
                                 "server": {"listen": "127.0.0.1:9000"}})",
                             fake_env({}));
  ASSERT_TRUE(config) << config.error().describe();
  EXPECT_EQ(config->service.a_ring_timeout, std::chrono::seconds(20));
  EXPECT_EQ(config->service.b_ring_timeout, ServiceOptions{}.b_ring_timeout);
  EXPECT_FALSE(config->service.show_callee_to_caller);
  EXPECT_EQ(config->service.service_number.digits(), "861055550000");
  ASSERT_EQ(config->service.campaigns.count("free"), 1u);
  EXPECT_EQ(config->service.campaigns.at("free").limit, std::chrono::seconds(120));
  EXPECT_EQ(config->service.campaigns.at("free").warning_before, std::chrono::seconds(30));
  EXPECT_EQ(config->server.at("listen").as_string(), "127.0.0.1:9000");

  EXPECT_EQ(error_of(R"({"service": {"a_ring_timeout_seconds": 0}})"),
            "service.a_ring_timeout_seconds: must be between 1 and 86400 seconds, got 0");
  EXPECT_EQ(error_of(R"({"service": {"campaigns": {"free": {"limit": 3}}}})"),
            "service.campaigns.free.limit: unknown key (known: limit_seconds, warning_before_seconds, "
            "warning_repeat_seconds)");
  EXPECT_EQ(error_of(R"({"service": {"campaigns": {"free": {"limit_seconds": "300"}}}})"),
            "service.campaigns.free.limit_seconds: expected whole number of seconds, got \"300\"");
  EXPECT_EQ(error_of(R"({"server": 8080})"), "server: expected object, got integer 8080");
}

TEST(Config, EnvironmentSubstitutionErrorsNameThePath) {
  EXPECT_EQ(error_of(R"({"engines": [{"plugin": "a", "config": {"secret": "${AMI_SECRET}"}}]})"),
            "engines[0].config.secret: environment variable AMI_SECRET is not set");
  EXPECT_EQ(error_of(R"({"plugin_dirs": ["${HOME"]})"),
            "plugin_dirs[0]: unterminated ${ in string (write $${ for a literal ${)");
}

TEST(Options, FillsDefaultsAndGivesTypedAccess) {
  auto options = validate_options(engine_options, boost::json::parse(R"({"secret": "x", "port": 5039})"), "e");
  ASSERT_TRUE(options) << options.error().describe();
  EXPECT_EQ(options->string("host"), "127.0.0.1");
  EXPECT_EQ(options->integer("port"), 5039);
  EXPECT_TRUE(options->boolean("events"));
  EXPECT_TRUE(options->strings("dirs").empty());
  EXPECT_THROW((void)options->integer("host"), std::logic_error);     // plugin bug: wrong type
  EXPECT_THROW((void)options->string("undeclared"), std::logic_error);
}

TEST(Options, RejectsWrongTypesUnknownKeysAndRangesWithThePath) {
  EXPECT_EQ(option_error(R"({"secret": "x", "port": "abc"})"), "engines[0].config.port: expected integer, got \"abc\"");
  EXPECT_EQ(option_error(R"({"secret": "x", "port": 5038.5})"),
            "engines[0].config.port: expected integer, got number 5038.5");
  EXPECT_EQ(option_error(R"({"secret": "x", "port": 70000})"),
            "engines[0].config.port: must be at least 1 and at most 65535, got 70000");
  EXPECT_EQ(option_error(R"({"secret": "x", "prot": 1})"),
            "engines[0].config.prot: unknown option (known: host, port, secret, events, dirs, mode, key)");
  EXPECT_EQ(option_error(R"({"port": 1})"), "engines[0].config.secret: required option is missing");
  EXPECT_EQ(option_error(R"({"secret": "x", "events": "yes"})"), "engines[0].config.events: expected boolean, got \"yes\"");
  EXPECT_EQ(option_error(R"({"secret": "x", "dirs": ["a", null]})"), "engines[0].config.dirs[1]: expected string, got null");
  EXPECT_EQ(option_error(R"({"secret": "x", "mode": "ari"})"),
            "engines[0].config.mode: must be one of \"ami\", \"x\", got \"ari\"");
  EXPECT_EQ(option_error(R"({"secret": "x", "port": 18446744073709551615})"),
            "engines[0].config.port: must be at least 1 and at most 65535, got 18446744073709551615");
  // A string's bounds are on its length, and an empty one is "not set"; the value is never shown.
  EXPECT_EQ(option_error(R"({"secret": "x", "key": "abc"})"),
            "engines[0].config.key: must be empty or at least 4 and at most 8 characters long, got 3");
  EXPECT_EQ(option_error(R"({"secret": "x", "key": "abcdefghi"})"),
            "engines[0].config.key: must be empty or at least 4 and at most 8 characters long, got 9");
  EXPECT_EQ(option_error(R"({"secret": "x", "key": ""})"), "no error");
  EXPECT_EQ(option_error(R"({"secret": "x", "key": "abcd"})"), "no error");
}

}  // namespace
