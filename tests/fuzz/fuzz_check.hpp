#pragma once
// What the fuzz targets share: FUZZ_CHECK, which stops the run with the broken invariant
// and the values that broke it, so libFuzzer saves the input as a crash; and a reader
// that takes selector bytes off the front of the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(condition, ...)                                                  \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #condition);                                                      \
      ::callback_fuzz::describe(__VA_ARGS__);                                        \
      std::abort();                                                                  \
    }                                                                                \
  } while (false)

namespace callback_fuzz {

inline void describe() {}
// Each argument printed as "name-less" quoted text, with non-printable bytes escaped.
template <class... Rest>
void describe(std::string_view first, const Rest&... rest) {
  std::string out = "  \"";
  for (unsigned char c : first) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  out += "\"\n";
  std::fputs(out.c_str(), stderr);
  describe(std::string_view(rest)...);
}

// The input, read from the front: selector bytes first, the rest as text.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : text_(reinterpret_cast<const char*>(data), size) {}
  // One byte (0 once the input is used up).
  std::uint8_t byte() {
    if (text_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(text_.front());
    text_.remove_prefix(1);
    return b;
  }
  std::string_view rest() const { return text_; }

 private:
  std::string_view text_;
};

}  // namespace callback_fuzz
