// callback.store.postgres: the store of several callbackd nodes on one PostgreSQL.
#include "postgres_store.hpp"

#include <callback/plugin.hpp>

namespace callback::store_postgres {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "PostgreSQL database for CDRs, accounts, the ledger, the call journal and API keys, shared by "
           "several callbackd nodes";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "conninfo",
         .type = OptionType::string,
         .description = "libpq connection string: \"host=127.0.0.1 port=5432 dbname=callback user=callback\" "
                        "(a password here, or better in ~/.pgpass or $PGPASSWORD)",
         .required = true,
         .secret = true},
        {.name = "pool_size",
         .type = OptionType::integer,
         .default_value = 8,
         .description = "connections this node opens at most",
         .min = 1,
         .max = 1000},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    PostgresOptions options;
    options.conninfo = args.options.string("conninfo");
    options.pool_size = static_cast<std::size_t>(args.options.integer("pool_size"));
    options.log = &args.context.log;
    auto store = PostgresStore::open(options);
    if (!store) throw Exception(store.error());
    args.context.log.info("callback.store.postgres", "database " + (*store)->where() + " at schema version " +
                                                         std::to_string((*store)->schema_version()));
    return std::move(*store);
  }
};

}  // namespace
}  // namespace callback::store_postgres

CALLBACK_PLUGIN(store, "callback.store.postgres", CALLBACK_VERSION_STRING, callback::store_postgres::Factory)
