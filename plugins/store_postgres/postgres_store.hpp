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

#include <callback/context.hpp>
#include <callback/store.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callback::store_postgres {

struct PostgresOptions {
  std::string conninfo;        // libpq's keywords or URI; a password may be in it or in ~/.pgpass
  std::size_t pool_size = 8;   // connections at most
  Logger* log = nullptr;       // where the journal says what went wrong in the background
};

class PostgresStore final : public Store, CdrStore, AccountStore, LedgerStore, CallJournal, RateCounter {
 public:
  // Connects and migrates; Error (naming the server, never the password) if it cannot.
  [[nodiscard]] static Result<std::unique_ptr<PostgresStore>> open(const PostgresOptions& options);
  ~PostgresStore() override;

  CdrStore& cdrs() override { return *this; }
  AccountStore& accounts() override { return *this; }
  LedgerStore& ledger() override { return *this; }
  CallJournal* journal() override { return this; }
  ApiKeyStore* api_keys() override { return &keys_; }
  RateCounter* rate_counter() override { return this; }
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
  // Session-level advisory locks, held on a connection of its own until the store closes:
  // node "" takes the journal's lock exclusively; a named node takes it shared, and its
  // node id's lock exclusively, then registers its lease in `node`.
  using CallJournal::claim;
  Status claim(const NodeClaim& node) override;
  [[nodiscard]] bool shared() const override { return !claimed_node().empty(); }
  [[nodiscard]] std::string node() const override { return claimed_node(); }
  Status renew() override;
  Result<std::vector<JournalEntry>> take_over() override;
  Result<std::string> ask_cancel(const std::string& id) override;
  Result<std::vector<std::string>> cancels_asked() override;
  Result<std::vector<JournalEntry>> list(const JournalQuery& query) override;
  // One insert into inbound_claim; claims a day old are pruned now and then.
  Result<bool> claim_inbound(const std::string& server, const std::string& uniqueid) override;
  // LISTEN on a connection of its own, on a thread that starts with the first watcher.
  Subscription watch(std::function<void(const JournalNotice&)> on_notice) override;
  void set_journal_pruning(std::size_t kept, std::size_t every) {
    std::lock_guard lock(prune_mutex_);
    journal_kept_ = kept;
    journal_prune_every_ = every;
  }
  // RateCounter: one upsert; windows a day old are pruned now and then.
  Result<std::chrono::seconds> hit(std::string_view name, const std::string& key, int limit, std::chrono::seconds window,
                                   Timestamp now, bool count) override;
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
  PostgresStore(std::shared_ptr<pg::Pool> pool, Logger* log) : pool_(std::move(pool)), log_(log) {}
  Status write(std::span<Cdr> cdrs, std::span<const JournalEntry> entries);
  [[nodiscard]] std::string claimed_node() const {
    std::lock_guard lock(node_mutex_);
    return node_;
  }
  struct Claimed {
    std::string node;
    std::int64_t generation = 0;
  };
  [[nodiscard]] Claimed claimed() const {
    std::lock_guard lock(node_mutex_);
    return {node_, generation_};
  }
  void fenced(const std::string& id) const;
  void set_node(std::string node, std::int64_t generation = 0) {  // claim_mutex_ held
    std::lock_guard lock(node_mutex_);
    node_ = std::move(node);
    generation_ = generation;
  }
  Status register_node(pg::Connection& conn);  // claim_mutex_ held
  void listen_loop();
  void notify_watchers(const JournalNotice& notice);
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
  mutable std::mutex claim_mutex_;
  std::unique_ptr<pg::Connection> owner_;  // claim()'s lock lives on it
  mutable std::mutex node_mutex_;          // node_'s own: read on every write, never held over I/O
  std::string node_;                       // the claimed node id (set under both mutexes)
  std::int64_t generation_ = 0;            // and this process's claim of it (node.generation)
  std::chrono::seconds lease_{15};
  Logger* log_ = nullptr;
  // watch(): the listener thread and who gets its notices.
  std::mutex watch_mutex_;
  std::mutex dispatch_mutex_;  // held while notices are delivered, and to unsubscribe
  std::vector<std::pair<std::uint64_t, std::shared_ptr<std::function<void(const JournalNotice&)>>>> watchers_;
  std::uint64_t next_watcher_ = 0;
  std::atomic<bool> stop_listening_{false};
  std::atomic<std::uint64_t> rate_hits_{0};
  std::atomic<std::uint64_t> inbound_claims_{0};
  std::thread listener_;
  // Last: it stops (writing what it holds) before the pool goes.
  store_common::GroupWriter writer_{[this](std::span<Cdr> cdrs, std::span<const JournalEntry> entries) {
    return write(cdrs, entries);
  }};
};

}  // namespace callback::store_postgres
