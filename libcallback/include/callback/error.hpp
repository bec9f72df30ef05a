#pragma once
// Errors for untrusted input: every parser and validator returns Result<T>, which holds
// either the value or an Error naming what was wrong (code), how (message) and where
// (field: a JSON path, a CSV line, a form field) and, for a policy's refusal, which rule
// matched. The REST layer serializes the same Error as {"error": {"code", "message",
// "field", "rule"}} ("rule" only when there is one).
//
//   auto number = PhoneNumber::parse(text, plan);
//   if (!number) return fail(number.error());      // "caller: ... letter 'x' ..."
//   use(*number);
//
// Broken invariants (bugs) are not Errors: they assert or throw std::logic_error.
#include <callback/export.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace callback {

// What kind of failure an Error is, whatever its code: front ends turn the kind into
// their medium's answer (http_status() for HTTP, an exit status for callbackctl)
// without reading codes. Most errors are mistakes in a request, the default.
enum class ErrorKind : std::uint8_t {
  invalid,             // the request is wrong: a bad number, a missing field (HTTP 400)
  unauthorized,        // no or a wrong credential (401)
  payment_required,    // the payer cannot pay for it (402)
  forbidden,           // refused by a policy or a key's scope (403)
  not_found,           // no such thing (404)
  method_not_allowed,  // (405)
  conflict,            // it exists already, or it has ended (409)
  too_large,           // (413)
  unsupported_media,   // (415)
  rate_limited,        // too many, try later (429)
  internal,            // a fault on our side: the store failed (500)
  unavailable,         // cannot now: stopping, overloaded, no engine or billing (503)
};

struct Error {
  std::string code;     // stable, machine-readable: "invalid_phone_number", "config.type"
  std::string message;  // for people: says what was wrong
  std::string field;    // where, if known: "engines[0].config.port", "line 12", "callee"
  std::string rule;     // a policy's refusal: the rule that matched ("deny_prefix +882"); else empty
  ErrorKind kind = ErrorKind::invalid;

  // The same error, of kind `k`: return Error{"not_found", "no account \"7\"", "id"}.as(ErrorKind::not_found);
  [[nodiscard]] Error as(ErrorKind k) const& {
    Error e = *this;
    e.kind = k;
    return e;
  }
  [[nodiscard]] Error as(ErrorKind k) && {
    kind = k;
    return std::move(*this);
  }

  // "field: message" (or just the message when there is no field), then "[rule: ...]".
  [[nodiscard]] std::string describe() const {
    std::string text = field.empty() ? message : field + ": " + message;
    return rule.empty() ? text : text + " [rule: " + rule + "]";
  }
  // The same error reported at `place`; its own field moves into the message
  // ({"f", "no plugin", "x.so"}.at("engines[0].plugin") -> "engines[0].plugin: x.so: no plugin").
  [[nodiscard]] Error at(const std::string& place) const {
    return Error{code, field.empty() ? message : field + ": " + message, place, rule, kind};
  }
  // The same error, located inside an enclosing field ("caller" + "x" -> "caller.x").
  [[nodiscard]] Error within(const std::string& outer) const {
    Error e = *this;
    e.field = field.empty() ? outer : (field.front() == '[' ? outer + field : outer + "." + field);
    return e;
  }
};

// Thrown where an API has no other way to report an Error (constructors, value()).
class CALLBACK_EXPORT Exception : public std::runtime_error {
 public:
  explicit Exception(Error error) : std::runtime_error(error.describe()), error_(std::move(error)) {}
  [[nodiscard]] const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { check(); return std::get<0>(state_); }
  const T& value() const& { check(); return std::get<0>(state_); }
  // By value: `for (auto& x : f().value())` must not refer into a destroyed temporary.
  T value() && { check(); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] T value_or(T fallback) const& { return ok() ? std::get<0>(state_) : std::move(fallback); }

  [[nodiscard]] const Error& error() const& {
    if (ok()) throw std::logic_error("Result::error() called on a value");
    return std::get<1>(state_);
  }

 private:
  void check() const {
    if (!ok()) throw Exception(std::get<1>(state_));
  }
  std::variant<T, Error> state_;
};

// For operations that return nothing but may fail.
struct Done {};
using Status = Result<Done>;
inline Status ok_status() { return Done{}; }

}  // namespace callback
