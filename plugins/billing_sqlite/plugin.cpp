// callback.billing.sqlite: rating and prepaid authorization, the embedded default.
#include "sqlite_billing.hpp"

#include <callback/plugin.hpp>
#include <callback/store.hpp>

#include <boost/json/array.hpp>

namespace callback::billing_sqlite {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "rate decks, prepaid accounts and campaigns in the embedded SQLite database (the store's file)";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "path", .type = OptionType::string, .default_value = "",
         .description = "database file; empty: the store's file (callback.store.sqlite's path), else its default"},
        {.name = "synchronous", .type = OptionType::string, .default_value = "full",
         .description = "\"full\": every settlement is on disk before it returns", .choices = {"full", "normal"}},
        {.name = "default_tariff", .type = OptionType::string, .default_value = "default",
         .description = "rate deck for accounts without a tariff of their own"},
        {.name = "bill_leg_a", .type = OptionType::boolean, .default_value = false,
         .description = "also charge the caller's leg at its own rate (the seed bills leg B only)"},
        {.name = "max_call_seconds", .type = OptionType::integer, .default_value = 3600,
         .description = "longest call one authorization may cover", .min = 60, .max = 86400},
        {.name = "debit_interval_seconds", .type = OptionType::integer, .default_value = 60,
         .description = "an account's money is held this much talk at a time, extended while the call lasts; "
                        "0: the whole call at once",
         .min = 0, .max = 86400},
        {.name = "deny_prefixes", .type = OptionType::string_list,
         .default_value = boost::json::array{"881", "882", "883", "979", "1900", "1976"},
         .description = "destinations no account or campaign may call (E.164 digit prefixes): satellite and "
                        "international premium ranges by default; each payer's policy adds its own"},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    BillingOptions options;
    options.database.path = args.options.string("path");
    // Unset: the store's own file, so that the store's path alone places both (billing
    // reads the store's accounts and writes its ledger).
    if (options.database.path.empty() && args.store != nullptr) options.database.path = args.store->location();
    options.database.synchronous = args.options.string("synchronous");
    options.default_tariff = args.options.string("default_tariff");
    options.bill_leg_a = args.options.boolean("bill_leg_a");
    options.max_call = std::chrono::seconds(args.options.integer("max_call_seconds"));
    options.debit_interval = std::chrono::seconds(args.options.integer("debit_interval_seconds"));
    options.deny_prefixes = args.options.strings("deny_prefixes");
    options.clock = &args.context.clock;
    for (std::size_t i = 0; i < options.deny_prefixes.size(); ++i) {
      const auto& prefix = options.deny_prefixes[i];
      if (prefix.empty() || prefix.size() > 15 || prefix.find_first_not_of("0123456789") != std::string::npos) {
        throw Exception(Error{"config.value", "a prefix is 1 to 15 digits, got \"" + prefix + "\"",
                              "deny_prefixes[" + std::to_string(i) + "]"});
      }
    }
    auto billing = SqliteBilling::open(options);
    if (!billing) throw Exception(billing.error());
    return std::move(*billing);
  }
};

}  // namespace
}  // namespace callback::billing_sqlite

CALLBACK_PLUGIN(billing, "callback.billing.sqlite", CALLBACK_VERSION_STRING, callback::billing_sqlite::Factory)
