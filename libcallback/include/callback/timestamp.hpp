#pragma once
// Times as Asterisk's CDRs write them: "2026-11-26 09:13:17", in UTC. Used by the
// stores, the CLI and the rate decks, so every file and table reads the same.
#include <callback/call.hpp>
#include <callback/export.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace callback {

[[nodiscard]] CALLBACK_EXPORT std::string format_timestamp(Timestamp t);
// For the REST API and webhooks: "2026-11-26T09:13:17Z".
[[nodiscard]] CALLBACK_EXPORT std::string format_rfc3339(Timestamp t);
// "YYYY-MM-DD" (midnight UTC), "YYYY-MM-DD HH:MM:SS" (UTC unless a zone follows) or RFC 3339's
// "YYYY-MM-DDTHH:MM:SS" with a zone ("Z", "+08:00", or ARI's "+0000"); seconds may have a
// fraction (".731"). Empty when malformed, without a zone after a "T", not a real date or time
// (31 February, 23:59:60) or outside the years 1970-2199.
[[nodiscard]] CALLBACK_EXPORT std::optional<Timestamp> parse_timestamp(std::string_view text);

}  // namespace callback
