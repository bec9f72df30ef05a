#pragma once
// PINs and passwords are stored only as the output of a slow, memory-hard KDF (OpenSSL's
// scrypt, N=2^14, r=8, p=1, 16-byte random salt), and checked in constant time.
//
//   account.secret_hash = hash_secret("4711").value();   // "scrypt$14$8$1$<salt>$<hash>"
//   verify_secret("4711", account.secret_hash);          // true
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <string>
#include <string_view>

namespace callback {

[[nodiscard]] CALLBACK_EXPORT Result<std::string> hash_secret(std::string_view secret);
[[nodiscard]] CALLBACK_EXPORT bool verify_secret(std::string_view secret, std::string_view stored) noexcept;

}  // namespace callback
