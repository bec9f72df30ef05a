#pragma once
// The embedded default store: one SQLite file, through SQLiteCpp, in WAL mode so readers
// never block the writer. Migrations are numbered and applied at open, each in its own
// transaction; a database from a newer callback is refused rather than guessed at.
// One connection, guarded by a mutex: SQLite serializes writers anyway.
#include "database.hpp"
#include "group_writer.hpp"
#include "sqldb.hpp"

#include <callback/store.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <filesystem>
#include <memory>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <string>

namespace callback::store_sqlite {

using SqliteOptions = sqlite::DatabaseOptions;
using sqlite::default_database_path;
using sqlite::latest_schema_version;

class SqliteStore final : public Store, CdrStore, AccountStore, LedgerStore, CallJournal {
 public:
  // Opens (creating the file and its folder if needed) and migrates; Error if it cannot.
  [[nodiscard]] static Result<std::unique_ptr<SqliteStore>> open(const SqliteOptions& options);

  CdrStore& cdrs() override { return *this; }
  AccountStore& accounts() override { return *this; }
  LedgerStore& ledger() override { return *this; }
  CallJournal* journal() override { return this; }
  ApiKeyStore* api_keys() override { return &keys_; }
  [[nodiscard]] int schema_version() const override { return schema_version_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] std::string location() const override { return path_.string(); }

  ~SqliteStore() override;  // writes what append_async still holds

  // CdrStore
  Status append(std::span<Cdr> cdrs) override;
  using CdrStore::append;
  // On a writer thread of the store's: what is queued meanwhile goes in one transaction
  // (group commit), so the caller's event loop never waits for the disk or for another
  // writer's lock on the file.
  void append_async(std::vector<Cdr> cdrs, AppendDone done) override;
  void flush() override;
  Status query(const CdrQuery& query, const std::function<bool(const Cdr&)>& visit) override;
  Result<std::vector<CallerStats>> caller_stats(const std::string& number, std::size_t limit) override;
  // CallJournal: through the same writer thread as append_async (one queue, in order).
  void write_async(std::vector<JournalEntry> entries, std::vector<Cdr> cdrs, AppendDone done) override;
  Result<std::vector<JournalEntry>> open() override;
  Result<std::vector<JournalEntry>> recent(std::size_t limit) override;
  Result<std::optional<JournalEntry>> entry(const std::string& id) override;
  // An exclusive flock on "<database>.owner", which holds the owner's pid for the error.
  using CallJournal::claim;
  // One service per file, whatever its node id: a file is not shared by several nodes.
  Status claim(const NodeClaim& node) override;
  // Finished callbacks' entries are pruned as new ones come: every `every` final entries
  // written, the finished ones beyond the newest `kept` are deleted in the same
  // transaction (in flight ones never). A restart reads back at most the service's
  // finished_kept (10,000): the default keeps twice that. Without this the journal grew
  // by one row (about 2 KB) a callback for ever: 500 MB an hour in the soak.
  void set_journal_pruning(std::size_t kept, std::size_t every) {
    std::lock_guard lock(mutex_);
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
  SqliteStore(std::unique_ptr<SQLite::Database> db, std::filesystem::path path, SqliteOptions options)
      : db_(std::move(db)), path_(std::move(path)), options_(std::move(options)) {}
  // Under the lock of `db` (mutex_ for db_, reader_mutex_ for the reader).
  static Result<std::optional<Account>> find_locked(SQLite::Database& db, const std::string& id);
  Result<std::optional<Account>> find_locked(const std::string& id) { return find_locked(*db_, id); }
  // The account of the one row `select` (bound, selecting account ids) gives; an Error when several.
  static Result<std::optional<Account>> find_registered(SQLite::Database& db, SQLite::Statement& select,
                                                        const std::string& what);
  // A connection of its own for the account lookups of triggers and pages (WAL: it reads
  // while the writer writes), opened at the first one; under reader_mutex_.
  Result<SQLite::Database*> reader();
  // CDRs and journal entries in one transaction.
  Status write(std::span<Cdr> cdrs, std::span<const JournalEntry> entries);
  Result<std::vector<JournalEntry>> select_entries(const std::string& where, const std::string& value,
                                                   std::size_t limit);

  // ApiKeyStore, on the store's connection (table api_key).
  class Keys final : public ApiKeyStore {
   public:
    explicit Keys(SqliteStore& store) : store_(store) {}
    Status add(const ApiKeyRecord& key) override;
    Result<std::vector<ApiKeyRecord>> list() override;
    Result<std::optional<ApiKeyRecord>> find(const std::string& id) override;
    Status revoke(const std::string& id, Timestamp at) override;

   private:
    SqliteStore& store_;
  };

  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;
  Keys keys_{*this};
  std::unique_ptr<SQLite::Statement> insert_cdr_;  // prepared on first use; guarded by mutex_
  std::unique_ptr<sqldb::Database> sql_;  // db_ through sqldb (shared statements: caller stats, the ledger); the same
  std::size_t journal_kept_ = 20'000;      // guarded by mutex_
  std::size_t journal_prune_every_ = 1'000;
  std::size_t finals_since_prune_ = 0;
  std::filesystem::path path_;
  SqliteOptions options_;
  std::mutex reader_mutex_;
  std::unique_ptr<SQLite::Database> reader_;
  int schema_version_ = 0;
  int owner_fd_ = -1;  // claim()'s lock
  // append_async's and write_async's thread; last, so it stops before what it writes to goes.
  store_common::GroupWriter writer_{[this](std::span<Cdr> cdrs, std::span<const JournalEntry> entries) {
    return write(cdrs, entries);
  }};
};

}  // namespace callback::store_sqlite
