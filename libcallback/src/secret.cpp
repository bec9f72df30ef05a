#include <callback/secret.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>
#include <cstdint>
#include <vector>

namespace callback {
namespace {

constexpr int log2_n = 14, block = 8, parallel = 1;
constexpr std::size_t salt_bytes = 16, hash_bytes = 32;

std::string hex(const unsigned char* data, std::size_t n) {
  return hex_encode(std::string_view(reinterpret_cast<const char*>(data), n));
}

bool unhex(std::string_view text, std::vector<unsigned char>& out) {
  if (text.size() % 2 != 0) return false;
  out.clear();
  for (std::size_t i = 0; i < text.size(); i += 2) {
    auto value = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = value(text[i]), lo = value(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<unsigned char>(hi * 16 + lo));
  }
  return true;
}

bool derive(std::string_view secret, const unsigned char* salt, std::size_t salt_size, int n_log2, int r, int p,
            unsigned char* out, std::size_t out_size) {
  return EVP_PBE_scrypt(secret.data(), secret.size(), salt, salt_size, std::uint64_t{1} << n_log2,
                        static_cast<std::uint64_t>(r), static_cast<std::uint64_t>(p), 64 * 1024 * 1024, out,
                        out_size) == 1;
}

}  // namespace

std::string hex_encode(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, in.size() - i);
    std::uint32_t group = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      group = (group << 8) | (k < n ? static_cast<unsigned char>(in[i + k]) : 0U);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      out += k <= n ? alphabet[(group >> (18 - 6 * k)) & 63U] : '=';
    }
  }
  return out;
}

std::string hmac(Digest digest, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(digest == Digest::sha1 ? EVP_sha1() : EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

bool equal_constant_time(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

// v1: the hex HMAC-SHA256 of "<t>.<body>".
std::string signature_v1(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  const std::string t = std::to_string(unix_seconds);
  std::string signed_text;
  signed_text.reserve(t.size() + 1 + body.size());
  signed_text.append(t).append(".").append(body);
  return hex_encode(hmac(Digest::sha256, secret, signed_text));
}

}  // namespace

std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  return "t=" + std::to_string(unix_seconds) + ",v1=" + signature_v1(secret, unix_seconds, body);
}

Status verify_webhook_signature(std::string_view secret, std::string_view header, std::string_view body,
                                std::int64_t now_unix, std::chrono::seconds tolerance) {
  std::optional<std::int64_t> t;
  std::vector<std::string_view> signatures;
  while (!header.empty()) {
    const auto comma = header.find(',');
    const std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    if (item.starts_with("t=")) {
      std::int64_t value = 0;
      auto [end, ec] = std::from_chars(item.data() + 2, item.data() + item.size(), value);
      if (ec != std::errc{} || end != item.data() + item.size() || item.size() == 2) {
        return Error{"invalid_signature", "t= is not a whole number of seconds", "Callback-Signature"};
      }
      t = value;
    } else if (item.starts_with("v1=")) {
      signatures.push_back(item.substr(3));
    }
  }
  if (!t || signatures.empty()) return Error{"invalid_signature", "needs t= and v1=", "Callback-Signature"};
  if (*t < now_unix - tolerance.count() || *t > now_unix + tolerance.count()) {
    return Error{"stale_signature", "t= is more than " + std::to_string(tolerance.count()) + " s from now",
                 "Callback-Signature"};
  }
  const std::string expected = signature_v1(secret, *t, body);
  for (auto signature : signatures) {
    if (equal_constant_time(signature, expected)) return ok_status();
  }
  return Error{"invalid_signature", "no v1= matches the body and t=", "Callback-Signature"};
}


Result<std::string> hash_secret(std::string_view secret) {
  if (secret.empty()) return Error{"invalid_secret", "a PIN or password cannot be empty", "secret"};
  if (secret.size() > 1024) return Error{"invalid_secret", "longer than 1024 characters", "secret"};
  unsigned char salt[salt_bytes];
  unsigned char hash[hash_bytes];
  if (RAND_bytes(salt, sizeof salt) != 1 || !derive(secret, salt, sizeof salt, log2_n, block, parallel, hash, sizeof hash)) {
    return Error{"crypto_failed", "OpenSSL could not derive the key", {}};
  }
  return "scrypt$" + std::to_string(log2_n) + "$" + std::to_string(block) + "$" + std::to_string(parallel) + "$" +
         hex(salt, sizeof salt) + "$" + hex(hash, sizeof hash);
}

bool verify_secret(std::string_view secret, std::string_view stored) noexcept {
  try {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= stored.size(); ++i) {
      if (i == stored.size() || stored[i] == '$') {
        parts.push_back(stored.substr(start, i - start));
        start = i + 1;
      }
    }
    if (parts.size() != 6 || parts[0] != "scrypt") return false;
    const int n_log2 = std::stoi(std::string(parts[1]));
    const int r = std::stoi(std::string(parts[2]));
    const int p = std::stoi(std::string(parts[3]));
    if (n_log2 < 10 || n_log2 > 20 || r < 1 || r > 16 || p < 1 || p > 4) return false;
    std::vector<unsigned char> salt, expected;
    if (!unhex(parts[4], salt) || !unhex(parts[5], expected) || expected.empty()) return false;
    std::vector<unsigned char> actual(expected.size());
    if (!derive(secret, salt.data(), salt.size(), n_log2, r, p, actual.data(), actual.size())) return false;
    return CRYPTO_memcmp(actual.data(), expected.data(), expected.size()) == 0;
  } catch (...) {
    return false;
  }
}

std::string random_bytes(std::size_t n) {
  std::string bytes(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    throw Exception(Error{"internal", "OpenSSL has no randomness to give", {}}.as(ErrorKind::internal));
  }
  return bytes;
}

}  // namespace callback
