#include "sqlite_store.hpp"
#include "sample_cdr.hpp"
#include "temp_dir.hpp"

#include <SQLiteCpp/Database.h>
#include <sqlite3.h>

#include "schema_rollback.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

using namespace callback;
using callback::store_sqlite::SqliteOptions;
using callback::store_sqlite::SqliteStore;
using namespace std::chrono_literals;

namespace {

const Currency cny = Currency::of("CNY").value();
Money cny_amount(std::string_view text) { return Money::parse(text, cny).value(); }

struct SqliteStoreTest : ::testing::Test {
  test::TempDir dir;
  std::unique_ptr<SqliteStore> store = SqliteStore::open({.path = dir / "callback.db"}).value();

  static Cdr make_cdr(std::string callback_id, std::string dst, Timestamp at) {
    return test::sample_cdr(std::move(callback_id), std::move(dst), at);
  }
};

TEST_F(SqliteStoreTest, CreatesTheSchemaInWalModeWithTheSeedsCdrColumnsAndIndexes) {
  EXPECT_EQ(store->schema_version(), store_sqlite::latest_schema_version);
  SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal");
  std::vector<std::string> columns;
  SQLite::Statement info(db, "SELECT name FROM pragma_table_info('cdr') ORDER BY cid");
  while (info.executeStep()) columns.push_back(info.getColumn(0).getString());
  const std::vector<std::string> asterisk{"calldate", "clid",    "src",         "dst",        "dcontext", "channel",
                                          "dstchannel", "lastapp", "lastdata",  "duration",   "billsec",  "disposition",
                                          "amaflags", "accountcode", "uniqueid", "userfield"};
  for (const auto& column : asterisk) {
    EXPECT_NE(std::find(columns.begin(), columns.end(), column), columns.end()) << column;
  }
  for (auto index : {"cdr_calldate", "cdr_dst", "cdr_accountcode"}) {
    SQLite::Statement q(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?");
    q.bind(1, index);
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getInt(), 1) << index;
  }
  EXPECT_EQ(db.execAndGet("SELECT max(version) FROM schema_migrations").getInt(), store_sqlite::latest_schema_version);
  EXPECT_EQ(db.execAndGet("SELECT count(*) - count(DISTINCT version) FROM schema_migrations").getInt(), 0);
}

// A memory map's touched pages count in callbackd's RSS and grow with the file (the CDRs
// add about 290 MB an hour at 100 callbacks/s): the soak of issue 10 (item 11) saw VmRSS
// climb with the database. Pages go through SQLite's bounded page cache instead.
TEST_F(SqliteStoreTest, TheDatabaseIsReadWithoutAMemoryMap) {
  auto database = sqlite::open_database({.path = dir / "callback.db"});
  ASSERT_TRUE(database) << database.error().describe();
  EXPECT_EQ(database->db->execAndGet("PRAGMA mmap_size").getInt64(), 0);
}

// The page caches take their pages from the pool mapped when the first database opened, not from malloc
// (benchmarks/README.md, "Soak"): reading 2,000 CDRs' pages grows the pool's use, and not one page is malloc'ed.
TEST_F(SqliteStoreTest, PageCachesTakeTheirPagesFromThePoolMappedAtTheFirstOpen) {
  ASSERT_TRUE(sqlite::use_page_cache_pool());  // this test binary's only copy opened the fixture's database first
  std::vector<Cdr> cdrs;
  for (int i = 0; i < 2000; ++i) cdrs.push_back(make_cdr("cb-" + std::to_string(i), "13800138000", Timestamp{} + std::chrono::hours(i)));
  ASSERT_TRUE(store->cdrs().append(cdrs));
  auto database = sqlite::open_database({.path = dir / "callback.db"});
  ASSERT_TRUE(database) << database.error().describe();
  sqlite3_int64 used = 0, used_peak = 0, overflow = 0, overflow_peak = 0;
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_PAGECACHE_USED, &used, &used_peak, 0), SQLITE_OK);
  const sqlite3_int64 before = used;
  EXPECT_EQ(database->db->execAndGet("SELECT count(*) FROM cdr WHERE userfield <> ''").getInt(), 2000);
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_PAGECACHE_USED, &used, &used_peak, 0), SQLITE_OK);
  ASSERT_EQ(sqlite3_status64(SQLITE_STATUS_PAGECACHE_OVERFLOW, &overflow, &overflow_peak, 0), SQLITE_OK);
  EXPECT_GT(used, before + 20);  // pool slots: the CDR table's pages, now in this connection's cache
  EXPECT_EQ(overflow_peak, 0);   // bytes of pages malloc'ed because the pool had none
}

// The journal keeps the newest finished callbacks (and every one in flight), not all of them.
// The API keys (callbackd's, made by rest::ApiKeys) are the store's: digests only, found by
// id, revoked once; another connection to the file sees them.
// A reference is posted once per account and kind (a retried settle or top-up moves no
// money twice); and posts from several connections at once all count (increments, not
// balances written back).
// A database of the release before account languages (schema 4) gains the column, its
// accounts keep everything and have no language; new accounts can have one.
TEST_F(SqliteStoreTest, MigrationFiveGivesTheAccountsOfAnOldDatabaseALanguageColumn) {
  ASSERT_TRUE(store->accounts().create({.id = "old", .name = "From before", .currency = cny,
                                        .balance = cny_amount("5.00"), .tariff = "gold"}));
  store.reset();
  {
    // Back to schema 4, as that release left it (SQLite >= 3.35 drops columns).
    SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READWRITE);
    db.exec("ALTER TABLE account DROP COLUMN language");
    // and without what later migrations added (7: toll-fraud policies)
    test::undo_migration_7(db);
    db.exec("ALTER TABLE api_key DROP COLUMN scope");  // migration 6's
    db.exec("DELETE FROM schema_migrations WHERE version >= 5");
  }
  auto upgraded = SqliteStore::open({.path = dir / "callback.db"});
  ASSERT_TRUE(upgraded) << upgraded.error().describe();
  EXPECT_EQ((*upgraded)->schema_version(), store_sqlite::latest_schema_version);
  auto old = (*upgraded)->accounts().find("old").value();
  ASSERT_TRUE(old);
  EXPECT_EQ(old->name, "From before");
  EXPECT_EQ(old->balance, cny_amount("5.00"));
  EXPECT_EQ(old->tariff, "gold");
  EXPECT_EQ(old->language, "");
  ASSERT_TRUE((*upgraded)->accounts().create({.id = "new", .currency = cny, .language = "zh"}));
  EXPECT_EQ((*upgraded)->accounts().find("new").value()->language, "zh");
  SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT description FROM schema_migrations WHERE version = 5").getString(),
            "account language: what its callers hear announcements in");
}

TEST_F(SqliteStoreTest, OpenFailureIsAnErrorNamingThePath) {
  auto bad = SqliteStore::open({.path = "/proc/callback-cannot-be-here/callback.db"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("/proc/callback-cannot-be-here/callback.db"), std::string::npos)
      << bad.error().message;
}

TEST_F(SqliteStoreTest, DefaultPathFollowsTheEnvironment) {
  ::setenv("CALLBACK_DATA_DIR", (dir / "data").c_str(), 1);
  EXPECT_EQ(store_sqlite::default_database_path(), dir / "data" / "callback.db");
  ::unsetenv("CALLBACK_DATA_DIR");
  EXPECT_EQ(store_sqlite::default_database_path().filename(), "callback.db");
}

TEST(NormalizeEmail, KeepsAPlainAddressInLowerCaseAndSaysWhatIsWrongWithOthers) {
  EXPECT_EQ(normalize_email("Li.Lei+callback@Mail.Example.COM").value(), "li.lei+callback@mail.example.com");
  const std::pair<const char*, const char*> bad[] = {
      {"", "needed"},
      {"li.lei", "has an @"},
      {"@example.com", "1 to 64"},
      {".li@example.com", "dot"},
      {"li..lei@example.com", "dot"},
      {"li lei@example.com", "character 3"},
      {"\"li\"@example.com", "character 1"},
      {"li@", "1 to 253"},
      {"li@-example.com", "labels"},
      {"li@example..com", "labels"},
      {"li@exa_mple.com", "character 7"},
      {"li@[127.0.0.1]", "character 4"},
      {"Li Lei <li@example.com>", "character 3"},
  };
  for (const auto& [address, says] : bad) {
    auto result = normalize_email(address);
    ASSERT_FALSE(result) << address;
    EXPECT_EQ(result.error().code, "invalid_email") << address;
    EXPECT_NE(result.error().message.find(says), std::string::npos) << address << ": " << result.error().message;
  }
  EXPECT_FALSE(normalize_email(std::string(65, 'a') + "@example.com"));
  EXPECT_FALSE(normalize_email("a@" + std::string(250, 'b') + ".com"));
}

}  // namespace
