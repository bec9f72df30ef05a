#include "table.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <ostream>

namespace callback::cli {

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  auto line = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      out << row[i];
      if (i + 1 < row.size()) out << std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << '\n';
  };
  line(header_);
  for (const auto& row : rows_) line(row);
}

void print_table(std::ostream& out, const boost::json::array& records, const std::vector<Column>& columns) {
  std::vector<std::string> header;
  for (const auto& c : columns) header.push_back(c.header);
  Table table(std::move(header));
  for (const auto& record : records) {
    std::vector<std::string> row;
    for (const auto& c : columns) {
      const auto* v = record.is_object() ? record.as_object().if_contains(c.key) : nullptr;
      std::string text;
      if (v != nullptr && v->is_string()) {
        text = v->as_string();
      } else if (v != nullptr && !v->is_null()) {
        text = boost::json::serialize(*v);
      }
      row.push_back(c.shown ? c.shown(text) : text);
    }
    table.add(std::move(row));
  }
  table.print(out);
}

}  // namespace callback::cli
