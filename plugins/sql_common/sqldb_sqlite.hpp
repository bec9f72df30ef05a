#pragma once
// sqldb over one SQLiteCpp connection.
#include "sqldb.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <map>

namespace callback::sqldb {

class SqliteDatabase final : public Database {
 public:
  // On a connection someone else keeps open, or one of its own.
  explicit SqliteDatabase(SQLite::Database& db) : db_(db) {}
  explicit SqliteDatabase(std::unique_ptr<SQLite::Database> db) : owned_(std::move(db)), db_(*owned_) {}
  Statement& prepared(const char* sql) override;
  std::unique_ptr<Statement> statement(const std::string& sql) override;
  void exec(const std::string& sql) override { db_.exec(sql); }
  void begin_write() override { prepared("BEGIN IMMEDIATE").exec(); }
  void reset_statements() noexcept override;
  void bulk_insert(const std::string& table, const std::vector<std::string>& columns, std::size_t rows,
                   const std::function<void(std::size_t, Row&)>& fill) override;
  [[nodiscard]] SQLite::Database& raw() { return db_; }

 private:
  std::unique_ptr<SQLite::Database> owned_;
  SQLite::Database& db_;
  std::map<const char*, std::unique_ptr<Statement>> cache_;
  std::vector<Statement*> in_use_;
};

}  // namespace callback::sqldb
