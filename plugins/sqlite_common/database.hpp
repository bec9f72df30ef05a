#pragma once
// The embedded SQLite database the SQLite plugins share (callback.store.sqlite,
// callback.billing.sqlite): where it lives, how it is opened (WAL, foreign keys, busy
// timeout), and its schema, one numbered migration track for the whole file. Either
// plugin may open it first; migrations run under an exclusive lock, each once.
#include <callback/call.hpp>
#include <callback/account.hpp>
#include <callback/cdr.hpp>
#include <callback/error.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace callback::sqlite {

// $CALLBACK_DATA_DIR/callback.db; else /var/lib/callback/callback.db for root;
// else $XDG_DATA_HOME/callback/callback.db (~/.local/share/callback/callback.db).
[[nodiscard]] std::filesystem::path default_database_path();

inline constexpr int latest_schema_version = 11;

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

// SQLite's page caches take their pages from one pool that is mapped and made resident
// when the first database opens, instead of from malloc as they fill. With malloc, a
// cache's pages were freed whenever another connection's commit made it stale (the store
// and billing write the same file), and the arena they came from kept the highest number
// ever held, mixed with other allocations: callbackd's RSS crept up for the first 40
// minutes of the soak (benchmarks/README.md, "Soak"). The pool holds the three
// connections' default caches (store, billing, API keys: 2,000 KiB each) of 4 KiB pages;
// a page that does not fit (a deck import's larger cache, another page size) is
// malloc'ed as before. Called by open_database; true when this copy of the library set
// the pool up (each plugin links its own copy; the first to open a database does it).
inline constexpr std::size_t page_cache_pool_page_size = 4096;
inline constexpr int page_cache_pool_pages = 3 * 500;
bool use_page_cache_pool();

// Opens (creating the file and its folder if needed) and migrates.
[[nodiscard]] Result<Database> open_database(const DatabaseOptions& options);

// Asterisk's calldate form, in UTC: "2026-11-26 09:13:17".
[[nodiscard]] std::string format_time(Timestamp t);
[[nodiscard]] Timestamp parse_time(const std::string& text);

}  // namespace callback::sqlite
