// Fuzzes what callback.trigger.sms reads from a gateway: the form body (decode_form), the
// message's text (parse_sms_command), Twilio's signature over the fields, and the TwiML
// reply's escaping. Invariants: decoded fields re-encode and decode to themselves and
// hold no control character; a command's parts hold no separator and read back the same
// when written with single spaces; a signature verifies, and no longer does once a field
// changes; escaped text has no markup and no control character XML forbids.
#include "fuzz_check.hpp"
#include "sms.hpp"

#include <callback/secret.hpp>

using callback::FormFields;
using namespace callback::trigger_sms;

namespace {

std::string encode(std::string_view text) {
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += ch;
    } else {
      out += '%';
      out += callback::hex_encode(std::string_view(&ch, 1));
    }
  }
  return out;
}

bool separator(char c) { return c == ' ' || c == ',' || c == '#' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  callback_fuzz::Input in(data, size);
  const std::string_view body = in.rest();

  auto fields = callback::decode_form(body);
  if (fields) {
    std::string again;
    for (const auto& [name, value] : *fields) {
      for (const unsigned char c : name + value) FUZZ_CHECK(c >= 0x20 && c != 0x7f, body, name, value);
      if (!again.empty()) again += '&';
      again += encode(name) + "=" + encode(value);
    }
    auto round = callback::decode_form(again);
    FUZZ_CHECK(round && *round == *fields, body, again);

    const std::string url = "https://cb.example.com/hooks/sms/twilio";
    const auto signature = twilio_signature("token", url, *fields);
    FUZZ_CHECK(twilio_signature_ok("token", url, *fields, signature), body, signature);
    FUZZ_CHECK(!twilio_signature_ok("other", url, *fields, signature), body, signature);
    if (!fields->empty()) {
      auto changed = *fields;
      changed.front().second += 'x';
      FUZZ_CHECK(!twilio_signature_ok("token", url, changed, signature), body, signature);
    }
  }

  auto command = parse_sms_command(body);
  if (command) {
    std::string written;
    for (const std::string* part : {&command->account, &command->password, &command->caller, &command->callee}) {
      if (part->empty()) continue;
      for (const char c : *part) FUZZ_CHECK(!separator(c), body, *part);
      if (!written.empty()) written += ' ';
      written += *part;
    }
    auto back = parse_sms_command(written);
    FUZZ_CHECK(back && back->account == command->account && back->password == command->password &&
                   back->caller == command->caller && back->callee == command->callee,
               body, written);
    FUZZ_CHECK(!command->callee.empty(), body);
  } else {
    FUZZ_CHECK(command.error().code == "invalid_sms", body);
  }

  const std::string escaped = xml_escape(body);
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    const auto c = static_cast<unsigned char>(escaped[i]);
    FUZZ_CHECK(c != '<' && c != '>' && c != '"' && c != '\'', body, escaped);
    FUZZ_CHECK(c >= 0x20 || c == '\t' || c == '\n' || c == '\r', body, escaped);
    if (c == '&') {
      const auto end = escaped.find(';', i);
      FUZZ_CHECK(end != std::string::npos && end - i <= 5, body, escaped);
    }
  }
  return 0;
}
