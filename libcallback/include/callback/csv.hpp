#pragma once
// CSV records as RFC 4180 has them: fields split by a separator, a field in double quotes
// may hold the separator, line breaks (CRLF or LF) and "" for a quote. Records end at an
// unquoted line break (CRLF or LF); a blank line is skipped. Unquoted fields are trimmed
// of spaces and tabs (carriers' files pad them); quoted ones are kept as they are.
//
//   CsvReader csv(text, ',');
//   std::vector<std::string> fields;
//   while (auto more = csv.next(fields)) {
//     if (!*more) ...;                      // csv.error(): "line 7: a quote is not closed"
//     use(csv.line(), fields);              // line: where the record starts (1-based)
//   }
#include <callback/export.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

class CALLBACK_EXPORT CsvReader {
 public:
  // `text` must outlive the reader. A UTF-8 byte order mark at its start is skipped.
  CsvReader(std::string_view text, char separator);

  // The next record into `fields`: nullopt at the end, false on a malformed record (a
  // quote left open, text after a closing quote), after which the reader stays at the end.
  [[nodiscard]] std::optional<bool> next(std::vector<std::string>& fields);

  // The line the last record started on (1-based), and the one after it.
  [[nodiscard]] std::size_t line() const noexcept { return record_line_; }
  // What was wrong with the last record, when next() gave false.
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

  // The separator a file uses, from its first line: ';' if it has one outside quotes, else ','.
  [[nodiscard]] static char detect_separator(std::string_view text) noexcept;

 private:
  std::string_view rest_;
  char separator_;
  std::size_t next_line_ = 1;
  std::size_t record_line_ = 0;
  std::string error_;
};

}  // namespace callback
