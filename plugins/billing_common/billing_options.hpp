#pragma once
// The options every billing plugin takes for its rules (decks, limits, deny lists), and
// how they are read; each plugin adds where its database is.
#include "sql_billing.hpp"

#include <callback/plugin.hpp>

#include <boost/json/array.hpp>

namespace callback::billing_sql {

inline std::vector<OptionSpec> rule_options() {
  return {
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

// Throws Exception for a bad prefix (naming it and its place).
inline BillingRules read_rules(const CreateArgs& args) {
  BillingRules rules;
  rules.default_tariff = args.options.string("default_tariff");
  rules.bill_leg_a = args.options.boolean("bill_leg_a");
  rules.max_call = std::chrono::seconds(args.options.integer("max_call_seconds"));
  rules.debit_interval = std::chrono::seconds(args.options.integer("debit_interval_seconds"));
  rules.deny_prefixes = args.options.strings("deny_prefixes");
  rules.clock = &args.context.clock;
  for (std::size_t i = 0; i < rules.deny_prefixes.size(); ++i) {
    const auto& prefix = rules.deny_prefixes[i];
    if (prefix.empty() || prefix.size() > 15 || prefix.find_first_not_of("0123456789") != std::string::npos) {
      throw Exception(Error{"config.value", "a prefix is 1 to 15 digits, got \"" + prefix + "\"",
                            "deny_prefixes[" + std::to_string(i) + "]"});
    }
  }
  return rules;
}

}  // namespace callback::billing_sql
