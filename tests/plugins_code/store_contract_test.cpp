// The store contract: every test here runs on each backend, the embedded SQLite and a
// real PostgreSQL (tests/support/postgres.sh), with the same assertions. What only one
// backend has (SQLite's file, WAL and page cache) is tested in store_sqlite_test.cpp.
#include "postgres.hpp"
#include "postgres_store.hpp"
#include "sqlite_store.hpp"
#include "sample_cdr.hpp"
#include "temp_dir.hpp"

#include <SQLiteCpp/Database.h>

#include <gtest/gtest.h>

#include <callback/rate_limiter.hpp>

#include <atomic>
#include <future>
#include <thread>

using namespace callback;
using callback::store_postgres::PostgresStore;
using callback::store_sqlite::SqliteStore;
using namespace std::chrono_literals;

namespace {

const Currency cny = Currency::of("CNY").value();
Money cny_amount(std::string_view text) { return Money::parse(text, cny).value(); }

enum class Backend { sqlite, postgres };

struct StoreTest : ::testing::TestWithParam<Backend> {
  test::TempDir dir;
  std::optional<test::PostgresDatabase> database;
  std::unique_ptr<Store> store;

  void SetUp() override {
    if (GetParam() == Backend::postgres) database.emplace();
    store = open();
  }

  Result<std::unique_ptr<Store>> try_open() {
    if (GetParam() == Backend::sqlite) {
      auto opened = SqliteStore::open({.path = dir / "callback.db"});
      if (!opened) return opened.error();
      return std::unique_ptr<Store>(std::move(*opened));
    }
    auto opened = PostgresStore::open({.conninfo = database->conninfo()});
    if (!opened) return opened.error();
    return std::unique_ptr<Store>(std::move(*opened));
  }
  // Another connection to the same database, as another process or node has.
  std::unique_ptr<Store> open() {
    auto opened = try_open();
    if (!opened) throw std::runtime_error(opened.error().describe());
    return std::move(*opened);
  }

  void set_journal_pruning(std::size_t kept, std::size_t every) {
    if (auto* sqlite = dynamic_cast<SqliteStore*>(store.get())) sqlite->set_journal_pruning(kept, every);
    if (auto* postgres = dynamic_cast<PostgresStore*>(store.get())) postgres->set_journal_pruning(kept, every);
  }

  // The first column of the first row, as text, read past the store.
  std::string sql_text(const std::string& sql) {
    if (GetParam() == Backend::sqlite) {
      SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READONLY);
      return db.execAndGet(sql).getString();
    }
    pg::Connection conn(database->conninfo());
    return conn.exec(sql).text(0, 0);
  }
  void sql_exec(const std::string& sql) {
    if (GetParam() == Backend::sqlite) {
      SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READWRITE);
      db.exec(sql);
    } else {
      pg::Connection(database->conninfo()).script(sql);
    }
  }

  static Cdr make_cdr(std::string callback_id, std::string dst, Timestamp at) {
    return test::sample_cdr(std::move(callback_id), std::move(dst), at);
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

TEST_P(StoreTest, TheJournalPrunesFinishedCallbacksBeyondTheNewestItKeeps) {
  set_journal_pruning(/*kept=*/50, /*every=*/10);
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

TEST_P(StoreTest, ApiKeysAreKeptFoundListedAndRevokedOnce) {
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

  // Another process (callbackctl, another node) on the same database sees the revocation.
  auto other = open();
  auto seen = other->api_keys()->find("0a1b2c3d");
  ASSERT_TRUE(seen && *seen);
  EXPECT_EQ((*seen)->revoked_at, std::optional<Timestamp>(t0 + 5s));
}

TEST_P(StoreTest, LedgerPostsAreIdempotentByReferenceAndConcurrentPostsAllCount) {
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
      auto own = open();
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

TEST_P(StoreTest, ReopeningAppliesNoMigrationTwice) {
  const int latest = store->schema_version();
  EXPECT_EQ(latest, GetParam() == Backend::sqlite ? store_sqlite::latest_schema_version : pg::latest_schema_version);
  store.reset();
  auto again = open();
  EXPECT_EQ(again->schema_version(), latest);
  EXPECT_EQ(sql_text("SELECT max(version) FROM schema_migrations"), std::to_string(latest));
  EXPECT_EQ(sql_text("SELECT count(*) - count(DISTINCT version) FROM schema_migrations"), "0");
}

TEST_P(StoreTest, AnAccountKeepsItsLanguageAndABadOneIsRefused) {
  ASSERT_TRUE(store->accounts().create({.id = "zh1", .currency = cny, .language = "zh"}));
  ASSERT_TRUE(store->accounts().create({.id = "plain", .currency = cny}));
  EXPECT_EQ(store->accounts().find("zh1").value()->language, "zh");
  EXPECT_EQ(store->accounts().find("plain").value()->language, "");
  auto bad = store->accounts().create({.id = "bad", .currency = cny, .language = "zh\r\nAction: Logoff"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "language");
  EXPECT_FALSE(store->accounts().find("bad").value());
}

TEST_P(StoreTest, RefusesADatabaseFromANewerCallback) {
  sql_exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'from the future', "
           "'2030-01-01 00:00:00')");
  store.reset();
  auto newer = try_open();
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code, "store_too_new");
  EXPECT_NE(newer.error().message.find("schema version 99, newer than this callback knows"), std::string::npos)
      << newer.error().message;
}

TEST_P(StoreTest, CdrsRoundTripEveryColumn) {
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
  EXPECT_EQ(sql_text("SELECT calldate FROM cdr"), "2026-11-26 09:13:17");
}

TEST_P(StoreTest, QueriesByTimeAccountNumberAndCallback) {
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

TEST_P(StoreTest, SqlMetacharactersAreJustText) {
  const std::string evil = "x'); DROP TABLE cdr; --";
  Cdr cdr = make_cdr(evil, evil, Timestamp{});
  cdr.accountcode = evil;
  cdr.userfield = "\"%_\\";
  ASSERT_TRUE(store->cdrs().append(cdr));
  EXPECT_EQ(all({.account = evil}).at(0).dst, evil);
  EXPECT_EQ(all({.number = "%"}).size(), 0u);  // no LIKE, no wildcard
  EXPECT_EQ(all().at(0).userfield, "\"%_\\");
}

TEST_P(StoreTest, ABatchWithABadRecordWritesNothing) {
  std::vector<Cdr> batch{make_cdr("ok-1", "111", Timestamp{}), make_cdr("bad", "222", Timestamp{})};
  batch[1].billsec = 99;  // longer than duration 12
  auto result = store->cdrs().append(batch);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().field, "billsec");
  EXPECT_TRUE(all().empty());
}

TEST_P(StoreTest, AccountsAndLedgerKeepTheBalanceEqualToTheSumOfEntries) {
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

TEST_P(StoreTest, TriggersFindAnAccountByItsRegisteredNumberOrAddressAndEachIsOneAccounts) {
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

TEST_P(StoreTest, LedgerRefusesWhatWouldCorruptIt) {
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

TEST_P(StoreTest, AccountValidationAndStatus) {
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


// Caller statistics (the seed's monitor program) are counted by the appends themselves, in
// their transaction, the same on every backend: an A leg is an attempt of the caller it
// rang, an answered B leg adds its talk time to the caller it was for.
TEST_P(StoreTest, CallerStatisticsAreCountedByTheAppendsInTheirTransaction) {
  const Timestamp t0 = std::chrono::sys_days{std::chrono::November / 26 / 2026} + 9h;
  auto leg_a = [&](std::string id, std::string caller, Disposition disposition, Timestamp at) {
    Cdr cdr = make_cdr(std::move(id), std::move(caller), at);
    cdr.leg = LegRole::a;
    cdr.disposition = disposition;
    return cdr;
  };
  auto leg_b = [&](std::string id, std::string caller, std::int64_t billsec) {
    Cdr cdr = make_cdr(std::move(id), "861055557777", t0);
    cdr.src = std::move(caller);
    cdr.duration = billsec + 5;
    cdr.billsec = billsec;
    cdr.disposition = billsec > 0 ? Disposition::answered : Disposition::no_answer;
    return cdr;
  };
  std::vector<Cdr> first{leg_a("cb-1", "8613800138000", Disposition::answered, t0 + 1h),
                         leg_b("cb-1", "8613800138000", 61)};
  ASSERT_TRUE(store->cdrs().append(first));
  std::vector<Cdr> second{leg_a("cb-2", "8613800138000", Disposition::busy, t0),
                          leg_b("cb-2", "8613800138000", 0), leg_a("cb-3", "8613900139000", Disposition::no_answer, t0)};
  Status written = Error{"pending", "", ""};
  store->cdrs().append_async(second, [&](Status s, std::vector<Cdr>) { written = std::move(s); });
  store->cdrs().flush();
  ASSERT_TRUE(written) << written.error().describe();
  // A batch refused whole counts nothing either.
  std::vector<Cdr> bad{leg_a("cb-4", "8613800138000", Disposition::answered, t0), leg_b("cb-4", "8613800138000", 9)};
  bad[1].duration = 1;
  ASSERT_FALSE(store->cdrs().append(bad));

  auto one = store->cdrs().caller_stats("8613800138000", 0);
  ASSERT_TRUE(one) << one.error().describe();
  ASSERT_EQ(one->size(), 1u);
  const CallerStats& s = one->front();
  EXPECT_EQ(s.attempts, 2);
  EXPECT_EQ(s.answered, 1);
  EXPECT_EQ(s.failures, 1);
  EXPECT_EQ(s.talk_seconds, 61);
  EXPECT_EQ(s.first_call, std::optional<Timestamp>(t0)) << "the earlier call, though written later";
  EXPECT_EQ(s.last_call, std::optional<Timestamp>(t0 + 1h));
  auto everyone = store->cdrs().caller_stats("", 0).value();
  ASSERT_EQ(everyone.size(), 2u);
  EXPECT_EQ(everyone[0].number, "8613800138000") << "busiest first";
  EXPECT_EQ(everyone[1].attempts, 1);
  EXPECT_EQ(store->cdrs().caller_stats("", 1).value().size(), 1u);
  EXPECT_TRUE(store->cdrs().caller_stats("' OR 1=1 --", 0).value().empty());
}

// The journal keeps each callback's entry with its CDRs (one transaction), and one service
// at a time owns it: a second one is refused with who holds it, until the first closes.
TEST_P(StoreTest, TheJournalKeepsEntriesWithTheirCdrsAndOneServiceAtATimeClaimsIt) {
  CallJournal& journal = *store->journal();
  const Timestamp t0 = std::chrono::sys_days{std::chrono::November / 26 / 2026} + 9h;
  JournalEntry running{.id = "cb-1", .idempotency_key = "order-7", .state = "bridged", .server = "pbx-1",
                       .reservation = "r-1", .call = R"({"id":"cb-1"})", .created_at = t0, .updated_at = t0 + 1s};
  JournalEntry done = running;
  done.id = "cb-2";
  done.idempotency_key = "";
  done.state = "completed";
  done.final = true;
  std::vector<Cdr> written_cdrs;
  Status written = Error{"pending", "", ""};
  journal.write_async({running, done}, {make_cdr("cb-2", "111", t0)}, [&](Status s, std::vector<Cdr> cdrs) {
    written = std::move(s);
    written_cdrs = std::move(cdrs);
  });
  store->cdrs().flush();
  ASSERT_TRUE(written) << written.error().describe();
  ASSERT_EQ(written_cdrs.size(), 1u);
  EXPECT_GT(written_cdrs[0].id, 0) << "the CDRs come back with their ids";
  auto open_entries = journal.open().value();
  ASSERT_EQ(open_entries.size(), 1u);
  EXPECT_EQ(open_entries[0].idempotency_key, "order-7");
  EXPECT_EQ(open_entries[0].server, "pbx-1");
  EXPECT_EQ(open_entries[0].updated_at, t0 + 1s);
  auto recent = journal.recent(10).value();
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].id, "cb-2");
  EXPECT_EQ(recent[0].idempotency_key, "") << "no key";
  EXPECT_EQ(all({.callback_id = "cb-2"}).size(), 1u);
  // The entry is replaced by id as the call goes on.
  running.state = "completed";
  running.final = true;
  journal.write_async({running}, {}, [&](Status s, std::vector<Cdr>) { written = std::move(s); });
  store->cdrs().flush();
  ASSERT_TRUE(written);
  EXPECT_TRUE(journal.open().value().empty());
  EXPECT_EQ(journal.entry("cb-1").value().value().state, "completed");

  ASSERT_TRUE(journal.claim());
  ASSERT_TRUE(journal.claim()) << "claiming again is no harm";
  auto other = open();
  auto refused = other->journal()->claim();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "store.locked");
  EXPECT_NE(refused.error().message.find("in use by another callback service"), std::string::npos)
      << refused.error().message;
  store.reset();  // the first service stops
  EXPECT_TRUE(other->journal()->claim());
}

// Two nodes creating accounts at once, with the same number: one gets it, the other is
// refused and keeps nothing.
TEST_P(StoreTest, TwoConnectionsRegisteringOneNumberAtOnceGiveItToOneAccount) {
  const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0"};
  const auto mobile = PhoneNumber::parse("13800138000", plan).value();
  std::atomic<int> created{0}, taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto own = open();
      Account account{.id = "acct-" + std::to_string(t), .currency = cny, .balance = cny_amount("1.00")};
      account.caller_numbers.push_back(mobile);
      auto made = own->accounts().create(account);
      if (made) {
        ++created;
      } else if (made.error().code == "number_taken") {
        ++taken;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(taken.load(), 3);
  EXPECT_EQ(store->accounts().list().value().size(), 1u);
  EXPECT_EQ(store->accounts().find_by_number(mobile).value()->caller_numbers.size(), 1u);
}

// PostgreSQL's own: the database going away is an error (for /healthz and for each
// operation), never a crash; the pool connects again once it is back, and the writes
// retried then are whole.
TEST(PostgresStore, AnOutageIsAnErrorAndTheStoreConnectsAgainWhenTheDatabaseIsBack) {
  test::PostgresDatabase database;
  auto store = PostgresStore::open({.conninfo = database.conninfo()}).value();
  ASSERT_TRUE(store->health());
  ASSERT_TRUE(store->accounts().create({.id = "123", .currency = cny, .balance = cny_amount("5.00")}));
  database.cut();
  auto down = store->health();
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind, ErrorKind::internal);
  EXPECT_NE(down.error().message.find("does not answer"), std::string::npos) << down.error().message;
  const LedgerEntry topup{.account_id = "123", .amount = cny_amount("1.00"), .kind = LedgerKind::topup,
                          .reference = "pay-1"};
  EXPECT_FALSE(store->ledger().post(topup));
  Cdr cdr = test::sample_cdr("cb-1", "111", Timestamp{});
  EXPECT_FALSE(store->cdrs().append(cdr));
  database.back();
  EXPECT_TRUE(store->health()) << "a new connection";
  ASSERT_TRUE(store->ledger().post(topup)) << "the retry";
  ASSERT_TRUE(store->ledger().post(topup)) << "and once more: the same reference";
  ASSERT_TRUE(store->cdrs().append(cdr));
  EXPECT_EQ(store->accounts().find("123").value()->balance, cny_amount("6.00"));
  EXPECT_EQ(store->ledger().entries("123").value().size(), 2u);
}

// PostgreSQL's own: a server that cannot be reached is an error that names it and never
// the password.
TEST(PostgresStore, AnUnreachableServerIsAnErrorNamingItButNotThePassword) {
  auto opened = PostgresStore::open({.conninfo = "host=127.0.0.1 port=1 user=callback password=hunter2 "
                                                 "connect_timeout=5 dbname=callback"});
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, "store_open_failed");
  EXPECT_NE(opened.error().message.find("127.0.0.1"), std::string::npos) << opened.error().message;
  EXPECT_EQ(opened.error().message.find("hunter2"), std::string::npos) << opened.error().message;
  auto empty = PostgresStore::open({});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().field, "conninfo");
}

// --- several nodes on one PostgreSQL (issue 13) ----------------------------------------

// Writes `entries` through `journal` and waits for the outcome.
Status write_now(CallJournal& journal, std::vector<JournalEntry> entries, std::vector<Cdr> cdrs = {}) {
  std::promise<Status> written;
  journal.write_async(std::move(entries), std::move(cdrs),
                      [&](Status s, std::vector<Cdr>) { written.set_value(std::move(s)); });
  return written.get_future().get();
}

// One creation time for every entry of the process, as the service keeps a callback's: the
// store tells a rewrite of a callback from another callback under the same id by it, and a
// later now() may fall in the next second on a loaded machine.
JournalEntry open_entry(const std::string& id, const std::string& key = "") {
  static const auto created = std::chrono::system_clock::now();
  return JournalEntry{.id = id, .idempotency_key = key, .state = "bridged", .call = "{}", .created_at = created,
                      .updated_at = std::chrono::system_clock::now(), .client = "k1"};
}

// Two stores on `database`, claimed as nodes "a" and "b" with a lease of a minute.
auto nodes_a_and_b(test::PostgresDatabase& database) {
  auto a = PostgresStore::open({.conninfo = database.conninfo()}).value();
  auto b = PostgresStore::open({.conninfo = database.conninfo()}).value();
  EXPECT_TRUE(a->claim(NodeClaim{"a", std::chrono::seconds(60)}));
  EXPECT_TRUE(b->claim(NodeClaim{"b", std::chrono::seconds(60)}));
  return std::pair{std::move(a), std::move(b)};
}

// Node `node`'s lease ran out a second ago (it stopped renewing).
void expire_lease(test::PostgresDatabase& database, const std::string& node) {
  pg::Connection(database.conninfo()).exec("UPDATE node SET lease_until = now() - interval '1 second' WHERE id = $1", {node});
}

TEST(PostgresStore, NodesOwnWhatTheyWriteAndTakeOverWhatANodeWithoutALeaseLeft) {
  test::PostgresDatabase database;
  auto open = [&] { return PostgresStore::open({.conninfo = database.conninfo()}).value(); };
  auto [a, b] = nodes_a_and_b(database);
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_TRUE(a->shared());
  // Refused: the same id again, and a service that wants the journal whole.
  auto again = open();
  auto twice = again->claim(NodeClaim{"a", std::chrono::seconds(60)});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, "node.duplicate");
  EXPECT_NE(twice.error().message.find("pid " + std::to_string(::getpid())), std::string::npos) << twice.error().message;
  auto whole = open()->claim();
  ASSERT_FALSE(whole);
  EXPECT_EQ(whole.error().field, "service.node");

  ASSERT_TRUE(write_now(*a->journal(), {open_entry("cb-a1", "k1:order-1"), open_entry("cb-a2")}));
  ASSERT_TRUE(write_now(*b->journal(), {open_entry("cb-b1")}));
  EXPECT_EQ(a->open().value().size(), 2u);
  ASSERT_EQ(b->open().value().size(), 1u);
  EXPECT_EQ(b->entry("cb-a1").value()->owner, "a");
  EXPECT_EQ(b->list({.client = "k1"}).value().size(), 3u);
  EXPECT_EQ(b->list({.client = "k2"}).value().size(), 0u);
  // Another node's key: the id of the callback that has it.
  auto taken_key = write_now(*b->journal(), {open_entry("cb-b2", "k1:order-1")});
  ASSERT_FALSE(taken_key);
  EXPECT_EQ(taken_key.error().code, "idempotency_key_taken");
  EXPECT_EQ(taken_key.error().field, "cb-a1");
  EXPECT_FALSE(b->entry("cb-b2").value()) << "nothing half written";
  // A cancel asked of any node reaches the owner's list.
  EXPECT_EQ(b->ask_cancel("cb-a2").value(), "a");
  EXPECT_EQ(a->cancels_asked().value(), std::vector<std::string>{"cb-a2"});
  EXPECT_TRUE(b->cancels_asked().value().empty());
  EXPECT_EQ(b->ask_cancel("cb-none").error().kind, ErrorKind::not_found);

  // a's lease is live: nothing to take. Then it runs out (a stopped renewing).
  EXPECT_TRUE(b->take_over().value().empty());
  expire_lease(database, "a");
  auto taken = b->take_over().value();
  ASSERT_EQ(taken.size(), 2u);
  for (const auto& e : taken) EXPECT_EQ(e.owner, "a") << "the node it was taken from";
  EXPECT_TRUE(b->take_over().value().empty()) << "each taken once";
  EXPECT_EQ(b->open().value().size(), 3u);
  EXPECT_EQ(b->cancels_asked().value(), std::vector<std::string>{"cb-a2"}) << "the cancel moves with it";
  // a, back from its pause, finds out at its next renewal, and neither writes them nor
  // their CDRs any more: an end is skipped, anything else is refused.
  auto lost = a->renew();
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, "node.lease_lost");
  auto going_on = write_now(*a->journal(), {open_entry("cb-a2")});
  ASSERT_FALSE(going_on);
  EXPECT_EQ(going_on.error().code, "node.fenced");
  auto late = open_entry("cb-a1", "k1:order-1");
  late.state = "completed";
  late.final = true;
  ASSERT_TRUE(write_now(*a->journal(), {late}, {test::sample_cdr("cb-a1", "111", Timestamp{})}));
  EXPECT_EQ(b->entry("cb-a1").value()->state, "bridged");
  EXPECT_EQ(b->entry("cb-a1").value()->owner, "b");
  EXPECT_EQ(pg::Connection(database.conninfo()).exec("SELECT count(*) FROM cdr").integer(0, 0), 0);
  EXPECT_TRUE(a->open().value().empty());
  // The renewal of a live node keeps its calls.
  ASSERT_TRUE(b->renew());
  EXPECT_TRUE(open()->take_over().value().empty()) << "an unclaimed store takes nothing";
}

// A node renewing its lease at the moment another takes over (its row locked by the
// renewal, its lease run out a moment ago) keeps its calls: the other marks only the nodes
// whose row it could lock, and takes only theirs. Otherwise the renewal would succeed
// and both nodes would run the same calls (seen once under CI load: a frozen node that
// woke up never learned it had lost them).
TEST(PostgresStore, ANodeRenewingAtTheMomentOfATakeOverKeepsItsCalls) {
  test::PostgresDatabase database;
  auto [a, b] = nodes_a_and_b(database);
  ASSERT_FALSE(::testing::Test::HasFailure());
  ASSERT_TRUE(write_now(*a->journal(), {open_entry("cb-a1")}));
  expire_lease(database, "a");
  // a's renewal, caught between its row lock and its commit.
  pg::Connection renewal(database.conninfo());
  renewal.exec("BEGIN");
  renewal.exec("UPDATE node SET lease_until = now() + interval '60 seconds' WHERE id = 'a'");
  EXPECT_TRUE(b->take_over().value().empty()) << "a is renewing: not marked, so its calls stay a's";
  renewal.exec("COMMIT");
  ASSERT_TRUE(a->renew());
  ASSERT_EQ(a->open().value().size(), 1u);
  EXPECT_EQ(b->entry("cb-a1").value()->owner, "a");
  // Once a's lease runs out with nobody renewing it, b marks a and takes its call.
  expire_lease(database, "a");
  ASSERT_EQ(b->take_over().value().size(), 1u);
  auto lost = a->renew();
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, "node.lease_lost");
}

// A node frozen in the middle of a journal write (SIGSTOP, a VM paused between its
// statements and its commit) holds its node row FOR KEY SHARE: that does not keep another
// node from marking it and taking its calls. Only the rows of the write in flight wait.
TEST(PostgresStore, ANodeFrozenInTheMiddleOfAWriteLosesItsCallsAllTheSame) {
  test::PostgresDatabase database;
  auto [a, b] = nodes_a_and_b(database);
  ASSERT_FALSE(::testing::Test::HasFailure());
  ASSERT_TRUE(write_now(*a->journal(), {open_entry("cb-a1"), open_entry("cb-a2")}));
  expire_lease(database, "a");
  // a's write of cb-a2, frozen before its commit.
  pg::Connection frozen(database.conninfo());
  frozen.exec("BEGIN");
  frozen.exec("SELECT 1 FROM node WHERE id = 'a' FOR KEY SHARE");
  frozen.exec("UPDATE callback_journal SET state = 'talking' WHERE id = 'cb-a2'");
  auto taken = b->take_over().value();
  ASSERT_EQ(taken.size(), 1u) << "cb-a1 now; cb-a2 once the write ends";
  EXPECT_EQ(taken[0].id, "cb-a1");
  frozen.exec("COMMIT");
  ASSERT_EQ(b->take_over().value().size(), 1u);
  auto lost = a->renew();
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, "node.lease_lost");
}

// A node cut off from the database (not dead) while a new process starts under its id: the
// old one's sessions, and the id's lock with them, are gone, so the new one may claim the
// id. From then on nothing the old one writes counts, and its renewal tells it to stop.
TEST(PostgresStore, AProcessWhoseNodeIdWasClaimedAgainWritesNothing) {
  test::PostgresDatabase database;
  auto open = [&] { return PostgresStore::open({.conninfo = database.conninfo()}).value(); };
  auto old_process = open();
  ASSERT_TRUE(old_process->claim(NodeClaim{"a", std::chrono::seconds(60)}));
  ASSERT_TRUE(write_now(*old_process->journal(), {open_entry("cb-1")}));
  pg::Connection(database.conninfo())
      .exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
            "pg_backend_pid()");
  auto new_process = open();
  ASSERT_TRUE(new_process->claim(NodeClaim{"a", std::chrono::seconds(60)})) << "the id's lock went with the session";
  ASSERT_EQ(new_process->open().value().size(), 1u) << "its calls are the new process's";

  // The old process, connected again: an ongoing write and a new callback are refused; an
  // end is skipped with its CDRs.
  auto going_on = write_now(*old_process->journal(), {open_entry("cb-1")});
  ASSERT_FALSE(going_on);
  EXPECT_EQ(going_on.error().code, "node.fenced");
  auto another = write_now(*old_process->journal(), {open_entry("cb-2")});
  ASSERT_FALSE(another);
  EXPECT_EQ(another.error().code, "node.fenced");
  EXPECT_FALSE(new_process->entry("cb-2").value()) << "nothing written";
  auto end = open_entry("cb-1");
  end.state = "completed";
  end.final = true;
  ASSERT_TRUE(write_now(*old_process->journal(), {end}, {test::sample_cdr("cb-1", "111", Timestamp{})}));
  EXPECT_EQ(new_process->entry("cb-1").value()->state, "bridged");
  EXPECT_EQ(pg::Connection(database.conninfo()).exec("SELECT count(*) FROM cdr").integer(0, 0), 0);
  // The new process writes and renews as it should.
  auto talking = open_entry("cb-1");
  talking.state = "talking";
  ASSERT_TRUE(write_now(*new_process->journal(), {talking}));
  ASSERT_TRUE(new_process->renew());
  // Once the new process is gone too, the id's lock is free: the old one's renewal takes it
  // again, but its generation is not the id's any more, so it is told to stop.
  new_process.reset();
  auto renewed = old_process->renew();
  ASSERT_FALSE(renewed);
  EXPECT_EQ(renewed.error().code, "node.duplicate");
  EXPECT_NE(renewed.error().message.find("claimed by another process"), std::string::npos) << renewed.error().message;
  EXPECT_EQ(open()->entry("cb-1").value()->state, "talking");
}

// pg::Connection::send (libpq's pipeline mode, as billing's writes use it): statements sent
// without waiting are answered with the next exec() or script(); a failure among them is
// thrown there, and what was sent behind it in the transaction did not run.
TEST(PostgresConnection, SentStatementsAreAnsweredWithTheNextAndTheirFailureIsThrownThere) {
  test::PostgresDatabase database;
  pg::Connection conn(database.conninfo());
  conn.script("CREATE TABLE t (id int PRIMARY KEY, v text)");
  auto count = [&] { return conn.exec("SELECT count(*) FROM t WHERE id > $1", {0}).integer(0, 0); };
  auto insert = [&](int id, const char* v) { conn.send("INSERT INTO t VALUES ($1, $2)", {id, v}); };
  auto idle = [&] { return PQtransactionStatus(conn.raw()) == PQTRANS_IDLE; };
  EXPECT_EQ(count(), 0);  // prepared before anything is sent

  conn.send("BEGIN");
  insert(1, "one");
  insert(2, "two");
  EXPECT_EQ(count(), 2) << "sent, then answered with the read behind them, in one transaction";
  conn.send("UPDATE t SET v = $1 WHERE id = $2", {"uno", 1});
  conn.script("COMMIT");  // goes with the update
  EXPECT_TRUE(idle());
  EXPECT_EQ(conn.exec("SELECT v FROM t WHERE id = $1", {1}).text(0, 0), "uno");

  // A duplicate key among the sent statements: thrown by the read behind it, with its
  // SQLSTATE; the insert behind it never ran, and ROLLBACK ends the transaction.
  conn.send("BEGIN");
  insert(1, "again");
  insert(3, "three");
  try {
    (void)count();
    ADD_FAILURE() << "the duplicate key was not thrown";
  } catch (const pg::Failure& e) {
    EXPECT_EQ(e.sqlstate(), "23505") << e.what();
    EXPECT_FALSE(e.connection_lost());
  }
  conn.script("ROLLBACK");
  EXPECT_TRUE(idle());
  EXPECT_EQ(count(), 2);

  // A COMMIT behind a failed statement fails and commits nothing; ROLLBACK straight behind
  // one still rolls back.
  conn.send("BEGIN");
  insert(4, "four");
  insert(2, "dup");
  EXPECT_THROW(conn.script("COMMIT"), pg::Failure);
  conn.script("ROLLBACK");
  EXPECT_EQ(count(), 2);
  conn.send("BEGIN");
  insert(5, "five");
  insert(2, "dup");
  conn.script("ROLLBACK");
  EXPECT_TRUE(idle());
  EXPECT_EQ(count(), 2);
  // A statement never prepared before, behind sent ones: they are answered first.
  conn.send("BEGIN");
  insert(6, "six");
  EXPECT_EQ(conn.exec("SELECT v FROM t WHERE id = $1 AND v <> $2", {6, "x"}).text(0, 0), "six");
  conn.script("COMMIT");
  EXPECT_EQ(count(), 3);
  EXPECT_TRUE(conn.ok());

  // The server ends the session while statements are sent: the next read says the
  // connection is lost, and the connection is of no more use (its owner connects anew).
  const auto pid = conn.exec("SELECT pg_backend_pid() WHERE $1", {true}).integer(0, 0);
  conn.send("BEGIN");
  insert(7, "seven");
  pg::Connection(database.conninfo()).exec("SELECT pg_terminate_backend($1::int)", {pid});
  try {
    (void)count();
    ADD_FAILURE() << "a read on a terminated session succeeded";
  } catch (const pg::Failure& e) {
    EXPECT_TRUE(e.connection_lost()) << e.what();
  }
  EXPECT_FALSE(conn.ok());
  EXPECT_EQ(pg::Connection(database.conninfo()).exec("SELECT count(*) FROM t").integer(0, 0), 3) << "seven never committed";
}

TEST(PostgresStore, RateLimitsCountOnceForEveryNode) {
  test::PostgresDatabase database;
  auto a = PostgresStore::open({.conninfo = database.conninfo()}).value();
  auto b = PostgresStore::open({.conninfo = database.conninfo()}).value();
  RateLimiter on_a(10, std::chrono::hours(1));
  RateLimiter on_b(10, std::chrono::hours(1));
  on_a.share(a->rate_counter(), "web.per_number");
  on_b.share(b->rate_counter(), "web.per_number");
  const Timestamp now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  // 40 hits at once, half on each node: 10 pass.
  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 40; ++i) {
    threads.emplace_back([&, i] { passed += (i % 2 == 0 ? on_a : on_b).hit("8613800138000", now).count() == 0; });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(passed.load(), 10);
  auto wait = on_b.blocked("8613800138000", now + std::chrono::minutes(10));
  EXPECT_GT(wait.count(), 0);
  EXPECT_LE(wait.count(), 3000);
  EXPECT_EQ(on_a.hit("8613800138001", now).count(), 0) << "another number has its own window";
  EXPECT_EQ(on_b.hit("8613800138000", now + std::chrono::hours(1)).count(), 0) << "a new window";
  // Without the database each node goes on counting by itself.
  database.cut();
  RateLimiter alone(1, std::chrono::hours(1));
  alone.share(a->rate_counter(), "web.per_ip");
  EXPECT_EQ(alone.hit("127.0.0.1", now).count(), 0);
  EXPECT_GT(alone.hit("127.0.0.1", now).count(), 0);
  database.back();
}

// Every node sees every inbound call on every Asterisk: of two nodes asking at once, one
// takes each call; a journal that one service owns takes every call it is asked about.
TEST(PostgresStore, EachInboundCallIsClaimedByOneNode) {
  test::PostgresDatabase database;
  auto a = PostgresStore::open({.conninfo = database.conninfo()}).value();
  auto b = PostgresStore::open({.conninfo = database.conninfo()}).value();
  ASSERT_TRUE(a->claim(NodeClaim{"a", std::chrono::seconds(60)}));
  ASSERT_TRUE(b->claim(NodeClaim{"b", std::chrono::seconds(60)}));
  constexpr int calls = 200;
  std::vector<std::atomic<int>> takers(calls);
  std::vector<std::atomic<char>> taken_by(calls);  // 'a' or 'b'
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (auto* node : {a.get(), b.get()}) {
    const char name = node == a.get() ? 'a' : 'b';
    for (int half = 0; half < 2; ++half) {
      // Two threads a node, each asking about every call, one in the other's reverse order.
      threads.emplace_back([&, node, name, half] {
        for (int n = 0; n < calls; ++n) {
          const int i = half == 0 ? n : calls - 1 - n;
          // Two servers with the same uniqueids: a call is one server's.
          const auto mine = node->claim_inbound(i % 2 == 0 ? "pbx1:5038" : "pbx2:5038",
                                                "1764700000." + std::to_string(i / 2));
          if (!mine) ++failed;
          if (mine && *mine) {
            ++takers[i];
            taken_by[i] = name;
          }
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  for (int i = 0; i < calls; ++i) EXPECT_EQ(takers[i].load(), 1) << "call " << i;
  // The database names, for each call, the node that was told it took it. (Which node
  // wins each one is a race: not asserted.)
  auto rows = pg::Connection(database.conninfo()).exec("SELECT server, uniqueid, node FROM inbound_claim");
  ASSERT_EQ(rows.size(), calls);
  for (int r = 0; r < rows.size(); ++r) {
    const std::string uniqueid = rows.text(r, 1);
    const int i = 2 * std::stoi(uniqueid.substr(uniqueid.find('.') + 1)) + (rows.text(r, 0) == "pbx1:5038" ? 0 : 1);
    EXPECT_EQ(rows.text(r, 2), std::string(1, taken_by[i].load())) << rows.text(r, 0) << " " << uniqueid;
  }
  // A call taken is nobody's to take again, asked later (an event seen twice).
  EXPECT_FALSE(a->claim_inbound("pbx1:5038", "1764700000.0").value());
  EXPECT_FALSE(b->claim_inbound("pbx1:5038", "1764700000.0").value());
  // Without the database a node cannot say: an error, never a claim.
  database.cut();
  auto cut = a->claim_inbound("pbx1:5038", "1764700001.1");
  database.back();
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("cannot claim an inbound call"), std::string::npos) << cut.error().message;
}

TEST_P(StoreTest, AJournalOneServiceOwnsTakesEveryInboundCall) {
  CallJournal& journal = *store->journal();
  ASSERT_TRUE(journal.claim());
  EXPECT_FALSE(journal.shared());
  for (int i = 0; i < 2; ++i) {
    auto mine = journal.claim_inbound("pbx1:5038", "1764700000.1");
    ASSERT_TRUE(mine) << mine.error().describe();
    EXPECT_TRUE(*mine) << "asked twice, still this service's";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const ::testing::TestParamInfo<Backend>& param) {
                           return param.param == Backend::sqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace
