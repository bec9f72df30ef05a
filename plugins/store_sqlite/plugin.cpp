// callback.store.sqlite: the embedded default store.
#include "sqlite_store.hpp"

#include <callback/plugin.hpp>

namespace callback::store_sqlite {
namespace {

class Factory final : public PluginFactory {
 public:
  std::string description() const override {
    return "SQLite database (WAL mode) for CDRs, accounts and the ledger; the embedded default";
  }
  std::vector<OptionSpec> options() const override {
    return {
        {.name = "path",
         .type = OptionType::string,
         .default_value = "",
         .description = "database file; empty: $CALLBACK_DATA_DIR/callback.db, /var/lib/callback/callback.db "
                        "as root, else ~/.local/share/callback/callback.db"},
        {.name = "synchronous",
         .type = OptionType::string,
         .default_value = "full",
         .description = "\"full\": every commit reaches the disk; \"normal\": faster, the last commits may be "
                        "lost on power failure (never corrupted)",
         .choices = {"full", "normal"}},
        {.name = "busy_timeout_ms",
         .type = OptionType::integer,
         .default_value = 5000,
         .description = "how long a writer waits for another process's lock",
         .min = 0,
         .max = 600000},
    };
  }

 protected:
  std::unique_ptr<Component> make(const CreateArgs& args) const override {
    SqliteOptions options;
    options.path = args.options.string("path");
    options.synchronous = args.options.string("synchronous");
    options.busy_timeout_ms = static_cast<int>(args.options.integer("busy_timeout_ms"));
    auto store = SqliteStore::open(options);
    if (!store) throw Exception(store.error());
    args.context.log.info("callback.store.sqlite", "database " + (*store)->path().string() + " at schema version " +
                                                       std::to_string((*store)->schema_version()));
    return std::move(*store);
  }
};

}  // namespace
}  // namespace callback::store_sqlite

CALLBACK_PLUGIN(store, "callback.store.sqlite", CALLBACK_VERSION_STRING, callback::store_sqlite::Factory)
