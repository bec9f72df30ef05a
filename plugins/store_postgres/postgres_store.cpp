#include "postgres_store.hpp"
#include "sqldb_pg.hpp"
#include "store_checks.hpp"

#include <callback/context.hpp>
#include <callback/timestamp.hpp>

#include <poll.h>
#include <unistd.h>

#include <set>

namespace callback::store_postgres {

namespace {

using pg::Connection;
using pg::Param;
using pg::time_param;

// The journal's owner: one advisory lock key for the whole database.
constexpr std::int64_t journal_lock = 7424012;

Currency currency_from_row(const std::string& code, std::int64_t exponent) {
  auto currency = Currency::of(code, static_cast<int>(exponent));
  return currency ? *currency : Currency{};
}

// The account `id`, with its numbers and addresses, read on `conn`.
std::optional<Account> read_account(Connection& conn, const std::string& id) {
  auto row = conn.exec(
      "SELECT id, name, currency, minor_exponent, balance_micros, credit_limit_micros, status, tariff, secret_hash, "
      "created_at, reserved_micros, language FROM account WHERE id = $1",
      {id});
  if (row.empty()) return std::nullopt;
  Account account;
  account.id = row.text(0, 0);
  account.name = row.text(0, 1);
  account.currency = currency_from_row(row.text(0, 2), row.integer(0, 3));
  account.balance = Money::from_micros(row.integer(0, 4), account.currency);
  account.credit_limit = Money::from_micros(row.integer(0, 5), account.currency);
  account.status = row.text(0, 6) == "disabled" ? AccountStatus::disabled : AccountStatus::active;
  account.tariff = row.text(0, 7);
  account.secret_hash = row.text(0, 8);
  account.created_at = row.time(0, 9);
  account.reserved = Money::from_micros(row.integer(0, 10), account.currency);
  account.language = row.text(0, 11);
  auto numbers = conn.exec("SELECT number FROM account_number WHERE account_id = $1 ORDER BY number", {id});
  for (int i = 0; i < numbers.size(); ++i) {
    if (auto n = PhoneNumber::from_e164(numbers.text(i, 0))) account.caller_numbers.push_back(*n);
  }
  auto emails = conn.exec("SELECT email FROM account_email WHERE account_id = $1 ORDER BY email", {id});
  for (int i = 0; i < emails.size(); ++i) account.emails.push_back(emails.text(i, 0));
  return account;
}

ApiKeyRecord read_key(const pg::Rows& rows, int i) {
  ApiKeyRecord key{.id = rows.text(i, 0), .name = rows.text(i, 1), .scope = rows.text(i, 2),
                   .key_hash = rows.text(i, 3), .webhook_secret = rows.text(i, 4), .created_at = rows.time(i, 5)};
  if (!rows.null(i, 6)) key.revoked_at = rows.time(i, 6);
  return key;
}

constexpr const char* key_columns = "SELECT id, name, scope, key_hash, webhook_secret, created_at, revoked_at FROM api_key";

}  // namespace

Result<std::unique_ptr<PostgresStore>> PostgresStore::open(const PostgresOptions& options) {
  if (options.conninfo.empty()) {
    return Error{"config.missing", "the PostgreSQL store needs a conninfo (\"host=... dbname=... user=...\")",
                 "conninfo"};
  }
  auto pool = pg::Pool::open({.conninfo = options.conninfo, .size = options.pool_size});
  if (!pool) return pool.error();
  return std::unique_ptr<PostgresStore>(new PostgresStore(std::move(*pool), options.log));
}

PostgresStore::~PostgresStore() {
  writer_.stop();
  stop_listening_ = true;
  if (listener_.joinable()) listener_.join();
}

Status PostgresStore::health() {
  return pg::with_connection(*pool_, "PostgreSQL " + pool_->where() + " does not answer", [](Connection& conn) -> Status {
    conn.exec("SELECT 1");
    return ok_status();
  });
}

// --- CDRs and the journal ----------------------------------------------------------------

Status PostgresStore::append(std::span<Cdr> cdrs) { return write(cdrs, {}); }

void PostgresStore::append_async(std::vector<Cdr> cdrs, AppendDone done) {
  writer_.submit({}, std::move(cdrs), std::move(done));
}

void PostgresStore::write_async(std::vector<JournalEntry> entries, std::vector<Cdr> cdrs, AppendDone done) {
  writer_.submit(std::move(entries), std::move(cdrs), std::move(done));
}

void PostgresStore::flush() { writer_.flush(); }

Status PostgresStore::write(std::span<Cdr> cdrs, std::span<const JournalEntry> entries) {
  for (const auto& cdr : cdrs) {
    if (cdr.duration < 0 || cdr.billsec < 0 || cdr.billsec > cdr.duration) return store_common::invalid_cdr(cdr);
  }
  std::size_t finals = 0;
  for (const auto& e : entries) finals += e.final ? 1 : 0;
  bool prune = false;
  std::size_t kept = 0;
  {
    std::lock_guard lock(prune_mutex_);
    finals_since_prune_ += finals;
    if (finals_since_prune_ >= journal_prune_every_) {
      prune = true;
      kept = journal_kept_;
      finals_since_prune_ = 0;
    }
  }
  std::vector<std::int64_t> ids;
  const auto [node, generation] = claimed();
  auto status = pg::with_connection(
      *pool_, entries.empty() ? "cannot store CDRs" : "cannot store CDRs and the callback journal",
      [&](Connection& conn) -> Status {
       try {
        pg::Transaction tx(conn);
        sqldb::PgDatabase sql(conn);
        std::set<std::string> taken;  // by another node
        std::string changed;
        // A newer process under this node id (this one was cut off while it started) owns
        // these calls now: nothing here is written. FOR KEY SHARE: a claim of the id (its
        // upsert locks the row FOR UPDATE) waits for this write, but a take-over's mark (FOR
        // NO KEY UPDATE) does not: a node frozen in the middle of a write keeps only the rows
        // of that write, until it commits or its session goes, not all of its calls.
        const bool superseded =
            !node.empty() && !entries.empty() &&
            conn.exec("SELECT 1 FROM node WHERE id = $1 AND generation = $2 FOR KEY SHARE", {node, generation}).empty();
        for (const auto& e : entries) {
          if (superseded) {
            fenced(e.id);
            if (!e.final) {
              throw Exception(Error{"node.fenced",
                                    e.id + " is not this process's: node id " + node +
                                        " was claimed by another process while this one was cut off",
                                    "id"}
                                  .as(ErrorKind::conflict));
            }
            taken.insert(e.id);
            continue;
          }
          // An entry another node took over (this one lost its lease) is that node's now:
          // neither it nor its CDRs are written from here.
          auto written = conn.exec(
              "INSERT INTO callback_journal (id, idempotency_key, state, final, server, reservation, call, created_at, "
              "updated_at, owner, client) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (id) DO UPDATE SET "
              "idempotency_key = excluded.idempotency_key, state = excluded.state, final = excluded.final, server = "
              "excluded.server, reservation = excluded.reservation, call = excluded.call, updated_at = "
              "excluded.updated_at, client = excluded.client WHERE callback_journal.owner = excluded.owner RETURNING id",
              {e.id, e.idempotency_key.empty() ? Param(std::nullopt) : Param(e.idempotency_key), e.state, e.final,
               e.server, e.reservation, e.call, time_param(e.created_at), time_param(e.updated_at), node, e.client});
          if (written.empty()) {
            auto row = conn.exec("SELECT owner, created_at FROM callback_journal WHERE id = $1", {e.id});
            if (!row.empty() && row.time(0, 1) != std::chrono::time_point_cast<std::chrono::seconds>(e.created_at)) {
              throw Exception(Error{"store_failed", "callback id " + e.id + " is another callback's already", "id"}
                                  .as(ErrorKind::internal));
            }
            fenced(e.id);
            if (!e.final) {
              // The service stops following it (CallbackService: node.fenced): nothing of
              // this group is written, and the writer writes the other batches alone.
              throw Exception(Error{"node.fenced",
                                    e.id + " is node " + (row.empty() ? std::string("?") : row.text(0, 0)) +
                                        "'s now: this node's lease ran out and it was taken over",
                                    "id"}
                                  .as(ErrorKind::conflict));
            }
            taken.insert(e.id);  // its end and its CDRs are the other node's to write
            continue;
          }
          if (!node.empty()) {
            if (changed.size() > 7000) {
              conn.exec("SELECT pg_notify('callback_journal', $1)", {changed});
              changed.clear();
            }
            changed += (changed.empty() ? "" : " ") + e.id;
          }
        }
        // Every node's streams learn what changed, once this commits.
        if (!changed.empty()) conn.exec("SELECT pg_notify('callback_journal', $1)", {changed});
        if (prune) {
          conn.exec(
              "DELETE FROM callback_journal WHERE final AND id NOT IN (SELECT id FROM callback_journal WHERE final "
              "ORDER BY updated_at DESC, id DESC LIMIT $1)",
              {kept});
        }
        ids.clear();
        for (const auto& cdr : cdrs) {
          if (taken.contains(cdr.callback_id)) {  // that node writes them
            ids.push_back(0);
            continue;
          }
          std::optional<std::string> cost, currency;
          if (cdr.cost) {
            cost = std::to_string(cdr.cost->micros());
            currency = std::string(cdr.cost->currency().code());
          }
          auto id = conn.exec(
              "INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, "
              "billsec, disposition, amaflags, accountcode, uniqueid, userfield, callback_id, leg, cost_micros, "
              "currency, hangup_cause) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,"
              "$20,$21) RETURNING id",
              {time_param(cdr.calldate), cdr.clid, cdr.src, cdr.dst, cdr.dcontext, cdr.channel, cdr.dstchannel,
               cdr.lastapp, cdr.lastdata, cdr.duration, cdr.billsec, to_string(cdr.disposition), cdr.amaflags,
               cdr.accountcode, cdr.uniqueid, cdr.userfield, cdr.callback_id, to_string(cdr.leg),
               cost ? Param(*cost) : Param(std::nullopt), currency ? Param(*currency) : Param(std::nullopt),
               cdr.hangup_cause.code()});
          ids.push_back(id.integer(0, 0));
          sqldb::count_caller(sql, cdr);  // in the same transaction
        }
        tx.commit();
        return ok_status();
       } catch (const pg::Failure& failure) {
        if (failure.sqlstate() != "23505") throw;
        // A unique key: an idempotency key another node's callback has already.
        for (const auto& e : entries) {
          if (e.idempotency_key.empty()) continue;
          auto other = conn.exec("SELECT id FROM callback_journal WHERE idempotency_key = $1 AND id <> $2",
                                 {e.idempotency_key, e.id});
          if (!other.empty()) {
            return Error{"idempotency_key_taken",
                         "the idempotency key is callback " + other.text(0, 0) + "'s already (asked of another node)",
                         other.text(0, 0)}
                .as(ErrorKind::conflict);
          }
        }
        throw;
       }
      });
  if (status) {
    for (std::size_t k = 0; k < cdrs.size(); ++k) cdrs[k].id = ids[k];
  }
  return status;
}

Status PostgresStore::query(const CdrQuery& query, const std::function<bool(const Cdr&)>& visit) {
  return pg::with_connection(*pool_, "cannot read CDRs", [&](Connection& conn) -> Status {
    std::string sql =
        "SELECT id, calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, "
        "disposition, amaflags, accountcode, uniqueid, userfield, callback_id, leg, cost_micros, currency, "
        "hangup_cause FROM cdr WHERE true";
    // Only fixed SQL text is built here; every value is a parameter.
    std::vector<Param> params;
    auto add = [&](const char* condition, Param value) {
      params.push_back(std::move(value));
      std::string text = condition;
      const auto n = "$" + std::to_string(params.size());
      for (std::size_t at; (at = text.find('?')) != std::string::npos;) text.replace(at, 1, n);
      sql += text;
    };
    if (query.since) add(" AND calldate >= ?", time_param(*query.since));
    if (query.until) add(" AND calldate < ?", time_param(*query.until));
    if (!query.account.empty()) add(" AND accountcode = ?", query.account);
    if (!query.number.empty()) add(" AND (src = ? OR dst = ?)", query.number);
    if (!query.callback_id.empty()) add(" AND callback_id = ?", query.callback_id);
    sql += " ORDER BY calldate, id";
    if (query.limit > 0) add(" LIMIT ?", query.limit);
    // In pages of 1,000 through a cursor: a year of CDRs is never all in memory.
    pg::Transaction tx(conn, "BEGIN READ ONLY");
    conn.exec("DECLARE cdrs NO SCROLL CURSOR FOR " + sql, params);
    while (true) {
      auto rows = conn.exec("FETCH 1000 FROM cdrs");
      for (int r = 0; r < rows.size(); ++r) {
        Cdr cdr;
        int c = 0;
        cdr.id = rows.integer(r, c++);
        cdr.calldate = rows.time(r, c++);
        for (std::string* text : {&cdr.clid, &cdr.src, &cdr.dst, &cdr.dcontext, &cdr.channel, &cdr.dstchannel,
                                  &cdr.lastapp, &cdr.lastdata}) {
          *text = rows.text(r, c++);
        }
        cdr.duration = rows.integer(r, c++);
        cdr.billsec = rows.integer(r, c++);
        cdr.disposition = disposition_from_string(rows.text(r, c++)).value_or(Disposition::failed);
        cdr.amaflags = rows.integer(r, c++);
        cdr.accountcode = rows.text(r, c++);
        cdr.uniqueid = rows.text(r, c++);
        cdr.userfield = rows.text(r, c++);
        cdr.callback_id = rows.text(r, c++);
        cdr.leg = rows.text(r, c++) == "B" ? LegRole::b : LegRole::a;
        if (!rows.null(r, c) && !rows.null(r, c + 1)) {
          if (auto cur = Currency::of(rows.text(r, c + 1))) cdr.cost = Money::from_micros(rows.integer(r, c), *cur);
        }
        c += 2;
        cdr.hangup_cause = HangupCause{static_cast<int>(rows.integer(r, c++))};
        if (!visit(cdr)) return ok_status();  // the transaction's end closes the cursor
      }
      if (rows.size() < 1000) break;
    }
    tx.commit();
    return ok_status();
  });
}

Result<std::vector<CallerStats>> PostgresStore::caller_stats(const std::string& number, std::size_t limit) {
  return pg::with_connection(*pool_, "cannot read caller statistics",
                             [&](Connection& conn) -> Result<std::vector<CallerStats>> {
    const std::string columns =
        "SELECT number, attempts, answered, failures, talk_seconds, first_call, last_call FROM caller_stats ";
    auto rows = number.empty()
                    ? conn.exec(columns + "ORDER BY attempts DESC, number LIMIT $1",
                                {limit == 0 ? Param(std::nullopt) : Param(limit)})
                    : conn.exec(columns + "WHERE number = $1 LIMIT $2",
                                {number, limit == 0 ? Param(std::nullopt) : Param(limit)});
    std::vector<CallerStats> out;
    for (int i = 0; i < rows.size(); ++i) {
      CallerStats s{.number = rows.text(i, 0), .attempts = rows.integer(i, 1), .answered = rows.integer(i, 2),
                    .failures = rows.integer(i, 3), .talk_seconds = rows.integer(i, 4)};
      if (!rows.null(i, 5)) s.first_call = rows.time(i, 5);
      if (!rows.null(i, 6)) s.last_call = rows.time(i, 6);
      out.push_back(std::move(s));
    }
    return out;
  });
}

namespace {

constexpr const char* entry_columns =
    "id, COALESCE(idempotency_key, ''), state, final, server, reservation, call, created_at, updated_at, owner, client, "
    "cancel_asked";

std::vector<JournalEntry> read_entries(const pg::Rows& rows) {
  std::vector<JournalEntry> out;
  for (int i = 0; i < rows.size(); ++i) {
    out.push_back({.id = rows.text(i, 0),
                   .idempotency_key = rows.text(i, 1),
                   .state = rows.text(i, 2),
                   .final = rows.boolean(i, 3),
                   .server = rows.text(i, 4),
                   .reservation = rows.text(i, 5),
                   .call = rows.text(i, 6),
                   .created_at = rows.time(i, 7),
                   .updated_at = rows.time(i, 8),
                   .client = rows.text(i, 10),
                   .owner = rows.text(i, 9),
                   .cancel_asked = rows.boolean(i, 11)});
  }
  return out;
}

// The second key of a node id's advisory lock (the first is node_lock).
constexpr std::int64_t node_lock = 7424013;

}  // namespace

Result<std::vector<JournalEntry>> PostgresStore::select_entries(const std::string& where,
                                                                std::vector<Param> params) {
  return pg::with_connection(*pool_, "cannot read the callback journal",
                             [&](Connection& conn) -> Result<std::vector<JournalEntry>> {
    return read_entries(conn.exec(std::string("SELECT ") + entry_columns + " FROM callback_journal " + where, params));
  });
}

Result<std::vector<JournalEntry>> PostgresStore::open() {
  const std::string node = claimed_node();
  if (!node.empty()) {
    // FOR UPDATE: an entry a taker is moving right now is read once it committed, and
    // then is not this node's any more.
    return select_entries("WHERE NOT final AND owner = $1 ORDER BY created_at, id FOR UPDATE", {node});
  }
  // The whole journal's one service: what named nodes left open is its own now.
  auto moved = pg::with_connection(*pool_, "cannot read the callback journal", [](Connection& conn) -> Status {
    conn.exec("UPDATE callback_journal SET owner = '' WHERE NOT final AND owner <> ''");
    return ok_status();
  });
  if (!moved) return moved.error();
  return select_entries("WHERE NOT final ORDER BY created_at, id", {});
}

Result<std::vector<JournalEntry>> PostgresStore::recent(std::size_t limit) {
  const std::string node = claimed_node();
  if (!node.empty()) {  // a node shows again what it finished; others' are read on demand
    return select_entries("WHERE final AND owner = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
                          {node, limit == 0 ? 1 : limit});
  }
  return select_entries("WHERE final ORDER BY updated_at DESC, id DESC LIMIT $1", {limit == 0 ? 1 : limit});
}

Result<std::optional<JournalEntry>> PostgresStore::entry(const std::string& id) {
  auto found = select_entries("WHERE id = $1", {id});
  if (!found) return found.error();
  if (found->empty()) return std::optional<JournalEntry>{};
  return std::optional<JournalEntry>{std::move(found->front())};
}

Result<std::vector<JournalEntry>> PostgresStore::list(const JournalQuery& query) {
  return select_entries(
      "WHERE ($1 = '' OR state = $1) AND created_at >= $2 AND ($3 = '' OR client = $3) "
      "ORDER BY created_at DESC, id DESC LIMIT $4",
      {query.state, time_param(query.since), query.client, query.limit});
}

void PostgresStore::fenced(const std::string& id) const {
  if (log_ != nullptr) {
    log_->warning("callback.store.postgres",
                  id + " is another node's now (this node's lease ran out and it was taken over): not written here");
  }
}

Status PostgresStore::claim(const NodeClaim& node) {
  std::lock_guard lock(claim_mutex_);
  if (owner_) {
    if (node.node == node_) return ok_status();
    return Error{"store.locked", "this store is claimed as node \"" + node_ + "\" already", "service.node"};
  }
  try {
    auto conn = std::make_unique<Connection>(pool_->conninfo());
    if (node.node.empty()) {
      if (!conn->exec("SELECT pg_try_advisory_lock($1)", {journal_lock}).boolean(0, 0)) {
        auto holder = conn->exec(
            "SELECT a.pid, COALESCE(host(a.client_addr), 'local'), a.application_name FROM pg_locks l JOIN "
            "pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1 LIMIT 1",
            {journal_lock});
        std::string who;
        if (!holder.empty()) {
          who = " (PostgreSQL backend " + holder.text(0, 0) + ", client " + holder.text(0, 1) +
                (holder.text(0, 2).empty() ? std::string() : ", " + escape_control(holder.text(0, 2))) + ")";
        }
        return Error{"store.locked",
                     "the journal in " + pool_->where() + " is in use by another callback service" + who +
                         ": without a node id (service.node) one service at a time owns its calls in flight; give "
                         "each of several nodes its own id",
                     "service.node"};
      }
      owner_ = std::move(conn);
      set_node({});
      return ok_status();
    }
    if (!conn->exec("SELECT pg_try_advisory_lock_shared($1)", {journal_lock}).boolean(0, 0)) {
      return Error{"store.locked",
                   "the journal in " + pool_->where() +
                       " is owned whole by a callback service without a node id (service.node); stop it, or give it "
                       "a node id too",
                   "service.node"};
    }
    if (!conn->exec("SELECT pg_try_advisory_lock($1::integer, hashtext($2))", {node_lock, node.node}).boolean(0, 0)) {
      auto row = conn->exec("SELECT host, pid, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM "
                            "node WHERE id = $1",
                            {node.node});
      std::string who;
      if (!row.empty()) {
        who = " (host " + escape_control(row.text(0, 0)) + ", pid " + row.text(0, 1) + ", started " + row.text(0, 2) +
              " UTC)";
      }
      return Error{"node.duplicate",
                   "node id \"" + node.node + "\" is in use by another running callback service on " + pool_->where() +
                       who + ": each node needs an id of its own",
                   "service.node"};
    }
    set_node(node.node);
    lease_ = node.lease;
    if (auto ok = register_node(*conn); !ok) {
      set_node({});
      return ok;
    }
    owner_ = std::move(conn);
    return ok_status();
  } catch (const std::exception& e) {
    return Error{"store_failed", std::string("cannot claim the journal: ") + e.what(), {}}.as(ErrorKind::internal);
  }
}

Status PostgresStore::register_node(Connection& conn) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  // A new generation of the id: a process still holding an older one (cut off, not dead) is
  // fenced by it (write(), renew()).
  auto row = conn.exec(
      "INSERT INTO node (id, lease_until, started_at, host, pid, generation) VALUES ($1, now() + $2 * interval '1 "
      "second', now(), $3, $4, 1) ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until, started_at = "
      "CASE WHEN node.pid = excluded.pid THEN node.started_at ELSE excluded.started_at END, host = excluded.host, "
      "pid = excluded.pid, generation = node.generation + 1 RETURNING generation",
      {node_, static_cast<std::int64_t>(lease_.count()), std::string(host), static_cast<std::int64_t>(::getpid())});
  set_node(node_, row.integer(0, 0));
  return ok_status();
}

Status PostgresStore::renew() {
  std::lock_guard lock(claim_mutex_);
  if (!owner_ || node_.empty()) return ok_status();
  try {
    if (!owner_->alive()) {
      // The session ended (a database restart): its locks went with it. Taken again, unless
      // another process started under this id meanwhile.
      auto conn = std::make_unique<Connection>(pool_->conninfo());
      if (!conn->exec("SELECT pg_try_advisory_lock_shared($1)", {journal_lock}).boolean(0, 0) ||
          !conn->exec("SELECT pg_try_advisory_lock($1::integer, hashtext($2))", {node_lock, node_}).boolean(0, 0)) {
        return Error{"node.duplicate", "node id \"" + node_ + "\" was taken by another process while the database "
                                           "was away",
                     "service.node"};
      }
      owner_ = std::move(conn);
    }
    // Only a lease nobody took: a node marked taken over (lease_until -infinity) has lost
    // its calls, whatever it still holds in memory.
    const auto generation = claimed().generation;
    auto renewed = owner_->exec(
        "UPDATE node SET lease_until = now() + $2 * interval '1 second' WHERE id = $1 AND lease_until <> "
        "'-infinity' AND generation = $3 RETURNING id",
        {node_, static_cast<std::int64_t>(lease_.count()), generation});
    if (renewed.empty() && !owner_->exec("SELECT 1 FROM node WHERE id = $1 AND generation > $2", {node_, generation})
                                .empty()) {
      return Error{"node.duplicate",
                   "node id \"" + node_ + "\" was claimed by another process while this one was cut off from the "
                   "database: this process must not act on its calls any more",
                   "service.node"};
    }
    if (renewed.empty()) {
      return Error{"node.lease_lost",
                   "node " + node_ + "'s lease ran out and its calls were taken over by another node; this process "
                   "must not act on them any more",
                   "service.node"}
          .as(ErrorKind::conflict);
    }
    return ok_status();
  } catch (const std::exception& e) {
    return Error{"store_failed", "cannot renew node " + node_ + "'s lease: " + e.what(), {}}.as(ErrorKind::unavailable);
  }
}

Result<std::vector<JournalEntry>> PostgresStore::take_over() {
  const std::string node = claimed_node();
  if (node.empty()) return std::vector<JournalEntry>{};
  return pg::with_connection(*pool_, "cannot take over callbacks", [&](Connection& conn) -> Result<std::vector<JournalEntry>> {
    // Open entries of a node without a live lease (or of a service without a node id that
    // is gone: node ids hold the journal's lock shared, so it cannot run). SKIP LOCKED:
    // each is taken by one node.
    pg::Transaction tx(conn);
    // Nodes whose lease ran out are marked taken over (-infinity) under their row's lock,
    // so that a late renewal finds out instead of extending the lease (renew()). NO KEY
    // UPDATE: skipped while the node renews (its UPDATE), not while it writes (KEY SHARE).
    conn.exec("UPDATE node SET lease_until = '-infinity' WHERE id IN (SELECT id FROM node WHERE id <> $1 AND "
              "lease_until < now() AND lease_until <> '-infinity' FOR NO KEY UPDATE SKIP LOCKED)",
              {node});
    // Only the calls of nodes marked so (here or before): a node whose row was locked just
    // now is renewing its lease this moment, was not marked, and keeps its calls. Taking them
    // on an expired lease alone would leave both nodes running them.
    // RETURNING names the node each was taken from, in `owner`.
    auto taken = read_entries(conn.exec(
        "WITH taken AS (SELECT id, owner AS previous FROM callback_journal WHERE NOT final AND owner <> $1 AND owner "
        "NOT IN (SELECT id FROM node WHERE lease_until <> '-infinity') FOR UPDATE SKIP LOCKED) UPDATE "
        "callback_journal j SET "
        "owner = $1 FROM taken WHERE j.id = taken.id RETURNING j.id, COALESCE(j.idempotency_key, ''), j.state, "
        "j.final, j.server, j.reservation, j.call, j.created_at, j.updated_at, taken.previous, j.client, "
        "j.cancel_asked",
        {node}));
    tx.commit();
    return taken;
  });
}

Result<std::string> PostgresStore::ask_cancel(const std::string& id) {
  return pg::with_connection(*pool_, "cannot ask for the cancel of " + id, [&](Connection& conn) -> Result<std::string> {
    pg::Transaction tx(conn);
    auto row = conn.exec("SELECT owner, final, state FROM callback_journal WHERE id = $1 FOR UPDATE", {id});
    if (row.empty()) return Error{"not_found", "no callback \"" + id + "\"", "id"}.as(ErrorKind::not_found);
    if (row.boolean(0, 1)) {
      return Error{"already_final", "callback " + id + " already ended (" + row.text(0, 2) + ")", "id"}.as(
          ErrorKind::conflict);
    }
    conn.exec("UPDATE callback_journal SET cancel_asked = true WHERE id = $1", {id});
    conn.exec("SELECT pg_notify('callback_cancel', $1)", {row.text(0, 0)});
    tx.commit();
    return row.text(0, 0);
  });
}

Result<std::vector<std::string>> PostgresStore::cancels_asked() {
  const std::string node = claimed_node();
  return pg::with_connection(*pool_, "cannot read the callback journal",
                             [&](Connection& conn) -> Result<std::vector<std::string>> {
    auto rows = conn.exec("SELECT id FROM callback_journal WHERE owner = $1 AND cancel_asked AND NOT final", {node});
    std::vector<std::string> ids;
    for (int i = 0; i < rows.size(); ++i) ids.push_back(rows.text(i, 0));
    return ids;
  });
}

Result<bool> PostgresStore::claim_inbound(const std::string& server, const std::string& uniqueid) {
  const std::string node = claimed_node();
  if (node.empty()) return true;  // the journal is this service's alone
  return pg::with_connection(*pool_, "cannot claim an inbound call", [&](Connection& conn) -> Result<bool> {
    if (++inbound_claims_ % 1'000 == 0) conn.exec("DELETE FROM inbound_claim WHERE claimed_at < now() - interval '1 day'");
    return !conn.exec("INSERT INTO inbound_claim (server, uniqueid, node) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING "
                      "RETURNING 1",
                      {server, uniqueid, node})
                .empty();
  });
}

Subscription PostgresStore::watch(std::function<void(const JournalNotice&)> on_notice) {
  std::lock_guard lock(watch_mutex_);
  const auto id = ++next_watcher_;
  watchers_.emplace_back(id, std::make_shared<std::function<void(const JournalNotice&)>>(std::move(on_notice)));
  if (!listener_.joinable()) listener_ = std::thread([this] { listen_loop(); });
  return Subscription([this, id] {
    std::lock_guard dispatching(dispatch_mutex_);  // none of its notices runs after this returns
    std::lock_guard guard(watch_mutex_);
    std::erase_if(watchers_, [id](const auto& w) { return w.first == id; });
  });
}

void PostgresStore::notify_watchers(const JournalNotice& notice) {
  std::lock_guard dispatching(dispatch_mutex_);
  std::vector<std::shared_ptr<std::function<void(const JournalNotice&)>>> targets;
  {
    std::lock_guard lock(watch_mutex_);
    for (const auto& w : watchers_) targets.push_back(w.second);
  }
  for (const auto& target : targets) {
    try {
      (*target)(notice);
    } catch (...) {
      // a watcher's failure must not stop the listener
    }
  }
}

void PostgresStore::listen_loop() {
  bool first = true;
  while (!stop_listening_) {
    std::unique_ptr<Connection> conn;
    try {
      conn = std::make_unique<Connection>(pool_->conninfo());
      conn->exec("LISTEN callback_journal");
      conn->exec("LISTEN callback_cancel");
    } catch (const std::exception& e) {
      if (log_ != nullptr && first) {
        log_->warning("callback.store.postgres", std::string("cannot listen for the journal's notices: ") + e.what());
      }
      first = false;
      for (int i = 0; i < 10 && !stop_listening_; ++i) ::usleep(100'000);  // retry every second
      continue;
    }
    if (!first) notify_watchers({.kind = JournalNotice::Kind::resync});  // some may have been missed
    first = false;
    int quiet = 0;  // 100 ms rounds without anything read
    while (!stop_listening_ && conn->ok()) {
      pollfd fd{.fd = PQsocket(conn->raw()), .events = POLLIN, .revents = 0};
      if (::poll(&fd, 1, 100) < 0 || (fd.revents & POLLIN) == 0) {  // 100 ms: stop() is seen
        if (++quiet < 100) continue;
        // 10 s of silence: a half-open connection answers nothing; a live one notices the
        // query (notices that come meanwhile wait in libpq for PQnotifies below).
        quiet = 0;
        try {
          conn->exec("SELECT 1");
        } catch (const std::exception&) {
          break;  // connect again, then resync
        }
      } else {
        quiet = 0;
        if (PQconsumeInput(conn->raw()) == 0) break;
      }
      while (PGnotify* n = PQnotifies(conn->raw())) {
        const std::string channel = n->relname;
        const std::string payload = n->extra;
        PQfreemem(n);
        if (channel == "callback_cancel") {
          if (payload == claimed_node()) notify_watchers({.kind = JournalNotice::Kind::cancel});
          continue;
        }
        JournalNotice notice{.kind = JournalNotice::Kind::changed};
        for (std::size_t at = 0; at < payload.size();) {
          auto end = payload.find(' ', at);
          if (end == std::string::npos) end = payload.size();
          if (end > at) notice.ids.push_back(payload.substr(at, end - at));
          at = end + 1;
        }
        notify_watchers(notice);
      }
    }
  }
}

// --- shared rate limits -------------------------------------------------------------------

Result<std::chrono::seconds> PostgresStore::hit(std::string_view name, const std::string& key, int limit,
                                                std::chrono::seconds window, Timestamp now, bool count) {
  if (limit <= 0) return window;  // no hit ever fits
  return pg::with_connection(*pool_, "cannot count a rate limit", [&](Connection& conn) -> Result<std::chrono::seconds> {
    if (++rate_hits_ % 10'000 == 0) {
      conn.exec("DELETE FROM rate_window WHERE window_start < $1", {time_param(now - std::chrono::hours(24))});
    }
    const std::int64_t seconds = window.count();
    pg::Rows row = count && limit > 0
        ? conn.exec(
              // SET reads the row as it was: a hit counts in a new window, or in one with room.
              "INSERT INTO rate_window (name, key, window_start, count, counted) VALUES ($1, $2, $3, 1, true) ON "
              "CONFLICT (name, key) DO UPDATE SET window_start = CASE WHEN rate_window.window_start <= $3::timestamp "
              "- $4::integer * interval '1 second' THEN $3::timestamp ELSE rate_window.window_start END, count = CASE "
              "WHEN rate_window.window_start <= $3::timestamp - $4::integer * interval '1 second' THEN 1 WHEN "
              "rate_window.count < $5 THEN rate_window.count + 1 ELSE rate_window.count END, counted = "
              "rate_window.window_start <= $3::timestamp - $4::integer * interval '1 second' OR rate_window.count < "
              "$5 RETURNING counted, window_start",
              {std::string(name), key, time_param(now), seconds, limit})
        : conn.exec(
              "SELECT count < $4 OR window_start <= $3::timestamp - $5::integer * interval '1 second', window_start "
              "FROM rate_window WHERE name = $1 AND key = $2",
              {std::string(name), key, time_param(now), limit, seconds});
    if (row.empty() || row.boolean(0, 0)) return std::chrono::seconds{0};
    const auto left = std::chrono::ceil<std::chrono::seconds>(row.time(0, 1) + window - now);
    return std::max(left, std::chrono::seconds{1});
  });
}

// --- accounts ------------------------------------------------------------------------------

Status PostgresStore::create(const Account& account) {
  if (auto ok = store_common::check_new_account(account); !ok) return ok;
  auto emails = store_common::normalized_emails(account);
  if (!emails) return emails.error();
  return pg::with_connection(*pool_, "cannot create account " + account.id, [&](Connection& conn) -> Status {
    pg::Transaction tx(conn);
    const auto created = account.created_at == Timestamp{} ? std::chrono::system_clock::now() : account.created_at;
    // The opening balance goes through the ledger like every other change.
    auto inserted = conn.exec(
        "INSERT INTO account (id, name, currency, minor_exponent, balance_micros, credit_limit_micros, status, tariff, "
        "secret_hash, created_at, language) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (id) DO NOTHING",
        {account.id, account.name, account.currency.code(), account.currency.minor_exponent(),
         account.balance.micros(), account.credit_limit.micros(), to_string(account.status), account.tariff,
         account.secret_hash, time_param(created), account.language});
    if (inserted.affected() == 0) return store_common::account_exists(account.id);
    // A number or an address tells a trigger whose account it is: one account each.
    for (const auto& n : account.caller_numbers) {
      auto owner = conn.exec(
          "WITH added AS (INSERT INTO account_number (account_id, number) VALUES ($1, $2) ON CONFLICT DO NOTHING "
          "RETURNING account_id) SELECT account_id FROM added UNION ALL SELECT account_id FROM account_number "
          "WHERE number = $2 AND NOT EXISTS (SELECT 1 FROM added)",
          {account.id, n.digits()});
      if (owner.empty() || owner.text(0, 0) != account.id) {
        return store_common::number_taken(n.digits(), owner.empty() ? "(another)" : owner.text(0, 0));
      }
    }
    for (const auto& email : *emails) {
      auto owner = conn.exec(
          "WITH added AS (INSERT INTO account_email (email, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING "
          "RETURNING account_id) SELECT account_id FROM added UNION ALL SELECT account_id FROM account_email "
          "WHERE email = $1 AND NOT EXISTS (SELECT 1 FROM added)",
          {email, account.id});
      if (owner.empty() || owner.text(0, 0) != account.id) {
        return store_common::email_taken(email, owner.empty() ? "(another)" : owner.text(0, 0));
      }
    }
    if (!account.balance.is_zero()) {
      conn.exec(
          "INSERT INTO ledger (account_id, amount_micros, kind, reference, note, at, balance_after_micros) "
          "VALUES ($1, $2, 'topup', '', 'opening balance', $3, $2)",
          {account.id, account.balance.micros(), time_param(created)});
    }
    tx.commit();
    return ok_status();
  });
}

Result<std::optional<Account>> PostgresStore::find(const std::string& id) {
  return pg::with_connection(*pool_, "cannot read account " + id,
                             [&](Connection& conn) -> Result<std::optional<Account>> {
    pg::Transaction tx(conn, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ");  // the row and its numbers agree
    auto account = read_account(conn, id);
    tx.commit();
    return account;
  });
}

Result<std::vector<Account>> PostgresStore::list() {
  return pg::with_connection(*pool_, "cannot list accounts", [&](Connection& conn) -> Result<std::vector<Account>> {
    pg::Transaction tx(conn, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ");
    auto ids = conn.exec("SELECT id FROM account ORDER BY id");
    std::vector<Account> accounts;
    for (int i = 0; i < ids.size(); ++i) {
      if (auto account = read_account(conn, ids.text(i, 0))) accounts.push_back(std::move(*account));
    }
    tx.commit();
    return accounts;
  });
}

Result<std::optional<Account>> PostgresStore::find_registered(const std::string& sql, const std::string& value,
                                                              const std::string& what) {
  return pg::with_connection(*pool_, "cannot look up the account of " + what,
                             [&](Connection& conn) -> Result<std::optional<Account>> {
    pg::Transaction tx(conn, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ");
    auto ids = conn.exec(sql, {value});
    if (ids.empty()) return std::optional<Account>{};
    if (ids.size() > 1) {
      return Error{"ambiguous_registration",
                   what + " is registered to accounts " + ids.text(0, 0) + " and " + ids.text(1, 0), "account"};
    }
    auto account = read_account(conn, ids.text(0, 0));
    tx.commit();
    return account;
  });
}

Result<std::optional<Account>> PostgresStore::find_by_number(const PhoneNumber& number) {
  return find_registered("SELECT account_id FROM account_number WHERE number = $1 ORDER BY account_id LIMIT 2",
                         number.digits(), "+" + number.digits());
}

Result<std::optional<Account>> PostgresStore::find_by_email(std::string_view email) {
  return find_registered("SELECT account_id FROM account_email WHERE email = $1 LIMIT 2", std::string(email),
                         escape_control(email));
}

Status PostgresStore::set_status(const std::string& id, AccountStatus status) {
  return pg::with_connection(*pool_, "cannot update account " + id, [&](Connection& conn) -> Status {
    if (conn.exec("UPDATE account SET status = $1 WHERE id = $2", {to_string(status), id}).affected() == 0) {
      return store_common::unknown_account(id, "id");
    }
    return ok_status();
  });
}

// --- ledger ----------------------------------------------------------------------------

Result<LedgerEntry> PostgresStore::post(const LedgerEntry& entry) {
  return pg::with_connection(*pool_, "cannot post to the ledger of " + entry.account_id,
                             [&](Connection& conn) -> Result<LedgerEntry> {
    pg::Transaction tx(conn);
    // The account's row lock: posts to one account follow each other, on every node, so
    // the reference check below and the balance after are exact.
    auto account = conn.exec("SELECT currency, minor_exponent FROM account WHERE id = $1 FOR UPDATE",
                             {entry.account_id});
    if (account.empty()) return store_common::unknown_account(entry.account_id);
    const Currency currency = currency_from_row(account.text(0, 0), account.integer(0, 1));
    if (!(entry.amount.currency() == currency)) return store_common::currency_mismatch(entry, currency);
    sqldb::PgDatabase sql(conn);
    LedgerEntry stored = sqldb::post_ledger(sql, entry, currency);
    tx.commit();
    return stored;
  });
}

Result<std::vector<LedgerEntry>> PostgresStore::entries(const std::string& account_id, std::size_t limit) {
  return pg::with_connection(*pool_, "cannot read the ledger of " + account_id,
                             [&](Connection& conn) -> Result<std::vector<LedgerEntry>> {
    pg::Transaction tx(conn, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ");
    auto account = conn.exec("SELECT currency, minor_exponent FROM account WHERE id = $1", {account_id});
    if (account.empty()) return store_common::unknown_account(account_id);
    const Currency currency = currency_from_row(account.text(0, 0), account.integer(0, 1));
    auto rows = conn.exec(
        "SELECT id, amount_micros, kind, reference, note, at, balance_after_micros FROM ledger WHERE account_id = $1 "
        "ORDER BY id LIMIT $2",
        {account_id, limit == 0 ? Param(std::nullopt) : Param(limit)});
    std::vector<LedgerEntry> out;
    for (int i = 0; i < rows.size(); ++i) {
      LedgerEntry e;
      e.id = rows.integer(i, 0);
      e.account_id = account_id;
      e.amount = Money::from_micros(rows.integer(i, 1), currency);
      e.kind = ledger_kind_from_string(rows.text(i, 2)).value_or(LedgerKind::adjustment);
      e.reference = rows.text(i, 3);
      e.note = rows.text(i, 4);
      e.at = rows.time(i, 5);
      e.balance_after = Money::from_micros(rows.integer(i, 6), currency);
      out.push_back(std::move(e));
    }
    tx.commit();
    return out;
  });
}

// --- API keys ----------------------------------------------------------------------------

Status PostgresStore::Keys::add(const ApiKeyRecord& key) {
  return pg::with_connection(*store_.pool_, "cannot store API key " + key.id, [&](Connection& conn) -> Status {
    auto added = conn.exec(
        "INSERT INTO api_key (id, name, scope, key_hash, webhook_secret, created_at) VALUES ($1,$2,$3,$4,$5,$6) "
        "ON CONFLICT (id) DO NOTHING",
        {key.id, key.name, key.scope, key.key_hash, key.webhook_secret, time_param(key.created_at)});
    if (added.affected() == 0) return store_common::key_exists(key.id);
    return ok_status();
  });
}

Result<std::vector<ApiKeyRecord>> PostgresStore::Keys::list() {
  return pg::with_connection(*store_.pool_, "cannot list API keys",
                             [&](Connection& conn) -> Result<std::vector<ApiKeyRecord>> {
    auto rows = conn.exec(std::string(key_columns) + " ORDER BY created_at, id");
    std::vector<ApiKeyRecord> keys;
    for (int i = 0; i < rows.size(); ++i) keys.push_back(read_key(rows, i));
    return keys;
  });
}

Result<std::optional<ApiKeyRecord>> PostgresStore::Keys::find(const std::string& id) {
  return pg::with_connection(*store_.pool_, "cannot read API keys",
                             [&](Connection& conn) -> Result<std::optional<ApiKeyRecord>> {
    auto rows = conn.exec(std::string(key_columns) + " WHERE id = $1", {id});
    if (rows.empty()) return std::optional<ApiKeyRecord>{};
    return std::optional<ApiKeyRecord>{read_key(rows, 0)};
  });
}

Status PostgresStore::Keys::revoke(const std::string& id, Timestamp at) {
  return pg::with_connection(*store_.pool_, "cannot revoke API key " + id, [&](Connection& conn) -> Status {
    auto rows = conn.exec(
        "WITH done AS (UPDATE api_key SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id) "
        "SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM api_key WHERE id = $1)",
        {id, time_param(at)});
    if (rows.integer(0, 0) != 0) return ok_status();
    if (rows.integer(0, 1) == 0) return store_common::no_such_key(id);
    return store_common::already_revoked(id);
  });
}

}  // namespace callback::store_postgres
