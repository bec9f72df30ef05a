// callback.trigger.ani: the missed call. A registered caller rings an access number; the
// call is rejected unanswered and the caller is called back, asked for B by the IVR, and
// billed to their own account.
#include "access_trigger.hpp"

#include <callback/plugin.hpp>

namespace callback::trigger_access {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "missed-call callbacks: a registered caller rings an access number, is rejected unanswered, "
           "called back and asked for the number by the IVR";
  }
  std::vector<OptionSpec> options() const override {
    auto specs = common_options();
    specs.insert(specs.begin(),
                 {{.name = "access_numbers", .type = OptionType::string_list, .default_value = nullptr,
                   .description = "the numbers people ring, as the engine reports the dialled number (digits)",
                   .required = true},
                  {.name = "campaign", .type = OptionType::string, .default_value = "",
                   .description = "a campaign that pays for callers with no account (anyone may then ring); "
                                  "empty: unregistered callers are rejected and not called back"},
                  {.name = "language", .type = OptionType::string, .default_value = "",
                   .description = "what callers hear (\"en\", \"zh\"); empty: their account's"}});
    return specs;
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    AccessOptions options = read_common_options(args.options, "ani", Origin::ani);
    const std::string campaign = args.options.string("campaign");
    for (const auto& number : args.options.strings("access_numbers")) {
      AccessNumber n{.number = number, .mode = Mode::own, .payer = std::nullopt, .destination = {},
                     .language = args.options.string("language")};
      if (!campaign.empty()) n.payer = CampaignId{campaign};
      options.numbers.push_back(std::move(n));
    }
    return make_access_trigger(args, std::move(options));
  }
};

}  // namespace
}  // namespace callback::trigger_access

CALLBACK_PLUGIN(trigger, "callback.trigger.ani", CALLBACK_VERSION_STRING, callback::trigger_access::Factory)
