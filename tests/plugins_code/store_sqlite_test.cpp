#include "sqlite_store.hpp"
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
    Cdr cdr;
    cdr.calldate = at;
    cdr.clid = "\"Alice\" <861055556666>";
    cdr.src = "861055556666";
    cdr.dst = std::move(dst);
    cdr.dcontext = "callback";
    cdr.channel = "Local/1001@phones-00000001;1";
    cdr.dstchannel = "Local/3001@phones-00000002;1";
    cdr.lastapp = "Dial";
    cdr.lastdata = "Local/3001@phones,45,gL(300000:20000:20000)";
    cdr.duration = 12;
    cdr.billsec = 0;
    cdr.disposition = Disposition::busy;
    cdr.accountcode = "123";
    cdr.uniqueid = "1764150000.17";
    cdr.userfield = "Hangupcause:17";
    cdr.callback_id = std::move(callback_id);
    cdr.leg = LegRole::b;
    cdr.hangup_cause = HangupCause{17};
    return cdr;
  }

  std::vector<Cdr> all(const CdrQuery& query = {}) {
    std::vector<Cdr> out;
    auto ok = store->cdrs().query(query, [&](const Cdr& cdr) {
      out.push_back(cdr);
      return true;
    });
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().describe());
    return out;
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
TEST_F(SqliteStoreTest, TheJournalPrunesFinishedCallbacksBeyondTheNewestItKeeps) {
  store->set_journal_pruning(/*kept=*/50, /*every=*/10);
  auto entry = [](int i, bool final) {
    const auto at = Timestamp{} + std::chrono::hours(1000) + std::chrono::seconds(i);
    return JournalEntry{.id = "cb-" + std::to_string(i), .idempotency_key = "key-" + std::to_string(i),
                        .state = final ? "completed" : "bridged", .final = final, .call = "{}",
                        .created_at = at, .updated_at = at};
  };
  int failed = 0;
  auto write = [&](std::vector<JournalEntry> entries) {
    store->journal()->write_async(std::move(entries), {}, [&](Status s, std::vector<Cdr>) { failed += !s; });
    store->cdrs().flush();  // one at a time: each its own transaction
  };
  write({entry(0, false), entry(1, false)});
  for (int i = 2; i < 302; ++i) write({entry(i, true)});
  EXPECT_EQ(failed, 0);
  auto open = store->journal()->open();
  ASSERT_TRUE(open);
  EXPECT_EQ(open->size(), 2u);  // in flight: never pruned
  auto recent = store->journal()->recent(1000);
  ASSERT_TRUE(recent);
  EXPECT_GE(recent->size(), 50u);
  EXPECT_LE(recent->size(), 60u);  // the newest 50, and at most the 10 written since the last pruning
  EXPECT_EQ(recent->front().id, "cb-301");
  auto oldest = store->journal()->entry("cb-2");
  ASSERT_TRUE(oldest);
  EXPECT_FALSE(*oldest);
  auto newest = store->journal()->entry("cb-300");
  ASSERT_TRUE(newest);
  EXPECT_TRUE(*newest);
}

// The API keys (callbackd's, made by rest::ApiKeys) are the store's: digests only, found by
// id, revoked once; another connection to the file sees them.
TEST_F(SqliteStoreTest, ApiKeysAreKeptFoundListedAndRevokedOnce) {
  ApiKeyStore& keys = *store->api_keys();
  const Timestamp t0 = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  const ApiKeyRecord crm{.id = "0a1b2c3d", .name = "crm'; DROP TABLE api_key; --", .scope = "callbacks",
                         .key_hash = std::string(64, 'e'), .webhook_secret = "whsec_x", .created_at = t0};
  ASSERT_TRUE(keys.add(crm));
  ASSERT_TRUE(keys.add({.id = "ffff0000", .name = "ops", .scope = "operator", .key_hash = std::string(64, 'f'),
                        .webhook_secret = "whsec_y", .created_at = t0 + 1s}));
  auto again = keys.add(crm);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, "key_exists");
  EXPECT_EQ(again.error().kind, ErrorKind::conflict);

  auto found = keys.find("0a1b2c3d");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->name, crm.name) << "the name is only text";
  EXPECT_EQ((*found)->key_hash, crm.key_hash);
  EXPECT_EQ((*found)->created_at, t0);
  EXPECT_FALSE((*found)->revoked_at);
  EXPECT_FALSE(keys.find("00000000").value().has_value());
  auto list = keys.list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "0a1b2c3d") << "oldest first";
  EXPECT_EQ((*list)[1].scope, "operator");

  ASSERT_TRUE(keys.revoke("0a1b2c3d", t0 + 5s));
  auto twice = keys.revoke("0a1b2c3d", t0 + 6s);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, "already_revoked");
  auto unknown = keys.revoke("12345678", t0);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::not_found);

  // Another process (callbackctl) on the same file sees the revocation.
  auto other = SqliteStore::open({.path = dir / "callback.db"}).value();
  auto seen = other->api_keys()->find("0a1b2c3d");
  ASSERT_TRUE(seen && *seen);
  EXPECT_EQ((*seen)->revoked_at, std::optional<Timestamp>(t0 + 5s));
}

// A reference is posted once per account and kind (a retried settle or top-up moves no
// money twice); and posts from several connections at once all count (increments, not
// balances written back).
TEST_F(SqliteStoreTest, LedgerPostsAreIdempotentByReferenceAndConcurrentPostsAllCount) {
  ASSERT_TRUE(store->accounts().create({.id = "123", .currency = cny, .balance = cny_amount("0.00")}));
  auto& ledger = store->ledger();
  auto first = ledger.post({.account_id = "123", .amount = cny_amount("5.00"), .kind = LedgerKind::topup,
                            .reference = "receipt-9"});
  ASSERT_TRUE(first);
  auto retried = ledger.post({.account_id = "123", .amount = cny_amount("5.00"), .kind = LedgerKind::topup,
                              .reference = "receipt-9"});
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->id, first->id) << "the first entry, again";
  EXPECT_EQ(retried->balance_after, cny_amount("5.00"));
  auto reused = ledger.post({.account_id = "123", .amount = cny_amount("7.00"), .kind = LedgerKind::topup,
                             .reference = "receipt-9"});
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().code, "reference_reused");
  EXPECT_EQ(reused.error().kind, ErrorKind::conflict);
  // The same reference of another kind is another posting (a call's charge and its refund).
  ASSERT_TRUE(ledger.post({.account_id = "123", .amount = -cny_amount("1.00"), .kind = LedgerKind::call_charge,
                           .reference = "receipt-9"}));
  EXPECT_EQ(store->accounts().find("123").value()->balance, cny_amount("4.00"));
  EXPECT_EQ(ledger.entries("123").value().size(), 2u);

  // 4 connections (as callbackd, callbackctl and others would hold) x 50 posts of 0.01.
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto own = SqliteStore::open({.path = dir / "callback.db"}).value();
      for (int i = 0; i < 50; ++i) {
        if (!own->ledger().post({.account_id = "123", .amount = cny_amount("0.01"), .kind = LedgerKind::adjustment,
                                 .reference = "t" + std::to_string(t) + "-" + std::to_string(i)})) {
          ++failed;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(store->accounts().find("123").value()->balance, cny_amount("6.00"));
  const auto entries = ledger.entries("123").value();
  EXPECT_EQ(entries.size(), 202u);
}

TEST_F(SqliteStoreTest, ReopeningAppliesNoMigrationTwice) {
  store.reset();
  auto again = SqliteStore::open({.path = dir / "callback.db"});
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ((*again)->schema_version(), store_sqlite::latest_schema_version);
  SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT max(version) FROM schema_migrations").getInt(), store_sqlite::latest_schema_version);
  EXPECT_EQ(db.execAndGet("SELECT count(*) - count(DISTINCT version) FROM schema_migrations").getInt(), 0);
}

TEST_F(SqliteStoreTest, AnAccountKeepsItsLanguageAndABadOneIsRefused) {
  ASSERT_TRUE(store->accounts().create({.id = "zh1", .currency = cny, .language = "zh"}));
  ASSERT_TRUE(store->accounts().create({.id = "plain", .currency = cny}));
  EXPECT_EQ(store->accounts().find("zh1").value()->language, "zh");
  EXPECT_EQ(store->accounts().find("plain").value()->language, "");
  auto bad = store->accounts().create({.id = "bad", .currency = cny, .language = "zh\r\nAction: Logoff"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "language");
  EXPECT_FALSE(store->accounts().find("bad").value());
}

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

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerCallback) {
  {
    SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01 00:00:00')");
  }
  store.reset();
  auto newer = SqliteStore::open({.path = dir / "callback.db"});
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code, "store_too_new");
  EXPECT_NE(newer.error().message.find("schema version 99, newer than this callback knows"), std::string::npos);
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

TEST_F(SqliteStoreTest, CdrsRoundTripEveryColumn) {
  const Timestamp at = std::chrono::sys_days{std::chrono::November / 26 / 2026} + 9h + 13min + 17s;
  Cdr cdr = make_cdr("cb-1", "861055556666", at);
  cdr.cost = Money::parse("0.20", cny).value();
  ASSERT_TRUE(store->cdrs().append(cdr));
  EXPECT_GT(cdr.id, 0);
  const auto rows = all();
  ASSERT_EQ(rows.size(), 1u);
  const Cdr& got = rows[0];
  EXPECT_EQ(got.id, cdr.id);
  EXPECT_EQ(got.calldate, at);
  EXPECT_EQ(got.clid, cdr.clid);
  EXPECT_EQ(got.lastdata, cdr.lastdata);
  EXPECT_EQ(got.duration, 12);
  EXPECT_EQ(got.disposition, Disposition::busy);
  EXPECT_EQ(got.amaflags, 3);
  EXPECT_EQ(got.userfield, "Hangupcause:17");
  EXPECT_EQ(got.leg, LegRole::b);
  EXPECT_EQ(got.hangup_cause, HangupCause{17});
  ASSERT_TRUE(got.cost);
  EXPECT_EQ(*got.cost, cny_amount("0.20"));
  // Asterisk's calldate text form in the table itself.
  SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT calldate FROM cdr").getString(), "2026-11-26 09:13:17");
}

TEST_F(SqliteStoreTest, QueriesByTimeAccountNumberAndCallback) {
  const Timestamp t0 = std::chrono::sys_days{std::chrono::November / 1 / 2026};
  std::vector<Cdr> batch{make_cdr("cb-1", "111", t0), make_cdr("cb-2", "222", t0 + 1h), make_cdr("cb-3", "333", t0 + 2h)};
  batch[2].accountcode = "456";
  ASSERT_TRUE(store->cdrs().append(batch));
  EXPECT_EQ(all().size(), 3u);
  EXPECT_EQ(all({.since = t0 + 1h}).size(), 2u);
  EXPECT_EQ(all({.since = t0, .until = t0 + 1h}).size(), 1u);
  EXPECT_EQ(all({.account = "456"}).at(0).callback_id, "cb-3");
  EXPECT_EQ(all({.number = "222"}).at(0).callback_id, "cb-2");
  EXPECT_EQ(all({.number = "861055556666"}).size(), 3u);  // as src
  EXPECT_EQ(all({.callback_id = "cb-1"}).size(), 1u);
  EXPECT_EQ(all({.limit = 2}).size(), 2u);
  // The visitor can stop the scan.
  int seen = 0;
  ASSERT_TRUE(store->cdrs().query({}, [&](const Cdr&) { return ++seen < 1; }));
  EXPECT_EQ(seen, 1);
}

TEST_F(SqliteStoreTest, SqlMetacharactersAreJustText) {
  const std::string evil = "x'); DROP TABLE cdr; --";
  Cdr cdr = make_cdr(evil, evil, Timestamp{});
  cdr.accountcode = evil;
  cdr.userfield = "\"%_\\";
  ASSERT_TRUE(store->cdrs().append(cdr));
  EXPECT_EQ(all({.account = evil}).at(0).dst, evil);
  EXPECT_EQ(all({.number = "%"}).size(), 0u);  // no LIKE, no wildcard
  EXPECT_EQ(all().at(0).userfield, "\"%_\\");
}

TEST_F(SqliteStoreTest, ABatchWithABadRecordWritesNothing) {
  std::vector<Cdr> batch{make_cdr("ok-1", "111", Timestamp{}), make_cdr("bad", "222", Timestamp{})};
  batch[1].billsec = 99;  // longer than duration 12
  auto result = store->cdrs().append(batch);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().field, "billsec");
  EXPECT_TRUE(all().empty());
}

TEST_F(SqliteStoreTest, AccountsAndLedgerKeepTheBalanceEqualToTheSumOfEntries) {
  const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0"};
  Account account{.id = "123", .name = "Seed's account", .currency = cny, .balance = cny_amount("5.00")};
  account.caller_numbers.push_back(PhoneNumber::parse("13800138000", plan).value());
  ASSERT_TRUE(store->accounts().create(account));
  EXPECT_EQ(store->accounts().create(account).error().code, "account_exists");

  auto found = store->accounts().find("123");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->balance, cny_amount("5.00"));
  EXPECT_EQ((*found)->caller_numbers.at(0).digits(), "8613800138000");

  auto charged = store->ledger().post(
      {.account_id = "123", .amount = -cny_amount("0.20"), .kind = LedgerKind::call_charge, .reference = "cb-1"});
  ASSERT_TRUE(charged) << charged.error().describe();
  EXPECT_EQ(charged->balance_after, cny_amount("4.80"));
  EXPECT_EQ(store->accounts().find("123").value()->balance, cny_amount("4.80"));

  auto entries = store->ledger().entries("123").value();
  ASSERT_EQ(entries.size(), 2u);  // opening balance + the charge
  Money sum = Money::zero(cny);
  for (const auto& e : entries) sum += e.amount;
  EXPECT_EQ(sum, store->accounts().find("123").value()->balance);
  EXPECT_EQ(entries[1].kind, LedgerKind::call_charge);
  EXPECT_EQ(entries[1].reference, "cb-1");
}

TEST_F(SqliteStoreTest, TriggersFindAnAccountByItsRegisteredNumberOrAddressAndEachIsOneAccounts) {
  const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0"};
  const auto mobile = PhoneNumber::parse("13800138000", plan).value();
  Account account{.id = "123", .currency = cny};
  account.caller_numbers.push_back(mobile);
  account.emails = {"li.lei@example.com"};
  ASSERT_TRUE(store->accounts().create(account));

  auto by_number = store->accounts().find_by_number(PhoneNumber::parse("+86 138 0013 8000", plan).value());
  ASSERT_TRUE(by_number && *by_number) << (by_number ? "none" : by_number.error().describe());
  EXPECT_EQ((*by_number)->id, "123");
  EXPECT_EQ((*by_number)->emails, std::vector<std::string>{"li.lei@example.com"});
  auto by_email = store->accounts().find_by_email("li.lei@example.com");
  ASSERT_TRUE(by_email && *by_email);
  EXPECT_EQ((*by_email)->id, "123");
  EXPECT_FALSE(store->accounts().find_by_email("han.meimei@example.com").value());
  EXPECT_FALSE(store->accounts().find_by_number(PhoneNumber::parse("13900139000", plan).value()).value());
  // Hostile text is only a value to look up.
  EXPECT_FALSE(store->accounts().find_by_email("x' OR '1'='1").value());

  // A second account cannot take either: a trigger could not tell whose it is.
  Account other{.id = "456", .currency = cny};
  other.caller_numbers.push_back(mobile);
  auto taken = store->accounts().create(other);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, "number_taken");
  EXPECT_EQ(taken.error().field, "numbers");
  other.caller_numbers.clear();
  other.emails = {"LI.LEI@Example.com"};  // the same address in other case
  taken = store->accounts().create(other);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, "email_taken");
  EXPECT_FALSE(store->accounts().find("456").value()) << "nothing of a refused account is kept";

  // The defaults, for a backend without an index, give the same answers.
  struct ListOnly final : AccountStore {
    explicit ListOnly(AccountStore& store) : inner(store) {}
    AccountStore& inner;
    Status create(const Account& a) override { return inner.create(a); }
    Result<std::optional<Account>> find(const std::string& id) override { return inner.find(id); }
    Result<std::vector<Account>> list() override { return inner.list(); }
    Status set_status(const std::string& id, AccountStatus s) override { return inner.set_status(id, s); }
  } list_only{store->accounts()};
  EXPECT_EQ(list_only.find_by_number(mobile).value().value().id, "123");
  EXPECT_EQ(list_only.find_by_email("li.lei@example.com").value().value().id, "123");
  EXPECT_FALSE(list_only.find_by_email("nobody@example.com").value());
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

TEST_F(SqliteStoreTest, LedgerRefusesWhatWouldCorruptIt) {
  ASSERT_TRUE(store->accounts().create({.id = "123", .currency = cny, .balance = cny_amount("1.00")}));
  const Currency usd = Currency::of("USD").value();
  auto wrong = store->ledger().post({.account_id = "123", .amount = Money::parse("1.00", usd).value()});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, "currency_mismatch");
  EXPECT_EQ(store->ledger().post({.account_id = "nobody", .amount = cny_amount("1.00")}).error().code,
            "unknown_account");
  EXPECT_EQ(store->ledger().entries("123").value().size(), 1u);
  EXPECT_EQ(store->accounts().find("123").value()->balance, cny_amount("1.00"));
}

TEST_F(SqliteStoreTest, AccountValidationAndStatus) {
  EXPECT_EQ(store->accounts().create({.id = "a b", .currency = cny}).error().field, "id");
  EXPECT_EQ(store->accounts().create({.id = "nocurrency"}).error().field, "currency");
  EXPECT_EQ(store->accounts().create({.id = "neg", .currency = cny, .credit_limit = -cny_amount("1")}).error().field,
            "credit_limit");
  ASSERT_TRUE(store->accounts().create({.id = "b", .currency = cny}));
  ASSERT_TRUE(store->accounts().create({.id = "a", .currency = cny}));
  ASSERT_TRUE(store->accounts().set_status("a", AccountStatus::disabled));
  EXPECT_EQ(store->accounts().set_status("zzz", AccountStatus::disabled).error().code, "unknown_account");
  auto list = store->accounts().list().value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "a");
  EXPECT_EQ(list[0].status, AccountStatus::disabled);
  EXPECT_TRUE(list[1].balance.is_zero());
  EXPECT_TRUE(store->ledger().entries("b").value().empty());  // zero opening balance: no entry
}

}  // namespace
