// Small value types: CDR dispositions, rates, accounts and ledger entries.
#include <callback/account.hpp>
#include <callback/cdr.hpp>
#include <callback/rate.hpp>

#include "enum_names.hpp"
#include "identifier.hpp"

#include <algorithm>

namespace callback {

std::string_view to_string(Disposition d) noexcept {
  constexpr std::string_view names[] = {"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"};
  return names[static_cast<int>(d)];
}

std::optional<Disposition> disposition_from_string(std::string_view s) noexcept {
  for (auto d : {Disposition::answered, Disposition::no_answer, Disposition::busy, Disposition::failed,
                 Disposition::congestion}) {
    if (to_string(d) == s) return d;
  }
  return std::nullopt;
}

Disposition disposition_for(HangupCause cause, bool answered) noexcept {
  if (answered) return Disposition::answered;
  switch (cause.outcome()) {
    case Outcome::busy:
    case Outcome::rejected: return Disposition::busy;
    case Outcome::system_busy: return Disposition::congestion;
    case Outcome::no_answer:
    case Outcome::normal:
    case Outcome::canceled: return Disposition::no_answer;
    default: return Disposition::failed;
  }
}

std::chrono::seconds Rate::charged_seconds(std::chrono::seconds billsec) const {
  using std::chrono::seconds;
  if (billsec <= seconds{0}) return seconds{0};
  seconds charged = std::max(billsec, minimum_duration);
  const seconds initial = std::max(initial_increment, seconds{1});
  const seconds step = std::max(subsequent_increment, seconds{1});
  if (charged <= initial) return initial;
  const auto beyond = charged - initial;
  const auto steps = (beyond.count() + step.count() - 1) / step.count();
  return initial + step * steps;
}

Money Rate::cost(std::chrono::seconds billsec) const {
  const auto charged = charged_seconds(billsec);
  if (charged.count() == 0) return Money::zero(price_per_minute.currency());
  Money talk = price_per_minute.mul_div(charged.count(), 60, Rounding::up);
  return (talk + connection_fee).rounded(Rounding::up);
}

std::string_view to_string(AccountStatus s) noexcept { return s == AccountStatus::active ? "active" : "disabled"; }

Status Account::validate_id(std::string_view id) {
  return detail::check_identifier(id, "account", "id", "invalid_account");
}

Result<std::string> normalize_email(std::string_view address) {
  const auto bad = [](std::string what) { return Error{"invalid_email", std::move(what), "email"}; };
  if (address.empty()) return bad("an e-mail address is needed");
  if (address.size() > 254) return bad("an e-mail address is at most 254 characters");
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return bad("an e-mail address has an @ (name@example.com)");
  const auto local = address.substr(0, at);
  const auto domain = address.substr(at + 1);
  if (local.empty() || local.size() > 64) return bad("the part before the @ is 1 to 64 characters");
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return bad("the part before the @ cannot begin or end with a dot or have two in a row");
  }
  constexpr std::string_view atext_symbols = "!#$%&'*+-/=?^_`{|}~.";
  const auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  for (std::size_t i = 0; i < local.size(); ++i) {
    if (!alnum(local[i]) && atext_symbols.find(local[i]) == std::string_view::npos) {
      return bad("character " + std::to_string(i + 1) +
                 " is not allowed before the @ (letters, digits, dots and !#$%&'*+-/=?^_`{|}~)");
    }
  }
  if (domain.empty() || domain.size() > 253) return bad("the domain after the @ is 1 to 253 characters");
  std::size_t label_start = 0;
  for (std::size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      const auto label = domain.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return bad("the domain after the @ is labels of 1 to 63 letters, digits and '-' (not first or last), "
                   "separated by dots");
      }
      label_start = i + 1;
    } else if (!alnum(domain[i]) && domain[i] != '-') {
      return bad("character " + std::to_string(at + 2 + i) + " is not allowed in the domain (letters, digits, '-', '.')");
    }
  }
  std::string out(address);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

namespace {
constexpr std::string_view ledger_kind_names[] = {"topup", "call_charge", "adjustment", "refund"};
}
std::string_view to_string(LedgerKind k) noexcept { return ledger_kind_names[static_cast<int>(k)]; }
std::optional<LedgerKind> ledger_kind_from_string(std::string_view s) noexcept {
  return detail::enum_from_name<LedgerKind>(ledger_kind_names, s);
}

}  // namespace callback
