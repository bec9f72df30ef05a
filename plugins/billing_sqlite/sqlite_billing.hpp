#pragma once
// callback.billing.sqlite: billing (billing_common's SqlBilling) in the embedded SQLite
// database, the same file as callback.store.sqlite, on a connection of its own.
#include "database.hpp"
#include "sql_billing.hpp"

namespace callback::billing_sqlite {

using billing_sql::BillingRules;
using SqliteBilling = billing_sql::SqlBilling;

// Opens (creating and migrating) the file and starts billing on it.
[[nodiscard]] Result<std::unique_ptr<SqliteBilling>> open_billing(const sqlite::DatabaseOptions& database,
                                                                  BillingRules rules);

}  // namespace callback::billing_sqlite
