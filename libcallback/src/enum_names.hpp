#pragma once
// Enums whose names live in a table indexed by value: one lookup for every such enum.
#include <cstddef>
#include <optional>
#include <string_view>

namespace callback::detail {

template <class Enum, std::size_t N>
std::optional<Enum> enum_from_name(const std::string_view (&names)[N], std::string_view name) noexcept {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

}  // namespace callback::detail
