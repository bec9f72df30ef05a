#pragma once
// API keys for callbackd's API: "cbk_<id>_<secret>", 256 random bits. Only a SHA-256 of
// the key is stored (a slow KDF adds nothing for random keys and would cost every
// request); checks compare digests in constant time. Each key has a webhook secret that
// signs the status webhooks of the callbacks it created, and a scope: what it may do.
// The keys live in the store backend (Store::api_keys()), so every callbackd and
// callbackctl on that backend see the same ones.
//
//   auto keys = ApiKeys::over(runtime.store());            // Error if the backend keeps none
//   auto created = (*keys)->add("crm", KeyScope::callbacks);  // created->key is shown once, never again
//   auto who = (*keys)->verify(header_value);     // Result<ApiKeyInfo>: 401 unless ok
//   (*keys)->revoke(created->info.id);            // callbackd sees it within a second
#include <callback/call.hpp>
#include <callback/config.hpp>
#include <callback/error.hpp>
#include <callback/secret.hpp>
#include <callback/store.hpp>

#include <chrono>
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
  // Over `store`, which must outlive this (`owner`, if given, is kept alive with it). Keys
  // are re-read at most every `refresh` (revocations by other processes show then).
  explicit ApiKeys(ApiKeyStore& store, std::chrono::milliseconds refresh = std::chrono::seconds{1},
                   std::shared_ptr<void> owner = nullptr)
      : store_(store), owner_(std::move(owner)), refresh_(refresh) {}
  // The keys of the store backend; an Error when it keeps none.
  [[nodiscard]] static Result<std::unique_ptr<ApiKeys>> over(Store& store,
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
  ApiKeyStore& store_;
  std::shared_ptr<void> owner_;
  std::mutex mutex_;
  std::chrono::milliseconds refresh_;
  std::unordered_map<std::string, Cached> cache_;
};

// Hex HMAC-SHA256 of `body` with `secret` (webhook signatures: rest/webhooks.hpp).
[[nodiscard]] std::string hmac_sha256_hex(std::string_view secret, std::string_view body);
using callback::equal_constant_time;  // callback/secret.hpp

}  // namespace callback::rest
