// callback.billing.sqlite: rating and prepaid authorization, the embedded default.
#include "billing_options.hpp"
#include "sqlite_billing.hpp"

#include <callback/plugin.hpp>
#include <callback/store.hpp>

namespace callback::billing_sqlite {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "rate decks, prepaid accounts and campaigns in the embedded SQLite database (the store's file)";
  }
  std::vector<OptionSpec> options() const override {
    std::vector<OptionSpec> specs{
        {.name = "path", .type = OptionType::string, .default_value = "",
         .description = "database file; empty: the store's file (callback.store.sqlite's path), else its default"},
        {.name = "synchronous", .type = OptionType::string, .default_value = "full",
         .description = "\"full\": every settlement is on disk before it returns", .choices = {"full", "normal"}},
    };
    for (auto& spec : billing_sql::rule_options()) specs.push_back(std::move(spec));
    return specs;
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    sqlite::DatabaseOptions database;
    database.path = args.options.string("path");
    // Unset: the store's own file, so that the store's path alone places both (billing
    // reads the store's accounts and writes its ledger).
    if (database.path.empty() && args.store != nullptr) {
      const auto location = args.store->location();
      if (location.find('=') != std::string::npos || location.find("://") != std::string::npos) {
        throw Exception(Error{"config.mismatch",
                              "callback.billing.sqlite keeps its money in the store's SQLite file, but the store is not "
                              "SQLite; with callback.store.postgres use callback.billing.postgres",
                              "billing.plugin"});
      }
      database.path = location;
    }
    database.synchronous = args.options.string("synchronous");
    auto billing = open_billing(database, billing_sql::read_rules(args));
    if (!billing) throw Exception(billing.error());
    return std::move(*billing);
  }
};

}  // namespace
}  // namespace callback::billing_sqlite

CALLBACK_PLUGIN(billing, "callback.billing.sqlite", CALLBACK_VERSION_STRING, callback::billing_sqlite::Factory)
