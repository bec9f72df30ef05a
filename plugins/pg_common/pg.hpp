#pragma once
// The PostgreSQL database the PostgreSQL plugins share (callback.store.postgres, and the
// billing that goes with it): connections through libpq, a pool of them, prepared
// statements, and the schema as one numbered migration track, as the SQLite plugins have.
//
// Values travel as text parameters ($1, $2 ...), never inside the SQL; each SQL text is
// prepared once per connection. Times are `timestamp(0)` in UTC, Asterisk's calldate form
// ("2026-11-26 09:13:17"), as cdr_pgsql writes them; money is bigint micros.
//
//   auto pool = pg::Pool::open({.conninfo = "host=127.0.0.1 dbname=callback user=callback"});
//   auto conn = (*pool)->acquire();          // back to the pool when it goes out of scope
//   pg::Transaction tx(*conn);
//   auto rows = conn->exec("SELECT balance_micros FROM account WHERE id = $1", {id});
//   tx.commit();
#include <callback/call.hpp>
#include <callback/error.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace callback::pg {

inline constexpr int latest_schema_version = 6;

// A statement or connection failure, with PostgreSQL's SQLSTATE ("23505": unique violation;
// "" when the connection itself failed). Thrown inside the plugins, turned into an Error
// at their interfaces.
class Failure : public std::runtime_error {
 public:
  Failure(std::string message, std::string sqlstate, bool connection_lost)
      : std::runtime_error(std::move(message)), sqlstate_(std::move(sqlstate)), connection_lost_(connection_lost) {}
  [[nodiscard]] const std::string& sqlstate() const noexcept { return sqlstate_; }
  [[nodiscard]] bool connection_lost() const noexcept { return connection_lost_; }

 private:
  std::string sqlstate_;
  bool connection_lost_;
};

// One parameter: text, or NULL.
class Param {
 public:
  Param(std::nullopt_t) {}  // NOLINT: NULL
  Param(std::string text) : text_(std::move(text)) {}  // NOLINT
  Param(std::string_view text) : text_(std::string(text)) {}  // NOLINT
  Param(const char* text) : text_(std::string(text)) {}  // NOLINT
  Param(std::int64_t n) : text_(std::to_string(n)) {}  // NOLINT
  Param(int n) : text_(std::to_string(n)) {}  // NOLINT
  Param(std::size_t n) : text_(std::to_string(n)) {}  // NOLINT
  Param(bool b) : text_(b ? "t" : "f") {}  // NOLINT
  [[nodiscard]] const char* c_str() const { return text_ ? text_->c_str() : nullptr; }

 private:
  std::optional<std::string> text_;
};

// Asterisk's calldate form, in UTC.
[[nodiscard]] Param time_param(Timestamp t);
[[nodiscard]] Timestamp parse_time(std::string_view text);

// The rows a statement returned (text format).
class Rows {
 public:
  explicit Rows(PGresult* result) : result_(result, PQclear) {}
  [[nodiscard]] int size() const { return PQntuples(result_.get()); }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] bool null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  // The value where it lies, valid as long as these rows.
  [[nodiscard]] std::string_view view(int row, int column) const {
    return {PQgetvalue(result_.get(), row, column), static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
  }
  [[nodiscard]] std::string text(int row, int column) const { return std::string(view(row, column)); }
  [[nodiscard]] std::int64_t integer(int row, int column) const;
  [[nodiscard]] bool boolean(int row, int column) const { return text(row, column) == "t"; }
  [[nodiscard]] Timestamp time(int row, int column) const { return parse_time(text(row, column)); }
  // Rows changed by an INSERT, UPDATE or DELETE.
  [[nodiscard]] std::int64_t affected() const;

 private:
  std::shared_ptr<PGresult> result_;
};

class Connection {
 public:
  // Connects; the session runs in UTC. Throws Failure.
  explicit Connection(const std::string& conninfo);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs one statement with its parameters (prepared once per connection and SQL text).
  Rows exec(const std::string& sql, std::initializer_list<Param> params = {});
  Rows exec(const std::string& sql, const std::vector<Param>& params);
  // Sends one statement without waiting for its answer (libpq's pipeline mode), for a
  // statement whose rows and count nobody reads. The next exec() or script() on this
  // connection sends itself behind it and waits for all of them at once: one round trip
  // instead of two or more. A failure of a sent statement is thrown there (the statements
  // behind it in the same transaction did not run). No parameters: the statement is sent
  // as it is (BEGIN).
  void send(const std::string& sql, const std::vector<Param>& params = {});
  // Waits for the sent statements' answers (before using raw()); throws the first failure.
  void flush();
  // Runs SQL text without parameters, possibly several statements (migrations). Behind sent
  // statements: one statement (COMMIT) goes with them; ROLLBACK waits for them, whatever
  // they met, and then runs.
  void script(const std::string& sql);
  // False once closed out of step with the server (conn_ null: libpq says CONNECTION_BAD).
  [[nodiscard]] bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  // ok(), after reading what the server sent meanwhile without waiting: a server that
  // ended this session (a restart, an administrator) is noticed before the next use.
  [[nodiscard]] bool alive();
  // Where it is connected, without the password: "callback@127.0.0.1:5432/callback".
  [[nodiscard]] std::string where() const;
  [[nodiscard]] PGconn* raw() const { return conn_; }

 private:
  [[noreturn]] void fail(PGresult* result, const std::string& what);
  // The name of `sql` prepared on this connection (prepared now if it was not).
  const std::string& statement(const std::string& sql, std::size_t params);
  // Sends the pipeline's sync, reads every sent statement's result and leaves pipeline
  // mode; the last statement's result, or throws the first failure once all is read.
  PGresult* finish_pipeline();
  void abandon();
  PGconn* conn_ = nullptr;
  int pending_ = 0;  // statements sent and not yet answered (pipeline mode while > 0)
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
};

// BEGIN ... COMMIT; rolled back when destroyed uncommitted.
class Transaction {
 public:
  explicit Transaction(Connection& conn, const char* begin = "BEGIN");
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Connection& conn_;
  bool open_ = true;
};

struct PoolOptions {
  std::string conninfo;  // libpq's: "host=127.0.0.1 port=5432 dbname=callback user=callback"
  std::size_t size = 8;  // connections at most
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // Connects once, migrates the schema, and keeps that connection. Error (naming the server,
  // never the password) when it cannot, or when the schema is newer than this callback's.
  [[nodiscard]] static Result<std::shared_ptr<Pool>> open(PoolOptions options);

  struct Release {
    Pool* pool;
    void operator()(Connection* conn) const { pool->give_back(conn); }
  };
  using Lease = std::unique_ptr<Connection, Release>;
  // A connection of the pool's (a new one if none is free and fewer than `size` exist;
  // else waits). Throws Failure when a new one cannot connect.
  Lease acquire();
  [[nodiscard]] int schema_version() const { return schema_version_; }
  [[nodiscard]] const std::string& where() const { return where_; }
  [[nodiscard]] const std::string& conninfo() const { return options_.conninfo; }

 private:
  explicit Pool(PoolOptions options) : options_(std::move(options)) {}
  void give_back(Connection* conn);

  PoolOptions options_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // connections that exist, idle or leased
  int schema_version_ = 0;
  std::string where_;
};

// Runs `work` (which takes a Connection&) on a pooled connection; a Failure or another
// exception becomes Error{"store_failed", what + ": " + message} of kind internal.
template <typename F>
auto with_connection(Pool& pool, const std::string& what, F&& work) -> decltype(work(std::declval<Connection&>())) {
  try {
    auto conn = pool.acquire();
    return work(*conn);
  } catch (const Exception& e) {  // a refusal (reference_reused ...): as it is
    return e.error();
  } catch (const std::exception& e) {
    return Error{"store_failed", what + ": " + e.what(), {}}.as(ErrorKind::internal);
  }
}

}  // namespace callback::pg
