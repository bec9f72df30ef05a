// callback.trigger.sms: callbacks asked for by SMS, through a gateway's webhook.
#include "sms_trigger.hpp"

#include <callback/plugin.hpp>

#include <stdexcept>

namespace callback::trigger_sms {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "SMS callbacks: Twilio's webhook (X-Twilio-Signature) or a signed JSON POST; "
           "\"B\", \"A B\" from a registered number, or \"account password A B\"";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "path", .type = OptionType::string, .default_value = "/hooks/sms",
         .description = "callbackd path of the generic JSON webhook (with hmac_secret)"},
        {.name = "hmac_secret", .type = OptionType::string, .default_value = "",
         .description = "signs the generic webhook as callbackd signs its own: Callback-Signature "
                        "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">; empty: that webhook is off",
         .secret = true},
        {.name = "max_skew_seconds", .type = OptionType::integer, .default_value = 300,
         .description = "how far the signature's t= may be from now", .min = 1, .max = 86400},
        {.name = "twilio_path", .type = OptionType::string, .default_value = "/hooks/sms/twilio",
         .description = "callbackd path of Twilio's webhook (with twilio_auth_token)"},
        {.name = "twilio_auth_token", .type = OptionType::string, .default_value = "",
         .description = "the Twilio account's auth token, which signs its webhooks; empty: that webhook is off",
         .secret = true},
        {.name = "twilio_url", .type = OptionType::string, .default_value = "",
         .description = "the webhook URL exactly as configured at Twilio (https://host/hooks/sms/twilio): it is signed"},
        {.name = "outcome_url", .type = OptionType::string, .default_value = "",
         .description = "where the outcome SMS goes when a call ends (the gateway's send API); empty: none"},
        {.name = "outcome_format", .type = OptionType::string, .default_value = "json",
         .description = "json: {to, from, text, callback_id, outcome} signed with outcome_secret (Callback-Signature); "
                        "twilio: Twilio's Messages API (form To, From, Body; basic auth twilio_account_sid:twilio_auth_token)",
         .choices = {"json", "twilio"}},
        {.name = "outcome_secret", .type = OptionType::string, .default_value = "",
         .description = "signs the json outcome messages; empty: hmac_secret", .secret = true},
        {.name = "twilio_account_sid", .type = OptionType::string, .default_value = "",
         .description = "the Twilio account (AC...) that sends outcome SMS with outcome_format twilio"},
        {.name = "per_sender_per_hour", .type = OptionType::integer, .default_value = 5,
         .description = "messages one sender may send in an hour; more are ignored", .min = 1, .max = 1000000},
        {.name = "bad_passwords_per_hour", .type = OptionType::integer, .default_value = 3,
         .description = "wrong passwords after which a sender is ignored for the hour", .min = 1, .max = 1000},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    if (args.store == nullptr || args.plan == nullptr) {
      throw std::runtime_error("callback.trigger.sms needs the service's store and numbering plan");
    }
    SmsOptions options;
    options.path = args.options.string("path");
    options.hmac_secret = args.options.string("hmac_secret");
    options.max_skew = std::chrono::seconds(args.options.integer("max_skew_seconds"));
    options.twilio_path = args.options.string("twilio_path");
    options.twilio_auth_token = args.options.string("twilio_auth_token");
    options.twilio_url = args.options.string("twilio_url");
    options.per_sender_per_hour = static_cast<int>(args.options.integer("per_sender_per_hour"));
    options.bad_passwords_per_hour = static_cast<int>(args.options.integer("bad_passwords_per_hour"));
    options.outcome_url = args.options.string("outcome_url");
    options.outcome_twilio = args.options.string("outcome_format") == "twilio";
    options.outcome_secret = args.options.string("outcome_secret");
    if (options.outcome_secret.empty()) options.outcome_secret = options.hmac_secret;
    options.twilio_account_sid = args.options.string("twilio_account_sid");
    if (options.outcome_twilio && !options.outcome_url.empty() &&
        (options.twilio_account_sid.empty() || options.twilio_auth_token.empty())) {
      throw std::runtime_error("outcome_format twilio needs twilio_account_sid and twilio_auth_token");
    }
    if (!options.twilio_auth_token.empty() && options.twilio_url.empty()) {
      throw std::runtime_error("twilio_url is needed with twilio_auth_token: Twilio signs the URL it posts to");
    }
    if (options.twilio_auth_token.empty() && options.hmac_secret.empty()) {
      throw std::runtime_error("set twilio_auth_token (and twilio_url), or hmac_secret: no webhook is on otherwise");
    }
    return std::make_unique<SmsTrigger>(args.context, *args.store, *args.plan, args.routes, std::move(options));
  }
};

}  // namespace
}  // namespace callback::trigger_sms

CALLBACK_PLUGIN(trigger, "callback.trigger.sms", CALLBACK_VERSION_STRING, callback::trigger_sms::Factory)
