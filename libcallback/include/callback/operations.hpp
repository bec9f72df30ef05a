#pragma once
// Operator operations that more than one front end offers (callbackctl, the REST API):
// the checks live here once, so a form that is refused in one is refused in the other
// with the same words.
//
//   auto account = create_account(store, AccountForm{.id = "123", .balance = "5.00"}, plan);
//   auto entry = top_up(store, "123", "10.00", "receipt 991");   // Error field "amount"
#include <callback/account.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/phone_number.hpp>
#include <callback/store.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace callback {

// An account as an operator types it: amounts and numbers as text.
struct AccountForm {
  std::string id, name, currency = "CNY", balance = "0", credit_limit = "0", tariff, pin;
  std::vector<std::string> numbers;
  std::string language;  // "zh": its calls' announcements; empty: the server's default
};

// Checks the form (currency, amounts, numbers, language; the PIN is hashed with the slow KDF) and
// creates the account. Errors name the field; "account_exists" if the id is taken.
[[nodiscard]] CALLBACK_EXPORT Result<Account> create_account(Store& store, const AccountForm& form,
                                                            const NumberingPlan& plan);
// Credits `amount` (text, in the account's currency, positive) with a ledger entry.
[[nodiscard]] CALLBACK_EXPORT Result<LedgerEntry> top_up(Store& store, const std::string& account_id,
                                                        std::string_view amount, const std::string& reference);

}  // namespace callback
