#include <callback/timestamp.hpp>

#include <cstdint>
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

namespace {

// Reads exactly `n` digits at `at`; advances `at`.
std::optional<int> digits(std::string_view text, std::size_t& at, std::size_t n) {
  if (at + n > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[at + i];
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  at += n;
  return value;
}

// 2200-01-01T00:00:00Z: the first instant past the span parse_timestamp accepts.
constexpr std::time_t kTimestampEnd = 7'258'118'400;

bool expect(std::string_view text, std::size_t& at, char c) {
  if (at >= text.size() || text[at] != c) return false;
  ++at;
  return true;
}

}  // namespace

std::optional<Timestamp> parse_timestamp(std::string_view text) {
  std::size_t at = 0;
  const auto year = digits(text, at, 4);
  if (!year || !expect(text, at, '-')) return std::nullopt;
  const auto month = digits(text, at, 2);
  if (!month || !expect(text, at, '-')) return std::nullopt;
  const auto day = digits(text, at, 2);
  if (!day) return std::nullopt;
  std::tm tm{};
  tm.tm_year = *year - 1900;
  tm.tm_mon = *month - 1;
  tm.tm_mday = *day;
  std::chrono::nanoseconds fraction{0};
  std::chrono::seconds offset{0};
  if (at < text.size()) {
    const bool iso = text[at] == 'T' || text[at] == 't';
    if (!iso && text[at] != ' ') return std::nullopt;
    ++at;
    const auto hour = digits(text, at, 2);
    if (!hour || !expect(text, at, ':')) return std::nullopt;
    const auto minute = digits(text, at, 2);
    if (!minute || !expect(text, at, ':')) return std::nullopt;
    const auto second = digits(text, at, 2);
    if (!second) return std::nullopt;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    tm.tm_sec = *second;
    if (at < text.size() && text[at] == '.') {  // ARI: "2026-11-26T05:43:34.731+0000"
      ++at;
      std::int64_t scale = 100'000'000;
      const std::size_t first = at;
      while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
        if (at - first == 9) return std::nullopt;  // finer than nanoseconds
        fraction += std::chrono::nanoseconds((text[at] - '0') * scale);
        scale /= 10;
        ++at;
      }
      if (at == first) return std::nullopt;
    }
    if (at < text.size()) {
      const char zone = text[at++];
      if (zone == 'Z' || zone == 'z') {
        // UTC
      } else if (zone == '+' || zone == '-') {
        const auto hours = digits(text, at, 2);
        if (!hours) return std::nullopt;
        int minutes = 0;
        if (at < text.size()) {
          expect(text, at, ':');  // "+08:00" (RFC 3339) or "+0800" (ARI)
          const auto m = digits(text, at, 2);
          if (!m) return std::nullopt;
          minutes = *m;
        }
        if (*hours > 23 || minutes > 59) return std::nullopt;
        offset = std::chrono::seconds((*hours * 60 + minutes) * 60);
        if (zone == '-') offset = -offset;
      } else {
        return std::nullopt;
      }
    } else if (iso) {
      return std::nullopt;  // "2026-11-26T09:13:17" says no zone: local time of somewhere
    }
    if (at != text.size()) return std::nullopt;
  }
  // timegm rolls 31 February and 23:59:60 over into March and the next day; and
  // system_clock (nanoseconds) spans only 1678-2262. Found by tests/fuzz/fuzz_query and
  // fuzz_rate_deck.
  if (tm.tm_year < 70 || tm.tm_year > 2199 - 1900) return std::nullopt;
  const std::tm written = tm;
  const std::time_t seconds = timegm(&tm);
  if (tm.tm_mday != written.tm_mday || tm.tm_mon != written.tm_mon || tm.tm_year != written.tm_year ||
      tm.tm_hour != written.tm_hour || tm.tm_min != written.tm_min || tm.tm_sec != written.tm_sec) {
    return std::nullopt;
  }
  // The same span holds for the instant meant, not only for the digits written:
  // "1970-01-01T00:30:00+01:00" is before 1970 and "2199-12-31T23:30:00-01:00" after 2199,
  // and neither would read back from how it prints (fuzz_query found it).
  const std::time_t instant = seconds - static_cast<std::time_t>(offset.count());
  if (instant < 0 || instant >= kTimestampEnd) return std::nullopt;
  const auto utc = std::chrono::system_clock::from_time_t(instant);
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>((utc + fraction).time_since_epoch()));
}

}  // namespace callback
