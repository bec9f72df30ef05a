#pragma once
// callbackctl's operator commands on the embedded store and billing (accounts, rates,
// CDRs, statistics, campaigns). Each takes typed arguments, calls the library, prints.
#include "commands.hpp"
#include "http_client.hpp"

#include <callback/billing.hpp>
#include <callback/context.hpp>
#include <callback/operations.hpp>
#include <callback/plugin_loader.hpp>
#include <callback/store.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callback::cli {

using AccountAdd = AccountForm;

// The store (and billing, if asked) of the config, opened in this process.
struct Embedded {
  boost::asio::io_context io;
  SystemClock clock{io};
  StreamLogger log{std::cerr, LogLevel::warning};
  Metrics metrics;
  Context context{io, clock, log, metrics};
  ServiceConfig config;
  std::unique_ptr<PluginLoader> loader;
  PluginPtr<Store> store;
  PluginPtr<Billing> billing;
};
[[nodiscard]] Result<std::unique_ptr<Embedded>> open_embedded(const PluginSource& source, bool need_billing);

struct CdrFilter {
  std::string since, until, account, number;  // times as YYYY-MM-DD[ HH:MM:SS], UTC
  std::size_t limit = 0;
};
struct CampaignAdd {
  std::string id;
  long limit_seconds = 300;
  int uses_per_day = 0;
  bool once_ever = false;
  int min_hours_between = 0;
  long daily_budget_seconds = 0;
  std::string tariff;
};
struct PolicySet {
  std::string account, campaign;  // exactly one
  std::vector<std::string> allow, deny;
  std::string max_call_cost, daily_spend;
  int max_concurrent = 0;
};

// Each works on the embedded database, or through callbackd's API when remote.server is
// set (those the API does not offer say so).
int accounts_add(const PluginSource& source, const Remote& remote, const AccountAdd& args, const Output& output);
int accounts_list(const PluginSource& source, const Remote& remote, const Output& output);
int accounts_show(const PluginSource& source, const Remote& remote, const std::string& id, const Output& output);
int accounts_topup(const PluginSource& source, const Remote& remote, const std::string& id, const std::string& amount,
                   const std::string& reference, const Output& output);
int accounts_disable(const PluginSource& source, const Remote& remote, const std::string& id, const Output& output);
int rates_import(const PluginSource& source, const Remote& remote, const std::string& tariff, const std::string& file,
                 const std::string& currency, const Output& output);
int rates_lookup(const PluginSource& source, const Remote& remote, const std::string& tariff,
                 const std::string& number, const Output& output);
int rates_list(const PluginSource& source, const Remote& remote, const std::string& tariff, const std::string& prefix,
               std::size_t limit, const Output& output);
int cdr_list(const PluginSource& source, const Remote& remote, const CdrFilter& filter, const Output& output);
int cdr_export(const PluginSource& source, const Remote& remote, const CdrFilter& filter, const Output& output);
int stats(const PluginSource& source, const Remote& remote, const std::string& number, std::size_t limit,
          const Output& output);
int campaigns_add(const PluginSource& source, const Remote& remote, const CampaignAdd& args, const Output& output);
int campaigns_list(const PluginSource& source, const Remote& remote, const Output& output);
// The triggers of a callbackd (--server): health, last message and poll, counts, last error.
int triggers_list(const Remote& remote, const Output& output);
// A payer's toll-fraud policy: `policy set` replaces it whole, `policy show` prints it.
int policy_set(const PluginSource& source, const Remote& remote, const PolicySet& args, const Output& output);
int policy_show(const PluginSource& source, const Remote& remote, const PolicySet& args, const Output& output);

}  // namespace callback::cli
