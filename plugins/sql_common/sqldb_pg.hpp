#pragma once
// sqldb over one libpq connection (pg::Connection).
#include "pg.hpp"
#include "sqldb.hpp"

#include <map>

namespace callback::sqldb {

class PgDatabase final : public Database {
 public:
  // A connection of its own, connected again from `conninfo` when it breaks.
  PgDatabase(std::unique_ptr<pg::Connection> conn, std::string conninfo)
      : owned_(std::move(conn)), conn_(owned_.get()), conninfo_(std::move(conninfo)) {}
  // On a connection someone else keeps (a pooled one), for one transaction.
  explicit PgDatabase(pg::Connection& conn) : conn_(&conn) {}
  Statement& prepared(const char* sql) override;
  std::unique_ptr<Statement> statement(const std::string& sql) override;
  void exec(const std::string& sql) override;
  // Sent without waiting: it goes with the transaction's first statement.
  void begin_write() override { conn_->send("BEGIN"); }
  void ensure_connected() override;
  void reset_statements() noexcept override;
  void bulk_insert(const std::string& table, const std::vector<std::string>& columns, std::size_t rows,
                   const std::function<void(std::size_t, Row&)>& fill) override;
  [[nodiscard]] pg::Connection& connection() { return *conn_; }
 private:
  std::unique_ptr<pg::Connection> owned_;
  pg::Connection* conn_;
  std::string conninfo_;
  std::map<const char*, std::unique_ptr<Statement>> cache_;
  std::vector<Statement*> in_use_;
};

}  // namespace callback::sqldb
