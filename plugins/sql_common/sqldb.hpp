#pragma once
// One small statement interface over both databases, so that code whose logic is the same
// on each backend (billing) is written once. It has SQLiteCpp's shape: `?` placeholders
// numbered from 1, bind, executeStep, getColumn, exec. The PostgreSQL side numbers the
// placeholders ($1, $2 ...), prepares each text once per connection, and runs the statement
// at the first step. SQL that must differ says so with tokens replaced at prepare time:
//   {lock}   "" on SQLite (its writer already holds the whole database), " FOR UPDATE" on
//            PostgreSQL (the row stays this transaction's until it ends, on every node).
//   {lock a} the same, locking table (alias) a's rows only: " FOR UPDATE OF a" (a join
//            whose other side may be NULL).
// Only the connection's own thread uses it.
#include <callback/account.hpp>
#include <callback/cdr.hpp>

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callback::sqldb {

// One value of the current row, read where it lies (valid until the statement steps on or
// is reset): no copy unless getString() is asked for.
class Column {
 public:
  static Column null() { return Column(); }
  static Column text(const char* data, std::size_t size) {
    Column c;
    c.kind_ = Kind::text;
    c.data_ = data;
    c.size_ = size;
    return c;
  }
  static Column integer(std::int64_t value) {
    Column c;
    c.kind_ = Kind::integer;
    c.value_ = value;
    return c;
  }
  [[nodiscard]] bool isNull() const { return kind_ == Kind::null; }
  [[nodiscard]] std::string getString() const {
    if (kind_ == Kind::integer) return std::to_string(value_);
    return kind_ == Kind::text ? std::string(data_, size_) : std::string();
  }
  [[nodiscard]] std::int64_t getInt64() const {
    if (kind_ != Kind::text) return value_;
    std::int64_t value = 0;
    if (std::from_chars(data_, data_ + size_, value).ec != std::errc{}) {
      throw std::runtime_error("not an integer: " + std::string(data_, size_));
    }
    return value;
  }
  [[nodiscard]] int getInt() const { return static_cast<int>(getInt64()); }

 private:
  enum class Kind { null, text, integer };
  Kind kind_ = Kind::null;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  std::int64_t value_ = 0;
};

class Statement {
 public:
  virtual ~Statement() = default;
  virtual void bind(int index, std::int64_t value) = 0;
  void bind(int index, int value) { bind(index, static_cast<std::int64_t>(value)); }
  virtual void bind(int index, const std::string& value) = 0;
  void bind(int index, const char* value) { bind(index, std::string(value)); }
  // `value` stays as it is until the statement has run (SQLite then reads it in place).
  virtual void bindNoCopy(int index, const std::string& value) { bind(index, value); }
  virtual void bind(int index) = 0;  // NULL
  // The next row; false when there is none.
  virtual bool executeStep() = 0;
  [[nodiscard]] virtual Column getColumn(int index) = 0;
  // Runs a statement that returns no rows; the number of rows it changed.
  virtual int exec() = 0;
  // Runs a statement whose rows and count nobody reads. PostgreSQL sends it without
  // waiting (a pipeline): the next statement, or the COMMIT, goes with it and waits for
  // both, and its failure is thrown there (the transaction is then rolled back whole).
  // SQLite runs it at once.
  virtual void send() { exec(); }
  // Ready to run again, bindings cleared. Never throws.
  virtual void reset() noexcept = 0;
};

class Database {
 public:
  virtual ~Database() = default;
  // Compiled once per connection and SQL text (the text must live as long as the program:
  // a literal), reset for this use.
  virtual Statement& prepared(const char* sql) = 0;
  virtual std::unique_ptr<Statement> statement(const std::string& sql) = 0;
  // Statements without parameters or results: BEGIN, COMMIT, ROLLBACK, SAVEPOINT ...
  virtual void exec(const std::string& sql) = 0;
  // A transaction that will write: SQLite takes the write lock at once (IMMEDIATE).
  virtual void begin_write() = 0;
  // Before a transaction: connects again if the connection broke (a restarted server).
  // Throws when it cannot.
  virtual void ensure_connected() {}
  // Every prepared statement is reset (before a COMMIT or ROLLBACK).
  virtual void reset_statements() noexcept = 0;
  // Inserts `rows` rows into `table` in the open transaction, as fast as this database
  // can (SQLite: one prepared statement and a larger page cache meanwhile; PostgreSQL:
  // COPY). `fill(i, values)` gives row i, one value (or NULL) per column.
  using Row = std::vector<std::optional<std::string>>;
  virtual void bulk_insert(const std::string& table, const std::vector<std::string>& columns, std::size_t rows,
                           const std::function<void(std::size_t, Row&)>& fill) = 0;
};

// Posts a ledger entry inside the open transaction, by LedgerStore::post's rules: a
// non-empty reference once per account and kind (a retry gets the first entry back and
// moves nothing; another amount: Exception "reference_reused"), the balance moved by an
// increment, never a balance read before and written back. The one way money moves on
// every backend: the stores' post and billing's settle use it. `currency` is the account's
// (checked by the caller). On PostgreSQL the caller holds the account's row lock.
struct Posting {
  // The caller knows the reference was never posted (a settlement of a reservation it
  // found open, under its lock, in this transaction): no lookup.
  bool first = false;
  // Micros of the account's hold released in the same update (a settlement ends its hold).
  std::int64_t release_reserved = 0;
  // The caller reads nothing of the entry back (a settlement) and knows the account
  // exists: the charge and the entry are sent without waiting (Statement::send), the entry
  // taking its balance after from the charged row; the returned entry's id is 0 and its
  // balance after unknown (zero).
  bool unread = false;
};
LedgerEntry post_ledger(Database& db, const LedgerEntry& entry, const Currency& currency, Posting how = {});

// Counts an appended CDR in caller_stats (CallerStats says how), in the appender's
// transaction.
void count_caller(Database& db, const Cdr& cdr);

// caller_stats' rows: one number's, or all (number empty) busiest first; limit 0: all.
std::vector<CallerStats> read_caller_stats(Database& db, const std::string& number, std::size_t limit);

}  // namespace callback::sqldb
