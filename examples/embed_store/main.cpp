// Embedding callback: load the SQLite store plugin, open an account with the seed's 5.00,
// charge a call of 0.20 and print the balance. Usage: embed_store DATABASE
#include <callback/plugin_loader.hpp>
#include <callback/store.hpp>

#include <boost/json/object.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: embed_store DATABASE\n";
    return 2;
  }
  boost::asio::io_context io;
  callback::SystemClock clock{io};
  callback::StreamLogger log{std::cerr, callback::LogLevel::warning};
  callback::Metrics metrics;
  callback::Context context{io, clock, log, metrics};

  callback::PluginLoader loader;
  auto plugin = loader.find("callback.store.sqlite");
  if (!plugin) {
    std::cerr << plugin.error().describe() << '\n';
    return 1;
  }
  auto options = callback::validate_options((*plugin)->factory->options(), boost::json::object{{"path", argv[1]}},
                                            "store.config");
  auto store = loader.create<callback::Store>("callback.store.sqlite", {context, options.value(), "store"});
  if (!store) {
    std::cerr << store.error().describe() << '\n';
    return 1;
  }
  const auto cny = callback::Currency::of("CNY").value();
  auto& accounts = (*store)->accounts();
  if (auto ok = accounts.create({.id = "123", .currency = cny, .balance = callback::Money::parse("5.00", cny).value()});
      !ok) {
    std::cerr << ok.error().describe() << '\n';
    return 1;
  }
  auto entry = (*store)->ledger().post({.account_id = "123",
                                        .amount = -callback::Money::parse("0.20", cny).value(),
                                        .kind = callback::LedgerKind::call_charge,
                                        .reference = "example"});
  if (!entry) {
    std::cerr << entry.error().describe() << '\n';
    return 1;
  }
  std::cout << "account 123 balance " << entry->balance_after.format() << " " << cny.code() << '\n';
  return 0;
}
