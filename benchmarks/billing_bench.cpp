// Billing figures:
//  - longest-prefix lookup over a 1,000,000-prefix deck with random E.164 numbers: our
//    trie, and in the same run the SQL that A2Billing and MagnusBilling use
//    (WHERE dialprefix IN (every prefix of the number) ORDER BY LENGTH(dialprefix) DESC
//    LIMIT 1, on an indexed SQLite table);
//  - durable authorize + settle (SQLite WAL, synchronous=FULL) with many callers at once.
// Run: build-release/bin/billing_bench
#include <callback/rate_deck.hpp>
#include "sqlite_billing.hpp"
#include "sqlite_store.hpp"
#include "postgres_billing.hpp"
#include "postgres_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <random>
#include <unordered_set>

using namespace callback;
using namespace callback::billing_sqlite;

namespace {

constexpr std::size_t deck_size = 1'000'000;
const char* countries[] = {"1",   "7",   "20",  "27",  "30",  "31",  "33",  "34",  "36",  "39",  "40",  "41",  "44",
                           "45",  "46",  "47",  "48",  "49",  "51",  "52",  "54",  "55",  "56",  "57",  "58",  "60",
                           "61",  "62",  "63",  "64",  "65",  "66",  "81",  "82",  "84",  "86",  "90",  "91",  "92",
                           "93",  "94",  "95",  "98",  "212", "213", "216", "234", "254", "255", "256", "351", "352",
                           "353", "354", "358", "359", "370", "371", "372", "380", "381", "385", "386", "420", "421",
                           "852", "853", "855", "856", "880", "886", "960", "961", "962", "963", "964", "965", "966",
                           "971", "972", "973", "974", "975", "976", "977", "992", "993", "994", "995", "996", "998"};

struct Data {
  std::vector<RateLine> lines;
  std::vector<std::string> numbers;  // random E.164 digits
  std::shared_ptr<const RateDeck> deck;
  std::unique_ptr<SQLite::Database> sql;
};

const Data& data() {
  static const Data d = [] {
    Data out;
    std::mt19937_64 rng(20261126);
    const auto cny = Currency::of("CNY").value();
    std::unordered_set<std::string> seen;
    auto digits = [&](std::size_t n) {
      std::string s;
      for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + rng() % 10));
      return s;
    };
    while (out.lines.size() < deck_size) {
      const std::string cc = countries[rng() % std::size(countries)];
      std::string prefix = cc + digits(2 + rng() % (10 - cc.size()));
      if (!seen.insert(prefix).second) continue;
      RateLine line;
      line.rate.prefix = std::move(prefix);
      line.rate.price_per_minute = Money::from_micros(static_cast<std::int64_t>(1000 + rng() % 500000), cny);
      line.rate.connection_fee = Money::zero(cny);
      out.lines.push_back(std::move(line));
    }
    for (int i = 0; i < 1'000'000; ++i) {
      const std::string cc = countries[rng() % std::size(countries)];
      out.numbers.push_back(cc + digits(11 - cc.size() + rng() % 2));
    }
    out.deck = RateDeck::build(out.lines);
    // The SQL way, on an indexed table (in memory: the fastest SQLite can be).
    out.sql = std::make_unique<SQLite::Database>(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    out.sql->exec("CREATE TABLE cc_ratecard (dialprefix TEXT NOT NULL, rateinitial INTEGER NOT NULL)");
    out.sql->exec("CREATE INDEX ind_dialprefix ON cc_ratecard (dialprefix)");
    SQLite::Transaction transaction(*out.sql);
    SQLite::Statement insert(*out.sql, "INSERT INTO cc_ratecard VALUES (?, ?)");
    for (const auto& l : out.lines) {
      insert.bind(1, l.rate.prefix);
      insert.bind(2, l.rate.price_per_minute.micros());
      insert.exec();
      insert.reset();
    }
    transaction.commit();
    return out;
  }();
  return d;
}

void BM_LongestPrefixTrie(benchmark::State& state) {
  const auto& d = data();
  const Timestamp now = std::chrono::system_clock::now();
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    const RateLine* line = d.deck->lookup(d.numbers[i], now);
    found += line != nullptr;
    benchmark::DoNotOptimize(line);
    if (++i == d.numbers.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["found%"] = 100.0 * static_cast<double>(found) / static_cast<double>(state.iterations());
  state.counters["deck MB"] = static_cast<double>(d.deck->memory_bytes()) / 1e6;
}
BENCHMARK(BM_LongestPrefixTrie)->MinTime(2.0);

// The same lookups 1,024 at a time (lookup_batch: walks interleaved, fetches overlap).
void BM_LongestPrefixTrieBatch(benchmark::State& state) {
  const auto& d = data();
  const Timestamp now = std::chrono::system_clock::now();
  constexpr std::size_t batch = 1024;
  std::vector<std::string_view> views(d.numbers.begin(), d.numbers.end());
  std::vector<const RateLine*> out(batch);
  std::size_t i = 0;
  for (auto _ : state) {
    d.deck->lookup_batch(std::span(views).subspan(i, batch), now, out);
    benchmark::DoNotOptimize(out.data());
    i += batch;
    if (i + batch > views.size()) i = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_LongestPrefixTrieBatch)->MinTime(2.0);

void BM_LongestPrefixSqlA2Billing(benchmark::State& state) {
  const auto& d = data();
  // One statement for each number length, as the PHP builds its IN list.
  std::vector<std::unique_ptr<SQLite::Statement>> by_length(16);
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    const std::string& number = d.numbers[i];
    auto& statement = by_length[number.size()];
    if (!statement) {
      std::string sql = "SELECT dialprefix, rateinitial FROM cc_ratecard WHERE dialprefix IN (";
      for (std::size_t k = 1; k <= number.size(); ++k) sql += k == 1 ? "?" : ",?";
      sql += ") ORDER BY LENGTH(dialprefix) DESC LIMIT 1";
      statement = std::make_unique<SQLite::Statement>(*d.sql, sql);
    }
    for (std::size_t k = 1; k <= number.size(); ++k) statement->bind(static_cast<int>(k), number.substr(0, k));
    found += statement->executeStep();
    statement->reset();
    if (++i == d.numbers.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["found%"] = 100.0 * static_cast<double>(found) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_LongestPrefixSqlA2Billing)->MinTime(2.0);

// Durable authorize + settle: each call is two transactions' worth of work, committed
// with fsync (synchronous=FULL); many callers at once share commits (group commit).
// CALLBACK_BENCH_SYNC=normal measures without the fsync, to see what the disk costs.
std::string sync_mode() {
  const char* mode = std::getenv("CALLBACK_BENCH_SYNC");
  return mode != nullptr ? mode : "full";
}

// CALLBACK_BENCH_PG: a libpq conninfo of an empty database; then billing and its accounts
// are on PostgreSQL (benchmarks/pg_billing.sh starts one and runs both backends).
const char* postgres_conninfo() {
  const char* conninfo = std::getenv("CALLBACK_BENCH_PG");
  return conninfo != nullptr && *conninfo != '\0' ? conninfo : nullptr;
}

struct BillingFixture {
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<SqliteBilling> billing;
  BillingFixture() {
    dir = std::filesystem::temp_directory_path() / ("callback-billing-bench-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    if (const char* conninfo = postgres_conninfo()) {
      store = store_postgres::PostgresStore::open({.conninfo = conninfo}).value();
      const char* writers = std::getenv("CALLBACK_BENCH_PG_WRITERS");  // the plugin's "writers"
      billing = billing_postgres::open_billing(conninfo, {}, writers != nullptr ? std::stoul(writers) : 4).value();
    } else {
      store = store_sqlite::SqliteStore::open({.path = dir / "callback.db"}).value();
      billing = open_billing({.path = dir / "callback.db", .synchronous = sync_mode()}, {}).value();
    }
    const auto cny = Currency::of("CNY").value();
    std::istringstream deck("86;China;0.10\n1;USA;0.02\n");
    (void)billing->import_rates("default", deck, cny).value();
    for (int a = 0; a < 256; ++a) {
      (void)store->accounts().create({.id = "acct" + std::to_string(a), .currency = cny,
                                      .balance = Money::parse("1000000.00", cny).value()});
    }
  }
  ~BillingFixture() { std::filesystem::remove_all(dir); }
};

BillingFixture& fixture() {
  static BillingFixture f;
  return f;
}

void BM_AuthorizeSettleDurable(benchmark::State& state) {
  auto& f = fixture();
  const NumberingPlan plan{};
  const auto caller = PhoneNumber::parse("+8613800138000", plan).value();
  const auto callee = PhoneNumber::parse("+861055556666", plan).value();
  const std::string account = "acct" + std::to_string(state.thread_index() % 256);
  static std::atomic<std::uint64_t> next_call{0};
  for (auto _ : state) {
    const std::string call = "bench-" + std::to_string(next_call.fetch_add(1));
    auto a = f.billing->authorize({AccountId{account}, caller, callee, call, {}});
    if (!a || !a->allowed) {
      static std::string why;
      why = a ? a->message : a.error().describe();
      state.SkipWithError(why.c_str());
      break;
    }
    if (!f.billing->settle(a->reservation, std::chrono::seconds(61))) {
      state.SkipWithError("settle failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuthorizeSettleDurable)->Threads(1)->Threads(16)->Threads(64)->Threads(256)->UseRealTime()->MinTime(3.0);

// The same from one thread with many calls in flight (authorize_async, then
// settle_async when it is durable): what the service does, without a thread per call.
void BM_AuthorizeSettleDurableAsync(benchmark::State& state) {
  auto& f = fixture();
  const NumberingPlan plan{};
  const auto caller = PhoneNumber::parse("+8613800138000", plan).value();
  const auto callee = PhoneNumber::parse("+861055556666", plan).value();
  const std::size_t in_flight = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t calls_per_iteration = 20'000;
  static std::atomic<std::uint64_t> next_call{0};
  std::mutex mutex;
  std::condition_variable finished;
  for (auto _ : state) {
    std::size_t started = 0, done = 0, failed = 0;
    std::function<void()> start_one = [&] {
      const std::string call = "async-" + std::to_string(next_call.fetch_add(1));
      const std::string account = "acct" + std::to_string(started % 256);
      ++started;
      f.billing->authorize_async({AccountId{account}, caller, callee, call, {}}, [&](Result<Authorization> a) {
        if (!a || !a->allowed) {
          std::lock_guard lock(mutex);
          ++failed;
          ++done;
          finished.notify_one();
          return;
        }
        f.billing->settle_async(a->reservation, std::chrono::seconds(61), [&](Result<Money> cost) {
          std::lock_guard lock(mutex);
          failed += cost ? 0 : 1;
          ++done;
          finished.notify_one();
        });
      });
    };
    std::unique_lock lock(mutex);
    while (done < calls_per_iteration) {
      while (started < calls_per_iteration && started - done < in_flight) {
        lock.unlock();
        start_one();
        lock.lock();
      }
      finished.wait(lock, [&] {
        return done == calls_per_iteration || (started < calls_per_iteration && started - done < in_flight);
      });
    }
    if (failed > 0) state.SkipWithError("some calls failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * calls_per_iteration));
}
BENCHMARK(BM_AuthorizeSettleDurableAsync)->Arg(256)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
