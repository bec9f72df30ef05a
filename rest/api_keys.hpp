#pragma once
// API keys for callbackd's API: "cbk_<id>_<secret>", 256 random bits. Only a SHA-256 of
// the key is stored (a slow KDF adds nothing for random keys and would cost every
// request); checks compare digests in constant time. Each key has a webhook secret that
// signs the status webhooks of the callbacks it created, and a scope: what it may do.
//
//   ApiKeys keys{database_path};
//   auto created = keys.add("crm", KeyScope::callbacks);  // created->key is shown once, never again
//   auto who = keys.verify(header_value);     // Result<ApiKeyInfo>: 401 unless ok
//   keys.revoke(created->info.id);            // callbackd sees it within a second
#include <callback/call.hpp>
#include <callback/config.hpp>
#include <callback/error.hpp>
#include <callback/secret.hpp>

#include <SQLiteCpp/Database.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace callback::rest {

// callbacks: create, read, list, cancel and follow its own callbacks (others' are 404).
// operator_: accounts, rates, CDRs, statistics, campaigns; no callbacks.
// admin: everything, every key's callbacks included.
enum class KeyScope { callbacks, operator_, admin };
[[nodiscard]] std::string_view to_string(KeyScope scope) noexcept;  // "callbacks", "operator", "admin"
[[nodiscard]] std::optional<KeyScope> key_scope_from_string(std::string_view name) noexcept;

struct ApiKeyInfo {
  std::string id;
  std::string name;
  KeyScope scope = KeyScope::callbacks;
  std::string webhook_secret;
  Timestamp created_at{};
  std::optional<Timestamp> revoked_at;
};

struct CreatedKey {
  ApiKeyInfo info;
  std::string key;  // the whole key: give it to the client now; it is not stored
};

class ApiKeys {
 public:
  // Opens (and migrates) the database at `path`; empty: the default location. Keys are
  // re-read at most every `refresh` (revocations by other processes show then).
  [[nodiscard]] static Result<std::unique_ptr<ApiKeys>> open(const std::filesystem::path& path,
                                                             std::chrono::milliseconds refresh = std::chrono::seconds{1});
  [[nodiscard]] Result<CreatedKey> add(const std::string& name, KeyScope scope);
  [[nodiscard]] Result<std::vector<ApiKeyInfo>> list();
  [[nodiscard]] Status revoke(const std::string& id);
  // The key's owner, or "unauthorized" (missing, malformed, unknown, revoked, wrong).
  // Thread-safe; revocations by other processes are seen within `refresh`.
  [[nodiscard]] Result<ApiKeyInfo> verify(std::string_view key);
  // The webhook secret of key `id` (known keys, revoked or not).
  [[nodiscard]] Result<std::string> webhook_secret(const std::string& id);

 private:
  struct Cached {
    std::string hash;  // hex
    ApiKeyInfo info;
    std::chrono::steady_clock::time_point loaded;
    bool known = false;
  };
  ApiKeys(std::unique_ptr<SQLite::Database> db, std::chrono::milliseconds refresh)
      : db_(std::move(db)), refresh_(refresh) {}
  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;
  std::chrono::milliseconds refresh_;
  std::unordered_map<std::string, Cached> cache_;
};

// Where a service's keys are kept: "server.keys_db" if set, else the SQLite store's own
// file ("store.config.path"), else the default database. callbackd and callbackctl agree.
[[nodiscard]] std::filesystem::path keys_database_path(const ServiceConfig& config);

// Hex HMAC-SHA256 of `body` with `secret` (webhook signatures: rest/webhooks.hpp).
[[nodiscard]] std::string hmac_sha256_hex(std::string_view secret, std::string_view body);
using callback::equal_constant_time;  // callback/secret.hpp

}  // namespace callback::rest
