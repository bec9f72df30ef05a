#include "api_keys.hpp"

#include "database.hpp"

#include <callback/secret.hpp>
#include <callback/timestamp.hpp>

#include <SQLiteCpp/Statement.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace callback::rest {

namespace {

std::string hex(const unsigned char* data, std::size_t size) {
  return hex_encode(std::string_view(reinterpret_cast<const char*>(data), size));
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> buffer(bytes);
  if (RAND_bytes(buffer.data(), static_cast<int>(bytes)) != 1) throw std::runtime_error("no randomness");
  return hex(buffer.data(), bytes);
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  return hex(digest, size);
}

Error unauthorized(std::string message) {
  return Error{"unauthorized", std::move(message), "api_key"}.as(ErrorKind::unauthorized);
}

constexpr std::string_view scope_names[] = {"callbacks", "operator", "admin"};

ApiKeyInfo read_info(SQLite::Statement& row) {
  // An unknown scope (written by a newer callback) grants the least.
  const auto scope = key_scope_from_string(row.getColumn("scope").getString()).value_or(KeyScope::callbacks);
  ApiKeyInfo info{.id = row.getColumn("id").getString(), .name = row.getColumn("name").getString(),
                  .scope = scope,
                  .webhook_secret = row.getColumn("webhook_secret").getString(),
                  .created_at = sqlite::parse_time(row.getColumn("created_at").getString())};
  if (!row.getColumn("revoked_at").isNull()) info.revoked_at = sqlite::parse_time(row.getColumn("revoked_at").getString());
  return info;
}

}  // namespace

std::string_view to_string(KeyScope scope) noexcept { return scope_names[static_cast<int>(scope)]; }

std::optional<KeyScope> key_scope_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(scope_names); ++i) {
    if (scope_names[i] == name) return static_cast<KeyScope>(i);
  }
  return std::nullopt;
}

std::filesystem::path keys_database_path(const ServiceConfig& config) {
  if (config.server.is_object()) {
    if (const auto* v = config.server.get_object().if_contains("keys_db"); v != nullptr && v->is_string()) {
      return std::string(v->get_string());
    }
  }
  if (config.store && config.store->plugin == "callback.store.sqlite" && config.store->config.is_object()) {
    if (const auto* v = config.store->config.get_object().if_contains("path"); v != nullptr && v->is_string()) {
      return std::string(v->get_string());
    }
  }
  return {};  // the default database
}

std::string hmac_sha256_hex(std::string_view secret, std::string_view body) {
  return hex_encode(hmac(Digest::sha256, secret, body));
}

Result<std::unique_ptr<ApiKeys>> ApiKeys::open(const std::filesystem::path& path, std::chrono::milliseconds refresh) {
  auto database = sqlite::open_database({.path = path});
  if (!database) return database.error();
  return std::unique_ptr<ApiKeys>(new ApiKeys(std::move(database->db), refresh));
}

Result<CreatedKey> ApiKeys::add(const std::string& name, KeyScope scope) {
  if (name.empty() || name.size() > 100) return Error{"invalid_name", "a key needs a name of 1 to 100 characters", "name"};
  CreatedKey created;
  created.info.id = random_hex(4);
  created.info.name = name;
  created.info.scope = scope;
  created.info.webhook_secret = "whsec_" + random_hex(24);
  created.info.created_at = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  created.key = "cbk_" + created.info.id + "_" + random_hex(32);
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement insert(
        *db_, "INSERT INTO api_key (id, name, key_hash, webhook_secret, created_at, scope) VALUES (?, ?, ?, ?, ?, ?)");
    insert.bind(1, created.info.id);
    insert.bind(2, name);
    insert.bind(3, sha256_hex(created.key));
    insert.bind(4, created.info.webhook_secret);
    insert.bind(5, sqlite::format_time(created.info.created_at));
    insert.bind(6, std::string(to_string(scope)));
    insert.exec();
  } catch (const SQLite::Exception& e) {
    return Error{"store_failed", std::string("could not store the key: ") + e.what(), {}}.as(ErrorKind::internal);
  }
  return created;
}

Result<std::vector<ApiKeyInfo>> ApiKeys::list() {
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement query(*db_, "SELECT * FROM api_key ORDER BY created_at, id");
    std::vector<ApiKeyInfo> keys;
    while (query.executeStep()) keys.push_back(read_info(query));
    return keys;
  } catch (const SQLite::Exception& e) {
    return Error{"store_failed", e.what(), {}}.as(ErrorKind::internal);
  }
}

Status ApiKeys::revoke(const std::string& id) {
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement update(*db_, "UPDATE api_key SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
    update.bind(1, sqlite::format_time(std::chrono::system_clock::now()));
    update.bind(2, id);
    if (update.exec() == 0) {
      SQLite::Statement exists(*db_, "SELECT 1 FROM api_key WHERE id = ?");
      exists.bind(1, id);
      if (!exists.executeStep()) return Error{"not_found", "no API key \"" + id + "\"", "id"}.as(ErrorKind::not_found);
      return Error{"already_revoked", "API key \"" + id + "\" is already revoked", "id"};
    }
    cache_.erase(id);
    return ok_status();
  } catch (const SQLite::Exception& e) {
    return Error{"store_failed", e.what(), {}}.as(ErrorKind::internal);
  }
}

Result<ApiKeyInfo> ApiKeys::verify(std::string_view key) {
  if (key.empty()) return unauthorized("an API key is needed: Authorization: Bearer <key> or X-API-Key: <key>");
  // cbk_<8 hex>_<64 hex>
  if (key.size() != 4 + 8 + 1 + 64 || !key.starts_with("cbk_") || key[12] != '_') {
    return unauthorized("malformed API key");
  }
  const std::string id(key.substr(4, 8));
  const std::string hash = sha256_hex(key);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (cache_.size() > 10'000 && !cache_.contains(id)) cache_.clear();  // guessed ids must not grow it forever
  Cached& cached = cache_[id];
  if (now - cached.loaded >= refresh_ || cached.loaded == std::chrono::steady_clock::time_point{}) {
    cached = Cached{};
    cached.loaded = now;
    try {
      SQLite::Statement query(*db_, "SELECT * FROM api_key WHERE id = ?");
      query.bind(1, id);
      if (query.executeStep()) {
        cached.known = true;
        cached.hash = query.getColumn("key_hash").getString();
        cached.info = read_info(query);
      }
    } catch (const SQLite::Exception& e) {
      cache_.erase(id);
      return Error{"store_failed", std::string("cannot check API keys: ") + e.what(), {}}.as(ErrorKind::internal);
    }
  }
  // Unknown ids are cached too (as unknown), so guessing costs no database reads.
  if (!cached.known || !equal_constant_time(cached.hash, hash)) return unauthorized("unknown API key");
  if (cached.info.revoked_at) return unauthorized("this API key was revoked");
  return cached.info;
}

Result<std::string> ApiKeys::webhook_secret(const std::string& id) {
  std::lock_guard lock(mutex_);
  if (auto it = cache_.find(id); it != cache_.end() && it->second.known) return it->second.info.webhook_secret;
  try {
    SQLite::Statement query(*db_, "SELECT webhook_secret FROM api_key WHERE id = ?");
    query.bind(1, id);
    if (!query.executeStep()) return Error{"not_found", "no API key \"" + id + "\"", "id"}.as(ErrorKind::not_found);
    return query.getColumn(0).getString();
  } catch (const SQLite::Exception& e) {
    return Error{"store_failed", e.what(), {}}.as(ErrorKind::internal);
  }
}

}  // namespace callback::rest
