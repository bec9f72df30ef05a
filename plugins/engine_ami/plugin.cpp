// callback.engine.ami: Asterisk Manager Interface engine.
#include "ami_engine.hpp"

#include <callback/plugin.hpp>
#include <callback/store.hpp>

namespace callback::engine_ami {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "Asterisk Manager Interface engine: one Originate per callback into the shipped `callback` dialplan";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "servers", .type = OptionType::string_list, .default_value = boost::json::array{"127.0.0.1:5038"},
         .description = "Asterisk servers (host:port); calls spread over the healthy ones"},
        {.name = "username", .type = OptionType::string, .default_value = "callback",
         .description = "manager.conf user"},
        {.name = "secret", .type = OptionType::string, .description = "manager.conf secret (use ${ENV_VAR})",
         .required = true, .secret = true},
        {.name = "auth", .type = OptionType::string, .default_value = "md5",
         .description = "login with an MD5 challenge (the secret never crosses the wire) or in plain text",
         .choices = {"md5", "plain"}},
        {.name = "context", .type = OptionType::string, .default_value = "callback",
         .description = "dialplan context that runs the callback (examples/asterisk/extensions.conf)"},
        {.name = "ivr_context", .type = OptionType::string, .default_value = "callback-ivr-ami",
         .description = "where A waits, in Async AGI, to be asked for the number to call (needs agi,dtmf in events)"},
        {.name = "dial_string", .type = OptionType::string, .default_value = "Local/{number}@phones",
         .description = "how to reach a number: PJSIP/{number}@gateway, SIP/{number}@a.b.c.d, Local/{number}@ctx"},
        {.name = "events", .type = OptionType::string, .default_value = "call,user,cdr",
         .description = "AMI event classes to receive (fewer is faster; these three are needed; add agi,dtmf "
                        "for inbound calls and digits over Async AGI)"},
        {.name = "ping_interval_ms", .type = OptionType::integer, .default_value = 10000,
         .description = "keep-alive Ping period; no answer by the next one drops the connection", .min = 100,
         .max = 600000},
        {.name = "reconnect_min_ms", .type = OptionType::integer, .default_value = 500,
         .description = "first wait before reconnecting; doubles up to reconnect_max_ms", .min = 10, .max = 3600000},
        {.name = "reconnect_max_ms", .type = OptionType::integer, .default_value = 30000,
         .description = "longest wait between reconnect attempts", .min = 10,
         .max = 3600000},
        {.name = "lost_call_grace_ms", .type = OptionType::integer, .default_value = 30000,
         .description = "how long calls on a lost server wait for it to come back before they end as engine lost",
         .min = 0, .max = 3600000},
        {.name = "record_wait_ms", .type = OptionType::integer, .default_value = 5000,
         .description = "after a reconnect, how long the DBGet of a vanished call's AstDB record may take before "
                        "the call ends as engine lost",
         .min = 100, .max = 600000},
        {.name = "languages", .type = OptionType::string_list, .default_value = boost::json::array{"en", "zh"},
         .description = "languages the announcement prompts must be installed in (checked at connect)"},
        {.name = "check_dialplan", .type = OptionType::boolean, .default_value = true,
         .description = "at connect, check that the context is loaded and refuse to use a server without it"},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    AmiOptions options;
    options.servers = args.options.strings("servers");
    options.username = args.options.string("username");
    options.secret = args.options.string("secret");
    options.md5_auth = args.options.string("auth") == "md5";
    options.context = args.options.string("context");
    options.ivr_context = args.options.string("ivr_context");
    options.dial_string = args.options.string("dial_string");
    options.events = args.options.string("events");
    options.ping_interval = std::chrono::milliseconds(args.options.integer("ping_interval_ms"));
    options.reconnect_min = std::chrono::milliseconds(args.options.integer("reconnect_min_ms"));
    options.reconnect_max = std::chrono::milliseconds(args.options.integer("reconnect_max_ms"));
    options.tracking.lost_call_grace = std::chrono::milliseconds(args.options.integer("lost_call_grace_ms"));
    options.tracking.record_wait = std::chrono::milliseconds(args.options.integer("record_wait_ms"));
    options.check_dialplan = args.options.boolean("check_dialplan");
    options.languages = args.options.strings("languages");
    options.journal = args.store != nullptr ? args.store->journal() : nullptr;
    if (auto ok = validate(options); !ok) throw Exception(ok.error());
    return std::make_unique<AmiEngine>(args.context, std::move(options));
  }
};

}  // namespace
}  // namespace callback::engine_ami

CALLBACK_PLUGIN(engine, "callback.engine.ami", CALLBACK_VERSION_STRING, callback::engine_ami::Factory)
