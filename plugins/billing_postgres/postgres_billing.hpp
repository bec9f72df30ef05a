#pragma once
// callback.billing.postgres: billing (billing_common's SqlBilling) on the PostgreSQL the
// nodes share, the same database as callback.store.postgres, on a connection of its own.
// Each node's billing commits its operations in groups; the rows it locks ({lock}) make
// the nodes' operations on one account follow each other.
#include "sql_billing.hpp"

namespace callback::billing_postgres {

using billing_sql::BillingRules;
using PostgresBilling = billing_sql::SqlBilling;

// Connects, migrates and starts billing on the database.
// `writers` connections commit operations side by side.
[[nodiscard]] Result<std::unique_ptr<PostgresBilling>> open_billing(const std::string& conninfo, BillingRules rules,
                                                                    std::size_t writers = 4);

// Whether a store's location() is a PostgreSQL connection string (keywords or a URI), not a file.
[[nodiscard]] bool is_conninfo(const std::string& location);

}  // namespace callback::billing_postgres
