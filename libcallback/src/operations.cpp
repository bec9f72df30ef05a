#include <callback/operations.hpp>
#include <callback/secret.hpp>

namespace callback {

Result<Account> create_account(Store& store, const AccountForm& form, const NumberingPlan& plan) {
  auto currency = Currency::of(form.currency);
  if (!currency) return currency.error().at("currency");
  auto balance = Money::parse(form.balance, *currency);
  if (!balance) return balance.error().at("balance");
  auto credit = Money::parse(form.credit_limit, *currency);
  if (!credit) return credit.error().at("credit_limit");
  if (credit->is_negative()) return Error{"invalid_amount", "a credit limit cannot be negative", "credit_limit"};
  if (!form.language.empty()) {
    if (auto ok = check_language(form.language); !ok) return ok.error();
  }
  Account account{.id = form.id, .name = form.name, .currency = *currency, .balance = *balance,
                  .credit_limit = *credit, .tariff = form.tariff, .language = form.language};
  for (const auto& text : form.numbers) {
    auto n = PhoneNumber::parse(text, plan);
    if (!n) return n.error().at("numbers");
    account.caller_numbers.push_back(*n);
  }
  if (!form.pin.empty()) {
    auto hash = hash_secret(form.pin);
    if (!hash) return hash.error().at("pin");
    account.secret_hash = *hash;
  }
  if (auto ok = store.accounts().create(account); !ok) return ok.error();
  auto created = store.accounts().find(form.id);
  if (!created) return created.error();
  if (!*created) return Error{"store_failed", "the account was created but cannot be read back", "id"};
  return **created;
}

Result<LedgerEntry> top_up(Store& store, const std::string& account_id, std::string_view amount,
                           const std::string& reference) {
  auto account = store.accounts().find(account_id);
  if (!account) return account.error();
  if (!*account) return Error{"unknown_account", "no account " + account_id, "id"};
  auto money = Money::parse(amount, (*account)->currency);
  if (!money) return money.error().at("amount");
  if (money->is_negative() || money->is_zero()) return Error{"invalid_amount", "a top-up must be positive", "amount"};
  return store.ledger().post({.account_id = account_id, .amount = *money, .kind = LedgerKind::topup,
                              .reference = reference});
}

}  // namespace callback
