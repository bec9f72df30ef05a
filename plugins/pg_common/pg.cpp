#include "pg.hpp"

#include <callback/timestamp.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <charconv>

namespace callback::pg {

namespace {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Append only: a released migration never changes; fix forward with a new one. The same
// tables and columns as the SQLite schema (plugins/sqlite_common), in PostgreSQL's types.
constexpr Migration migrations[] = {
    {1, "CDRs with Asterisk's columns, accounts, the ledger, caller statistics, the callback journal, API keys",
     R"sql(
CREATE TABLE cdr (
  id           bigserial PRIMARY KEY,
  calldate     timestamp(0) NOT NULL,
  clid         text    NOT NULL DEFAULT '',
  src          text    NOT NULL DEFAULT '',
  dst          text    NOT NULL DEFAULT '',
  dcontext     text    NOT NULL DEFAULT '',
  channel      text    NOT NULL DEFAULT '',
  dstchannel   text    NOT NULL DEFAULT '',
  lastapp      text    NOT NULL DEFAULT '',
  lastdata     text    NOT NULL DEFAULT '',
  duration     bigint  NOT NULL DEFAULT 0,
  billsec      bigint  NOT NULL DEFAULT 0 CHECK (billsec >= 0 AND billsec <= duration),
  disposition  text    NOT NULL DEFAULT '',
  amaflags     integer NOT NULL DEFAULT 0,
  accountcode  text    NOT NULL DEFAULT '',
  uniqueid     text    NOT NULL DEFAULT '',
  userfield    text    NOT NULL DEFAULT '',
  callback_id  text    NOT NULL DEFAULT '',
  leg          text    NOT NULL DEFAULT 'A' CHECK (leg IN ('A', 'B')),
  cost_micros  bigint,
  currency     text,
  hangup_cause integer NOT NULL DEFAULT 0
);
CREATE INDEX cdr_calldate ON cdr (calldate);
CREATE INDEX cdr_dst ON cdr (dst);
CREATE INDEX cdr_accountcode ON cdr (accountcode);
CREATE INDEX cdr_callback_id ON cdr (callback_id);

CREATE TABLE account (
  id                  text    PRIMARY KEY,
  name                text    NOT NULL DEFAULT '',
  currency            text    NOT NULL,
  minor_exponent      integer NOT NULL,
  balance_micros      bigint  NOT NULL DEFAULT 0,
  credit_limit_micros bigint  NOT NULL DEFAULT 0 CHECK (credit_limit_micros >= 0),
  reserved_micros     bigint  NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
  status              text    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  tariff              text    NOT NULL DEFAULT '',
  secret_hash         text    NOT NULL DEFAULT '',
  language            text    NOT NULL DEFAULT '',
  created_at          timestamp(0) NOT NULL
);
CREATE TABLE account_number (
  account_id text NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  number     text NOT NULL,
  PRIMARY KEY (account_id, number)
);
CREATE UNIQUE INDEX account_number_number ON account_number (number);  -- one account each
CREATE TABLE account_email (
  email      text PRIMARY KEY,
  account_id text NOT NULL REFERENCES account (id) ON DELETE CASCADE
);
CREATE INDEX account_email_account ON account_email (account_id);
CREATE TABLE ledger (
  id                   bigserial PRIMARY KEY,
  account_id           text    NOT NULL REFERENCES account (id),
  amount_micros        bigint  NOT NULL,
  kind                 text    NOT NULL,
  reference            text    NOT NULL DEFAULT '',
  note                 text    NOT NULL DEFAULT '',
  at                   timestamp(0) NOT NULL,
  balance_after_micros bigint  NOT NULL
);
CREATE INDEX ledger_account ON ledger (account_id, id);
-- A reference is posted once per account and kind (a retried settle moves nothing).
CREATE UNIQUE INDEX ledger_reference ON ledger (account_id, kind, reference) WHERE reference <> '';

-- Per caller number (the seed's monitor program), kept by the CDR appends.
CREATE TABLE caller_stats (
  number       text   PRIMARY KEY,
  attempts     bigint NOT NULL DEFAULT 0,
  answered     bigint NOT NULL DEFAULT 0,
  failures     bigint NOT NULL DEFAULT 0,
  talk_seconds bigint NOT NULL DEFAULT 0,
  first_call   timestamp(0),
  last_call    timestamp(0)
);

CREATE TABLE callback_journal (
  id              text PRIMARY KEY,
  idempotency_key text,              -- NULL when none
  state           text NOT NULL,
  final           boolean NOT NULL DEFAULT false,
  server          text NOT NULL DEFAULT '',
  reservation     text NOT NULL DEFAULT '',
  call            text NOT NULL,     -- the service's JSON of the callback
  created_at      timestamp(0) NOT NULL,
  updated_at      timestamp(0) NOT NULL
);
CREATE INDEX callback_journal_key ON callback_journal (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX callback_journal_open ON callback_journal (created_at) WHERE NOT final;
CREATE INDEX callback_journal_updated ON callback_journal (updated_at);

CREATE TABLE api_key (
  id             text PRIMARY KEY,   -- the public part of the key: cbk_<id>_<secret>
  name           text NOT NULL,
  scope          text NOT NULL CHECK (scope IN ('callbacks', 'operator', 'admin')),
  key_hash       text NOT NULL,      -- SHA-256 of the whole key, hex
  webhook_secret text NOT NULL,
  created_at     timestamp(0) NOT NULL,
  revoked_at     timestamp(0)
);
)sql"},
    {2, "billing: tariffs and rates, reservations, campaigns and their uses, payers' policies", R"sql(
CREATE TABLE tariff (
  name           text    PRIMARY KEY,
  currency       text    NOT NULL,
  minor_exponent integer NOT NULL,
  imported_at    timestamp(0) NOT NULL,
  source         text    NOT NULL DEFAULT '',
  rates          bigint  NOT NULL DEFAULT 0
);
CREATE TABLE rate (
  tariff                text    NOT NULL REFERENCES tariff (name) ON DELETE CASCADE,
  prefix                text    NOT NULL,
  description           text    NOT NULL DEFAULT '',
  price_micros          bigint  NOT NULL CHECK (price_micros >= 0),
  initial_increment     integer NOT NULL,
  subsequent_increment  integer NOT NULL,
  connection_fee_micros bigint  NOT NULL DEFAULT 0,
  minimum_duration      integer NOT NULL DEFAULT 0,
  effective_from        text    NOT NULL DEFAULT '',  -- '' or Asterisk's calldate form
  weekdays              integer NOT NULL DEFAULT 127,
  start_minute          integer NOT NULL DEFAULT 0,
  end_minute            integer NOT NULL DEFAULT 1440,
  blocked               integer NOT NULL DEFAULT 0
);
CREATE INDEX rate_prefix ON rate (tariff, prefix);
CREATE TABLE reservation (
  id            text    PRIMARY KEY,
  account_id    text,
  campaign      text,
  call_id       text    NOT NULL,
  amount_micros bigint  NOT NULL DEFAULT 0,
  max_seconds   bigint  NOT NULL,
  limit_seconds bigint  NOT NULL DEFAULT 0,
  rate          text    NOT NULL,
  status        text    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'settled', 'released')),
  created_at    timestamp(0) NOT NULL,
  ended_at      timestamp(0),
  billsec       bigint,
  cost_micros   bigint
);
CREATE INDEX reservation_open ON reservation (account_id) WHERE status = 'open';
CREATE INDEX reservation_campaign_open ON reservation (campaign) WHERE status = 'open';
CREATE INDEX reservation_account_created ON reservation (account_id, created_at);
CREATE INDEX reservation_campaign_created ON reservation (campaign, created_at);
CREATE INDEX reservation_call ON reservation (call_id);
CREATE TABLE campaign (
  id                   text    PRIMARY KEY,
  limit_seconds        bigint  NOT NULL DEFAULT 300,
  uses_per_day         integer NOT NULL DEFAULT 0,
  once_ever            integer NOT NULL DEFAULT 0,
  min_hours_between    integer NOT NULL DEFAULT 0,
  daily_budget_seconds bigint  NOT NULL DEFAULT 0,
  status               text    NOT NULL DEFAULT 'active',
  tariff               text    NOT NULL DEFAULT ''
);
CREATE TABLE campaign_use (
  reservation text    PRIMARY KEY,
  campaign    text    NOT NULL,
  caller      text    NOT NULL,
  at          timestamp(0) NOT NULL,
  day         text    NOT NULL,
  seconds     bigint  NOT NULL,
  status      text    NOT NULL DEFAULT 'open'
);
CREATE INDEX campaign_use_caller ON campaign_use (campaign, caller, at);
CREATE INDEX campaign_use_day ON campaign_use (campaign, day);
CREATE TABLE payer_policy (
  payer_kind           text    NOT NULL CHECK (payer_kind IN ('account', 'campaign')),
  payer_id             text    NOT NULL,
  allow_prefixes       text    NOT NULL DEFAULT '',
  deny_prefixes        text    NOT NULL DEFAULT '',
  max_call_cost_micros bigint,
  daily_spend_micros   bigint,
  max_concurrent       integer NOT NULL DEFAULT 0 CHECK (max_concurrent >= 0),
  PRIMARY KEY (payer_kind, payer_id)
);
)sql"},
    {3, "several nodes: the journal's owner node, client and cancel requests; unique idempotency keys; node leases; "
        "shared rate limits",
     R"sql(
ALTER TABLE callback_journal ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE callback_journal ADD COLUMN client text NOT NULL DEFAULT '';
ALTER TABLE callback_journal ADD COLUMN cancel_asked boolean NOT NULL DEFAULT false;
-- A key names one callback, whichever node was asked: an older duplicate (one service
-- kept keys in memory only) gives its key up.
UPDATE callback_journal j SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND EXISTS (
  SELECT 1 FROM callback_journal k WHERE k.idempotency_key = j.idempotency_key AND (k.created_at, k.id) > (j.created_at, j.id));
DROP INDEX callback_journal_key;
CREATE UNIQUE INDEX callback_journal_key ON callback_journal (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX callback_journal_owner ON callback_journal (owner) WHERE NOT final;
CREATE INDEX callback_journal_created ON callback_journal (created_at);
-- The triggers' rate limits, shared by the nodes (fixed windows).
CREATE TABLE rate_window (
  name         text NOT NULL,
  key          text NOT NULL,
  window_start timestamp(0) NOT NULL,
  count        integer NOT NULL,
  counted      boolean NOT NULL DEFAULT true,
  PRIMARY KEY (name, key)
);
CREATE INDEX rate_window_start ON rate_window (window_start);
CREATE TABLE node (
  id          text PRIMARY KEY,
  lease_until timestamptz NOT NULL,
  started_at  timestamptz NOT NULL,
  host        text NOT NULL DEFAULT '',
  pid         integer NOT NULL DEFAULT 0
);
)sql"},
    {4, "node generations: the last process to claim a node id is the only one whose writes count",
     R"sql(
-- Each claim of a node id counts one up. A process started under the id of one that is cut
-- off from the database (not dead) has the higher number; the older one's journal writes and
-- renewals are refused from then on, so it stops without touching the calls.
ALTER TABLE node ADD COLUMN generation bigint NOT NULL DEFAULT 0;
)sql"},
    {5, "inbound calls: the node that claims an ANI or DID call first handles it",
     R"sql(
-- Every node sees every inbound call on every Asterisk; the first to insert its row takes it.
CREATE TABLE inbound_claim (
  server     text NOT NULL,
  uniqueid   text NOT NULL,
  node       text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (server, uniqueid)
);
CREATE INDEX inbound_claim_at ON inbound_claim (claimed_at);
)sql"},
    {6, "rate decks: no foreign key from rate to tariff (checked once a copied row)",
     R"sql(
-- An import deletes a tariff's rates, then the tariff, and copies the new ones in one
-- transaction; it is their only writer. The key's check ran for each of a million rows.
ALTER TABLE rate DROP CONSTRAINT IF EXISTS rate_tariff_fkey;
)sql"},
};
static_assert(migrations[std::size(migrations) - 1].version == latest_schema_version);

// Every node may start at once: the migrations run under one advisory lock, each once.
constexpr const char* migration_lock = "SELECT pg_advisory_xact_lock(7424011)";

int migrate(Connection& conn) {
  Transaction tx(conn);
  conn.exec(migration_lock);
  conn.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, description text NOT NULL, "
      "applied_at timestamp(0) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'))");
  int version = static_cast<int>(conn.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").integer(0, 0));
  if (version > latest_schema_version) {
    throw Failure("the database " + conn.where() + " has schema version " + std::to_string(version) +
                      ", newer than this callback knows (" + std::to_string(latest_schema_version) +
                      "); upgrade callback",
                  "too_new", false);
  }
  for (const auto& migration : migrations) {
    if (migration.version <= version) continue;
    conn.script(migration.sql);
    conn.exec("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
              {migration.version, migration.description});
    version = migration.version;
  }
  tx.commit();
  return version;
}

}  // namespace

Param time_param(Timestamp t) { return Param(format_timestamp(t)); }

Timestamp parse_time(std::string_view text) { return parse_timestamp(text).value_or(Timestamp{}); }

std::int64_t Rows::integer(int row, int column) const {
  const char* begin = PQgetvalue(result_.get(), row, column);
  const char* end = begin + PQgetlength(result_.get(), row, column);
  std::int64_t value = 0;
  if (std::from_chars(begin, end, value).ec != std::errc{}) {
    throw Failure("column " + std::to_string(column) + " is not an integer: " + std::string(begin, end), "", false);
  }
  return value;
}

std::int64_t Rows::affected() const {
  const char* n = PQcmdTuples(result_.get());
  return n == nullptr || *n == '\0' ? 0 : std::stoll(n);
}

Connection::Connection(const std::string& conninfo) {
  // Defaults first, then the conninfo (expanded: its own settings win): a server that
  // stops answering (a half-open connection, a host gone) is an error in about 30 s,
  // never a thread waiting forever.
  const char* keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                        "tcp_user_timeout", "dbname", nullptr};
  const char* values[] = {"10", "1", "10", "5", "3", "30000", conninfo.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    throw Failure("cannot connect to PostgreSQL: " + message, "", true);
  }
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);  // "relation exists, skipping" and the like
  script("SET TIME ZONE 'UTC'");
}

Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool Connection::alive() {
  if (!ok() || PQtransactionStatus(conn_) != PQTRANS_IDLE) return ok();
  // Never blocks: reads what the server sent while this connection was idle. A session
  // it ended (a restart, an administrator) sent its goodbye and hung up: the goodbye is
  // read first, the end of the stream next.
  for (int i = 0; i < 2 && ok(); ++i) {
    if (PQconsumeInput(conn_) == 0) return false;
  }
  if (!ok()) return false;
  // Nothing is expected while idle; anything is the server saying it is gone.
  const int socket = PQsocket(conn_);
  if (socket < 0) return false;
  char byte;
  const auto peeked = ::recv(socket, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return !(peeked == 0 || (peeked < 0 && errno != EAGAIN && errno != EWOULDBLOCK));
}

std::string Connection::where() const {
  if (conn_ == nullptr) return "(not connected)";
  const std::string host = PQhost(conn_) != nullptr ? PQhost(conn_) : "";
  return std::string(PQuser(conn_)) + "@" + (host.starts_with('/') ? host : host + ":" + PQport(conn_)) + "/" +
         PQdb(conn_);
}

void Connection::fail(PGresult* result, const std::string& what) {
  std::string message = result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_);
  if (message.empty()) message = PQerrorMessage(conn_);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state != nullptr ? state : "";
  if (result != nullptr) PQclear(result);
  throw Failure(what + message, std::move(sqlstate), !ok());
}

Rows Connection::exec(const std::string& sql, std::initializer_list<Param> params) {
  return exec(sql, std::vector<Param>(params));
}

const std::string& Connection::statement(const std::string& sql, std::size_t params) {
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    // PQprepare waits for its answer, which pipeline mode does not allow: the sent
    // statements are answered first (once per SQL text and connection).
    flush();
    std::string name("s");
    name += std::to_string(prepared_.size() + 1);
    PGresult* prepared = PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params), nullptr);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) fail(prepared, "");
    PQclear(prepared);
    found = prepared_.emplace(sql, std::move(name)).first;
  }
  return found->second;
}

namespace {

std::vector<const char*> values_of(const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.c_str());
  return values;
}

}  // namespace

void Connection::send(const std::string& sql, const std::vector<Param>& params) {
  const std::string* name = params.empty() ? nullptr : &statement(sql, params.size());
  if (pending_ == 0 && PQenterPipelineMode(conn_) != 1) fail(nullptr, "cannot send without waiting: ");
  const auto values = values_of(params);
  const int sent = name == nullptr
                       ? PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0)
                       : PQsendQueryPrepared(conn_, name->c_str(), static_cast<int>(values.size()), values.data(),
                                             nullptr, nullptr, 0);
  if (sent != 1) {
    if (pending_ == 0) PQexitPipelineMode(conn_);
    fail(nullptr, "");
  }
  ++pending_;
}

PGresult* Connection::finish_pipeline() {
  if (PQpipelineSync(conn_) != 1) {
    const std::string why = PQerrorMessage(conn_);
    abandon();
    throw Failure("cannot send the pipeline's sync: " + why, "", true);
  }
  PGresult* last = nullptr;
  PGresult* failure = nullptr;
  bool broken = false;
  // Each statement's result is followed by a null; the sync's own result ends the pipeline.
  for (int i = 0; i < pending_ && !broken; ++i) {
    PGresult* result = PQgetResult(conn_);
    if (result == nullptr) {
      broken = true;
      break;
    }
    const auto status = PQresultStatus(result);
    if (status == PGRES_PIPELINE_SYNC) {  // never before its statements' results
      PQclear(result);
      broken = true;
      break;
    }
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      if (last != nullptr) PQclear(last);
      last = result;
    } else if (status != PGRES_PIPELINE_ABORTED && failure == nullptr) {
      failure = result;  // the first; the statements behind it were skipped (aborted)
    } else {
      PQclear(result);
    }
    while ((result = PQgetResult(conn_)) != nullptr) {
      if (PQresultStatus(result) == PGRES_PIPELINE_SYNC) broken = true;  // never before its statements
      PQclear(result);
    }
  }
  if (!broken) {
    PGresult* sync = PQgetResult(conn_);
    broken = sync == nullptr || PQresultStatus(sync) != PGRES_PIPELINE_SYNC;
    if (sync != nullptr) PQclear(sync);
  }
  pending_ = 0;
  if (broken || PQexitPipelineMode(conn_) != 1) {
    if (last != nullptr) PQclear(last);
    abandon();
    if (failure != nullptr) fail(failure, "");
    throw Failure("the connection's answers came out of step", "", true);
  }
  if (failure != nullptr) {
    if (last != nullptr) PQclear(last);
    fail(failure, "");
  }
  return last;
}

void Connection::abandon() {
  // Out of step with the server: closed now, so that the server ends the transaction and
  // frees its locks at once; ok() is false from here, and the owner connects anew.
  pending_ = 0;
  PQfinish(conn_);
  conn_ = nullptr;
}

void Connection::flush() {
  if (pending_ > 0) PQclear(finish_pipeline());
}

Rows Connection::exec(const std::string& sql, const std::vector<Param>& params) {
  const std::string& name = statement(sql, params.size());
  if (pending_ > 0) {
    send(sql, params);
    return Rows(finish_pipeline());
  }
  const auto values = values_of(params);
  PGresult* result = PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                                    nullptr, 0);
  const auto status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(result, "");
  return Rows(result);
}

void Connection::script(const std::string& sql) {
  if (pending_ > 0) {
    if (sql == "ROLLBACK") {
      try {
        PQclear(finish_pipeline());
      } catch (const Failure& e) {
        if (e.connection_lost()) throw;
      }
    } else if (sql.find(';') == std::string::npos) {
      send(sql);
      PQclear(finish_pipeline());
      return;
    } else {
      flush();
    }
  }
  PGresult* result = PQexec(conn_, sql.c_str());
  const auto status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(result, "");
  PQclear(result);
}

Transaction::Transaction(Connection& conn, const char* begin) : conn_(conn) { conn_.script(begin); }

Transaction::~Transaction() {
  if (!open_) return;
  try {
    if (conn_.ok()) conn_.script("ROLLBACK");
  } catch (...) {
    // the connection is gone, and the transaction with it
  }
}

void Transaction::commit() {
  conn_.script("COMMIT");
  open_ = false;
}

Result<std::shared_ptr<Pool>> Pool::open(PoolOptions options) {
  if (options.size == 0) return Error{"config.value", "the pool needs at least one connection", "pool_size"};
  std::shared_ptr<Pool> pool(new Pool(std::move(options)));
  try {
    auto conn = std::make_unique<Connection>(pool->options_.conninfo);
    pool->where_ = conn->where();
    pool->schema_version_ = migrate(*conn);
    pool->idle_.push_back(std::move(conn));
    pool->open_ = 1;
    return pool;
  } catch (const Failure& e) {
    if (e.sqlstate() == "too_new") return Error{"store_too_new", e.what(), "conninfo"};
    return Error{"store_open_failed", e.what(), "conninfo"};
  }
}

Pool::Lease Pool::acquire() {
  std::unique_lock lock(mutex_);
  freed_.wait(lock, [this] { return !idle_.empty() || open_ < options_.size; });
  while (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    if (conn->alive()) return Lease(conn.release(), Release{this});
    --open_;  // ended by the server while idle: a new one instead
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(new Connection(options_.conninfo), Release{this});
  } catch (...) {
    lock.lock();
    --open_;
    freed_.notify_one();
    throw;
  }
}

void Pool::give_back(Connection* conn) {
  std::unique_ptr<Connection> owned(conn);
  std::lock_guard lock(mutex_);
  // A broken connection (the server restarted, the network went) is dropped; the next
  // acquire connects anew.
  if (owned->ok() && PQtransactionStatus(owned->raw()) == PQTRANS_IDLE) {
    idle_.push_back(std::move(owned));
  } else {
    --open_;
  }
  freed_.notify_one();
}

}  // namespace callback::pg
