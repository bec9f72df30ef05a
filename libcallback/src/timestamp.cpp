#include <callback/timestamp.hpp>

#include <ctime>

namespace callback {

namespace {

std::string format_utc(Timestamp t, const char* format) {
  const auto seconds = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, format, &utc);
  return text;
}

}  // namespace

std::string format_timestamp(Timestamp t) { return format_utc(t, "%Y-%m-%d %H:%M:%S"); }

std::string format_rfc3339(Timestamp t) { return format_utc(t, "%Y-%m-%dT%H:%M:%SZ"); }

std::optional<Timestamp> parse_timestamp(std::string_view text) {
  // strptime reads a C string: "2026-11-26\0junk" would be taken for "2026-11-26".
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string s(text);
  for (const char* format : {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"}) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), format, &tm);
    if (end == nullptr || *end != '\0') continue;
    // strptime takes 31 February and 23:59:60, which timegm rolls over into March and
    // the next day; and system_clock (nanoseconds) spans only 1678-2262. Found by
    // tests/fuzz/fuzz_query and fuzz_rate_deck.
    if (tm.tm_year < 70 || tm.tm_year > 2199 - 1900) return std::nullopt;
    const std::tm written = tm;
    const std::time_t seconds = timegm(&tm);
    if (tm.tm_mday != written.tm_mday || tm.tm_mon != written.tm_mon || tm.tm_year != written.tm_year ||
        tm.tm_hour != written.tm_hour || tm.tm_min != written.tm_min || tm.tm_sec != written.tm_sec) {
      return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(seconds);
  }
  return std::nullopt;
}

}  // namespace callback
