#pragma once
// Human-readable tables for callbackctl: columns padded to their widest cell.
#include <boost/json/array.hpp>

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace callback::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// A column of a table made from JSON records: the header and the cell of one record.
struct Column {
  std::string header;
  std::string key;  // the record's property, shown as text (numbers and booleans too; null: empty)
  std::function<std::string(const std::string&)> shown = nullptr;  // rewrites the text, if set
};

// The records as a table (the same JSON as --json prints, whether it came from the
// database or from callbackd), so both ways show the same columns.
void print_table(std::ostream& out, const boost::json::array& records, const std::vector<Column>& columns);

}  // namespace callback::cli
