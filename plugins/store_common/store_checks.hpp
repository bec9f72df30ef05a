#pragma once
// The checks and errors every store gives the same way, whatever its database.
#include <callback/account.hpp>
#include <callback/cdr.hpp>
#include <callback/error.hpp>

#include <string>
#include <vector>

namespace callback::store_common {

// What create() refuses before anything is written.
inline Status check_new_account(const Account& account) {
  if (auto ok = Account::validate_id(account.id); !ok) return ok;
  if (account.currency.code() == "XXX") return Error{"invalid_account", "account has no currency", "currency"};
  for (const Money* m : {&account.balance, &account.credit_limit}) {
    if (!(m->currency() == account.currency)) {
      return Error{"invalid_account", "amounts must be in the account's currency " + std::string(account.currency.code()),
                   m == &account.balance ? "balance" : "credit_limit"};
    }
  }
  if (account.credit_limit.is_negative()) {
    return Error{"invalid_account", "credit limit cannot be negative", "credit_limit"};
  }
  if (!account.language.empty()) {
    if (auto ok = check_language(account.language); !ok) return ok;
  }
  return ok_status();
}

inline Error unknown_account(const std::string& id, const char* field = "account_id") {
  return Error{"unknown_account", "no account " + id, field}.as(ErrorKind::not_found);
}

inline Error account_exists(const std::string& id) {
  return Error{"account_exists", "account " + id + " already exists", "id"}.as(ErrorKind::conflict);
}

inline Error currency_mismatch(const LedgerEntry& entry, const Currency& account) {
  return Error{"currency_mismatch", "amount is in " + std::string(entry.amount.currency().code()) + " but account " +
                                        entry.account_id + " is in " + std::string(account.code()),
               "amount"};
}

// A ledger reference posted before with another amount.
inline Error reference_reused(const LedgerEntry& entry, const Money& first) {
  return Error{"reference_reused",
               "reference \"" + entry.reference + "\" was posted to " + entry.account_id + " already, for " + first.format(),
               "reference"}
      .as(ErrorKind::conflict);
}

inline Error number_taken(const std::string& digits, const std::string& owner) {
  return Error{"number_taken", "+" + digits + " is registered to account " + owner, "numbers"}.as(ErrorKind::conflict);
}

// An address another account has (one given twice is normalized_emails' error).
inline Error email_taken(const std::string& email, const std::string& owner) {
  return Error{"email_taken", email + " is registered to account " + owner, "emails"}.as(ErrorKind::conflict);
}

inline Error invalid_cdr(const Cdr& cdr) {
  return Error{"invalid_cdr", "billsec " + std::to_string(cdr.billsec) + " and duration " +
                                  std::to_string(cdr.duration) + " must satisfy 0 <= billsec <= duration",
               "billsec"};
}

// The account's addresses in normalize_email's form; Error (field "emails") for a bad one or
// one given twice.
inline Result<std::vector<std::string>> normalized_emails(const Account& account) {
  std::vector<std::string> emails;
  for (const auto& address : account.emails) {
    auto normal = normalize_email(address);
    if (!normal) {
      Error error = normal.error();
      error.field = "emails";
      return error;
    }
    for (const auto& seen : emails) {
      if (seen == *normal) return Error{"duplicate_email", *normal + " is given twice", "emails"};
    }
    emails.push_back(std::move(*normal));
  }
  return emails;
}

inline Error key_exists(const std::string& id) {
  return Error{"key_exists", "an API key \"" + id + "\" exists", "id"}.as(ErrorKind::conflict);
}

inline Error no_such_key(const std::string& id) {
  return Error{"not_found", "no API key \"" + id + "\"", "id"}.as(ErrorKind::not_found);
}

inline Error already_revoked(const std::string& id) {
  return Error{"already_revoked", "API key \"" + id + "\" is already revoked", "id"};
}

}  // namespace callback::store_common
