#pragma once
// PINs and passwords are stored only as the output of a slow, memory-hard KDF (OpenSSL's
// scrypt, N=2^14, r=8, p=1, 16-byte random salt), and checked in constant time.
//
//   account.secret_hash = hash_secret("4711").value();   // "scrypt$14$8$1$<salt>$<hash>"
//   verify_secret("4711", account.secret_hash);          // true
#include <callback/error.hpp>
#include <callback/export.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace callback {

[[nodiscard]] CALLBACK_EXPORT Result<std::string> hash_secret(std::string_view secret);
[[nodiscard]] CALLBACK_EXPORT bool verify_secret(std::string_view secret, std::string_view stored) noexcept;

// Signatures of webhooks, ours and those we receive (Twilio's X-Twilio-Signature is the
// Base64 of an HMAC-SHA1; ours and the generic SMS gateway's are hex HMAC-SHA256).
enum class Digest { sha1, sha256 };
[[nodiscard]] CALLBACK_EXPORT std::string hmac(Digest digest, std::string_view key, std::string_view data);
[[nodiscard]] CALLBACK_EXPORT std::string hex_encode(std::string_view bytes);  // lower case
[[nodiscard]] CALLBACK_EXPORT std::string base64_encode(std::string_view bytes);  // RFC 4648, with padding
// `n` bytes from OpenSSL's CSPRNG (keys for HMACs that live as long as the process).
[[nodiscard]] CALLBACK_EXPORT std::string random_bytes(std::size_t n);
// Constant time for equal lengths (a signature's length is no secret).
[[nodiscard]] CALLBACK_EXPORT bool equal_constant_time(std::string_view a, std::string_view b) noexcept;

// The Callback-Signature header of the webhooks callbackd sends (status callbacks, the SMS
// trigger's outcome messages) and of the ones its triggers take from a gateway:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with `secret`>".
[[nodiscard]] CALLBACK_EXPORT std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds,
                                                            std::string_view body);
// A receiver's check (what rest/API-CONTRACT.md describes): some v1 matches, in constant
// time, and t is within `tolerance` of `now_unix`. The Error ("invalid_signature",
// "stale_signature") says which check failed.
[[nodiscard]] CALLBACK_EXPORT Status verify_webhook_signature(std::string_view secret, std::string_view header,
                                                              std::string_view body, std::int64_t now_unix,
                                                              std::chrono::seconds tolerance = std::chrono::minutes{5});

}  // namespace callback
