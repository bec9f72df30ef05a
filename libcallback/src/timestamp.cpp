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
  const std::string s(text);
  for (const char* format : {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"}) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return std::chrono::system_clock::from_time_t(timegm(&tm));
  }
  return std::nullopt;
}

}  // namespace callback
