// callbackctl's operator commands on a database of the test's own (CALLBACK_DATA_DIR).
#include "postgres.hpp"
#include "run_command.hpp"
#include "sqlite_store.hpp"
#include <callback/timestamp.hpp>
#include "temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <SQLiteCpp/Database.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using callback::test::CommandResult;
using callback::test::run_command;
using callback::test::shell_quote;
using callback::test::TempDir;

namespace {

struct AdminTest : ::testing::Test {
  TempDir dir;
  CommandResult ctl(const std::string& args) {
    return run_command("env CALLBACK_DATA_DIR=" + shell_quote(dir.path().string()) + " " + shell_quote(CALLBACKCTL_PATH) +
                       " " + args);
  }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = (dir / name).string();
    std::ofstream(path) << text;
    return shell_quote(path);
  }
};

TEST_F(AdminTest, AccountsFromOpeningToTopUpAndDisable) {
  auto add = ctl("--json accounts add 123 --name Seed --balance 5.00 --number 13800138000 --pin 4711");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  auto shown = boost::json::parse(add.out);
  EXPECT_EQ(shown.at("balance").as_string(), "5.00");
  EXPECT_EQ(shown.at("has_pin").as_bool(), true);
  EXPECT_EQ(shown.at("numbers").as_array().at(0).as_string(), "+13800138000");  // as dialed: no numbering plan
  auto topup = ctl("accounts topup 123 10.50 --reference pay-1");
  ASSERT_EQ(topup.exit_code, 0) << topup.err;
  EXPECT_EQ(topup.out, "123: balance 15.50 CNY\n");
  auto show = ctl("accounts show 123");
  EXPECT_NE(show.out.find("balance    15.50 CNY"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("pay-1"), std::string::npos);
  EXPECT_NE(show.out.find("PIN        set"), std::string::npos);
  EXPECT_EQ(show.out.find("4711"), std::string::npos);  // never printed
  ASSERT_EQ(ctl("accounts disable 123").exit_code, 0);
  auto list = ctl("accounts list");
  EXPECT_NE(list.out.find("123  Seed  15.50"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("disabled"), std::string::npos);
}

TEST_F(AdminTest, AnAccountsLanguageIsSetAtOpeningAndShown) {
  auto add = ctl("--json accounts add zh1 --name Li --balance 5.00 --language zh");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_EQ(boost::json::parse(add.out).at("language").as_string(), "zh");
  ASSERT_EQ(ctl("accounts add plain").exit_code, 0);
  EXPECT_NE(ctl("accounts show zh1").out.find("language   zh\n"), std::string::npos);
  EXPECT_NE(ctl("accounts show plain").out.find("language   (default)\n"), std::string::npos);
  auto list = ctl("accounts list");
  EXPECT_NE(list.out.find("LANGUAGE"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("(default)  zh"), std::string::npos) << list.out;  // zh1's TARIFF, then its LANGUAGE
  const auto listed = boost::json::parse(ctl("--json accounts list").out).as_array();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed.at(0).at("language").as_string(), "");  // plain
  EXPECT_EQ(listed.at(1).at("language").as_string(), "zh");
  auto bad = ctl("accounts add bad --language 'zh CN'");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("language: a language may contain only letters, digits, '_' and '-'"), std::string::npos)
      << bad.err;
  EXPECT_EQ(ctl("accounts show bad").exit_code, 2);  // not created
}

TEST_F(AdminTest, AccountMistakesAreOneLineAndExitTwo) {
  ASSERT_EQ(ctl("accounts add 123 --balance 1").exit_code, 0);
  const std::pair<std::string, std::string> cases[] = {
      {"accounts add 123", "account 123 already exists"},
      {"accounts add 456 --balance 5.001", "balance: \"5.001\" has more decimal places than CNY allows (2)"},
      {"accounts add 456 --currency yuan", "currency: currency must be a three-letter ISO 4217 code"},
      {"accounts add \"a'; DROP TABLE account;--\"", "account id may contain only letters"},
      {"accounts topup 123 -5", "a top-up must be positive"},
      {"accounts topup 999 5", "no account 999"},
      {"accounts show 999", "no account 999"},
  };
  for (const auto& [args, message] : cases) {
    auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_NE(ctl("accounts show 123").out.find("balance    1.00 CNY"), std::string::npos);  // untouched
}

TEST_F(AdminTest, RatesImportLookupAndList) {
  const auto deck = write("deck.csv", "prefix;description;rate;increment\n86;China;0.20;60/60\n8610;Beijing;0.10;30/6\n");
  auto import = ctl("rates import default " + deck);
  ASSERT_EQ(import.exit_code, 0) << import.err;
  EXPECT_NE(import.out.find("tariff default: 2 rates imported"), std::string::npos);
  auto lookup = ctl("rates lookup default +861055556666");
  EXPECT_EQ(lookup.out, "+861055556666 -> 8610 Beijing: 0.10/min, 30/6, connection 0.00\n") << lookup.err;
  auto json = boost::json::parse(ctl("--json rates list default").out);
  EXPECT_EQ(json.as_array().size(), 2u);
  EXPECT_NE(ctl("rates list").out.find("default  CNY       2"), std::string::npos);
  // A bad deck: nothing changes, the error names the file and the line.
  const auto bad = write("bad.csv", "86;China;0.30\n87;Oops;-1\n");
  auto refused = ctl("rates import default " + bad);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("bad.csv: line 2: rate: \"-1\" is negative"), std::string::npos) << refused.err;
  EXPECT_NE(ctl("rates lookup default +8620").out.find("0.20/min"), std::string::npos);
  auto none = ctl("rates lookup default +4420");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no rate for +4420"), std::string::npos);
}

// Billing without a path of its own uses the store's file: one path in the config places
// both (billing used to open the default database beside it, and read other accounts).
TEST_F(AdminTest, BillingWithoutAPathUsesTheStoresFile) {
  const auto mine = (dir / "elsewhere" / "mine.db").string();
  const auto config = write("config.json", R"({"store": {"plugin": "callback.store.sqlite", "config": {"path": ")" +
                                               mine + R"("}}, "billing": {"plugin": "callback.billing.sqlite"}})");
  ASSERT_EQ(ctl("--config " + config + " accounts add 123 --balance 5.00").exit_code, 0);
  const auto deck = write("deck.csv", "86;China;0.10\n");
  auto import = ctl("--config " + config + " rates import default " + deck);
  ASSERT_EQ(import.exit_code, 0) << import.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "callback.db")) << "nothing at the default place";
  SQLite::Database db(mine, SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM rate").getInt(), 1);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM account").getInt(), 1);
}

// The PostgreSQL backend is one config away: the store and billing plugins share the
// server (billing takes the store's conninfo), and every command works on it. A billing
// of the other backend is refused by name instead of writing a file called "host=...".
TEST_F(AdminTest, ThePostgresBackendIsOneConfigAwayAndItsPartsCannotBeMixed) {
  callback::test::PostgresDatabase database;
  const auto store = R"({"store": {"plugin": "callback.store.postgres", "config": {"conninfo": ")" +
                     database.conninfo() + R"("}}, )";
  const auto config = write("pg.json", store + R"("billing": {"plugin": "callback.billing.postgres"}})");
  auto add = ctl("--config " + config + " accounts add 123 --balance 5.00 --number 13800138000");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  ASSERT_EQ(ctl("--config " + config + " accounts topup 123 1.50 --reference pay-1").exit_code, 0);
  ASSERT_EQ(ctl("--config " + config + " accounts topup 123 1.50 --reference pay-1").exit_code, 0) << "a retry";
  const auto deck = write("deck.csv", "86;China;0.10\n8610;Beijing;0.05\n");
  auto import = ctl("--config " + config + " rates import default " + deck);
  ASSERT_EQ(import.exit_code, 0) << import.err;
  auto show = ctl("--config " + config + " accounts show 123");
  EXPECT_NE(show.out.find("balance    6.50 CNY"), std::string::npos) << show.out << show.err;
  auto rates = ctl("--config " + config + " rates list default");
  EXPECT_NE(rates.out.find("8610"), std::string::npos) << rates.out << rates.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "callback.db")) << "no SQLite file anywhere";
  callback::pg::Connection conn(database.conninfo());
  EXPECT_EQ(conn.exec("SELECT count(*) FROM rate").integer(0, 0), 2);
  EXPECT_EQ(conn.exec("SELECT balance_micros FROM account WHERE id = '123'").integer(0, 0), 6'500'000);
  EXPECT_EQ(conn.exec("SELECT count(*) FROM ledger WHERE account_id = '123'").integer(0, 0), 2);

  const auto mixed = write("mixed.json", store + R"("billing": {"plugin": "callback.billing.sqlite"}})");
  auto refused = ctl("--config " + mixed + " rates list default");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("use callback.billing.postgres"), std::string::npos) << refused.err;
  const auto other = write("other.json", R"({"store": {"plugin": "callback.store.sqlite"}, "billing": {"plugin": )"
                                         R"("callback.billing.postgres"}})");
  refused = ctl("--config " + other + " rates list default");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("use callback.billing.sqlite"), std::string::npos) << refused.err;
  EXPECT_EQ(conn.exec("SELECT count(*) FROM account").integer(0, 0), 1) << "nothing more was written";
}

TEST_F(AdminTest, CdrListAndStreamingCsvExportAndStats) {
  ASSERT_EQ(ctl("accounts list").exit_code, 0);  // creates the database
  {
    // As the service writes them: through the store, which also counts the caller's statistics.
    using namespace callback;
    auto store = store_sqlite::SqliteStore::open({.path = dir / "callback.db"}).value();
    const Currency cny = Currency::of("CNY").value();
    const auto at = [](const char* text) { return parse_timestamp(text).value(); };
    std::vector<Cdr> cdrs(3);
    cdrs[0] = {.calldate = at("2026-11-26 09:00:00"), .clid = "\"Callback\" <8610>", .src = "8610",
               .dst = "8613800138000", .duration = 70, .billsec = 70, .disposition = Disposition::answered,
               .accountcode = "123", .userfield = "Hangupcause:16", .callback_id = "cb-1", .leg = LegRole::a};
    cdrs[1] = {.calldate = at("2026-11-26 09:00:05"), .src = "8613800138000", .dst = "8610", .duration = 65,
               .billsec = 61, .disposition = Disposition::answered, .accountcode = "123",
               .userfield = "Hangupcause:16", .callback_id = "cb-1", .leg = LegRole::b,
               .cost = Money::parse("0.20", cny).value()};
    cdrs[2] = {.calldate = at("2026-11-27 10:00:00"), .src = "8620", .dst = "8613800138000", .duration = 5,
               .disposition = Disposition::busy, .accountcode = "123", .userfield = "Hangupcause:17",
               .callback_id = "cb-2", .leg = LegRole::a};
    ASSERT_TRUE(store->cdrs().append(cdrs));
  }
  auto csv = ctl("cdr export --account 123");
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out.substr(0, csv.out.find("\r\n")),
            "calldate,clid,src,dst,dcontext,channel,dstchannel,lastapp,lastdata,duration,billsec,disposition,amaflags,"
            "accountcode,uniqueid,userfield,callback_id,leg,cost,hangup_cause");
  EXPECT_NE(csv.out.find("2026-11-26 09:00:00,\"\"\"Callback\"\" <8610>\",8610,8613800138000"), std::string::npos)
      << csv.out;
  EXPECT_NE(csv.out.find(",cb-1,B,0.20,"), std::string::npos);
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'), 4);
  auto day = ctl("--json cdr list --since 2026-11-27");
  EXPECT_EQ(boost::json::parse(day.out).as_array().size(), 1u);
  EXPECT_EQ(ctl("cdr list --since yesterday").exit_code, 2);
  auto stats = ctl("--json stats +8613800138000");
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto row = boost::json::parse(stats.out).as_array().at(0);
  EXPECT_EQ(row.at("attempts").as_int64(), 2);
  EXPECT_EQ(row.at("answered").as_int64(), 1);
  EXPECT_EQ(row.at("talk_seconds").as_int64(), 61);
}

TEST_F(AdminTest, CampaignsAddAndList) {
  auto add = ctl("campaigns add free --limit 300 --per-day 1 --gap-hours 24");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_NE(add.out.find("free      300"), std::string::npos) << add.out;
  EXPECT_EQ(ctl("campaigns add bad --limit 0").exit_code, 2);
}

// Keys carry a scope: `keys create --scope`, shown by `keys list`; a key made without one
// gets the least (callbacks), an unknown scope is a usage mistake.
TEST_F(AdminTest, KeysAreCreatedWithAScope) {
  auto ops = ctl("--json keys create ops --scope operator");
  ASSERT_EQ(ops.exit_code, 0) << ops.err;
  EXPECT_EQ(boost::json::parse(ops.out).at("scope").as_string(), "operator");
  auto plain = ctl("--json keys add crm");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(boost::json::parse(plain.out).at("scope").as_string(), "callbacks");
  EXPECT_NE(ctl("keys add root --scope root").exit_code, 0);
  auto list = ctl("--json keys list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  const auto keys = boost::json::parse(list.out).as_array();
  ASSERT_EQ(keys.size(), 2u);
  for (const auto& key : keys) {
    EXPECT_EQ(key.at("scope").as_string(), key.at("name") == "ops" ? "operator" : "callbacks") << key;
  }
  auto table = ctl("keys list");
  EXPECT_NE(table.out.find("SCOPE"), std::string::npos) << table.out;
}

}  // namespace
