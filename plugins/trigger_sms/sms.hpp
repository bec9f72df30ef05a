#pragma once
// callback.trigger.sms, the parts without I/O: what an SMS asks for, and whether a gateway
// really sent it.
//
//   auto command = parse_sms_command("alice s3cret 13800138000#13900139000");
//   // {.account = "alice", .password = "s3cret", .caller = "13800138000", .callee = "13900139000"}
//   twilio_signature_ok(token, "https://cb.example.com/hooks/sms/twilio", fields, header);
#include <callback/error.hpp>
#include <callback/http.hpp>
#include <callback/timestamp.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callback::trigger_sms {

// What the text of an SMS asks for (the seed's formats). Separators are spaces, commas and
// '#', in any number:
//   "username password A B": an account's id and password, then both numbers;
//   "A B": from a number registered to an account; it pays;
//   "B": the same, and A is the sender.
// The numbers are as people typed them (PhoneNumber::parse reads them later).
struct SmsCommand {
  std::string account, password;  // empty unless the four-part form
  std::string caller;             // empty: the sender
  std::string callee;
};
// An Error "invalid_sms" saying which forms there are when the text is none of them.
[[nodiscard]] Result<SmsCommand> parse_sms_command(std::string_view text);

// Twilio's X-Twilio-Signature (twilio.com/docs/usage/security): the Base64 of the HMAC-SHA1,
// keyed with the account's auth token, of the webhook's URL exactly as configured at Twilio
// (scheme, host, path and query) followed by each POST field's name and value, sorted by name.
[[nodiscard]] std::string twilio_signature(std::string_view auth_token, std::string_view url, FormFields fields);
[[nodiscard]] bool twilio_signature_ok(std::string_view auth_token, std::string_view url, const FormFields& fields,
                                       std::string_view signature);

// The generic gateway's JSON POST is signed as callbackd signs its own webhooks
// (callback/secret.hpp: Callback-Signature "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">"); refused when missing, wrong or too far from now (a replay).
[[nodiscard]] Status check_gateway_signature(std::string_view secret, const HttpRequest& request, Timestamp now,
                                             std::chrono::seconds skew);

// Text for a TwiML <Message> or any XML text node: & < > " ' escaped.
[[nodiscard]] std::string xml_escape(std::string_view text);

}  // namespace callback::trigger_sms
