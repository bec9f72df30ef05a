#include "sqlite_store.hpp"
#include "sqldb_sqlite.hpp"
#include "store_checks.hpp"

#include <callback/context.hpp>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace callback::store_sqlite {
namespace fs = std::filesystem;

namespace {

using sqlite::format_time;
using sqlite::parse_time;

Error database_error(const std::string& what, const std::exception& e) {
  return Error{"store_failed", what + ": " + e.what(), {}}.as(ErrorKind::internal);
}

Currency currency_from_row(const std::string& code, int exponent) {
  auto currency = Currency::of(code, exponent);
  return currency ? *currency : Currency{};
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const SqliteOptions& options) {
  auto database = sqlite::open_database(options);
  if (!database) return database.error();
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(database->db), database->path, options));
  store->schema_version_ = database->schema_version;
  return store;
}

// --- CDRs ------------------------------------------------------------------------------

SqliteStore::~SqliteStore() {
  writer_.stop();  // what append_async still holds is written first
  if (owner_fd_ >= 0) ::close(owner_fd_);  // the lock goes with it
}

Status SqliteStore::claim(const NodeClaim&) {
  if (owner_fd_ >= 0) return ok_status();
  const std::string lock_path = path_.string() + ".owner";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error{"store.locked", "cannot open " + lock_path + ": " + std::strerror(errno), "store.path"};
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    const auto n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    std::string holder(pid, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Error{"store.locked",
                 path_.string() + " is in use by another callback service" +
                     (holder.empty() ? std::string() : " (pid " + holder + ")") +
                     " (callbackd, or callbackctl call or reconcile): one service at a time owns its calls in flight",
                 "store.path"};
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds all the same; only the error message of a second process is poorer.
  }
  owner_fd_ = fd;
  return ok_status();
}

void SqliteStore::append_async(std::vector<Cdr> cdrs, AppendDone done) {
  writer_.submit({}, std::move(cdrs), std::move(done));
}

void SqliteStore::write_async(std::vector<JournalEntry> entries, std::vector<Cdr> cdrs, AppendDone done) {
  writer_.submit(std::move(entries), std::move(cdrs), std::move(done));
}

void SqliteStore::flush() { writer_.flush(); }

Status SqliteStore::append(std::span<Cdr> cdrs) { return write(cdrs, {}); }

Status SqliteStore::write(std::span<Cdr> cdrs, std::span<const JournalEntry> entries) {
  std::lock_guard lock(mutex_);
  try {
    SQLite::Transaction transaction(*db_);
    if (!entries.empty()) {
      SQLite::Statement upsert(
          *db_,
          "INSERT INTO callback_journal (id, idempotency_key, state, final, server, reservation, call, created_at, "
          "updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET idempotency_key = "
          "excluded.idempotency_key, state = excluded.state, final = excluded.final, server = excluded.server, "
          "reservation = excluded.reservation, call = excluded.call, updated_at = excluded.updated_at");
      for (const auto& e : entries) {
        upsert.reset();
        upsert.clearBindings();
        upsert.bind(1, e.id);
        if (!e.idempotency_key.empty()) upsert.bind(2, e.idempotency_key);  // else NULL: no key
        upsert.bind(3, e.state);
        upsert.bind(4, e.final ? 1 : 0);
        upsert.bind(5, e.server);
        upsert.bind(6, e.reservation);
        upsert.bind(7, e.call);
        upsert.bind(8, format_time(e.created_at));
        upsert.bind(9, format_time(e.updated_at));
        upsert.exec();
        if (e.final) ++finals_since_prune_;
      }
      if (finals_since_prune_ >= journal_prune_every_) {
        SQLite::Statement prune(*db_,
                                "DELETE FROM callback_journal WHERE final = 1 AND id NOT IN (SELECT id FROM "
                                "callback_journal WHERE final = 1 ORDER BY updated_at DESC, rowid DESC LIMIT ?)");
        prune.bind(1, static_cast<std::int64_t>(journal_kept_));
        prune.exec();
        finals_since_prune_ = 0;
      }
    }
    // Compiled once: CDRs are written for every call, and preparing this statement costs
    // more than running it.
    if (!insert_cdr_) {
      insert_cdr_ = std::make_unique<SQLite::Statement>(
          *db_,
          "INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, "
          "lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, "
          "callback_id, leg, cost_micros, currency, hangup_cause) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    if (!sql_) sql_ = std::make_unique<sqldb::SqliteDatabase>(*db_);
    SQLite::Statement& insert = *insert_cdr_;
    insert.reset();
    insert.clearBindings();
    std::vector<std::int64_t> ids;
    ids.reserve(cdrs.size());
    for (const auto& cdr : cdrs) {
      if (cdr.duration < 0 || cdr.billsec < 0 || cdr.billsec > cdr.duration) {
        return store_common::invalid_cdr(cdr);
      }
      int i = 1;
      insert.bind(i++, format_time(cdr.calldate));
      for (const std::string* text : {&cdr.clid, &cdr.src, &cdr.dst, &cdr.dcontext, &cdr.channel, &cdr.dstchannel,
                                      &cdr.lastapp, &cdr.lastdata}) {
        insert.bind(i++, *text);
      }
      insert.bind(i++, cdr.duration);
      insert.bind(i++, cdr.billsec);
      insert.bind(i++, std::string(to_string(cdr.disposition)));
      insert.bind(i++, cdr.amaflags);
      insert.bind(i++, cdr.accountcode);
      insert.bind(i++, cdr.uniqueid);
      insert.bind(i++, cdr.userfield);
      insert.bind(i++, cdr.callback_id);
      insert.bind(i++, std::string(to_string(cdr.leg)));
      if (cdr.cost) {
        insert.bind(i++, cdr.cost->micros());
        insert.bind(i++, std::string(cdr.cost->currency().code()));
      } else {
        insert.bind(i++);
        insert.bind(i++);
      }
      insert.bind(i++, cdr.hangup_cause.code());
      insert.exec();
      insert.reset();
      ids.push_back(db_->getLastInsertRowid());
      sqldb::count_caller(*sql_, cdr);
    }
    transaction.commit();
    for (std::size_t k = 0; k < cdrs.size(); ++k) cdrs[k].id = ids[k];
    return ok_status();
  } catch (const std::exception& e) {
    return database_error(entries.empty() ? "cannot store CDRs" : "cannot store CDRs and the callback journal", e);
  }
}

Result<std::vector<CallerStats>> SqliteStore::caller_stats(const std::string& number, std::size_t limit) {
  std::lock_guard lock(reader_mutex_);
  try {
    auto db = reader();
    if (!db) return db.error();
    sqldb::SqliteDatabase reader_sql(**db);
    return sqldb::read_caller_stats(reader_sql, number, limit);
  } catch (const std::exception& e) {
    return database_error("cannot read caller statistics", e);
  }
}

// --- the callback journal ------------------------------------------------------------------

Result<std::vector<JournalEntry>> SqliteStore::select_entries(const std::string& where, const std::string& value,
                                                              std::size_t limit) {
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement select(*db_, "SELECT id, COALESCE(idempotency_key, ''), state, final, server, reservation, call, "
                                   "created_at, updated_at FROM callback_journal " + where);
    int i = 1;
    if (!value.empty()) select.bind(i++, value);
    if (limit != 0) select.bind(i++, static_cast<std::int64_t>(limit));
    std::vector<JournalEntry> out;
    while (select.executeStep()) {
      out.push_back({.id = select.getColumn(0).getString(),
                     .idempotency_key = select.getColumn(1).getString(),
                     .state = select.getColumn(2).getString(),
                     .final = select.getColumn(3).getInt() != 0,
                     .server = select.getColumn(4).getString(),
                     .reservation = select.getColumn(5).getString(),
                     .call = select.getColumn(6).getString(),
                     .created_at = parse_time(select.getColumn(7).getString()),
                     .updated_at = parse_time(select.getColumn(8).getString())});
    }
    return out;
  } catch (const std::exception& e) {
    return database_error("cannot read the callback journal", e);
  }
}

Result<std::vector<JournalEntry>> SqliteStore::open() {
  return select_entries("WHERE final = 0 ORDER BY created_at, id", {}, 0);
}

Result<std::vector<JournalEntry>> SqliteStore::recent(std::size_t limit) {
  return select_entries("WHERE final = 1 ORDER BY updated_at DESC, id DESC LIMIT ?", {}, limit == 0 ? 1 : limit);
}

Result<std::optional<JournalEntry>> SqliteStore::entry(const std::string& id) {
  auto found = select_entries("WHERE id = ?", id, 0);
  if (!found) return found.error();
  if (found->empty()) return std::optional<JournalEntry>{};
  return std::optional<JournalEntry>{std::move(found->front())};
}

Status SqliteStore::query(const CdrQuery& query, const std::function<bool(const Cdr&)>& visit) {
  std::lock_guard lock(mutex_);
  try {
    std::string sql =
        "SELECT id, calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, "
        "disposition, amaflags, accountcode, uniqueid, userfield, callback_id, leg, cost_micros, currency, "
        "hangup_cause FROM cdr WHERE 1=1";
    // Only fixed SQL text is built here; every value is bound below.
    if (query.since) sql += " AND calldate >= :since";
    if (query.until) sql += " AND calldate < :until";
    if (!query.account.empty()) sql += " AND accountcode = :account";
    if (!query.number.empty()) sql += " AND (src = :number OR dst = :number)";
    if (!query.callback_id.empty()) sql += " AND callback_id = :callback_id";
    sql += " ORDER BY calldate, id";
    if (query.limit > 0) sql += " LIMIT :limit";
    SQLite::Statement select(*db_, sql);
    if (query.since) select.bind(":since", format_time(*query.since));
    if (query.until) select.bind(":until", format_time(*query.until));
    if (!query.account.empty()) select.bind(":account", query.account);
    if (!query.number.empty()) select.bind(":number", query.number);
    if (!query.callback_id.empty()) select.bind(":callback_id", query.callback_id);
    if (query.limit > 0) select.bind(":limit", static_cast<std::int64_t>(query.limit));
    while (select.executeStep()) {
      Cdr cdr;
      int c = 0;
      cdr.id = select.getColumn(c++).getInt64();
      cdr.calldate = parse_time(select.getColumn(c++).getString());
      for (std::string* text : {&cdr.clid, &cdr.src, &cdr.dst, &cdr.dcontext, &cdr.channel, &cdr.dstchannel,
                                &cdr.lastapp, &cdr.lastdata}) {
        *text = select.getColumn(c++).getString();
      }
      cdr.duration = select.getColumn(c++).getInt64();
      cdr.billsec = select.getColumn(c++).getInt64();
      cdr.disposition = disposition_from_string(select.getColumn(c++).getString()).value_or(Disposition::failed);
      cdr.amaflags = select.getColumn(c++).getInt64();
      cdr.accountcode = select.getColumn(c++).getString();
      cdr.uniqueid = select.getColumn(c++).getString();
      cdr.userfield = select.getColumn(c++).getString();
      cdr.callback_id = select.getColumn(c++).getString();
      cdr.leg = select.getColumn(c++).getString() == "B" ? LegRole::b : LegRole::a;
      const auto cost = select.getColumn(c++);
      const auto currency = select.getColumn(c++);
      if (!cost.isNull() && !currency.isNull()) {
        if (auto cur = Currency::of(currency.getString())) cdr.cost = Money::from_micros(cost.getInt64(), *cur);
      }
      cdr.hangup_cause = HangupCause{select.getColumn(c++).getInt()};
      if (!visit(cdr)) break;
    }
    return ok_status();
  } catch (const std::exception& e) {
    return database_error("cannot read CDRs", e);
  }
}

// --- accounts --------------------------------------------------------------------------

Status SqliteStore::create(const Account& account) {
  if (auto ok = store_common::check_new_account(account); !ok) return ok;
  auto emails = store_common::normalized_emails(account);
  if (!emails) return emails.error();
  std::lock_guard lock(mutex_);
  try {
    // IMMEDIATE: it reads before it writes, and another process may be creating too; a
    // read transaction that then wants to write is refused at once (SQLITE_BUSY), a
    // writer's lock taken first waits in the busy handler.
    SQLite::Transaction transaction(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement exists(*db_, "SELECT 1 FROM account WHERE id = ?");
    exists.bind(1, account.id);
    if (exists.executeStep()) {
      return store_common::account_exists(account.id);
    }
    SQLite::Statement insert(*db_,
                             "INSERT INTO account (id, name, currency, minor_exponent, balance_micros, "
                             "credit_limit_micros, status, tariff, secret_hash, created_at, language) "
                             "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    insert.bind(1, account.id);
    insert.bind(2, account.name);
    insert.bind(3, std::string(account.currency.code()));
    insert.bind(4, account.currency.minor_exponent());
    // The opening balance goes through the ledger like every other change.
    insert.bind(5, static_cast<std::int64_t>(0));
    insert.bind(6, account.credit_limit.micros());
    insert.bind(7, std::string(to_string(account.status)));
    insert.bind(8, account.tariff);
    insert.bind(9, account.secret_hash);
    const auto created = account.created_at == Timestamp{} ? std::chrono::system_clock::now() : account.created_at;
    insert.bind(10, format_time(created));
    insert.bind(11, account.language);
    insert.exec();
    // A number or an address tells a trigger whose account it is: one account each.
    SQLite::Statement number_taken(*db_, "SELECT account_id FROM account_number WHERE number = ? LIMIT 1");
    SQLite::Statement number(*db_, "INSERT OR IGNORE INTO account_number (account_id, number) VALUES (?, ?)");
    for (const auto& n : account.caller_numbers) {
      number_taken.bind(1, n.digits());
      if (number_taken.executeStep()) {
        return store_common::number_taken(n.digits(), number_taken.getColumn(0).getString());
      }
      number_taken.reset();
      number.bind(1, account.id);
      number.bind(2, n.digits());
      number.exec();
      number.reset();
    }
    SQLite::Statement email_taken(*db_, "SELECT account_id FROM account_email WHERE email = ?");
    SQLite::Statement email(*db_, "INSERT INTO account_email (email, account_id) VALUES (?, ?)");
    for (const auto& normal : *emails) {
      email_taken.bind(1, normal);
      if (email_taken.executeStep()) {
        return store_common::email_taken(normal, email_taken.getColumn(0).getString());
      }
      email_taken.reset();
      email.bind(1, normal);
      email.bind(2, account.id);
      email.exec();
      email.reset();
    }
    if (!account.balance.is_zero()) {
      SQLite::Statement ledger(*db_,
                               "INSERT INTO ledger (account_id, amount_micros, kind, reference, note, at, "
                               "balance_after_micros) VALUES (?, ?, 'topup', '', 'opening balance', ?, ?)");
      ledger.bind(1, account.id);
      ledger.bind(2, account.balance.micros());
      ledger.bind(3, format_time(created));
      ledger.bind(4, account.balance.micros());
      ledger.exec();
      SQLite::Statement update(*db_, "UPDATE account SET balance_micros = ? WHERE id = ?");
      update.bind(1, account.balance.micros());
      update.bind(2, account.id);
      update.exec();
    }
    transaction.commit();
    return ok_status();
  } catch (const std::exception& e) {
    return database_error("cannot create account " + account.id, e);
  }
}

Result<SQLite::Database*> SqliteStore::reader() {
  if (!reader_) {
    auto options = options_;
    options.path = path_;
    auto opened = sqlite::open_database(options);
    if (!opened) return opened.error();
    reader_ = std::move(opened->db);
  }
  return reader_.get();
}

Result<std::optional<Account>> SqliteStore::find_locked(SQLite::Database& db, const std::string& id) {
  SQLite::Statement select(db,
                           "SELECT id, name, currency, minor_exponent, balance_micros, credit_limit_micros, status, "
                           "tariff, secret_hash, created_at, reserved_micros, language FROM account WHERE id = ?");
  select.bind(1, id);
  if (!select.executeStep()) return std::optional<Account>{};
  Account account;
  account.id = select.getColumn(0).getString();
  account.name = select.getColumn(1).getString();
  account.currency = currency_from_row(select.getColumn(2).getString(), select.getColumn(3).getInt());
  account.balance = Money::from_micros(select.getColumn(4).getInt64(), account.currency);
  account.credit_limit = Money::from_micros(select.getColumn(5).getInt64(), account.currency);
  account.status = select.getColumn(6).getString() == "disabled" ? AccountStatus::disabled : AccountStatus::active;
  account.tariff = select.getColumn(7).getString();
  account.secret_hash = select.getColumn(8).getString();
  account.created_at = parse_time(select.getColumn(9).getString());
  account.reserved = Money::from_micros(select.getColumn(10).getInt64(), account.currency);
  account.language = select.getColumn(11).getString();
  SQLite::Statement numbers(db, "SELECT number FROM account_number WHERE account_id = ? ORDER BY number");
  numbers.bind(1, id);
  while (numbers.executeStep()) {
    if (auto n = PhoneNumber::from_e164(numbers.getColumn(0).getString())) account.caller_numbers.push_back(*n);
  }
  SQLite::Statement emails(db, "SELECT email FROM account_email WHERE account_id = ? ORDER BY email");
  emails.bind(1, id);
  while (emails.executeStep()) account.emails.push_back(emails.getColumn(0).getString());
  return std::optional<Account>{std::move(account)};
}

Result<std::optional<Account>> SqliteStore::find_registered(SQLite::Database& db, SQLite::Statement& select,
                                                            const std::string& what) {
  if (!select.executeStep()) return std::optional<Account>{};
  const std::string id = select.getColumn(0).getString();
  if (select.executeStep()) {
    return Error{"ambiguous_registration",
                 what + " is registered to accounts " + id + " and " + select.getColumn(0).getString(), "account"};
  }
  return find_locked(db, id);
}

Result<std::optional<Account>> SqliteStore::find_by_number(const PhoneNumber& number) {
  std::lock_guard lock(reader_mutex_);
  try {
    auto db = reader();
    if (!db) return db.error();
    SQLite::Statement select(**db, "SELECT account_id FROM account_number WHERE number = ? ORDER BY account_id LIMIT 2");
    select.bind(1, number.digits());
    return find_registered(**db, select, "+" + number.digits());
  } catch (const std::exception& e) {
    return database_error("cannot look up the account of +" + number.digits(), e);
  }
}

Result<std::optional<Account>> SqliteStore::find_by_email(std::string_view email) {
  std::lock_guard lock(reader_mutex_);
  try {
    auto db = reader();
    if (!db) return db.error();
    SQLite::Statement select(**db, "SELECT account_id FROM account_email WHERE email = ?");
    select.bind(1, std::string(email));
    return find_registered(**db, select, escape_control(email));
  } catch (const std::exception& e) {
    return database_error("cannot look up the account of an e-mail address", e);
  }
}

Result<std::optional<Account>> SqliteStore::find(const std::string& id) {
  std::lock_guard lock(reader_mutex_);
  try {
    auto db = reader();
    if (!db) return db.error();
    return find_locked(**db, id);
  } catch (const std::exception& e) {
    return database_error("cannot read account " + id, e);
  }
}

Result<std::vector<Account>> SqliteStore::list() {
  std::lock_guard lock(mutex_);
  try {
    std::vector<std::string> ids;
    SQLite::Statement select(*db_, "SELECT id FROM account ORDER BY id");
    while (select.executeStep()) ids.push_back(select.getColumn(0).getString());
    std::vector<Account> accounts;
    for (const auto& id : ids) {
      auto account = find_locked(id);
      if (!account) return account.error();
      if (*account) accounts.push_back(std::move(**account));
    }
    return accounts;
  } catch (const std::exception& e) {
    return database_error("cannot list accounts", e);
  }
}

Status SqliteStore::set_status(const std::string& id, AccountStatus status) {
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement update(*db_, "UPDATE account SET status = ? WHERE id = ?");
    update.bind(1, std::string(to_string(status)));
    update.bind(2, id);
    if (update.exec() == 0) return store_common::unknown_account(id, "id");
    return ok_status();
  } catch (const std::exception& e) {
    return database_error("cannot update account " + id, e);
  }
}

// --- ledger ----------------------------------------------------------------------------

Result<LedgerEntry> SqliteStore::post(const LedgerEntry& entry) {
  std::lock_guard lock(mutex_);
  try {
    // IMMEDIATE: the write lock first, so a writer on another connection (callbackctl,
    // billing) waits in the busy handler instead of failing this one half-way.
    SQLite::Transaction transaction(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    auto account = find_locked(entry.account_id);
    if (!account) return account.error();
    if (!*account) {
      return store_common::unknown_account(entry.account_id);
    }
    if (!(entry.amount.currency() == (*account)->currency)) return store_common::currency_mismatch(entry, (*account)->currency);
    if (!sql_) sql_ = std::make_unique<sqldb::SqliteDatabase>(*db_);
    struct Idle {  // no statement left running, whatever happens: the transaction may roll back
      sqldb::Database& db;
      ~Idle() { db.reset_statements(); }
    } idle{*sql_};
    LedgerEntry stored = sqldb::post_ledger(*sql_, entry, (*account)->currency);
    transaction.commit();
    return stored;
  } catch (const Exception& e) {
    return e.error();
  } catch (const std::exception& e) {
    return database_error("cannot post to the ledger of " + entry.account_id, e);
  }
}

Result<std::vector<LedgerEntry>> SqliteStore::entries(const std::string& account_id, std::size_t limit) {
  std::lock_guard lock(mutex_);
  try {
    auto account = find_locked(account_id);
    if (!account) return account.error();
    if (!*account) return store_common::unknown_account(account_id);
    const Currency currency = (*account)->currency;
    SQLite::Statement select(*db_,
                             "SELECT id, amount_micros, kind, reference, note, at, balance_after_micros FROM ledger "
                             "WHERE account_id = ? ORDER BY id LIMIT ?");
    select.bind(1, account_id);
    select.bind(2, limit == 0 ? std::int64_t{-1} : static_cast<std::int64_t>(limit));
    std::vector<LedgerEntry> out;
    while (select.executeStep()) {
      LedgerEntry e;
      e.id = select.getColumn(0).getInt64();
      e.account_id = account_id;
      e.amount = Money::from_micros(select.getColumn(1).getInt64(), currency);
      e.kind = ledger_kind_from_string(select.getColumn(2).getString()).value_or(LedgerKind::adjustment);
      e.reference = select.getColumn(3).getString();
      e.note = select.getColumn(4).getString();
      e.at = parse_time(select.getColumn(5).getString());
      e.balance_after = Money::from_micros(select.getColumn(6).getInt64(), currency);
      out.push_back(std::move(e));
    }
    return out;
  } catch (const std::exception& e) {
    return database_error("cannot read the ledger of " + account_id, e);
  }
}

// --- API keys ----------------------------------------------------------------------------

namespace {

ApiKeyRecord read_key(SQLite::Statement& row) {
  ApiKeyRecord key{.id = row.getColumn("id").getString(), .name = row.getColumn("name").getString(),
                   .scope = row.getColumn("scope").getString(), .key_hash = row.getColumn("key_hash").getString(),
                   .webhook_secret = row.getColumn("webhook_secret").getString(),
                   .created_at = sqlite::parse_time(row.getColumn("created_at").getString())};
  if (!row.getColumn("revoked_at").isNull()) key.revoked_at = sqlite::parse_time(row.getColumn("revoked_at").getString());
  return key;
}

}  // namespace

Status SqliteStore::Keys::add(const ApiKeyRecord& key) {
  std::lock_guard lock(store_.mutex_);
  try {
    SQLite::Statement exists(*store_.db_, "SELECT 1 FROM api_key WHERE id = ?");
    exists.bind(1, key.id);
    if (exists.executeStep()) return store_common::key_exists(key.id);
    SQLite::Statement insert(*store_.db_, "INSERT INTO api_key (id, name, key_hash, webhook_secret, created_at, scope) "
                                          "VALUES (?, ?, ?, ?, ?, ?)");
    insert.bind(1, key.id);
    insert.bind(2, key.name);
    insert.bind(3, key.key_hash);
    insert.bind(4, key.webhook_secret);
    insert.bind(5, sqlite::format_time(key.created_at));
    insert.bind(6, key.scope);
    insert.exec();
    return ok_status();
  } catch (const std::exception& e) {
    return database_error("cannot store API key " + key.id, e);
  }
}

Result<std::vector<ApiKeyRecord>> SqliteStore::Keys::list() {
  std::lock_guard lock(store_.mutex_);
  try {
    SQLite::Statement query(*store_.db_, "SELECT * FROM api_key ORDER BY created_at, id");
    std::vector<ApiKeyRecord> keys;
    while (query.executeStep()) keys.push_back(read_key(query));
    return keys;
  } catch (const std::exception& e) {
    return database_error("cannot list API keys", e);
  }
}

Result<std::optional<ApiKeyRecord>> SqliteStore::Keys::find(const std::string& id) {
  // The reader connection: a key check never waits for the writer's transactions.
  std::lock_guard lock(store_.reader_mutex_);
  try {
    auto db = store_.reader();
    if (!db) return db.error();
    SQLite::Statement query(**db, "SELECT * FROM api_key WHERE id = ?");
    query.bind(1, id);
    if (!query.executeStep()) return std::optional<ApiKeyRecord>{};
    return std::optional<ApiKeyRecord>{read_key(query)};
  } catch (const std::exception& e) {
    return database_error("cannot read API keys", e);
  }
}

Status SqliteStore::Keys::revoke(const std::string& id, Timestamp at) {
  std::lock_guard lock(store_.mutex_);
  try {
    SQLite::Statement update(*store_.db_, "UPDATE api_key SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
    update.bind(1, sqlite::format_time(at));
    update.bind(2, id);
    if (update.exec() != 0) return ok_status();
    SQLite::Statement exists(*store_.db_, "SELECT 1 FROM api_key WHERE id = ?");
    exists.bind(1, id);
    if (!exists.executeStep()) return store_common::no_such_key(id);
    return store_common::already_revoked(id);
  } catch (const std::exception& e) {
    return database_error("cannot revoke API key " + id, e);
  }
}

}  // namespace callback::store_sqlite
