#pragma once
// CallbackRequest: "call me (caller) and connect me to callee", as any trigger hands it
// to the service. Who pays is an account, or a campaign (the seed's free promotion).
//
//   CallbackRequest request{.caller = a, .callee = b, .payer = AccountId{"123"},
//                           .origin = Origin::web, .idempotency_key = "f3a9..."};
//   if (auto ok = request.validate(); !ok) reject(ok.error());
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/phone_number.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace callback {

// Where a request came from; kept in CDRs and statistics.
enum class Origin { web, rest, sms, email, ani, did, cli, api };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(Origin origin) noexcept;
[[nodiscard]] CALLBACK_EXPORT std::optional<Origin> origin_from_string(std::string_view name) noexcept;

struct AccountId {
  std::string value;
  friend bool operator==(const AccountId&, const AccountId&) = default;
};
struct CampaignId {
  std::string value;
  friend bool operator==(const CampaignId&, const CampaignId&) = default;
};
using Payer = std::variant<AccountId, CampaignId>;

// What a trigger received, before anything is checked: numbers as people typed them.
struct CallbackForm {
  std::string caller;
  std::string callee;
  Payer payer;
  Origin origin = Origin::api;
  std::optional<std::chrono::seconds> limit;
  std::string idempotency_key;
  std::string secret;
  std::string language;  // empty: none asked for
  std::map<std::string, std::string, std::less<>> metadata;  // CallbackRequest::metadata
  // An empty callee is asked of the caller by DTMF once A answers (the IVR: ANI and DID
  // access numbers, an e-mail without "#B"); else an empty callee is an error.
  bool ask_callee = false;
};

// An Asterisk sound language tag ("en", "zh", "pt_BR"): 2-16 letters, digits, '_' and
// '-'. It reaches Asterisk as CHANNEL(language) and names a sounds folder, so nothing else
// may pass (no spaces, CR or LF, '/', '.'). The Error names `field`.
[[nodiscard]] CALLBACK_EXPORT Status check_language(std::string_view language, const std::string& field = "language");

struct CallbackRequest;
// Normalizes both numbers with the service's numbering plan and checks the rest; the
// Error's field says which input was wrong ("caller", "callee", "account", "limit",
// "language"). Emergency and short codes (check_dialable) are refused with
// "denied.emergency_number" / "denied.short_code" and the rule that matched.
// Nothing reaches billing or Asterisk unless this succeeds.
[[nodiscard]] CALLBACK_EXPORT Result<CallbackRequest> make_request(const CallbackForm& form, const NumberingPlan& plan);

struct CallbackRequest {
  PhoneNumber caller;  // leg A: called first
  // Leg B: called once A answers. Empty: A is asked for it by DTMF once A answers (the
  // IVR; the engine must collect digits and run the step flow), read with the service's
  // numbering plan, checked as a callee is, then authorized; until then nothing is
  // reserved (the trigger vouches for the payer: a registered caller, a campaign).
  std::optional<PhoneNumber> callee;
  Payer payer;
  Origin origin = Origin::api;
  std::optional<std::chrono::seconds> limit;  // at most this long, even if more is authorized
  std::string idempotency_key;                // empty: none; else repeated requests are one callback
  std::string secret;                         // password/PIN for account mode; never logged
  // Asterisk sound language of what A hears ("en", "zh", "pt_BR"); empty: the paying
  // account's, else the server's default. Checked by check_language.
  std::string language;
  // Opaque to the service, kept with the call for front ends ("owner": the API key that
  // asked, "status_callback": where its webhooks go).
  std::map<std::string, std::string, std::less<>> metadata;

  // Rules that hold whatever the trigger: ids well-formed, caller != callee, limit > 0,
  // language well-formed, no control character (CR, LF, NUL, ESC, ...) in any text: the
  // idempotency key, the secret, metadata names and values (the Error's field is the
  // metadata name: "status_callback").
  [[nodiscard]] CALLBACK_EXPORT Status validate() const;
};

}  // namespace callback
