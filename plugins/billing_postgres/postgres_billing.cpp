#include "postgres_billing.hpp"

#include "pg.hpp"
#include "sqldb_pg.hpp"

namespace callback::billing_postgres {

Result<std::unique_ptr<PostgresBilling>> open_billing(const std::string& conninfo, BillingRules rules,
                                                     std::size_t writers) {
  if (conninfo.empty()) {
    return Error{"config.missing", "PostgreSQL billing needs a conninfo (\"host=... dbname=... user=...\")",
                 "conninfo"};
  }
  // The migrations, as the store runs them (whichever opens the database first).
  auto pool = pg::Pool::open({.conninfo = conninfo, .size = 1});
  if (!pool) return pool.error();
  try {
    std::vector<std::unique_ptr<sqldb::Database>> connections;
    for (std::size_t i = 0; i < std::max<std::size_t>(writers, 1); ++i) {
      connections.push_back(std::make_unique<sqldb::PgDatabase>(std::make_unique<pg::Connection>(conninfo), conninfo));
    }
    return PostgresBilling::open(std::move(rules), std::move(connections));
  } catch (const std::exception& e) {
    return Error{"store_open_failed", e.what(), "conninfo"};
  }
}

bool is_conninfo(const std::string& location) {
  return location.find('=') != std::string::npos || location.starts_with("postgresql://") ||
         location.starts_with("postgres://");
}

}  // namespace callback::billing_postgres
