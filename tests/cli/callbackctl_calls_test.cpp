// callbackctl call / status / cancel, run as a process: embedded (the command runs the
// service itself against the Asterisk fake) and against a callbackd (--server).
#include "api_keys.hpp"
#include "fake_asterisk.hpp"
#include "run_command.hpp"
#include "server.hpp"
#include "temp_dir.hpp"

#include <callback/runtime.hpp>

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
      "service": {"campaigns": {"free": {"limit_seconds": 30}, "long": {"limit_seconds": 500}}},
      "server": {"listen": "127.0.0.1:0", "stream_timeout_seconds": 1},
      "log": {"level": "warning"}})";
  }

  test::CommandResult ctl(const std::string& args, const std::string& env = {}) {
    return run_command((env.empty() ? "" : "env " + env + " ") + shell_quote(CALLBACKCTL_PATH) + " --plugin-dir " + shell_quote(CALLBACK_PLUGIN_DIR) +
                       " --config " + shell_quote(config_path) + " " + args);
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
}

TEST_F(CallCommandTest, AgainstCallbackd) {
  auto config = load_config(config_path);
  ASSERT_TRUE(config) << config.error().describe();
  auto keys = rest::ApiKeys::open(dir / "callback.db");
  ASSERT_TRUE(keys);
  const std::string key = (*keys)->add("cli").value().key;
  auto options = rest::parse_server_options(config->server).value();
  auto runtime = Runtime::open(std::move(*config), {.plugin_dirs = {CALLBACK_PLUGIN_DIR}}).value();
  rest::RestServer server(*runtime, options, std::move(*keys));
  ASSERT_TRUE(runtime->start());
  ASSERT_TRUE(runtime->wait_for_engine(std::chrono::seconds(10)));
  ASSERT_TRUE(server.start());
  const std::string env = "CALLBACK_SERVER=http://127.0.0.1:" + std::to_string(server.port()) +
                          " CALLBACK_API_KEY=" + key;

  auto waited = ctl("call 1001 3001 --campaign free --wait", env);
  EXPECT_EQ(waited.exit_code, 3) << waited.out << waited.err;
  EXPECT_NE(waited.out.find("ended: partner_busy"), std::string::npos) << waited.out;

  // B does not answer for a long while: place, look, cancel, look again.
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

  auto wrong_key = ctl("status " + id, "CALLBACK_SERVER=http://127.0.0.1:" + std::to_string(server.port()) +
                                           " CALLBACK_API_KEY=cbk_00000000_" + std::string(64, '0'));
  EXPECT_EQ(wrong_key.exit_code, 2);
  EXPECT_NE(wrong_key.err.find("api_key: unknown API key"), std::string::npos) << wrong_key.err;
  server.stop();
  runtime->stop(std::chrono::seconds{0});
}

}  // namespace
}  // namespace callback
