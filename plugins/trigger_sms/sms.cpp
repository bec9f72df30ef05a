#include "sms.hpp"

#include <callback/secret.hpp>

#include <algorithm>
#include <vector>

namespace callback::trigger_sms {

Result<SmsCommand> parse_sms_command(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  const auto separator = [](char c) { return c == ' ' || c == ',' || c == '#' || c == '\t' || c == '\r' || c == '\n'; };
  while (i < text.size()) {
    while (i < text.size() && separator(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !separator(text[i])) ++i;
    if (i > start) parts.push_back(text.substr(start, i - start));
  }
  switch (parts.size()) {
    case 1:
      return SmsCommand{.callee = std::string(parts[0])};
    case 2:
      return SmsCommand{.caller = std::string(parts[0]), .callee = std::string(parts[1])};
    case 4:
      return SmsCommand{.account = std::string(parts[0]), .password = std::string(parts[1]),
                        .caller = std::string(parts[2]), .callee = std::string(parts[3])};
    default:
      return Error{"invalid_sms",
                   "send the number to call (B), or your number and B (A B), or account, password, A and B, "
                   "separated by spaces, commas or #; this message has " + std::to_string(parts.size()) + " parts",
                   "Body"};
  }
}

std::string twilio_signature(std::string_view auth_token, std::string_view url, FormFields fields) {
  // Sorted by name; fields of one name (a repeated key) keep their order, as Twilio's own
  // libraries do.
  std::stable_sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string data(url);
  for (const auto& [name, value] : fields) {
    data += name;
    data += value;
  }
  return base64_encode(hmac(Digest::sha1, auth_token, data));
}

bool twilio_signature_ok(std::string_view auth_token, std::string_view url, const FormFields& fields,
                         std::string_view signature) {
  if (signature.empty() || auth_token.empty()) return false;
  return equal_constant_time(twilio_signature(auth_token, url, fields), signature);
}

Status check_gateway_signature(std::string_view secret, const HttpRequest& request, Timestamp now,
                               std::chrono::seconds skew) {
  const auto header = request.header("Callback-Signature");
  if (!header) return Error{"invalid_signature", "the Callback-Signature header is required", "Callback-Signature"};
  const auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return verify_webhook_signature(secret, *header, request.body, now_unix, skew);
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 has no place for other control characters.
        out += static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r' ? '?' : c;
    }
  }
  return out;
}

}  // namespace callback::trigger_sms
