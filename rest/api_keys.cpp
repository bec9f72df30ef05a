#include "api_keys.hpp"

#include <callback/secret.hpp>
#include <callback/timestamp.hpp>

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

ApiKeyInfo to_info(const ApiKeyRecord& record) {
  // An unknown scope (written by a newer callback) grants the least.
  return ApiKeyInfo{.id = record.id, .name = record.name,
                    .scope = key_scope_from_string(record.scope).value_or(KeyScope::callbacks),
                    .webhook_secret = record.webhook_secret, .created_at = record.created_at,
                    .revoked_at = record.revoked_at};
}

Timestamp now_seconds() { return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()); }

}  // namespace

std::string_view to_string(KeyScope scope) noexcept { return scope_names[static_cast<int>(scope)]; }

std::optional<KeyScope> key_scope_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(scope_names); ++i) {
    if (scope_names[i] == name) return static_cast<KeyScope>(i);
  }
  return std::nullopt;
}

std::string hmac_sha256_hex(std::string_view secret, std::string_view body) {
  return hex_encode(hmac(Digest::sha256, secret, body));
}

Result<std::unique_ptr<ApiKeys>> ApiKeys::over(Store& store, std::chrono::milliseconds refresh) {
  auto* keys = store.api_keys();
  if (keys == nullptr) {
    return Error{"unsupported", "this store backend keeps no API keys", "store"}.as(ErrorKind::unavailable);
  }
  return std::make_unique<ApiKeys>(*keys, refresh);
}

Result<CreatedKey> ApiKeys::add(const std::string& name, KeyScope scope) {
  if (name.empty() || name.size() > 100) return Error{"invalid_name", "a key needs a name of 1 to 100 characters", "name"};
  CreatedKey created;
  created.info.id = random_hex(4);
  created.info.name = name;
  created.info.scope = scope;
  created.info.webhook_secret = "whsec_" + random_hex(24);
  created.info.created_at = now_seconds();
  created.key = "cbk_" + created.info.id + "_" + random_hex(32);
  const ApiKeyRecord record{.id = created.info.id, .name = name, .scope = std::string(to_string(scope)),
                            .key_hash = sha256_hex(created.key), .webhook_secret = created.info.webhook_secret,
                            .created_at = created.info.created_at, .revoked_at = std::nullopt};
  if (auto ok = store_.add(record); !ok) {
    return Error{ok.error().code, "could not store the key: " + ok.error().message, ok.error().field}.as(ok.error().kind);
  }
  return created;
}

Result<std::vector<ApiKeyInfo>> ApiKeys::list() {
  auto records = store_.list();
  if (!records) return records.error();
  std::vector<ApiKeyInfo> keys;
  keys.reserve(records->size());
  for (const auto& record : *records) keys.push_back(to_info(record));
  return keys;
}

Status ApiKeys::revoke(const std::string& id) {
  if (auto ok = store_.revoke(id, now_seconds()); !ok) return ok;
  std::lock_guard lock(mutex_);
  cache_.erase(id);
  return ok_status();
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
    auto found = store_.find(id);
    if (!found) {
      cache_.erase(id);
      return Error{found.error().code, "cannot check API keys: " + found.error().message, {}}.as(ErrorKind::internal);
    }
    if (*found) {
      cached.known = true;
      cached.hash = (*found)->key_hash;
      cached.info = to_info(**found);
    }
  }
  // Unknown ids are cached too (as unknown), so guessing costs no database reads.
  if (!cached.known || !equal_constant_time(cached.hash, hash)) return unauthorized("unknown API key");
  if (cached.info.revoked_at) return unauthorized("this API key was revoked");
  return cached.info;
}

Result<std::string> ApiKeys::webhook_secret(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(id); it != cache_.end() && it->second.known) return it->second.info.webhook_secret;
  }
  auto found = store_.find(id);
  if (!found) return found.error();
  if (!*found) return Error{"not_found", "no API key \"" + id + "\"", "id"}.as(ErrorKind::not_found);
  return (*found)->webhook_secret;
}

}  // namespace callback::rest
