#include "sqlite_billing.hpp"

#include "sqldb_sqlite.hpp"

namespace callback::billing_sqlite {

Result<std::unique_ptr<SqliteBilling>> open_billing(const sqlite::DatabaseOptions& database, BillingRules rules) {
  auto opened = sqlite::open_database(database);
  if (!opened) return opened.error();
  std::vector<std::unique_ptr<sqldb::Database>> writer;  // SQLite has one writer at a time: one connection
  writer.push_back(std::make_unique<sqldb::SqliteDatabase>(std::move(opened->db)));
  return SqliteBilling::open(std::move(rules), std::move(writer));
}

}  // namespace callback::billing_sqlite
