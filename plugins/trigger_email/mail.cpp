#include "mail.hpp"

#include <gmime/gmime.h>

#include <memory>
#include <mutex>

namespace callback::trigger_email {

namespace {

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

template <class T>
struct GUnref {
  void operator()(T* p) const {
    if (p != nullptr) g_object_unref(p);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GUnref<T>>;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

Result<MailHeader> parse_mail_header(std::string_view header_block) {
  init_gmime();
  std::string block(header_block);
  // A header block alone: end it, so the parser sees an (empty) body after it.
  if (block.find("\r\n\r\n") == std::string::npos && block.find("\n\n") == std::string::npos) block += "\r\n\r\n";
  GPtr<GMimeStream> stream(
      g_mime_stream_mem_new_with_buffer(block.data(), block.size()));
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  GPtr<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!message) return Error{"invalid_mail", "the header could not be read as a mail's", "header"};
  MailHeader out;
  if (InternetAddressList* from = g_mime_message_get_from(message.get());
      from != nullptr && internet_address_list_length(from) > 0) {
    InternetAddress* first = internet_address_list_get_address(from, 0);
    if (INTERNET_ADDRESS_IS_MAILBOX(first)) {
      if (const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(first))) out.from = addr;
    }
  }
  if (out.from.empty()) return Error{"invalid_mail", "the mail has no From address", "From"};
  if (const char* subject = g_mime_message_get_subject(message.get())) out.subject = subject;
  if (const char* id = g_mime_message_get_message_id(message.get())) out.message_id = id;
  return out;
}

std::string fold_full_width(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c0 = static_cast<unsigned char>(text[i]);
    // U+FF01..U+FF5E: EF BC 81 .. EF BD 9E; U+3000: E3 80 80.
    if (c0 == 0xEF && i + 2 < text.size()) {
      const auto c1 = static_cast<unsigned char>(text[i + 1]), c2 = static_cast<unsigned char>(text[i + 2]);
      const unsigned code = ((c0 & 0x0FU) << 12) | ((c1 & 0x3FU) << 6) | (c2 & 0x3FU);
      if (code >= 0xFF10 && code <= 0xFF19) {
        out += static_cast<char>('0' + (code - 0xFF10));
        i += 2;
        continue;
      }
      if (code == 0xFF03 || code == 0xFF0B || code == 0xFF0D) {
        out += code == 0xFF03 ? '#' : code == 0xFF0B ? '+' : '-';
        i += 2;
        continue;
      }
    }
    if (c0 == 0xE3 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        static_cast<unsigned char>(text[i + 2]) == 0x80) {
      out += ' ';
      i += 2;
      continue;
    }
    out += text[i];
  }
  return out;
}

Result<EmailCommand> parse_subject(std::string_view raw) {
  const std::string folded = fold_full_width(raw);
  std::string_view s = folded;
  const auto skip_spaces = [&] {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  };
  const auto usage = [](std::string why) {
    return Error{"invalid_subject",
                 why + "; the subject is the last 7 digits of the access number, and optionally # and the number "
                       "to call (5551234#13900139000)",
                 "Subject"};
  };
  // "Re: ", "Fwd: ", "回复：" ... in front: anything up to the last ':' before the digits.
  skip_spaces();
  for (auto colon = s.find_first_of(":\xEF"); colon != std::string_view::npos; colon = s.find_first_of(":\xEF")) {
    std::size_t after = 0;
    if (s[colon] == ':') {
      after = colon + 1;
    } else if (s.substr(colon, 3) == "\xEF\xBC\x9A") {  // U+FF1A full-width colon
      after = colon + 3;
    } else {
      break;
    }
    const auto prefix = s.substr(0, colon);
    if (prefix.find_first_of("0123456789#") != std::string_view::npos) break;
    s.remove_prefix(after);
    skip_spaces();
  }
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits != 7) {
    return usage(digits == 0 ? "no access number" : "the access number has " + std::to_string(digits) + " digits, not 7");
  }
  EmailCommand command{.access_suffix = std::string(s.substr(0, 7))};
  s.remove_prefix(7);
  skip_spaces();
  if (s.empty()) return command;
  if (s.front() != '#') return usage("after the access number comes # and the number to call, or nothing");
  s.remove_prefix(1);
  skip_spaces();
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  if (s.empty()) return usage("nothing after #");
  if (s.size() > 40) return usage("the number to call is too long");
  command.callee = std::string(s);
  return command;
}

}  // namespace callback::trigger_email
