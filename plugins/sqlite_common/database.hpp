#pragma once
// The embedded SQLite database the SQLite plugins share (callback.store.sqlite,
// callback.billing.sqlite): where it lives, how it is opened (WAL, foreign keys, busy
// timeout), and its schema, one numbered migration track for the whole file. Either
// plugin may open it first; migrations run under an exclusive lock, each once.
#include <callback/call.hpp>
#include <callback/error.hpp>

#include <SQLiteCpp/Database.h>

#include <filesystem>
#include <memory>
#include <string>

namespace callback::sqlite {

// $CALLBACK_DATA_DIR/callback.db; else /var/lib/callback/callback.db for root;
// else $XDG_DATA_HOME/callback/callback.db (~/.local/share/callback/callback.db).
[[nodiscard]] std::filesystem::path default_database_path();

inline constexpr int latest_schema_version = 8;

struct DatabaseOptions {
  std::filesystem::path path;        // empty: default_database_path()
  std::string synchronous = "full";  // "full": every commit is on disk; "normal": WAL may lose the last ones on power loss
  int busy_timeout_ms = 5000;
};

struct Database {
  std::unique_ptr<SQLite::Database> db;
  std::filesystem::path path;
  int schema_version = 0;
};

// Opens (creating the file and its folder if needed) and migrates.
[[nodiscard]] Result<Database> open_database(const DatabaseOptions& options);

// Asterisk's calldate form, in UTC: "2026-11-26 09:13:17".
[[nodiscard]] std::string format_time(Timestamp t);
[[nodiscard]] Timestamp parse_time(const std::string& text);

}  // namespace callback::sqlite
