#pragma once
// Human-readable tables for callbackctl: columns padded to their widest cell.
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

}  // namespace callback::cli
