#include "sqldb_sqlite.hpp"

#include <sqlite3.h>


namespace callback::sqldb {

namespace {

std::string with_tokens(std::string sql) {
  for (std::size_t at; (at = sql.find("{lock")) != std::string::npos && sql.find('}', at) != std::string::npos;) {
    sql.erase(at, sql.find('}', at) + 1 - at);
  }
  return sql;
}

class SqliteStatement final : public Statement {
 public:
  SqliteStatement(SQLite::Database& db, const std::string& sql) : statement_(db, with_tokens(sql)) {}
  void bind(int index, std::int64_t value) override { statement_.bind(index, value); }
  void bind(int index, const std::string& value) override { statement_.bind(index, value); }
  void bindNoCopy(int index, const std::string& value) override { statement_.bindNoCopy(index, value); }
  void bind(int index) override { statement_.bind(index); }
  bool executeStep() override { return statement_.executeStep(); }
  Column getColumn(int index) override {
    const auto column = statement_.getColumn(index);
    switch (column.getType()) {
      case SQLITE_NULL: return Column::null();
      case SQLITE_INTEGER: return Column::integer(column.getInt64());
      default: return Column::text(column.getText(), static_cast<std::size_t>(column.getBytes()));
    }
  }
  int exec() override { return statement_.exec(); }
  void reset() noexcept override {
    statement_.tryReset();
    statement_.clearBindings();
  }

 private:
  SQLite::Statement statement_;
};

}  // namespace

Statement& SqliteDatabase::prepared(const char* sql) {
  auto& slot = cache_[sql];
  if (!slot) {
    slot = std::make_unique<SqliteStatement>(db_, sql);
  } else {
    slot->reset();  // never throws: the error of a failed step was reported then
  }
  in_use_.push_back(slot.get());
  return *slot;
}

std::unique_ptr<Statement> SqliteDatabase::statement(const std::string& sql) {
  return std::make_unique<SqliteStatement>(db_, sql);
}

void SqliteDatabase::reset_statements() noexcept {
  for (auto* statement : in_use_) statement->reset();
  in_use_.clear();
}

void SqliteDatabase::bulk_insert(const std::string& table, const std::vector<std::string>& columns, std::size_t rows,
                                 const std::function<void(std::size_t, Row&)>& fill) {
  // Room for a large deck's pages while it is written (sorted inserts then stay in
  // memory), given back afterwards: kept for good, a long-running daemon's cache would
  // fill with the pages of every table it touches, up to 16 MB of heap.
  db_.exec("PRAGMA cache_size = -16384");
  struct CacheBack {
    SQLite::Database& db;
    ~CacheBack() { db.tryExec("PRAGMA cache_size = -2000"); }  // SQLite's default; never throws
  } cache_back{db_};
  std::string sql = "INSERT INTO " + table + " (";
  std::string values;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    sql += (i ? ", " : "") + columns[i];
    values += i ? ",?" : "?";
  }
  SQLite::Statement insert(db_, sql + ") VALUES (" + values + ")");
  Row row(columns.size());
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto& value : row) value.reset();
    fill(r, row);
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (row[c]) {
        insert.bindNoCopy(static_cast<int>(c + 1), *row[c]);
      } else {
        insert.bind(static_cast<int>(c + 1));
      }
    }
    insert.exec();
    insert.reset();
  }
}

}  // namespace callback::sqldb
