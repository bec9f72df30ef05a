// callback.trigger.did: DID/DNIS access numbers. A table maps each number to a mode and
// who pays; a missed call to number X from caller Y calls Y back:
//   "numbers": {"5000": {"mode": "fixed", "destination": "+8613900139000", "campaign": "free"},
//               "5001": {"mode": "ivr", "account": "hotel-12"},
//               "5002": {"mode": "own"}}
#include "access_trigger.hpp"

#include <callback/plugin.hpp>

#include <boost/json.hpp>

#include <stdexcept>

namespace callback::trigger_access {
namespace {

namespace json = boost::json;

std::string text(const json::object& o, const char* key, const std::string& where) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return {};
  if (!v->is_string()) throw std::runtime_error(where + "." + key + ": expected a string, got " + describe_json(*v));
  return std::string(v->as_string());
}

AccessNumber read_number(const std::string& number, const json::value& value) {
  const std::string where = "numbers." + number;
  if (!value.is_object()) throw std::runtime_error(where + ": expected an object, got " + describe_json(value));
  const auto& o = value.as_object();
  for (const auto& [key, v] : o) {
    if (key != "mode" && key != "account" && key != "campaign" && key != "destination" && key != "language") {
      throw std::runtime_error(where + ": unknown key \"" + escape_control(key) +
                               "\" (mode, account, campaign, destination, language)");
    }
  }
  AccessNumber n{.number = number};
  const std::string mode = text(o, "mode", where);
  auto parsed = mode_from_string(mode);
  if (!parsed) throw std::runtime_error(where + ".mode: \"" + escape_control(mode) + "\" is none of fixed, ivr, own");
  n.mode = *parsed;
  const std::string account = text(o, "account", where), campaign = text(o, "campaign", where);
  if (!account.empty() && !campaign.empty()) throw std::runtime_error(where + ": an account or a campaign, not both");
  if (!account.empty()) n.payer = AccountId{account};
  if (!campaign.empty()) n.payer = CampaignId{campaign};
  n.destination = text(o, "destination", where);
  n.language = text(o, "language", where);
  return n;
}

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "access-number callbacks: each DID maps to a fixed destination, the IVR, or the caller's own account";
  }
  std::vector<OptionSpec> options() const override {
    auto specs = common_options();
    specs.insert(specs.begin(),
                 {.name = "numbers", .type = OptionType::object, .default_value = nullptr,
                  .description = "access number -> {mode: fixed|ivr|own, account or campaign (who pays; own: for "
                                 "callers with no account), destination (fixed), language}",
                  .required = true});
    return specs;
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    AccessOptions options = read_common_options(args.options, "did", Origin::did);
    for (const auto& [number, value] : args.options.object("numbers")) {
      options.numbers.push_back(read_number(std::string(number), value));
    }
    return make_access_trigger(args, std::move(options));
  }
};

}  // namespace
}  // namespace callback::trigger_access

CALLBACK_PLUGIN(trigger, "callback.trigger.did", CALLBACK_VERSION_STRING, callback::trigger_access::Factory)
