// callbackctl call / status / cancel, run as a process: embedded (the command runs the
// service itself against the Asterisk fake) and against a callbackd (--server).
#include "api_keys.hpp"
#include "fake_asterisk.hpp"
#include "run_command.hpp"
#include "server.hpp"
#include "temp_dir.hpp"

#include <callback_internal/runtime.hpp>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>

namespace callback {
namespace {

namespace json = boost::json;
using test::run_command;
using test::shell_quote;

class CallCommandTest : public ::testing::Test {
 protected:
  test::TempDir dir;
  fake::FakeAsterisk asterisk{{.time_scale = 0.01}};
  std::string config_path;

  void SetUp() override {
    asterisk.start();
    config_path = (dir / "callback.json").string();
    std::ofstream(config_path) << R"({
      "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
      "store": {"plugin": "callback.store.sqlite", "config": {"path": ")" << (dir / "callback.db").string() << R"("}},
      "billing": {"plugin": "callback.billing.sqlite", "enabled": false},
      "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:)" << asterisk.port()
                                << R"("], "secret": "callbacksecret"}}],
      "service": {"campaigns": {"free": {"limit_seconds": 30}, "long": {"limit_seconds": 500}},
                  "b_ring_timeout_seconds": 600},
      "server": {"listen": "127.0.0.1:0", "stream_timeout_seconds": 1},
      "log": {"level": "warning"}})";
  }

  // A callbackd in this process, on the test's config (with SQLite billing if asked);
  // `env` then points callbackctl at it with a fresh API key.
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<rest::RestServer> server;
  std::string env;
  void start_callbackd(bool billing) {
    auto config = load_config(config_path);
    ASSERT_TRUE(config) << config.error().describe();
    if (billing) {
      config->billing = ComponentConfig{.plugin = "callback.billing.sqlite", .name = "callback.billing.sqlite",
                                        .config = json::object{{"path", (dir / "callback.db").string()}},
                                        .path = "billing"};
    }
    auto options = rest::parse_server_options(config->server).value();
    runtime = Runtime::open(std::move(*config), {.plugin_dirs = {CALLBACK_PLUGIN_DIR}}).value();
    auto keys = rest::ApiKeys::over(runtime->store());
    ASSERT_TRUE(keys);
    const std::string key = (*keys)->add("cli", rest::KeyScope::admin).value().key;
    server = std::make_unique<rest::RestServer>(*runtime, options, std::move(*keys));
    ASSERT_TRUE(runtime->start());
    ASSERT_TRUE(runtime->wait_for_engine(std::chrono::seconds(10)));
    ASSERT_TRUE(server->start());
    env = "CALLBACK_SERVER=http://127.0.0.1:" + std::to_string(server->port()) + " CALLBACK_API_KEY=" + key;
  }
  void TearDown() override {
    if (server) server->stop();
    if (runtime) runtime->stop(std::chrono::seconds{0});
  }

  test::CommandResult ctl(const std::string& args, const std::string& variables = {}) {
    return run_command((variables.empty() ? "" : "env " + variables + " ") + shell_quote(CALLBACKCTL_PATH) +
                       " --plugin-dir " + shell_quote(CALLBACK_PLUGIN_DIR) + " --config " + shell_quote(config_path) +
                       " " + args);
  }
};

TEST_F(CallCommandTest, EmbeddedCallShowsProgressAndExitsByOutcome) {
  auto talked = ctl("call 1001 1002 --campaign free --limit 2");
  EXPECT_EQ(talked.exit_code, 0) << talked.out << talked.err;
  EXPECT_NE(talked.out.find("calling 1001..."), std::string::npos) << talked.out;
  EXPECT_NE(talked.out.find("connecting 1002..."), std::string::npos) << talked.out;
  EXPECT_NE(talked.out.find("connected, at most 2 s"), std::string::npos) << talked.out;
  EXPECT_NE(talked.out.find("ended: time_up"), std::string::npos) << talked.out;

  auto busy = ctl("call 1001 3001 --campaign free");
  EXPECT_EQ(busy.exit_code, 3) << busy.out << busy.err;
  EXPECT_NE(busy.out.find("ended: partner_busy"), std::string::npos) << busy.out;

  // --json: one callback object a line, the last one final.
  auto scripted = ctl("--json call 1001 3001 --campaign free");
  std::vector<json::value> lines;
  std::istringstream in(scripted.out);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_FALSE(lines.empty()) << scripted.out;
  EXPECT_EQ(lines.back().at("outcome").as_string(), "partner_busy");
  const std::string id(lines.back().at("id").as_string());

  // The records of a finished call, embedded.
  auto status = ctl("--json status " + id);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out).at("cdrs").as_array().size(), 2u);
}

TEST_F(CallCommandTest, EmbeddedMistakesAreOneLineAndAnExitCode) {
  auto bad_number = ctl("call 1001 12ab --campaign free");
  EXPECT_EQ(bad_number.exit_code, 2);
  EXPECT_NE(bad_number.err.find("callee: "), std::string::npos) << bad_number.err;
  auto no_payer = ctl("call 1001 1002");
  EXPECT_EQ(no_payer.exit_code, 2);
  EXPECT_NE(no_payer.err.find("--account or --campaign"), std::string::npos) << no_payer.err;
  auto unknown = ctl("call 1001 1002 --campaign nope");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no campaign \"nope\""), std::string::npos) << unknown.err;
  auto cancel = ctl("cancel cb-x-1");
  EXPECT_EQ(cancel.exit_code, 2);
  EXPECT_NE(cancel.err.find("--server"), std::string::npos) << cancel.err;
  auto status = ctl("status cb-nothing-1");
  EXPECT_EQ(status.exit_code, 2);
  auto language = ctl("call 1001 1002 --campaign free --language 'zh\nAction: X'");
  EXPECT_EQ(language.exit_code, 2);
  EXPECT_NE(language.err.find("language: a language may contain only letters"), std::string::npos) << language.err;
}

// The operator commands through callbackd's API show what they show embedded.
TEST_F(CallCommandTest, OperatorCommandsAgainstCallbackd) {
  start_callbackd(true);
  const std::string deck = (dir / "deck.csv").string();
  std::ofstream(deck) << "prefix;description;rate\n1;ones;0.60\n10;tens;0.30\n";

  auto added = ctl("accounts add 123 --balance 5.00 --pin 2468 --language zh", env);
  EXPECT_EQ(added.exit_code, 0) << added.err;
  EXPECT_NE(added.out.find("balance    5.00 CNY"), std::string::npos) << added.out;
  EXPECT_NE(added.out.find("language   zh"), std::string::npos) << added.out;
  auto bad_language = ctl("accounts add 124 --language z", env);
  EXPECT_EQ(bad_language.exit_code, 2);
  EXPECT_NE(bad_language.err.find("language: a language is 2 to 16 characters"), std::string::npos) << bad_language.err;
  EXPECT_EQ(ctl("accounts add 123", env).exit_code, 2);  // taken
  auto topped = ctl("--json accounts topup 123 2.50", env);
  ASSERT_EQ(topped.exit_code, 0) << topped.err;
  EXPECT_EQ(json::parse(topped.out).at("balance").as_string(), "7.50");
  auto listed = ctl("accounts list", env);
  EXPECT_NE(listed.out.find("123"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("(default)"), std::string::npos) << listed.out;

  auto imported = ctl("rates import default " + shell_quote(deck), env);
  EXPECT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(imported.out.find("2 rates imported"), std::string::npos) << imported.out;
  auto looked_up = ctl("--json rates lookup default 1002", env);
  ASSERT_EQ(looked_up.exit_code, 0) << looked_up.err;
  EXPECT_EQ(json::parse(looked_up.out).at("prefix").as_string(), "10");
  auto deck_rows = ctl("--json rates list default", env);
  EXPECT_EQ(json::parse(deck_rows.out).as_array().size(), 2u);
  EXPECT_EQ(ctl("rates list", env).exit_code, 2);  // the list of tariffs: embedded only, and says so

  auto call = ctl("call 1001 1002 --account 123 --pin 2468 --limit 60 --language en --wait", env);
  EXPECT_EQ(call.exit_code, 0) << call.out << call.err;
  auto bad_call = ctl("call 1001 1002 --account 123 --pin 2468 --language 'en US'", env);
  EXPECT_EQ(bad_call.exit_code, 2);
  EXPECT_NE(bad_call.err.find("language: "), std::string::npos) << bad_call.err;
  auto cdrs = ctl("--json cdr list --number 1001", env);
  ASSERT_EQ(cdrs.exit_code, 0) << cdrs.err;
  EXPECT_EQ(json::parse(cdrs.out).as_array().size(), 2u);
  auto stats = ctl("stats 1001", env);
  EXPECT_NE(stats.out.find("1001"), std::string::npos) << stats.out;

  // Numbers and e-mail addresses tell triggers whose account it is: one account each.
  auto registered = ctl("accounts add 125 --number 1005 --email Li.Lei@Example.COM", env);
  ASSERT_EQ(registered.exit_code, 0) << registered.err;
  EXPECT_NE(registered.out.find("number     +1005\n"), std::string::npos) << registered.out;
  EXPECT_NE(registered.out.find("e-mail     li.lei@example.com\n"), std::string::npos) << registered.out;
  auto taken = ctl("accounts add 126 --email li.lei@example.com", env);
  EXPECT_NE(taken.exit_code, 0);
  EXPECT_NE(taken.err.find("li.lei@example.com is registered to account 125"), std::string::npos) << taken.err;
  auto bad_email = ctl("accounts add 127 --email 'li lei@example.com'", env);
  EXPECT_EQ(bad_email.exit_code, 2);
  EXPECT_NE(bad_email.err.find("emails: character 3"), std::string::npos) << bad_email.err;

  auto triggers = ctl("triggers", env);
  EXPECT_EQ(triggers.exit_code, 0) << triggers.err;
  EXPECT_NE(triggers.out.find("NAME"), std::string::npos) << triggers.out;
  auto embedded_triggers = ctl("triggers");
  EXPECT_EQ(embedded_triggers.exit_code, 2);
  EXPECT_NE(embedded_triggers.err.find("--server"), std::string::npos) << embedded_triggers.err;
}

TEST_F(CallCommandTest, AgainstCallbackd) {
  start_callbackd(false);

  auto waited = ctl("call 1001 3001 --campaign free --wait", env);
  EXPECT_EQ(waited.exit_code, 3) << waited.out << waited.err;
  EXPECT_NE(waited.out.find("ended: partner_busy"), std::string::npos) << waited.out;

  // B does not answer for a long while (rings 600 s, 6 s at the fake's pace): place, look,
  // cancel, look again.
  auto placed = ctl("--json call 1001 4001 --campaign free", env);
  ASSERT_EQ(placed.exit_code, 0) << placed.err;
  const std::string id(json::parse(placed.out).at("id").as_string());
  auto status = ctl("status " + id, env);
  EXPECT_NE(status.out.find(id), std::string::npos) << status.out;
  auto cancel = ctl("cancel " + id, env);
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  // Follow it to its end, then a second cancel is refused: it has ended.
  auto watched = ctl("--json status " + id + " --wait", env);
  EXPECT_EQ(watched.exit_code, 3) << watched.out << watched.err;
  EXPECT_NE(watched.out.rfind("\"state\":\"canceled\""), std::string::npos) << watched.out;
  auto again = ctl("cancel " + id, env);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already ended"), std::string::npos) << again.err;
  // A 5 s call (500 s at the fake's pace) outlives callbackd's 1 s streams: the command
  // reconnects and shows each change once.
  auto long_call = ctl("call 1001 1002 --campaign long --wait", env);
  EXPECT_EQ(long_call.exit_code, 0) << long_call.out << long_call.err;
  auto count = [&](const std::string& text) {
    std::size_t n = 0;
    for (auto at = long_call.out.find(text); at != std::string::npos; at = long_call.out.find(text, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("connected, at most 500 s"), 1u) << long_call.out;
  EXPECT_EQ(count("ended: time_up"), 1u) << long_call.out;

  auto wrong_key = ctl("status " + id, "CALLBACK_SERVER=http://127.0.0.1:" + std::to_string(server->port()) +
                                           " CALLBACK_API_KEY=cbk_00000000_" + std::string(64, '0'));
  EXPECT_EQ(wrong_key.exit_code, 2);
  EXPECT_NE(wrong_key.err.find("api_key: unknown API key"), std::string::npos) << wrong_key.err;
}

// --- callbackctl asterisk check ----------------------------------------------------------

// A config whose engine points at `fake` (its own port), in `dir`.
std::string check_config(const test::TempDir& dir, const fake::FakeAsterisk& fake, const std::string& name) {
  const auto path = (dir / name).string();
  std::ofstream(path) << R"({
    "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
    "store": {"plugin": "callback.store.sqlite", "config": {"path": ")" << (dir / "check.db").string() << R"("}},
    "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:)" << fake.port()
                       << R"("], "secret": "callbacksecret"}}],
    "service": {"campaigns": {"free": {"limit_seconds": 2}}},
    "log": {"level": "error"}})";
  return path;
}

test::CommandResult check_with(const std::string& config, const std::string& args = {}) {
  return run_command(shell_quote(CALLBACKCTL_PATH) + " --plugin-dir " + shell_quote(CALLBACK_PLUGIN_DIR) +
                     " --config " + shell_quote(config) + " asterisk check " + args);
}

TEST_F(CallCommandTest, AsteriskCheckPassesOnAWellSetUpAsteriskAndPlacesATestCall) {
  auto r = ctl("asterisk check");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const auto* line : {"login", "permissions", "cdr", "dialplan", "prompts", "warning_prompts"}) {
    EXPECT_NE(r.out.find(std::string("ok    127.0.0.1:") + std::to_string(asterisk.port()) + "  " + line),
              std::string::npos)
        << line << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("context 'callback' version 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("7 prompts in en, zh"), std::string::npos) << r.out;

  // --json: the servers as /healthz shows them.
  auto j = ctl("--json asterisk check");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto servers = json::parse(j.out).at("servers").as_array();
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_TRUE(servers[0].at("checked").as_bool());
  EXPECT_EQ(servers[0].at("checks").as_array().size(), 6u);

  // --call: one test callback to its end; the exit code is the call's.
  auto talked = ctl("asterisk check --call 1001 2001 --campaign free");
  EXPECT_EQ(talked.exit_code, 0) << talked.out << talked.err;
  EXPECT_NE(talked.out.find("ended: "), std::string::npos) << talked.out;
  auto busy = ctl("asterisk check --call 1001 3001 --campaign free");
  EXPECT_EQ(busy.exit_code, 3) << busy.out << busy.err;
  EXPECT_NE(busy.out.find("ended: partner_busy"), std::string::npos) << busy.out;
  auto no_payer = ctl("asterisk check --call 1001 3001");
  EXPECT_EQ(no_payer.exit_code, 2);
  EXPECT_NE(no_payer.err.find("--account or --campaign"), std::string::npos) << no_payer.err;
}

TEST_F(CallCommandTest, AsteriskCheckNamesEachThingThatIsWrong) {
  struct Case {
    std::string what;
    fake::FakeAsteriskOptions options;
    std::string check, words;
  };
  fake::FakeAsteriskOptions no_cdr{.time_scale = 0.01};
  no_cdr.cdr_manager_enabled = false;
  fake::FakeAsteriskOptions few_classes{.time_scale = 0.01};
  few_classes.write_classes = "system,originate";
  fake::FakeAsteriskOptions no_zh{.time_scale = 0.01};
  no_zh.sounds = fake::default_sounds();
  no_zh.sounds["callback-time-up"] = {"en"};
  fake::FakeAsteriskOptions old_dialplan{.time_scale = 0.01};
  old_dialplan.dialplan_file = dir / "old-extensions.conf";
  {
    // The shipped dialplan with another version marker.
    std::ifstream in(CALLBACK_ASTERISK_DIALPLAN);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.replace(text.find("callback-dialplan 2"), 19, "callback-dialplan 1");
    std::ofstream(old_dialplan.dialplan_file) << text;
  }
  fake::FakeAsteriskOptions wrong_secret{.secret = "other", .time_scale = 0.01};
  const std::vector<Case> cases = {
      {"cdr_manager suspended", no_cdr, "cdr", "enabled = yes in cdr_manager.conf"},
      {"no command class", few_classes, "permissions", "lacks write command"},
      {"a prompt missing in zh", no_zh, "prompts", "zh/callback-time-up"},
      {"an older dialplan", old_dialplan, "dialplan", "version 1, this build expects 2"},
      {"a wrong secret", wrong_secret, "login", "Authentication failed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    fake::FakeAsterisk fake(c.options);
    fake.start();
    auto r = check_with(check_config(dir, fake, "check.json"));
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    const std::string failed = "FAIL  127.0.0.1:" + std::to_string(fake.port()) + "  " + c.check;
    const auto line_at = r.out.find(failed);
    ASSERT_NE(line_at, std::string::npos) << r.out;
    const std::string line = r.out.substr(line_at, r.out.find('\n', line_at) - line_at);
    EXPECT_NE(line.find(c.words), std::string::npos) << line;
    // The last line on stderr names what failed.
    EXPECT_NE(r.err.find("asterisk check failed: 127.0.0.1:" + std::to_string(fake.port()) + " " + c.check),
              std::string::npos)
        << r.err;
  }
}

TEST_F(CallCommandTest, AsteriskCheckOfARunningCallbackdShowsItsHealthz) {
  start_callbackd(false);
  const auto status = runtime->wait_for_checks(std::chrono::seconds(10));  // answered after its login
  ASSERT_EQ(status.servers.size(), 1u);
  ASSERT_TRUE(status.servers[0].checked);
  auto r = ctl("asterisk check", env);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok    127.0.0.1:" + std::to_string(asterisk.port()) + "  prompts"), std::string::npos) << r.out;
  // callbackd stopped: the check says so instead of hanging.
  server->stop();
  auto gone = ctl("asterisk check", env);
  EXPECT_EQ(gone.exit_code, 1) << gone.out << gone.err;
}

}  // namespace
}  // namespace callback
