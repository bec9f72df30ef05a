// callback.billing.sqlite: rating and prepaid authorization, the embedded default.
#include "sqlite_billing.hpp"

#include <callback/plugin.hpp>

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
         .description = "database file; empty: the store's default (see callback.store.sqlite)"},
        {.name = "synchronous", .type = OptionType::string, .default_value = "full",
         .description = "\"full\": every settlement is on disk before it returns", .choices = {"full", "normal"}},
        {.name = "default_tariff", .type = OptionType::string, .default_value = "default",
         .description = "rate deck for accounts without a tariff of their own"},
        {.name = "bill_leg_a", .type = OptionType::boolean, .default_value = false,
         .description = "also charge the caller's leg at its own rate (the seed bills leg B only)"},
        {.name = "max_call_seconds", .type = OptionType::integer, .default_value = 3600,
         .description = "longest call one authorization may cover", .min = 60, .max = 86400},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    BillingOptions options;
    options.database.path = args.options.string("path");
    options.database.synchronous = args.options.string("synchronous");
    options.default_tariff = args.options.string("default_tariff");
    options.bill_leg_a = args.options.boolean("bill_leg_a");
    options.max_call = std::chrono::seconds(args.options.integer("max_call_seconds"));
    auto billing = SqliteBilling::open(options);
    if (!billing) throw Exception(billing.error());
    return std::move(*billing);
  }
};

}  // namespace
}  // namespace callback::billing_sqlite

CALLBACK_PLUGIN(billing, "callback.billing.sqlite", CALLBACK_VERSION_STRING, callback::billing_sqlite::Factory)
