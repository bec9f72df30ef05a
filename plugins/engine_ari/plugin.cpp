// callback.engine.ari: Asterisk REST Interface engine.
#include "ari_engine.hpp"

#include <callback/plugin.hpp>

namespace callback::engine_ari {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "Asterisk REST Interface engine: each leg into a Stasis application, bridged and timed by the service "
           "and this engine (examples/asterisk/ari.conf, http.conf)";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "servers", .type = OptionType::string_list, .default_value = boost::json::array{"127.0.0.1:8088"},
         .description = "Asterisk HTTP servers (host:port, http.conf); calls spread over the connected ones"},
        {.name = "username", .type = OptionType::string, .default_value = "callback", .description = "ari.conf user"},
        {.name = "password", .type = OptionType::string, .description = "ari.conf password (use ${ENV_VAR})",
         .required = true, .secret = true},
        {.name = "app", .type = OptionType::string, .default_value = "callback-app",
         .description = "the Stasis application: the dialplan's Stasis(<app>,access,${EXTEN}) sends inbound calls to it; "
                        "with several nodes on one database each node runs <app>-<node> (examples/asterisk: "
                        "CB_ARI_APPS)"},
        {.name = "dial_string", .type = OptionType::string, .default_value = "Local/{number}@phones",
         .description = "how to reach a number: PJSIP/{number}@gateway, Local/{number}@ctx"},
        {.name = "request_timeout_ms", .type = OptionType::integer, .default_value = 10000,
         .description = "how long a REST call may take", .min = 100, .max = 600000},
        {.name = "reconnect_min_ms", .type = OptionType::integer, .default_value = 500,
         .description = "first wait before reconnecting; doubles up to reconnect_max_ms", .min = 10, .max = 3600000},
        {.name = "reconnect_max_ms", .type = OptionType::integer, .default_value = 30000,
         .description = "longest wait between reconnect attempts", .min = 10, .max = 3600000},
        {.name = "lost_call_grace_ms", .type = OptionType::integer, .default_value = 30000,
         .description = "how long calls on a lost server wait for it to come back before they end as engine lost",
         .min = 0, .max = 3600000},
        {.name = "max_connections", .type = OptionType::integer, .default_value = 4,
         .description = "HTTP connections per server for REST calls", .min = 1, .max = 64},
        {.name = "rest_over_websocket", .type = OptionType::boolean, .default_value = false,
         .description = "send REST calls over the event WebSocket when Asterisk takes them (ARI REST over WebSocket: "
                        "20.14, 21.9, 22.4 and later; asked once connected), otherwise and until then over HTTP: fewer "
                        "system calls, but a REST call in flight when the WebSocket is lost fails and its callback ends"},
        {.name = "leg_end_context", .type = OptionType::string, .default_value = "callback-ari-leg-end",
         .description = "dialplan context of the hangup handler each B leg gets (examples/asterisk/extensions.conf): "
                        "it records B's end on Asterisk, so a call that ends while callbackd is away is still billed; "
                        "empty: none"},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    AriOptions options;
    options.servers = args.options.strings("servers");
    options.username = args.options.string("username");
    options.password = args.options.string("password");
    options.app = args.options.string("app");
    options.dial_string = args.options.string("dial_string");
    options.request_timeout = std::chrono::milliseconds(args.options.integer("request_timeout_ms"));
    options.reconnect_min = std::chrono::milliseconds(args.options.integer("reconnect_min_ms"));
    options.reconnect_max = std::chrono::milliseconds(args.options.integer("reconnect_max_ms"));
    options.lost_call_grace = std::chrono::milliseconds(args.options.integer("lost_call_grace_ms"));
    options.max_connections = static_cast<std::size_t>(args.options.integer("max_connections"));
    options.rest_over_websocket = args.options.boolean("rest_over_websocket");
    options.leg_end_context = args.options.string("leg_end_context");
    options.journal = args.store != nullptr ? args.store->journal() : nullptr;
    if (auto ok = validate(options); !ok) throw Exception(ok.error());
    return std::make_unique<AriEngine>(args.context, std::move(options));
  }
};

}  // namespace
}  // namespace callback::engine_ari

CALLBACK_PLUGIN(engine, "callback.engine.ari", CALLBACK_VERSION_STRING, callback::engine_ari::Factory)
