#pragma once
// The one rule for ids people choose (accounts, campaigns, tariffs): 1-64 characters of
// letters, digits, '-', '_' and '.'. Safe in URLs, file names and log lines.
#include <callback/error.hpp>

#include <cctype>
#include <string>
#include <string_view>

namespace callback::detail {

inline Status check_identifier(std::string_view id, const std::string& what, const std::string& field,
                               const std::string& code) {
  if (id.empty()) return Error{code, what + " id is empty", field};
  if (id.size() > 64) return Error{code, what + " id is longer than 64 characters", field};
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) {
      return Error{code, what + " id may contain only letters, digits, '-', '_' and '.'", field};
    }
  }
  return ok_status();
}

}  // namespace callback::detail
