// Fuzzes the AMI parser with what an Asterisk (or anything on its port) may send.
// Invariants: the messages and the verdict do not depend on how TCP cut the bytes (one
// feed against pieces of fuzzer-chosen sizes); an owning Message reads as its view; a
// message's headers written back as an Action parse to the same headers.
#include "fuzz_check.hpp"

#include "ami_codec.hpp"

#include <utility>
#include <vector>

namespace ami = callback::ami;
using callback_fuzz::Input;

namespace {

struct Parsed {
  std::vector<std::vector<std::pair<std::string, std::string>>> messages;
  std::vector<std::string> texts;
  bool ok = true;
};

std::vector<std::pair<std::string, std::string>> copy_headers(const ami::MessageView& m) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& h : m.headers()) out.emplace_back(h.name, h.value);
  return out;
}

std::string show(const Parsed& p) {
  std::string out = p.ok ? "ok" : "error";
  out += ", " + std::to_string(p.messages.size()) + " messages";
  return out;
}

// The bytes in pieces; sizes from a small generator seeded by the input (0: one feed).
Parsed parse(std::string_view stream, ami::Limits limits, unsigned seed) {
  Parsed out;
  ami::Parser parser(limits);
  auto on_message = [&](const ami::MessageView& m) {
    out.messages.push_back(copy_headers(m));
    out.texts.emplace_back(m.text());
    // An owning copy reads the same as the view it was made from.
    const ami::Message owned(m);
    FUZZ_CHECK(copy_headers(owned.view()) == out.messages.back(), m.text());
    FUZZ_CHECK(owned.view().text() == m.text(), m.text());
    const ami::Message copied = owned;
    FUZZ_CHECK(copy_headers(copied.view()) == out.messages.back(), m.text());
  };
  std::size_t pos = 0;
  unsigned state = seed;
  while (pos < stream.size()) {
    std::size_t piece = stream.size() - pos;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      piece = std::min<std::size_t>(piece, 1 + (state >> 16) % 64);
    }
    if (auto ok = parser.feed(stream.substr(pos, piece), on_message); !ok) {
      out.ok = false;
      FUZZ_CHECK(!ok.error().message.empty(), stream);
      // A spent parser stays spent.
      FUZZ_CHECK(!parser.feed("Event: X\r\n\r\n", on_message).ok(), stream);
      break;
    }
    pos += piece;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t selector = in.byte();
  std::string stream;
  if ((selector & 0x80) != 0) stream = "Asterisk Call Manager/12.0.0\r\n";  // get past the banner sooner
  stream.append(in.rest());
  ami::Limits limits;
  if ((selector & 0x40) != 0) limits = ami::Limits{.max_line = 64, .max_message = 512, .max_headers = 8};

  const Parsed whole = parse(stream, limits, 0);
  const Parsed pieces = parse(stream, limits, (selector & 0x3f) + 1u);
  FUZZ_CHECK(whole.ok == pieces.ok && whole.messages == pieces.messages && whole.texts == pieces.texts, stream,
             show(whole), show(pieces));

  // What we parsed, written back as an action, reads the same.
  for (const auto& headers : whole.messages) {
    const auto& [first_name, first_value] = headers.front();
    bool writable = ami::Action::is_safe_value(first_value);
    for (const auto& [name, value] : headers) {
      writable = writable && ami::Action::is_safe_value(name) && ami::Action::is_safe_value(value);
    }
    if (!writable) continue;
    ami::Action action(first_value);
    for (std::size_t i = 1; i < headers.size(); ++i) action.add(headers[i].first, headers[i].second);
    const Parsed back = parse("Asterisk Call Manager/12.0.0\r\n" + action.str(), ami::Limits{}, 0);
    FUZZ_CHECK(back.ok && back.messages.size() == 1, action.str(), show(back));
    auto expected = headers;
    expected.front().first = "Action";
    FUZZ_CHECK(back.messages.front() == expected, action.str());
  }
  return 0;
}
