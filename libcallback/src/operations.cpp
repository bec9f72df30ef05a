#include <callback/operations.hpp>
#include <callback/secret.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <tuple>

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
    // Two spellings of one number are one number: said, not silently kept once.
    if (std::find(account.caller_numbers.begin(), account.caller_numbers.end(), *n) != account.caller_numbers.end()) {
      return Error{"duplicate_number", "\"" + text + "\" is +" + n->digits() + ", given twice", "numbers"};
    }
    account.caller_numbers.push_back(*n);
  }
  for (const auto& text : form.emails) {
    auto address = normalize_email(text);
    if (!address) {
      Error error = address.error();
      error.field = "emails";  // its message already says what is wrong with the address
      return error;
    }
    if (std::find(account.emails.begin(), account.emails.end(), *address) != account.emails.end()) {
      return Error{"duplicate_email", *address + " is given twice", "emails"};
    }
    account.emails.push_back(*address);
  }
  if (!form.pin.empty()) {
    auto hash = hash_secret(form.pin);
    if (!hash) return hash.error().at("pin");
    account.secret_hash = *hash;
  }
  if (auto ok = store.accounts().create(account); !ok) return ok.error();
  auto created = store.accounts().find(form.id);
  if (!created) return created.error();
  if (!*created) {
    return Error{"store_failed", "the account was created but cannot be read back", "id"}.as(ErrorKind::internal);
  }
  return **created;
}

Result<LedgerEntry> top_up(Store& store, const std::string& account_id, std::string_view amount,
                           const std::string& reference) {
  auto account = store.accounts().find(account_id);
  if (!account) return account.error();
  if (!*account) return Error{"unknown_account", "no account " + account_id, "id"}.as(ErrorKind::not_found);
  auto money = Money::parse(amount, (*account)->currency);
  if (!money) return money.error().at("amount");
  if (money->is_negative() || money->is_zero()) return Error{"invalid_amount", "a top-up must be positive", "amount"};
  return store.ledger().post({.account_id = account_id, .amount = *money, .kind = LedgerKind::topup,
                              .reference = reference});
}

Result<PayerPolicy> make_policy(const PolicyForm& form) {
  PayerPolicy policy{.payer = form.payer, .max_concurrent = form.max_concurrent};
  for (auto [list, target, field] : {std::tuple{&form.allow_prefixes, &policy.allow_prefixes, "allow_prefixes"},
                                     std::tuple{&form.deny_prefixes, &policy.deny_prefixes, "deny_prefixes"}}) {
    for (const auto& text : *list) {
      std::string_view prefix = text;
      if (prefix.starts_with('+')) prefix.remove_prefix(1);
      if (prefix.empty() || prefix.size() > PhoneNumber::max_digits ||
          prefix.find_first_not_of("0123456789") != std::string_view::npos) {
        return Error{"invalid_policy", "a prefix is 1 to 15 digits of an E.164 number (\"+882\", \"1900\"), got \"" +
                                           text + "\"", field};
      }
      target->emplace_back(prefix);
    }
  }
  for (auto [text, target, field] : {std::tuple{&form.max_call_cost, &policy.max_call_cost, "max_call_cost"},
                                     std::tuple{&form.daily_spend, &policy.daily_spend, "daily_spend"}}) {
    if (text->empty()) continue;
    auto amount = Money::parse(*text, Currency{}, Money::Precision::rate);
    if (!amount) return amount.error().at(field);
    if (amount->is_negative() || amount->is_zero()) {
      return Error{"invalid_policy", "must be more than 0 (leave it out for no limit)", field};
    }
    *target = *amount;
  }
  if (form.max_concurrent < 0) return Error{"invalid_policy", "must be 0 (no limit) or more", "max_concurrent"};
  return policy;
}

boost::json::object to_json(const PayerPolicy& policy) {
  namespace json = boost::json;
  json::array allow, deny;
  for (const auto& p : policy.allow_prefixes) allow.push_back(json::string("+" + p));
  for (const auto& p : policy.deny_prefixes) deny.push_back(json::string("+" + p));
  const auto* account = std::get_if<AccountId>(&policy.payer);
  auto amount = [](const std::optional<Money>& m) { return m ? json::value(m->format()) : json::value(nullptr); };
  return {{account ? "account" : "campaign", account ? account->value : std::get<CampaignId>(policy.payer).value},
          {"allow_prefixes", allow},
          {"deny_prefixes", deny},
          {"max_call_cost", amount(policy.max_call_cost)},
          {"daily_spend", amount(policy.daily_spend)},
          {"max_concurrent", policy.max_concurrent}};
}

}  // namespace callback
