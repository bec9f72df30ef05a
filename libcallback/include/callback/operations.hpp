#pragma once
// Operator operations that more than one front end offers (callbackctl, the REST API):
// the checks live here once, so a form that is refused in one is refused in the other
// with the same words.
//
//   auto account = create_account(store, AccountForm{.id = "123", .balance = "5.00"}, plan);
//   auto entry = top_up(store, "123", "10.00", "receipt 991");   // Error field "amount"
#include <callback/account.hpp>
#include <callback/billing.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/phone_number.hpp>
#include <callback/store.hpp>

#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace callback {

// An account as an operator types it: amounts and numbers as text.
struct AccountForm {
  std::string id, name, currency = "CNY", balance = "0", credit_limit = "0", tariff, pin;
  std::vector<std::string> numbers;
  std::vector<std::string> emails;  // registered e-mail addresses (the e-mail trigger)
  std::string language;  // "zh": its calls' announcements; empty: the server's default
};

// Checks the form (currency, amounts, numbers, language; the PIN is hashed with the slow KDF) and
// creates the account. Errors name the field; "account_exists" if the id is taken.
[[nodiscard]] CALLBACK_EXPORT Result<Account> create_account(Store& store, const AccountForm& form,
                                                            const NumberingPlan& plan);
// Credits `amount` (text, in the account's currency, positive) with a ledger entry.
[[nodiscard]] CALLBACK_EXPORT Result<LedgerEntry> top_up(Store& store, const std::string& account_id,
                                                        std::string_view amount, const std::string& reference);

// A payer's toll-fraud policy as an operator types it: prefixes with or without '+'
// ("+882", "1900"), amounts as text in the payer's currency, empty for no limit.
struct PolicyForm {
  Payer payer;
  std::vector<std::string> allow_prefixes, deny_prefixes;
  std::string max_call_cost, daily_spend;
  int max_concurrent = 0;
};
// Checks the form (Error field: "allow_prefixes", "deny_prefixes", "max_call_cost",
// "daily_spend", "max_concurrent") and gives the policy billing stores.
[[nodiscard]] CALLBACK_EXPORT Result<PayerPolicy> make_policy(const PolicyForm& form);
[[nodiscard]] CALLBACK_EXPORT boost::json::object to_json(const PayerPolicy& policy);

}  // namespace callback
