#pragma once
// Test helper: takes a database back to before migration 7 (toll-fraud policies), 8 (the
// callback journal) and 9 (accounts' e-mail addresses), so tests of older migrations can rebuild the schema an earlier release
// left (SQLite >= 3.35).
#include <SQLiteCpp/Database.h>

namespace callback::test {

inline void undo_migration_9(SQLite::Database& db) { db.exec("DROP TABLE account_email"); }

inline void undo_migration_8(SQLite::Database& db) {
  undo_migration_9(db);
  db.exec("DROP TABLE callback_journal");
}

inline void undo_migration_7(SQLite::Database& db) {
  undo_migration_8(db);
  db.exec("DROP TABLE payer_policy");
  db.exec("DROP INDEX reservation_campaign_open");
  db.exec("DROP INDEX reservation_account_created");
  db.exec("DROP INDEX reservation_campaign_created");
  db.exec("ALTER TABLE campaign DROP COLUMN tariff");
  db.exec("ALTER TABLE reservation DROP COLUMN limit_seconds");
}

}  // namespace callback::test
