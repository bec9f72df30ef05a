#include "sqlite_billing.hpp"

#include "sqldb_sqlite.hpp"

namespace callback::billing_sqlite {

Result<std::unique_ptr<SqliteBilling>> open_billing(const sqlite::DatabaseOptions& database, BillingRules rules) {
  auto opened = sqlite::open_database(database);
  if (!opened) return opened.error();
  return SqliteBilling::open(std::move(rules), std::make_unique<sqldb::SqliteDatabase>(std::move(opened->db)));
}

}  // namespace callback::billing_sqlite
