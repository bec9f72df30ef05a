#pragma once
// Account: a prepaid customer. The balance changes only through ledger entries, each
// posted together with the balance update in one transaction, so the ledger always sums
// to the balance.
//
//   Account account{.id = "123", .currency = cny, .balance = Money::parse("5.00", cny).value()};
//   store.accounts().create(account);
//   store.ledger().post({.account_id = "123", .amount = -cost, .kind = LedgerKind::call_charge,
//                        .reference = call.id()});
#include <callback/call.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/money.hpp>
#include <callback/phone_number.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

enum class AccountStatus { active, disabled };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(AccountStatus s) noexcept;

struct Account {
  std::string id;  // "123"; letters, digits, '-', '_', '.', at most 64
  std::string name;
  Currency currency;
  Money balance = Money::zero(currency);
  Money credit_limit = Money::zero(currency);  // how far below zero it may go
  Money reserved = Money::zero(currency);      // held for calls in flight (read-only here)
  AccountStatus status = AccountStatus::active;
  std::string tariff;                       // rate deck name; empty: the default deck
  std::vector<PhoneNumber> caller_numbers;  // registered numbers (ANI/SMS authentication); one account each
  std::vector<std::string> emails;          // registered e-mail addresses (the e-mail trigger), as normalize_email gives them
  std::string secret_hash;                  // PIN/password, as a slow KDF's output; never the secret
  std::string language;  // Asterisk sound language of its callers' announcements ("zh"); empty: the server's default
  Timestamp created_at{};

  // Shape of the id (the store's rule): a clear Error naming the problem.
  [[nodiscard]] CALLBACK_EXPORT static Status validate_id(std::string_view id);
};

// An e-mail address as registered and looked up: `local@domain`, at most 254 bytes, the
// local part at most 64 of RFC 5322's dot-atom characters, the domain dot-separated labels
// of letters, digits and '-'; all lower case (mail systems treat both parts that way in
// practice). No display name, comment, quoted local part or address literal. The Error
// ("invalid_email") says what is wrong.
[[nodiscard]] CALLBACK_EXPORT Result<std::string> normalize_email(std::string_view address);

enum class LedgerKind { topup, call_charge, adjustment, refund };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(LedgerKind k) noexcept;
[[nodiscard]] CALLBACK_EXPORT std::optional<LedgerKind> ledger_kind_from_string(std::string_view s) noexcept;

struct LedgerEntry {
  std::int64_t id = 0;  // assigned by the store
  std::string account_id;
  Money amount;  // positive credits, negative debits
  LedgerKind kind = LedgerKind::adjustment;
  std::string reference;  // callback id, payment reference
  std::string note;
  Timestamp at{};
  Money balance_after = amount;  // filled in by the store
};

}  // namespace callback
