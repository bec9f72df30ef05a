#pragma once
// callback.store.postgres: the store of a deployment that outgrows one machine. Several
// callbackd nodes share one PostgreSQL: CDRs, accounts, the ledger, caller statistics, the
// call journal and API keys, in the same tables and columns as the SQLite store's.
//
// Pooled connections (pg::Pool), each statement prepared once per connection. The ledger
// posts increments under the account row's lock, so concurrent nodes never lose an update,
// and a reference is posted once (a unique index keeps it so).
#include "group_writer.hpp"
#include "pg.hpp"

#include <callback/store.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace callback::store_postgres {

struct PostgresOptions {
  std::string conninfo;        // libpq's keywords or URI; a password may be in it or in ~/.pgpass
  std::size_t pool_size = 8;   // connections at most
};

class PostgresStore final : public Store, CdrStore, AccountStore, LedgerStore, CallJournal {
 public:
  // Connects and migrates; Error (naming the server, never the password) if it cannot.
  [[nodiscard]] static Result<std::unique_ptr<PostgresStore>> open(const PostgresOptions& options);
  ~PostgresStore() override;

  CdrStore& cdrs() override { return *this; }
  AccountStore& accounts() override { return *this; }
  LedgerStore& ledger() override { return *this; }
  CallJournal* journal() override { return this; }
  ApiKeyStore* api_keys() override { return &keys_; }
  [[nodiscard]] int schema_version() const override { return pool_->schema_version(); }
  // The connection string: the PostgreSQL billing uses it when not told otherwise.
  [[nodiscard]] std::string location() const override { return pool_->conninfo(); }
  [[nodiscard]] const std::string& where() const { return pool_->where(); }
  // SELECT 1 on a pooled connection (a new one if the last broke).
  [[nodiscard]] Status health() override;

  // CdrStore
  Status append(std::span<Cdr> cdrs) override;
  using CdrStore::append;
  void append_async(std::vector<Cdr> cdrs, AppendDone done) override;
  void flush() override;
  Status query(const CdrQuery& query, const std::function<bool(const Cdr&)>& visit) override;
  Result<std::vector<CallerStats>> caller_stats(const std::string& number, std::size_t limit) override;
  // CallJournal
  void write_async(std::vector<JournalEntry> entries, std::vector<Cdr> cdrs, AppendDone done) override;
  Result<std::vector<JournalEntry>> open() override;
  Result<std::vector<JournalEntry>> recent(std::size_t limit) override;
  Result<std::optional<JournalEntry>> entry(const std::string& id) override;
  // A session-level advisory lock, held on a connection of its own until the store closes.
  Status claim() override;
  void set_journal_pruning(std::size_t kept, std::size_t every) {
    std::lock_guard lock(prune_mutex_);
    journal_kept_ = kept;
    journal_prune_every_ = every;
  }
  // AccountStore
  Status create(const Account& account) override;
  Result<std::optional<Account>> find(const std::string& id) override;
  Result<std::vector<Account>> list() override;
  Result<std::optional<Account>> find_by_number(const PhoneNumber& number) override;
  Result<std::optional<Account>> find_by_email(std::string_view email) override;
  Status set_status(const std::string& id, AccountStatus status) override;
  // LedgerStore
  Result<LedgerEntry> post(const LedgerEntry& entry) override;
  Result<std::vector<LedgerEntry>> entries(const std::string& account_id, std::size_t limit) override;

 private:
  explicit PostgresStore(std::shared_ptr<pg::Pool> pool) : pool_(std::move(pool)) {}
  Status write(std::span<Cdr> cdrs, std::span<const JournalEntry> entries);
  Result<std::vector<JournalEntry>> select_entries(const std::string& where, std::vector<pg::Param> params);
  Result<std::optional<Account>> find_registered(const std::string& sql, const std::string& value,
                                                 const std::string& what);

  class Keys final : public ApiKeyStore {
   public:
    explicit Keys(PostgresStore& store) : store_(store) {}
    Status add(const ApiKeyRecord& key) override;
    Result<std::vector<ApiKeyRecord>> list() override;
    Result<std::optional<ApiKeyRecord>> find(const std::string& id) override;
    Status revoke(const std::string& id, Timestamp at) override;

   private:
    PostgresStore& store_;
  };

  std::shared_ptr<pg::Pool> pool_;
  Keys keys_{*this};
  std::mutex prune_mutex_;
  std::size_t journal_kept_ = 20'000;  // guarded by prune_mutex_
  std::size_t journal_prune_every_ = 1'000;
  std::size_t finals_since_prune_ = 0;
  std::mutex claim_mutex_;
  std::unique_ptr<pg::Connection> owner_;  // claim()'s lock lives on it
  // Last: it stops (writing what it holds) before the pool goes.
  store_common::GroupWriter writer_{[this](std::span<Cdr> cdrs, std::span<const JournalEntry> entries) {
    return write(cdrs, entries);
  }};
};

}  // namespace callback::store_postgres
