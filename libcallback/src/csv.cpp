#include <callback/csv.hpp>

namespace callback {
namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

CsvReader::CsvReader(std::string_view text, char separator) : rest_(text), separator_(separator) {
  if (rest_.starts_with("\xEF\xBB\xBF")) rest_.remove_prefix(3);
}

char CsvReader::detect_separator(std::string_view text) noexcept {
  bool quoted = false;
  bool seen = false;  // a non-blank character of the first non-blank line
  for (const char c : text) {
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    if (c == ';') return ';';
    if (c == '\n' && seen) break;
    seen = seen || !(blank(c) || c == '\n');
  }
  return ',';
}

std::optional<bool> CsvReader::next(std::vector<std::string>& fields) {
  fields.clear();
  // Blank lines between records.
  while (!rest_.empty()) {
    const auto eol = rest_.find('\n');
    if (!trim(rest_.substr(0, eol)).empty()) break;
    rest_ = eol == std::string_view::npos ? std::string_view{} : rest_.substr(eol + 1);
    ++next_line_;
  }
  if (rest_.empty()) return std::nullopt;
  record_line_ = next_line_;
  const auto fail = [&](const char* what) {
    error_ = what;
    rest_ = {};
    return false;
  };
  std::string field;
  bool quoted = false;       // inside a quoted field
  bool was_quoted = false;   // the field being read was quoted
  bool after_quote = false;  // its closing quote was seen: only blanks may follow
  std::size_t i = 0;
  for (; i < rest_.size(); ++i) {
    const char c = rest_[i];
    if (quoted) {
      if (c != '"') {
        if (c == '\n') ++next_line_;
        field.push_back(c);
      } else if (i + 1 < rest_.size() && rest_[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else {
        quoted = false;
        after_quote = true;
      }
      continue;
    }
    if (c == '\n') break;
    if (c == separator_) {
      fields.push_back(was_quoted ? std::move(field) : std::string(trim(field)));
      field.clear();
      was_quoted = after_quote = false;
    } else if (after_quote) {
      if (!blank(c)) return fail("text after a closing quote");
    } else if (c == '"' && trim(field).empty()) {
      quoted = was_quoted = true;
      field.clear();
    } else {
      field.push_back(c);
    }
  }
  if (quoted) return fail("a quote is not closed");
  fields.push_back(was_quoted ? std::move(field) : std::string(trim(field)));
  rest_ = i < rest_.size() ? rest_.substr(i + 1) : std::string_view{};
  ++next_line_;
  return true;
}

}  // namespace callback
