// Billing's tests, each on both backends: the embedded SQLite and a real PostgreSQL
// (tests/support/postgres.sh), the same code (billing_common) over each database.
#include "postgres.hpp"
#include "postgres_billing.hpp"
#include "postgres_store.hpp"
#include "sqlite_billing.hpp"
#include "sqlite_store.hpp"
#include "temp_dir.hpp"

#include <callback/secret.hpp>

#include <SQLiteCpp/Database.h>

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace callback;
using callback::billing_sql::BillingRules;
using SqliteBilling = callback::billing_sql::SqlBilling;
using namespace std::chrono_literals;

namespace {

const Currency cny = Currency::of("CNY").value();
Money cny_amount(std::string_view s) { return Money::parse(s, cny).value(); }
const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};
PhoneNumber number(std::string_view s) { return PhoneNumber::parse(s, plan).value(); }

// --- authorization ------------------------------------------------------------------------

enum class Backend { sqlite, postgres };

struct BillingTest : ::testing::TestWithParam<Backend> {
  test::TempDir dir;
  std::optional<test::PostgresDatabase> database;
  std::unique_ptr<Store> store;
  std::unique_ptr<SqliteBilling> billing;

  void SetUp() override {
    if (GetParam() == Backend::postgres) {
      database.emplace();
      store = store_postgres::PostgresStore::open({.conninfo = database->conninfo()}).value();
    } else {
      store = store_sqlite::SqliteStore::open({.path = dir / "callback.db"}).value();
    }
    // Whole-call reservations, as the seed: the tests of slices open their own.
    billing = open_billing({.debit_interval = 0s});
  }

  std::unique_ptr<SqliteBilling> open_billing(BillingRules rules) {
    if (GetParam() == Backend::postgres) return billing_postgres::open_billing(database->conninfo(), std::move(rules)).value();
    return billing_sqlite::open_billing({.path = dir / "callback.db", .synchronous = "normal"}, std::move(rules)).value();
  }
  // A count read past billing, from the database itself.
  std::int64_t count(const std::string& sql) {
    if (GetParam() == Backend::sqlite) {
      SQLite::Database db((dir / "callback.db").string(), SQLite::OPEN_READONLY);
      return db.execAndGet(sql).getInt64();
    }
    pg::Connection conn(database->conninfo());
    return conn.exec(sql).integer(0, 0);
  }
  void import(const std::string& tariff, const std::string& csv, SqliteBilling* into = nullptr) {
    std::istringstream in(csv);
    auto report = (into ? into : billing.get())->import_rates(tariff, in, cny);
    ASSERT_TRUE(report) << report.error().describe();
  }
  void account(const std::string& id, std::string_view balance, AccountStatus status = AccountStatus::active) {
    ASSERT_TRUE(store->accounts().create({.id = id, .currency = cny, .balance = cny_amount(balance), .status = status}));
  }
  Authorization authorize(const std::string& account_id, std::string_view destination, const std::string& call,
                          std::string secret = {}) {
    auto a = billing->authorize({AccountId{account_id}, number("13800138000"), number(destination), call, secret});
    EXPECT_TRUE(a) << a.error().describe();
    return a ? *a : Authorization{};
  }
  Money balance(const std::string& id) { return store->accounts().find(id).value()->balance; }
  Money reserved(const std::string& id) { return store->accounts().find(id).value()->reserved; }
};

TEST_P(BillingTest, TheSeedsExampleFiveYuanAtTenFenIsFiftyMinutes) {
  import("default", "86;China;0.10\n");
  account("123", "5.00");
  auto a = authorize("123", "861234567", "cb-1");
  ASSERT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(a.max_duration, 50min);
  EXPECT_EQ(reserved("123"), cny_amount("5.00"));
  // The call lasted 61 s: two minutes at 60/60.
  auto cost = billing->settle(a.reservation, 61s);
  ASSERT_TRUE(cost) << cost.error().describe();
  EXPECT_EQ(*cost, cny_amount("0.20"));
  EXPECT_EQ(balance("123"), cny_amount("4.80"));
  EXPECT_TRUE(reserved("123").is_zero());
  // Exactly once: a second settle (a restart after the charge, before the records) gives
  // the first charge back and moves nothing, even with another talk time; a release is
  // refused and moves nothing.
  auto again = billing->settle(a.reservation, 600s);
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(*again, cny_amount("0.20"));
  EXPECT_EQ(billing->release(a.reservation).error().code, "reservation_ended");
  EXPECT_EQ(balance("123"), cny_amount("4.80"));
  auto ledger = store->ledger().entries("123").value();
  ASSERT_EQ(ledger.size(), 2u);
  EXPECT_EQ(ledger[1].amount, -cny_amount("0.20"));
  EXPECT_EQ(ledger[1].reference, "cb-1");
  EXPECT_EQ(ledger[1].kind, LedgerKind::call_charge);
  EXPECT_EQ(ledger[1].balance_after, cny_amount("4.80"));
  // The charge was posted through the ledger's own rules: the call is its reference, so
  // the same charge posted again (a retry through the store) finds it and moves nothing,
  // and another amount for the same call is refused.
  auto retried = store->ledger().post({.account_id = "123", .amount = -cny_amount("0.20"),
                                       .kind = LedgerKind::call_charge, .reference = "cb-1"});
  ASSERT_TRUE(retried) << retried.error().describe();
  EXPECT_EQ(retried->id, ledger[1].id);
  EXPECT_EQ(store->ledger().post({.account_id = "123", .amount = -cny_amount("0.30"),
                                  .kind = LedgerKind::call_charge, .reference = "cb-1"}).error().code,
            "reference_reused");
  EXPECT_EQ(balance("123"), cny_amount("4.80"));
}

TEST_P(BillingTest, AGrantCarriesTheAccountsLanguageFromTheRowItRead) {
  import("default", "86;China;0.10\n");
  ASSERT_TRUE(store->accounts().create({.id = "zh", .currency = cny, .balance = cny_amount("5.00"), .language = "zh"}));
  account("plain", "5.00");
  const auto zh = authorize("zh", "861234567", "cb-zh");
  ASSERT_TRUE(zh.allowed) << zh.message;
  EXPECT_EQ(zh.language, "zh");
  const auto plain = authorize("plain", "861234567", "cb-plain");
  ASSERT_TRUE(plain.allowed) << plain.message;
  EXPECT_EQ(plain.language, "");
  ASSERT_TRUE(billing->release(zh.reservation));
  ASSERT_TRUE(billing->release(plain.reservation));
}

TEST_P(BillingTest, ReleaseChargesNothing) {
  import("default", "86;China;0.10\n");
  account("123", "1.00");
  auto a = authorize("123", "861234567", "cb-2");
  ASSERT_TRUE(billing->release(a.reservation));
  EXPECT_EQ(balance("123"), cny_amount("1.00"));
  EXPECT_TRUE(reserved("123").is_zero());
  EXPECT_EQ(store->ledger().entries("123").value().size(), 1u);
}

TEST_P(BillingTest, MaxDurationRespectsIncrementsFeesAndTheCap) {
  import("default", "86;China;0.10;30/6;0.05\n44;UK;0;1/1\n");
  account("123", "1.00");
  // (1.00 - 0.05) / 0.10 = 9.5 min = 570 s, on the 30/6 grid: 30 + 6k <= 570 -> 570.
  auto a = authorize("123", "861234567", "cb-3");
  EXPECT_EQ(a.max_duration, 570s) << a.message;
  ASSERT_TRUE(billing->release(a.reservation));
  // A free destination is capped by max_call (3600 s).
  EXPECT_EQ(authorize("123", "+44 20 7946 0018", "cb-4").max_duration, 3600s);
}

TEST_P(BillingTest, DenialsCarryTheirReasonAndMoveNothing) {
  import("default", "86;China;0.10\n882;Satellite;BLOCKED\n");
  account("rich", "100.00");
  account("poor", "0.05");
  account("off", "100.00", AccountStatus::disabled);
  EXPECT_EQ(authorize("nobody", "861234567", "d1").reason, DenialReason::unknown_account);
  EXPECT_EQ(authorize("off", "861234567", "d2").reason, DenialReason::disabled);
  EXPECT_EQ(authorize("rich", "+44 20 7946 0018", "d3").reason, DenialReason::no_rate);
  EXPECT_EQ(authorize("rich", "+882 1234", "d4").reason, DenialReason::destination_blocked);
  auto poor = authorize("poor", "861234567", "d5");
  EXPECT_EQ(poor.reason, DenialReason::insufficient_balance);
  EXPECT_NE(poor.message.find("available 0.05 CNY"), std::string::npos) << poor.message;
  for (const auto* id : {"rich", "poor", "off"}) EXPECT_TRUE(reserved(id).is_zero()) << id;
}

TEST_P(BillingTest, PinOrRegisteredNumberGuardsAnAccountWithASecret) {
  import("default", "86;China;0.10\n");
  Account a{.id = "pin", .currency = cny, .balance = cny_amount("5.00"), .secret_hash = hash_secret("4711").value()};
  a.caller_numbers.push_back(number("13800138000"));
  ASSERT_TRUE(store->accounts().create(a));
  const auto with_pin = authorize("pin", "861234567", "p1", "4711");
  EXPECT_TRUE(with_pin.allowed) << with_pin.message;
  ASSERT_TRUE(billing->release(with_pin.reservation));  // it held the whole balance
  EXPECT_EQ(authorize("pin", "861234567", "p2", "0000").reason, DenialReason::bad_secret);
  // No PIN, but the call comes from the registered number: allowed.
  EXPECT_TRUE(authorize("pin", "861234567", "p3").allowed);
  auto stranger = billing->authorize({AccountId{"pin"}, number("13900000000"), number("861234567"), "p4", {}});
  EXPECT_EQ(stranger->reason, DenialReason::bad_secret);
}

TEST_P(BillingTest, SecretsAreHashedWithScryptAndCheckedExactly) {
  const auto hash = hash_secret("correct horse").value();
  EXPECT_EQ(hash.rfind("scrypt$14$8$1$", 0), 0u);
  EXPECT_EQ(hash.find("correct"), std::string::npos);
  EXPECT_NE(hash, hash_secret("correct horse").value());  // salted
  EXPECT_TRUE(verify_secret("correct horse", hash));
  EXPECT_FALSE(verify_secret("correct hors", hash));
  EXPECT_FALSE(verify_secret("correct horse", "scrypt$14$8$1$zz$00"));
  EXPECT_FALSE(hash_secret(""));
}

TEST_P(BillingTest, BillingLegATooChargesBothRates) {
  auto both = open_billing({.bill_leg_a = true});
  import("default", "86;China;0.10\n86138;China mobile;0.05\n", both.get());
  account("123", "1.50");
  auto a = both->authorize({AccountId{"123"}, number("13800138000"), number("861234567"), "a1", {}}).value();
  ASSERT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(a.max_duration, 10min);  // 1.50 / (0.10 + 0.05)
  EXPECT_EQ(both->settle(a.reservation, 60s).value(), cny_amount("0.15"));
}

TEST_P(BillingTest, ImportIsAllOrNothingAndSwapsTheDeck) {
  import("default", "86;China;0.10\n");
  std::istringstream bad("86;China;0.20\n87;Bad;x\n");
  auto report = billing->import_rates("default", bad, cny);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().field, "line 2");
  // Nothing changed: neither the deck in memory nor the table.
  EXPECT_EQ(billing->rate("default", number("861234567"), {})->price_per_minute, cny_amount("0.10"));
  EXPECT_EQ(count("SELECT COUNT(*) FROM rate"), 1);
  import("default", "86;China;0.20\n8610;Beijing;0.30\n");
  EXPECT_EQ(billing->rate("default", number("861234567"), {})->price_per_minute, cny_amount("0.20"));
  EXPECT_EQ(count("SELECT COUNT(*) FROM rate"), 2);
  // Replacing one tariff leaves another's rates alone.
  import("other", "86;China for others;0.05\n");
  import("default", "86;China;0.20\n8610;Beijing;0.30\n");
  EXPECT_EQ(count("SELECT COUNT(*) FROM rate WHERE tariff = 'default'"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM rate WHERE tariff = 'other'"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM tariff"), 2);
  // Reopening reads the decks back from the database.
  billing.reset();
  billing = open_billing({});
  EXPECT_EQ(billing->rate("default", number("01055556666"), {})->price_per_minute, cny_amount("0.30"));
  EXPECT_EQ(billing->tariffs()->at(0).rates, 2u);
  EXPECT_EQ(billing->rate("other", number("861234567"), {})->price_per_minute, cny_amount("0.05"));
}

TEST_P(BillingTest, SqlMetacharactersInNamesAreJustText) {
  const std::string evil = "x'); DROP TABLE rate; --";
  import("default", "86;\"" + evil + "\";0.10\n");
  EXPECT_EQ(billing->rates("default", "", 0)->at(0).description, evil);
  std::istringstream in("86;x;0.1\n");
  EXPECT_EQ(billing->import_rates("a'b", in, cny).error().field, "tariff");
}

TEST_P(BillingTest, ConcurrentAuthorizationsNeverSpendTheSameMoneyTwice) {
  // The balance covers exactly 10 calls of the longest allowed length (60 s at 1.00/min).
  auto capped = open_billing({.max_call = 60s});
  import("default", "86;China;1.00\n", capped.get());
  account("shared", "10.00");
  std::vector<Authorization> results(1000);
  std::vector<std::thread> threads;
  for (int i = 0; i < 1000; ++i) {
    threads.emplace_back([&, i] {
      results[static_cast<std::size_t>(i)] =
          capped->authorize({AccountId{"shared"}, number("13800138000"), number("861234567"),
                             "c" + std::to_string(i), {}}).value();
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::string> granted;
  for (const auto& r : results) {
    if (r.allowed) {
      EXPECT_EQ(r.max_duration, 60s);
      granted.push_back(r.reservation);
    } else {
      EXPECT_EQ(r.reason, DenialReason::insufficient_balance);
    }
  }
  ASSERT_EQ(granted.size(), 10u);
  EXPECT_EQ(reserved("shared"), cny_amount("10.00"));  // never more than available
  // End them concurrently: half settled with various lengths, half released.
  threads.clear();
  for (std::size_t i = 0; i < granted.size(); ++i) {
    threads.emplace_back([&, i] {
      if (i % 2 == 0) {
        ASSERT_TRUE(capped->settle(granted[i], std::chrono::seconds(10 * static_cast<long>(i) + 1)));
      } else {
        ASSERT_TRUE(capped->release(granted[i]));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(reserved("shared").is_zero());
  const Money after = balance("shared");
  EXPECT_FALSE(after.is_negative());
  // The ledger sums to the balance.
  Money sum = Money::zero(cny);
  for (const auto& e : store->ledger().entries("shared").value()) sum += e.amount;
  EXPECT_EQ(sum, after);
  // Settled: 1, 21, 41, 61 (capped at 60), 81 (capped) seconds -> 1+1+1+1+1 minutes.
  EXPECT_EQ(after, cny_amount("5.00"));
  EXPECT_EQ(count("SELECT COUNT(*) FROM reservation WHERE status = 'open'"), 0);
}

// Several nodes, each with its own billing on the one database, authorize on one account
// at once and settle each other's calls (a node that took over another's): the account
// is never promised more than it has, each call is charged once, and the ledger adds up.
TEST_P(BillingTest, ThreeNodesOnOneAccountNeverSpendMoreThanItHasAndSettleEachOthersCalls) {
  std::vector<std::unique_ptr<SqliteBilling>> nodes;
  for (int n = 0; n < 3; ++n) nodes.push_back(open_billing({.max_call = 60s}));
  import("default", "86;China;1.00\n", nodes[0].get());
  for (auto& node : nodes) {
    std::istringstream deck("86;China;1.00\n");  // each node's deck in memory (its import reloads it)
    ASSERT_TRUE(node->import_rates("default", deck, cny));
  }
  account("shared", "10.00");  // 10 calls of 60 s at 1.00/min
  std::vector<Authorization> results(300);
  std::vector<std::thread> threads;
  for (int t = 0; t < 30; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 300; i += 30) {
        auto& node = *nodes[static_cast<std::size_t>(i) % nodes.size()];
        auto a = node.authorize({AccountId{"shared"}, number("13800138000"), number("861234567"),
                                 "n" + std::to_string(i), {}});
        ASSERT_TRUE(a) << a.error().describe();
        results[static_cast<std::size_t>(i)] = *a;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::size_t> granted;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i].allowed) {
      granted.push_back(i);
    } else {
      EXPECT_EQ(results[i].reason, DenialReason::insufficient_balance) << results[i].message;
    }
  }
  ASSERT_EQ(granted.size(), 10u);
  EXPECT_EQ(reserved("shared"), cny_amount("10.00"));
  // Each call is settled by the next node (not the one that authorized it), twice at once:
  // once is charged.
  threads.clear();
  std::atomic<int> failed{0};
  for (const std::size_t i : granted) {
    for (int twice = 0; twice < 2; ++twice) {
      threads.emplace_back([&, i] {
        auto& node = *nodes[(i + 1) % nodes.size()];
        if (!node.settle(results[i].reservation, 61s)) ++failed;
      });
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_TRUE(reserved("shared").is_zero());
  EXPECT_EQ(balance("shared"), cny_amount("0.00")) << "10 calls of 60 s (61 s capped at the reserved minute)";
  Money sum = Money::zero(cny);
  for (const auto& e : store->ledger().entries("shared").value()) sum += e.amount;
  EXPECT_EQ(sum, balance("shared"));
  EXPECT_EQ(count("SELECT COUNT(*) FROM ledger WHERE kind = 'call_charge'"), 10);
}

TEST_P(BillingTest, CampaignPoliciesAreCheckedPerCallerNumber) {
  ASSERT_TRUE(billing->put_campaign({.id = "free", .limit = 300s, .uses_per_day = 2}));
  ASSERT_TRUE(billing->put_campaign({.id = "once", .limit = 120s, .once_ever = true}));
  ASSERT_TRUE(billing->put_campaign({.id = "gap", .limit = 60s, .min_hours_between = 24}));
  ASSERT_TRUE(billing->put_campaign({.id = "budget", .limit = 300s, .daily_budget = 400s}));
  auto campaign = [&](const std::string& id, std::string_view caller, const std::string& call) {
    return billing->authorize({CampaignId{id}, number(caller), number("01055556666"), call, {}}).value();
  };
  auto first = campaign("free", "13800138000", "f1");
  ASSERT_TRUE(first.allowed) << first.message;
  EXPECT_EQ(first.max_duration, 300s);
  ASSERT_TRUE(billing->settle(first.reservation, 100s));
  // An attempt that never connected does not count as a use.
  ASSERT_TRUE(billing->release(campaign("free", "13800138000", "f2").reservation));
  ASSERT_TRUE(campaign("free", "13800138000", "f3").allowed);  // second use today
  EXPECT_EQ(campaign("free", "13800138000", "f4").reason, DenialReason::campaign_limit);
  EXPECT_TRUE(campaign("free", "13900000000", "f5").allowed);  // another number

  ASSERT_TRUE(billing->settle(campaign("once", "13800138000", "o1").reservation, 30s));
  EXPECT_EQ(campaign("once", "13800138000", "o2").reason, DenialReason::campaign_limit);

  ASSERT_TRUE(campaign("gap", "13800138000", "g1").allowed);
  auto again = campaign("gap", "13800138000", "g2");
  EXPECT_EQ(again.reason, DenialReason::campaign_limit);
  EXPECT_NE(again.message.find("24 h"), std::string::npos);

  EXPECT_EQ(campaign("budget", "13800000001", "b1").max_duration, 300s);
  EXPECT_EQ(campaign("budget", "13800000002", "b2").max_duration, 100s);  // what is left of 400
  EXPECT_EQ(campaign("budget", "13800000003", "b3").reason, DenialReason::campaign_limit);
  EXPECT_EQ(billing->authorize({CampaignId{"nope"}, number("13800138000"), number("01055556666"), "n", {}})->reason,
            DenialReason::campaign_limit);
}

// --- toll-fraud controls (issue #10, item 4) ------------------------------------------------

TEST_P(BillingTest, CampaignCallsConsultTheDeckAndTheDenyLists) {
  // The free page's campaign dialled a BLOCKED range and premium ranges: now the deck and
  // the default deny list (881, 882, 883, 979, 1900, 1976) apply to campaigns too.
  import("default", "0;No such number;BLOCKED\n86;China;0.10\n1;NANP;0.05\n");
  ASSERT_TRUE(billing->put_campaign({.id = "free", .limit = 300s}));
  auto campaign = [&](std::string_view callee, const std::string& call) {
    return billing->authorize({CampaignId{"free"}, number("13800138000"), PhoneNumber::from_e164(callee).value(), call, {}})
        .value();
  };
  const auto blocked = campaign("0123", "t1");
  EXPECT_EQ(blocked.reason, DenialReason::destination_blocked);
  EXPECT_EQ(blocked.field, "callee");
  EXPECT_EQ(blocked.rule, "BLOCKED 0 in tariff default");
  const auto satellite = campaign("8821234567", "t2");
  EXPECT_EQ(satellite.reason, DenialReason::destination_blocked);
  EXPECT_EQ(satellite.rule, "deny_prefix +882 (default)");
  EXPECT_EQ(campaign("19005550100", "t3").rule, "deny_prefix +1900 (default)");
  // A range the deck does not price is not given away either.
  const auto unpriced = campaign("442079460018", "t4");
  EXPECT_EQ(unpriced.reason, DenialReason::no_rate);
  EXPECT_EQ(unpriced.field, "callee");
  const auto fine = campaign("8613900139000", "t5");
  ASSERT_TRUE(fine.allowed) << fine.message;
  ASSERT_TRUE(billing->release(fine.reservation));
  // A campaign with a deck of its own is checked against that one.
  import("narrow", "8610;Beijing;0.05\n");
  ASSERT_TRUE(billing->put_campaign({.id = "free", .limit = 300s, .tariff = "narrow"}));
  EXPECT_EQ(campaign("8613900139000", "t6").rule, "no rate in tariff narrow");
  EXPECT_TRUE(campaign("861055556666", "t7").allowed);
}

TEST_P(BillingTest, PayerPoliciesAllowAndDenyPrefixes) {
  import("default", "86;China;0.10\n44;UK;0.20\n");
  account("123", "50.00");
  ASSERT_TRUE(billing->put_policy({.payer = AccountId{"123"}, .allow_prefixes = {"86", "44"}, .deny_prefixes = {"8610"}}));
  const auto beijing = authorize("123", "010 5555 6666", "p1");
  EXPECT_EQ(beijing.reason, DenialReason::destination_blocked);
  EXPECT_EQ(beijing.rule, "deny_prefix +8610");
  EXPECT_EQ(beijing.field, "callee");
  EXPECT_TRUE(authorize("123", "+44 20 7946 0018", "p2").allowed);
  ASSERT_TRUE(billing->put_policy({.payer = AccountId{"123"}, .allow_prefixes = {"44"}}));
  const auto china = authorize("123", "861234567", "p3");
  EXPECT_EQ(china.reason, DenialReason::destination_blocked);
  EXPECT_EQ(china.rule, "allow_prefixes +44");
  // Read back as written; bad prefixes are refused naming the field.
  EXPECT_EQ(billing->policy(AccountId{"123"})->allow_prefixes, std::vector<std::string>{"44"});
  EXPECT_EQ(billing->put_policy({.payer = AccountId{"123"}, .deny_prefixes = {"+882"}}).error().field, "deny_prefixes");
  EXPECT_EQ(billing->put_policy({.payer = AccountId{"123"}, .max_concurrent = -1}).error().field, "max_concurrent");
}

TEST_P(BillingTest, ConcurrentCallsAreLimitedPerAccountAndPerCampaign) {
  import("default", "86;China;0.10\n");
  account("123", "50.00");
  ASSERT_TRUE(billing->put_campaign({.id = "free", .limit = 60s}));
  ASSERT_TRUE(billing->put_policy({.payer = AccountId{"123"}, .max_concurrent = 2}));
  ASSERT_TRUE(billing->put_policy({.payer = CampaignId{"free"}, .max_concurrent = 1}));
  const auto first = authorize("123", "861234567", "c1");
  ASSERT_TRUE(authorize("123", "861234567", "c2").allowed);
  const auto third = authorize("123", "861234567", "c3");
  EXPECT_EQ(third.reason, DenialReason::too_many_calls);
  EXPECT_EQ(third.rule, "max_concurrent 2");
  ASSERT_TRUE(billing->settle(first.reservation, 10s));
  EXPECT_TRUE(authorize("123", "861234567", "c4").allowed);  // one ended: room again

  auto campaign = [&](std::string_view caller, const std::string& call) {
    return billing->authorize({CampaignId{"free"}, number(caller), number("861234567"), call, {}}).value();
  };
  ASSERT_TRUE(campaign("13800000001", "f1").allowed);
  EXPECT_EQ(campaign("13800000002", "f2").reason, DenialReason::too_many_calls);
}

TEST_P(BillingTest, CostPerCallAndSpendPerDayCutOrRefuseTheCall) {
  import("default", "86;China;0.60\n");  // 0.01 a second, 60/60
  account("123", "100.00");
  ASSERT_TRUE(billing->put_policy({.payer = AccountId{"123"}, .max_call_cost = cny_amount("1.20"),
                                   .daily_spend = cny_amount("3.00")}));
  const auto first = authorize("123", "861234567", "s1");
  ASSERT_TRUE(first.allowed) << first.message;
  EXPECT_EQ(first.max_duration, 120s);  // 1.20 at 0.60/min
  const auto second = authorize("123", "861234567", "s2");
  EXPECT_EQ(second.max_duration, 120s);
  const auto third = authorize("123", "861234567", "s3");
  EXPECT_EQ(third.max_duration, 60s);  // 3.00 - 2 x 1.20 held: one minute left today
  const auto fourth = authorize("123", "861234567", "s4");
  EXPECT_EQ(fourth.reason, DenialReason::spend_limit);
  EXPECT_EQ(fourth.rule, "daily_spend 3.00");
  // What was charged counts, not what was held: a short call gives back the rest.
  ASSERT_TRUE(billing->settle(first.reservation, 30s));  // 0.60 charged
  EXPECT_EQ(authorize("123", "861234567", "s5").max_duration, 60s);
  // A call whose first increment costs more than the cap is refused.
  ASSERT_TRUE(billing->put_policy({.payer = AccountId{"123"}, .max_call_cost = cny_amount("0.50")}));
  const auto dear = authorize("123", "861234567", "s6");
  EXPECT_EQ(dear.reason, DenialReason::spend_limit);
  EXPECT_EQ(dear.rule, "max_call_cost 0.50");
}

// --- reservations that fit the call (issue #10, item 6) ------------------------------------

TEST_P(BillingTest, AReservationHoldsNoMoreThanTheCallsLimit) {
  // A call with a limit of 60 s held the account's whole 1.00 (1,000 s) and blocked the rest.
  import("default", "86;China;0.06;1/1\n");  // 0.001 a second
  account("123", "1.00");
  auto a = billing->authorize({AccountId{"123"}, number("13800138000"), number("861234567"), "l1", {}, 60s}).value();
  ASSERT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(a.max_duration, 60s);
  EXPECT_EQ(reserved("123"), cny_amount("0.06"));
  auto b = billing->authorize({AccountId{"123"}, number("13800138000"), number("861234567"), "l2", {}, 60s}).value();
  EXPECT_TRUE(b.allowed) << b.message;  // the rest of the money is still there
}

TEST_P(BillingTest, SlicesAreExtendedUntilTheMoneyRunsOut) {
  auto sliced = open_billing({.debit_interval = 60s});
  import("default", "86;China;0.06;1/1\n", sliced.get());  // 0.001 a second
  account("123", "0.15");  // 150 s
  auto a = sliced->authorize({AccountId{"123"}, number("13800138000"), number("861234567"), "x1", {}}).value();
  ASSERT_TRUE(a.allowed) << a.message;
  EXPECT_EQ(a.max_duration, 150s);
  EXPECT_EQ(a.reserved_for, 60s);
  EXPECT_EQ(reserved("123"), cny_amount("0.06"));
  EXPECT_EQ(sliced->extend(a.reservation, 120s).value(), 120s);
  EXPECT_EQ(reserved("123"), cny_amount("0.12"));
  EXPECT_EQ(sliced->extend(a.reservation, 180s).value(), 150s);  // what is left
  EXPECT_EQ(sliced->extend(a.reservation, 210s).value(), 150s);  // nothing more: the call ends at 150 s
  // Never charged past what was held, however late the call ended.
  EXPECT_EQ(sliced->settle(a.reservation, 170s).value(), cny_amount("0.15"));
  EXPECT_TRUE(balance("123").is_zero());
  EXPECT_TRUE(reserved("123").is_zero());
  EXPECT_EQ(sliced->extend(a.reservation, 240s).error().code, "reservation_ended");
}

TEST_P(BillingTest, AThousandSlicedCallsOnOneAccountNeverSpendMoreThanItHas) {
  auto sliced = open_billing({.debit_interval = 60s});
  import("default", "86;China;0.06;1/1\n", sliced.get());  // 0.001 a second
  account("shared", "10.00");                              // 10,000 s of talk
  // 1,000 callers at once, each wanting up to 600 s, extending a slice at a time.
  std::vector<std::thread> threads;
  std::vector<Money> charged(1000, Money::zero(cny));
  std::vector<std::chrono::seconds> first_slice(1000);
  std::atomic<int> allowed{0};
  for (int i = 0; i < 1000; ++i) {
    threads.emplace_back([&, i] {
      const auto index = static_cast<std::size_t>(i);
      auto a = sliced->authorize({AccountId{"shared"}, number("13800138000"), number("861234567"),
                                  "k" + std::to_string(i), {}, 600s}).value();
      if (!a.allowed) {
        EXPECT_EQ(a.reason, DenialReason::insufficient_balance);
        return;
      }
      ++allowed;
      first_slice[index] = a.reserved_for;
      std::chrono::seconds covered = a.reserved_for;
      const std::chrono::seconds talk{60 + (i % 10) * 60};  // 60 .. 600 s
      while (covered < talk) {
        const auto more = sliced->extend(a.reservation, covered + 60s).value();
        if (more <= covered) break;  // the money ran out: hung up at `covered`
        covered = more;
      }
      // Ended a little late (the hangup's own delay): 2 s past what was covered.
      charged[index] = sliced->settle(a.reservation, std::min(talk, covered) + 2s).value();
    });
  }
  for (auto& t : threads) t.join();
  // 60 s slices of 0.06: far more than one call at once (a whole 600 s hold would let 16).
  EXPECT_GT(allowed.load(), 16);
  for (std::size_t i = 0; i < first_slice.size(); ++i) {
    if (first_slice[i].count() > 0) {
      EXPECT_LE(first_slice[i], 60s);
    }
  }
  Money total = Money::zero(cny);
  for (const auto& c : charged) total += c;
  EXPECT_LE(total, cny_amount("10.00"));
  EXPECT_FALSE(balance("shared").is_negative());
  EXPECT_EQ(balance("shared"), cny_amount("10.00") - total);
  EXPECT_TRUE(reserved("shared").is_zero());
  Money sum = Money::zero(cny);
  for (const auto& e : store->ledger().entries("shared").value()) sum += e.amount;
  EXPECT_EQ(sum, balance("shared"));
}

// --- one number, however it is written (issue #10, item 5) ----------------------------------

TEST_P(BillingTest, CampaignUsesCountTheNumberNotItsSpelling) {
  ASSERT_TRUE(billing->put_campaign({.id = "free", .limit = 60s, .uses_per_day = 1}));
  int allowed = 0;
  int call = 0;
  for (const char* spelling : {"13800138000", "+8613800138000", "008613800138000", "013800138000",
                               "+86 (0) 138 0013 8000"}) {
    auto caller = PhoneNumber::parse(spelling, plan);
    ASSERT_TRUE(caller) << spelling;
    auto a = billing->authorize({CampaignId{"free"}, *caller, number("861234567"), "n" + std::to_string(++call), {}})
                 .value();
    if (a.allowed) {
      ++allowed;
    } else {
      EXPECT_EQ(a.rule, "uses_per_day 1") << spelling;
    }
  }
  EXPECT_EQ(allowed, 1);
}

TEST_P(BillingTest, CallerStatisticsFollowTheCdrs) {
  auto cdr = [](LegRole leg, std::string src, std::string dst, Disposition d, std::int64_t billsec) {
    Cdr c;
    c.leg = leg;
    c.src = std::move(src);
    c.dst = std::move(dst);
    c.disposition = d;
    c.billsec = billsec;
    c.duration = billsec;
    c.calldate = std::chrono::sys_days{std::chrono::November / 26 / 2026};
    return c;
  };
  std::vector<Cdr> answered{cdr(LegRole::a, "8610", "8613800138000", Disposition::answered, 70),
                            cdr(LegRole::b, "8613800138000", "8610", Disposition::answered, 61)};
  std::vector<Cdr> busy{cdr(LegRole::a, "8610", "8613800138000", Disposition::busy, 0)};
  ASSERT_TRUE(store->cdrs().append(answered));
  ASSERT_TRUE(store->cdrs().append(busy));
  auto stats = billing->caller_stats("8613800138000", 0).value();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].attempts, 2);
  EXPECT_EQ(stats[0].answered, 1);
  EXPECT_EQ(stats[0].failures, 1);
  EXPECT_EQ(stats[0].talk_seconds, 61);
  ASSERT_TRUE(stats[0].last_call);
}

// PostgreSQL's own: the database goes away between a call's authorization and its end.
// The settlement fails (nothing moves), and once the database is back the retry (the
// service retries with the same reservation) charges the call once.
TEST(PostgresBilling, ASettlementDuringAnOutageFailsWholeAndItsRetryChargesOnce) {
  test::PostgresDatabase database;
  auto store = store_postgres::PostgresStore::open({.conninfo = database.conninfo()}).value();
  auto billing = billing_postgres::open_billing(database.conninfo(), {.debit_interval = 0s}).value();
  std::istringstream deck("86;China;0.10\n");
  ASSERT_TRUE(billing->import_rates("default", deck, cny));
  ASSERT_TRUE(store->accounts().create({.id = "123", .currency = cny, .balance = cny_amount("5.00")}));
  auto a = billing->authorize({AccountId{"123"}, number("13800138000"), number("861234567"), "cb-1", {}}).value();
  ASSERT_TRUE(a.allowed);
  database.cut();
  auto lost = billing->settle(a.reservation, 61s);
  ASSERT_FALSE(lost);
  auto refused = billing->authorize({AccountId{"123"}, number("13800138000"), number("861234567"), "cb-2", {}});
  ASSERT_FALSE(refused) << "no decision without the database";
  EXPECT_EQ(refused.error().kind, ErrorKind::unavailable);
  database.back();
  auto charged = billing->settle(a.reservation, 61s);
  ASSERT_TRUE(charged) << charged.error().describe();
  EXPECT_EQ(*charged, cny_amount("0.20"));
  EXPECT_EQ(billing->settle(a.reservation, 61s).value(), cny_amount("0.20")) << "settled: the same answer";
  auto account = store->accounts().find("123").value().value();
  EXPECT_EQ(account.balance, cny_amount("4.80"));
  EXPECT_TRUE(account.reserved.is_zero());
  EXPECT_EQ(store->ledger().entries("123").value().size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, BillingTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const ::testing::TestParamInfo<Backend>& param) {
                           return param.param == Backend::sqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace
