// callback.trigger.web: the seed's web callback page, served by callbackd.
#include "web_page.hpp"

#include <callback/plugin.hpp>

namespace callback::trigger_web {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "Web callback page (the seed's): your number, Call me now, your friend's number, Call; live status";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "mode", .type = OptionType::string, .default_value = "campaign",
         .description = "campaign: free, no login (a campaign pays); account: account number and PIN",
         .choices = {"campaign", "account"}},
        {.name = "campaign", .type = OptionType::string, .default_value = "free",
         .description = "campaign mode: the campaign that pays (service.campaigns and billing's campaign policy)"},
        {.name = "limit_seconds", .type = OptionType::integer, .default_value = 300,
         .description = "campaign mode: the talk time the page announces", .min = 1, .max = 86400},
        {.name = "default_language", .type = OptionType::string, .default_value = "zh",
         .description = "the page's language unless the browser asks ?lang=", .choices = {"zh", "en"}},
        {.name = "assets_dir", .type = OptionType::string, .default_value = "",
         .description = "serve the page from this folder (e.g. /usr/share/callback/web); empty: the built-in files"},
        {.name = "per_number_per_hour", .type = OptionType::integer, .default_value = 5,
         .description = "callbacks one caller number may ask for in an hour", .min = 1, .max = 1000000},
        {.name = "per_ip_per_minute", .type = OptionType::integer, .default_value = 20,
         .description = "requests one client address may make in a minute", .min = 1, .max = 1000000},
        {.name = "token_secret", .type = OptionType::string, .default_value = "",
         .description = "signs the page's event-stream tokens (32 characters or more: openssl rand -hex 32); "
                        "give every node behind one address the same one. Empty: a random key at each start, so a "
                        "page must come back to the node that served it, and a restart voids the tokens given",
         .secret = true, .min = 32, .max = 1024},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    if (args.plan == nullptr) throw std::runtime_error("callback.trigger.web needs the service's numbering plan");
    WebOptions options;
    options.account_mode = args.options.string("mode") == "account";
    options.campaign = args.options.string("campaign");
    options.limit_seconds = args.options.integer("limit_seconds");
    options.default_language = args.options.string("default_language");
    options.assets_dir = args.options.string("assets_dir");
    options.per_number_per_hour = static_cast<int>(args.options.integer("per_number_per_hour"));
    options.per_ip_per_minute = static_cast<int>(args.options.integer("per_ip_per_minute"));
    options.token_secret = args.options.string("token_secret");
    auto page = std::make_unique<WebPageTrigger>(args.context, *args.plan, args.routes, std::move(options));
    if (args.store != nullptr) page->share_limits(args.store->rate_counter());
    return page;
  }
};

}  // namespace
}  // namespace callback::trigger_web

CALLBACK_PLUGIN(trigger, "callback.trigger.web", CALLBACK_VERSION_STRING, callback::trigger_web::Factory)
