// callback.billing.postgres: rating and prepaid authorization on the PostgreSQL the
// callbackd nodes share.
#include "billing_options.hpp"
#include "postgres_billing.hpp"

#include <callback/plugin.hpp>
#include <callback/store.hpp>

namespace callback::billing_postgres {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "rate decks, prepaid accounts and campaigns in the PostgreSQL database the nodes share (the store's)";
  }
  std::vector<OptionSpec> options() const override {
    std::vector<OptionSpec> specs{
        {.name = "conninfo", .type = OptionType::string, .default_value = "",
         .description = "libpq connection string; empty: the store's (callback.store.postgres's conninfo)",
         .secret = true},
        {.name = "writers", .type = OptionType::integer, .default_value = 4,
         .description = "connections that commit billing's operations side by side, each in groups (one "
                        "account's operations always through the same one)",
         .min = 1, .max = 64},
    };
    for (auto& spec : billing_sql::rule_options()) specs.push_back(std::move(spec));
    return specs;
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    std::string conninfo = args.options.string("conninfo");
    if (conninfo.empty() && args.store != nullptr) {
      conninfo = args.store->location();
      if (!is_conninfo(conninfo)) {
        throw Exception(Error{"config.mismatch",
                              "callback.billing.postgres keeps its money in the store's PostgreSQL database, but the "
                              "store is not PostgreSQL; with callback.store.sqlite use callback.billing.sqlite",
                              "billing.plugin"});
      }
    }
    auto billing = open_billing(conninfo, billing_sql::read_rules(args),
                                static_cast<std::size_t>(args.options.integer("writers")));
    if (!billing) throw Exception(billing.error());
    return std::move(*billing);
  }
};

}  // namespace
}  // namespace callback::billing_postgres

CALLBACK_PLUGIN(billing, "callback.billing.postgres", CALLBACK_VERSION_STRING, callback::billing_postgres::Factory)
