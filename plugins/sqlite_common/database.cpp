#include "database.hpp"

#include <callback/timestamp.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <sqlite3.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

namespace callback::sqlite {
namespace fs = std::filesystem;

namespace {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Append only: a released migration never changes; fix forward with a new one.
constexpr Migration migrations[] = {
    {1, "cdr table with Asterisk's columns, plus callback id, leg, cost and cause",
     R"sql(
CREATE TABLE cdr (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  calldate    TEXT    NOT NULL DEFAULT '0000-00-00 00:00:00',
  clid        TEXT    NOT NULL DEFAULT '',
  src         TEXT    NOT NULL DEFAULT '',
  dst         TEXT    NOT NULL DEFAULT '',
  dcontext    TEXT    NOT NULL DEFAULT '',
  channel     TEXT    NOT NULL DEFAULT '',
  dstchannel  TEXT    NOT NULL DEFAULT '',
  lastapp     TEXT    NOT NULL DEFAULT '',
  lastdata    TEXT    NOT NULL DEFAULT '',
  duration    INTEGER NOT NULL DEFAULT 0,
  billsec     INTEGER NOT NULL DEFAULT 0,
  disposition TEXT    NOT NULL DEFAULT '',
  amaflags    INTEGER NOT NULL DEFAULT 0,
  accountcode TEXT    NOT NULL DEFAULT '',
  uniqueid    TEXT    NOT NULL DEFAULT '',
  userfield   TEXT    NOT NULL DEFAULT '',
  callback_id TEXT    NOT NULL DEFAULT '',
  leg         TEXT    NOT NULL DEFAULT 'A' CHECK (leg IN ('A', 'B')),
  cost_micros INTEGER,
  currency    TEXT,
  hangup_cause INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cdr_calldate ON cdr (calldate);
CREATE INDEX cdr_dst ON cdr (dst);
CREATE INDEX cdr_accountcode ON cdr (accountcode);
CREATE INDEX cdr_callback_id ON cdr (callback_id);
)sql"},
    {2, "accounts, their registered numbers, and the ledger",
     R"sql(
CREATE TABLE account (
  id                  TEXT    PRIMARY KEY,
  name                TEXT    NOT NULL DEFAULT '',
  currency            TEXT    NOT NULL,
  minor_exponent      INTEGER NOT NULL,
  balance_micros      INTEGER NOT NULL DEFAULT 0,
  credit_limit_micros INTEGER NOT NULL DEFAULT 0 CHECK (credit_limit_micros >= 0),
  status              TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  tariff              TEXT    NOT NULL DEFAULT '',
  secret_hash         TEXT    NOT NULL DEFAULT '',
  created_at          TEXT    NOT NULL
);
CREATE TABLE account_number (
  account_id TEXT NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  number     TEXT NOT NULL,
  PRIMARY KEY (account_id, number)
);
CREATE INDEX account_number_number ON account_number (number);
CREATE TABLE ledger (
  id                   INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id           TEXT    NOT NULL REFERENCES account (id),
  amount_micros        INTEGER NOT NULL,
  kind                 TEXT    NOT NULL,
  reference            TEXT    NOT NULL DEFAULT '',
  note                 TEXT    NOT NULL DEFAULT '',
  at                   TEXT    NOT NULL,
  balance_after_micros INTEGER NOT NULL
);
CREATE INDEX ledger_account ON ledger (account_id, id);
)sql"},
    {3, "billing: tariffs and rates, reservations, campaigns and their uses, caller statistics",
     R"sql(
ALTER TABLE account ADD COLUMN reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0);
CREATE TABLE tariff (
  name           TEXT    PRIMARY KEY,
  currency       TEXT    NOT NULL,
  minor_exponent INTEGER NOT NULL,
  imported_at    TEXT    NOT NULL,
  source         TEXT    NOT NULL DEFAULT '',
  rates          INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE rate (
  tariff               TEXT    NOT NULL REFERENCES tariff (name) ON DELETE CASCADE,
  prefix               TEXT    NOT NULL,
  description          TEXT    NOT NULL DEFAULT '',
  price_micros         INTEGER NOT NULL CHECK (price_micros >= 0),
  initial_increment    INTEGER NOT NULL,
  subsequent_increment INTEGER NOT NULL,
  connection_fee_micros INTEGER NOT NULL DEFAULT 0,
  minimum_duration     INTEGER NOT NULL DEFAULT 0,
  effective_from       TEXT    NOT NULL DEFAULT '',
  weekdays             INTEGER NOT NULL DEFAULT 127,
  start_minute         INTEGER NOT NULL DEFAULT 0,
  end_minute           INTEGER NOT NULL DEFAULT 1440,
  blocked              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rate_prefix ON rate (tariff, prefix);
CREATE TABLE reservation (
  id            TEXT    PRIMARY KEY,
  account_id    TEXT,
  campaign      TEXT,
  call_id       TEXT    NOT NULL,
  amount_micros INTEGER NOT NULL DEFAULT 0,
  max_seconds   INTEGER NOT NULL,
  rate          TEXT    NOT NULL,
  status        TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'settled', 'released')),
  created_at    TEXT    NOT NULL,
  ended_at      TEXT,
  billsec       INTEGER,
  cost_micros   INTEGER
);
CREATE INDEX reservation_open ON reservation (account_id) WHERE status = 'open';
CREATE TABLE campaign (
  id                   TEXT    PRIMARY KEY,
  limit_seconds        INTEGER NOT NULL DEFAULT 300,
  uses_per_day         INTEGER NOT NULL DEFAULT 0,
  once_ever            INTEGER NOT NULL DEFAULT 0,
  min_hours_between    INTEGER NOT NULL DEFAULT 0,
  daily_budget_seconds INTEGER NOT NULL DEFAULT 0,
  status               TEXT    NOT NULL DEFAULT 'active'
);
CREATE TABLE campaign_use (
  reservation  TEXT    PRIMARY KEY,
  campaign     TEXT    NOT NULL,
  caller       TEXT    NOT NULL,
  at           TEXT    NOT NULL,
  day          TEXT    NOT NULL,
  seconds      INTEGER NOT NULL,
  status       TEXT    NOT NULL DEFAULT 'open'
);
CREATE INDEX campaign_use_caller ON campaign_use (campaign, caller, at);
CREATE INDEX campaign_use_day ON campaign_use (campaign, day);
-- Per-caller statistics (the seed's monitor program), kept by the CDR inserts themselves.
CREATE TABLE caller_stats (
  number       TEXT    PRIMARY KEY,
  attempts     INTEGER NOT NULL DEFAULT 0,
  answered     INTEGER NOT NULL DEFAULT 0,
  failures     INTEGER NOT NULL DEFAULT 0,
  talk_seconds INTEGER NOT NULL DEFAULT 0,
  first_call   TEXT,
  last_call    TEXT
);
CREATE TRIGGER cdr_caller_attempt AFTER INSERT ON cdr WHEN NEW.leg = 'A' BEGIN
  INSERT INTO caller_stats (number, attempts, answered, failures, first_call, last_call)
  VALUES (NEW.dst, 1, NEW.disposition = 'ANSWERED', NEW.disposition <> 'ANSWERED', NEW.calldate, NEW.calldate)
  ON CONFLICT (number) DO UPDATE SET
    attempts = attempts + 1,
    answered = answered + (NEW.disposition = 'ANSWERED'),
    failures = failures + (NEW.disposition <> 'ANSWERED'),
    last_call = max(last_call, NEW.calldate);
END;
CREATE TRIGGER cdr_caller_talk AFTER INSERT ON cdr WHEN NEW.leg = 'B' AND NEW.billsec > 0 BEGIN
  UPDATE caller_stats SET talk_seconds = talk_seconds + NEW.billsec WHERE number = NEW.src;
END;
)sql"},
    {4, "callbackd API keys", R"sql(
CREATE TABLE api_key (
  id TEXT PRIMARY KEY,              -- the public part of the key: cbk_<id>_<secret>
  name TEXT NOT NULL,
  key_hash TEXT NOT NULL,           -- SHA-256 of the whole key, hex (keys are 256-bit random)
  webhook_secret TEXT NOT NULL,     -- signs this key's status webhooks (HMAC-SHA256)
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
)sql"},
    {5, "account language: what its callers hear announcements in", R"sql(
ALTER TABLE account ADD COLUMN language TEXT NOT NULL DEFAULT '';
)sql"},
    {6, "API key scopes: callbacks (its own), operator, admin; keys made before are admin", R"sql(
ALTER TABLE api_key ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin' CHECK (scope IN ('callbacks', 'operator', 'admin'));
)sql"},
    {7, "toll-fraud controls: payers' policies, campaigns' decks, reservations by payer and day", R"sql(
ALTER TABLE campaign ADD COLUMN tariff TEXT NOT NULL DEFAULT '';
CREATE TABLE payer_policy (
  payer_kind           TEXT    NOT NULL CHECK (payer_kind IN ('account', 'campaign')),
  payer_id             TEXT    NOT NULL,
  allow_prefixes       TEXT    NOT NULL DEFAULT '',  -- E.164 digit prefixes, comma-separated
  deny_prefixes        TEXT    NOT NULL DEFAULT '',
  max_call_cost_micros INTEGER,                      -- NULL: no limit
  daily_spend_micros   INTEGER,
  max_concurrent       INTEGER NOT NULL DEFAULT 0 CHECK (max_concurrent >= 0),
  PRIMARY KEY (payer_kind, payer_id)
);
-- The call's whole limit; max_seconds is what the reservation covers now (one debit
-- interval at a time for accounts). 0: max_seconds is the whole limit (older rows).
ALTER TABLE reservation ADD COLUMN limit_seconds INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reservation_campaign_open ON reservation (campaign) WHERE status = 'open';
CREATE INDEX reservation_account_created ON reservation (account_id, created_at);
CREATE INDEX reservation_campaign_created ON reservation (campaign, created_at);
)sql"},
    {8, "the journal of callbacks, so a restart finds what was in flight", R"sql(
CREATE TABLE callback_journal (
  id              TEXT PRIMARY KEY,
  idempotency_key TEXT,              -- NULL when none
  state           TEXT NOT NULL,
  final           INTEGER NOT NULL DEFAULT 0,
  server          TEXT NOT NULL DEFAULT '',
  reservation     TEXT NOT NULL DEFAULT '',
  call            TEXT NOT NULL,     -- the service's JSON of the callback
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL
);
CREATE INDEX callback_journal_key ON callback_journal (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX callback_journal_open ON callback_journal (created_at) WHERE final = 0;
CREATE INDEX callback_journal_updated ON callback_journal (updated_at);
)sql"},
    {9, "accounts' registered e-mail addresses (the e-mail trigger), each one account's", R"sql(
CREATE TABLE account_email (
  email      TEXT PRIMARY KEY,  -- normalize_email's form
  account_id TEXT NOT NULL REFERENCES account (id) ON DELETE CASCADE
);
CREATE INDEX account_email_account ON account_email (account_id);
)sql"},
    {10, "caller statistics are counted by the store's CDR appends, as on every backend, not by triggers", R"sql(
DROP TRIGGER IF EXISTS cdr_caller_attempt;
DROP TRIGGER IF EXISTS cdr_caller_talk;
)sql"},
    {11, "the ledger found by reference (a posting's retry is looked up, not scanned for)", R"sql(
CREATE INDEX IF NOT EXISTS ledger_reference ON ledger (account_id, kind, reference) WHERE reference <> '';
)sql"},
};
// Versions ascend; the last is the latest (numbers are handed out per branch, so one may be missing).
static_assert(migrations[std::size(migrations) - 1].version == latest_schema_version);

// Applies what is missing, under an exclusive lock: two processes (or the store and the
// billing plugin) opening a new file at once must not both run a migration.
Result<int> migrate(SQLite::Database& db, const fs::path& path) {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)");
    int version = db.execAndGet("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").getInt();
    if (version > latest_schema_version) {
      db.exec("ROLLBACK");
      return Error{"store_too_new",
                   "database " + path.string() + " has schema version " + std::to_string(version) +
                       ", newer than this callback knows (" + std::to_string(latest_schema_version) +
                       "); upgrade callback",
                   "path"};
    }
    for (const auto& migration : migrations) {
      if (migration.version <= version) continue;
      db.exec(migration.sql);
      SQLite::Statement record(db, "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)");
      record.bind(1, migration.version);
      record.bind(2, migration.description);
      record.bind(3, format_time(std::chrono::system_clock::now()));
      record.exec();
      version = migration.version;
    }
    db.exec("COMMIT");
    return version;
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
}

}  // namespace

bool use_page_cache_pool() {
  // Once per copy of this library (each plugin links its own); SQLite itself refuses
  // (SQLITE_MISUSE) once the first connection has initialized it, so the first copy
  // to open a database sets the pool up for the whole process.
  static std::once_flag once;
  static bool configured = false;
  std::call_once(once, [] {
    int header = 0;
    if (sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &header) != SQLITE_OK) return;
    const std::size_t slot = page_cache_pool_page_size + static_cast<std::size_t>(header);
    const std::size_t bytes = slot * page_cache_pool_pages;
    // MAP_POPULATE: every page of the pool is resident from the start.
    void* pool = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (pool == MAP_FAILED) return;
    if (sqlite3_config(SQLITE_CONFIG_PAGECACHE, pool, static_cast<int>(slot), page_cache_pool_pages) != SQLITE_OK) {
      munmap(pool, bytes);  // SQLite already initialized by another copy: it has its pool (or none)
      return;
    }
    configured = true;  // the pool lives as long as the process
  });
  return configured;
}

fs::path default_database_path() {
  if (const char* dir = std::getenv("CALLBACK_DATA_DIR"); dir != nullptr && *dir != '\0') {
    return fs::path(dir) / "callback.db";
  }
  if (geteuid() == 0) return "/var/lib/callback/callback.db";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return fs::path(xdg) / "callback" / "callback.db";
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : ".") / ".local" / "share" / "callback" / "callback.db";
}

Result<Database> open_database(const DatabaseOptions& options) {
  const fs::path path = options.path.empty() ? default_database_path() : options.path;
  std::string synchronous;
  if (options.synchronous == "full") {
    synchronous = "FULL";
  } else if (options.synchronous == "normal") {
    synchronous = "NORMAL";
  } else {
    return Error{"config.value", "must be \"full\" or \"normal\", got \"" + options.synchronous + "\"", "synchronous"};
  }
  try {
    if (path.has_parent_path()) fs::create_directories(path.parent_path());
    use_page_cache_pool();
    auto db = std::make_unique<SQLite::Database>(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE |
                                                                     SQLite::OPEN_NOMUTEX);  // each user serializes its own access
    db->setBusyTimeout(options.busy_timeout_ms);
    db->exec("PRAGMA journal_mode=WAL");
    db->exec("PRAGMA synchronous=" + synchronous);
    db->exec("PRAGMA foreign_keys=ON");
    // No memory map: pages are read into SQLite's own page cache (bounded by cache_size).
    // A map's touched pages count in the process's RSS and grow with the file (the CDRs
    // alone add about 290 MB an hour at 100 callbacks/s), which made callbackd's memory
    // look unbounded in the soak (benchmarks/README.md); reading through the kernel's page
    // cache costs little here (the same README, "Soak").
    db->exec("PRAGMA mmap_size=0");
    auto version = migrate(*db, path);
    if (!version) return version.error();
    return Database{std::move(db), path, *version};
  } catch (const std::exception& e) {
    return Error{"store_open_failed", "cannot open database " + path.string() + ": " + e.what(), "path"};
  }
}

std::string format_time(Timestamp t) { return format_timestamp(t); }

Timestamp parse_time(const std::string& text) { return parse_timestamp(text).value_or(Timestamp{}); }

}  // namespace callback::sqlite
