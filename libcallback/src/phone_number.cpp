#include <callback/phone_number.hpp>

#include <algorithm>
#include <cctype>

namespace callback {
namespace {

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

Error number_error(std::string code, std::string message) {
  return Error{std::move(code), std::move(message), {}};
}

std::string quoted(std::string_view text) {
  // Cut very long input so an error line stays one readable line.
  constexpr std::size_t max_shown = 40;
  std::string shown(text.substr(0, max_shown));
  if (text.size() > max_shown) shown += "...";
  return "\"" + shown + "\"";
}

Result<PhoneNumber> check_length(std::string digits, std::string_view original) {
  if (digits.size() > PhoneNumber::max_digits) {
    return number_error("invalid_phone_number", quoted(original) + " has " + std::to_string(digits.size()) +
                                                    " digits; a phone number has at most 15 (E.164)");
  }
  if (digits.size() < PhoneNumber::min_digits) {
    return number_error("invalid_phone_number", quoted(original) + " is too short to be a phone number");
  }
  return PhoneNumber::from_e164(digits);
}

// The regions whose emergency numbers are built in, by country code.
struct EmergencyRegion {
  std::vector<std::string_view> country_codes;
  std::vector<std::string_view> patterns;
};
const std::vector<EmergencyRegion>& emergency_regions() {
  static const std::vector<EmergencyRegion> regions{
      {{"86"}, {"110", "119", "120", "122", "112"}},  // China: police, fire, ambulance, traffic, GSM
      {{"1"}, {"911", "N11", "112"}},                  // NANP: 911 and the N11 service codes
      // Europe: the EU's members, the UK, Norway, Switzerland, Iceland: 112, the 116
      // harmonised services, 118 directory codes, 999 (UK, Ireland).
      {{"30",  "31",  "32",  "33",  "34",  "36",  "39",  "40",  "41",  "43",  "44",  "45",  "46",  "47",
        "48",  "49",  "351", "352", "353", "354", "356", "357", "358", "359", "370", "371", "372", "385",
        "386", "420", "421"},
       {"112", "116XXX", "118XX", "999"}},
  };
  return regions;
}

bool matches_pattern(std::string_view pattern, std::string_view digits) {
  if (pattern.size() != digits.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char p = pattern[i], d = digits[i];
    const bool ok = p == 'X' ? true : p == 'N' ? (d >= '2' && d <= '9') : p == 'Z' ? (d >= '1' && d <= '9') : p == d;
    if (!ok) return false;
  }
  return true;
}

// The first pattern matching the national number, if any.
template <class Patterns>
std::optional<std::string> emergency_match(const Patterns& patterns, std::string_view national) {
  for (const auto& pattern : patterns) {
    if (matches_pattern(pattern, national)) return std::string(pattern);
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> default_emergency_numbers(std::string_view country_code) {
  std::vector<std::string> all;
  for (const auto& region : emergency_regions()) {
    const bool ours = std::find(region.country_codes.begin(), region.country_codes.end(), country_code) !=
                      region.country_codes.end();
    if (ours) return {region.patterns.begin(), region.patterns.end()};
    for (auto pattern : region.patterns) {
      if (std::find(all.begin(), all.end(), pattern) == all.end()) all.emplace_back(pattern);
    }
  }
  return all;
}

Status check_dialable(const PhoneNumber& number, const NumberingPlan& plan, const std::string& field) {
  const std::string& digits = number.digits();
  auto emergency = [&](const std::string& pattern) {
    return Error{"denied.emergency_number",
                 number.e164() + " is an emergency or service number; a callback never dials it", field,
                 "emergency " + pattern}.as(ErrorKind::forbidden);
  };
  const std::size_t min_digits = plan.min_subscriber_digits.value_or(plan.country_code.empty() ? 0 : 6);
  auto short_code = [&](std::string_view national) -> Status {
    if (national.size() >= min_digits) return ok_status();
    return Error{"denied.short_code",
                 number.e164() + " is a short code (" + std::to_string(national.size()) +
                     " digits), not a subscriber's number; a callback never dials it",
                 field, "short_code <" + std::to_string(min_digits) + " digits"}.as(ErrorKind::forbidden);
  };
  const auto own_patterns = plan.emergency_numbers.value_or(default_emergency_numbers(plan.country_code));
  if (plan.country_code.empty()) {  // numbers as dialed: the number is its own national number
    if (auto match = emergency_match(own_patterns, digits)) return emergency(*match);
    return short_code(digits);
  }
  if (digits.starts_with(plan.country_code)) {
    const std::string_view national = std::string_view(digits).substr(plan.country_code.size());
    if (auto match = emergency_match(own_patterns, national)) return emergency(*match);
    return short_code(national);
  }
  // Another country's number: its built-in emergency numbers, when it is one we know.
  for (const auto& region : emergency_regions()) {
    for (auto code : region.country_codes) {
      if (!digits.starts_with(code)) continue;
      const std::string_view national = std::string_view(digits).substr(code.size());
      if (auto match = emergency_match(region.patterns, national)) return emergency(*match);
      return short_code(national);
    }
  }
  return ok_status();
}

Status NumberingPlan::validate() const {
  if (!country_code.empty() &&
      (!all_digits(country_code) || country_code.size() > 3 || country_code.front() == '0')) {
    return Error{"invalid_numbering_plan", "country code must be 1 to 3 digits not starting with 0, got \"" +
                                               country_code + "\"", "country_code"};
  }
  if (!all_digits(trunk_prefix) || trunk_prefix.size() > 2) {
    return Error{"invalid_numbering_plan", "trunk prefix must be at most 2 digits, got \"" + trunk_prefix + "\"",
                 "trunk_prefix"};
  }
  for (std::size_t i = 0; i < international_prefixes.size(); ++i) {
    const auto& p = international_prefixes[i];
    if (p.empty() || !all_digits(p) || p.size() > 4) {
      return Error{"invalid_numbering_plan", "international prefix must be 1 to 4 digits, got \"" + p + "\"",
                   "international_prefixes[" + std::to_string(i) + "]"};
    }
  }
  if (emergency_numbers) {
    for (std::size_t i = 0; i < emergency_numbers->size(); ++i) {
      const auto& p = (*emergency_numbers)[i];
      const bool shaped = !p.empty() && p.size() <= PhoneNumber::max_digits &&
                          std::all_of(p.begin(), p.end(), [](char c) {
                            return (c >= '0' && c <= '9') || c == 'X' || c == 'N' || c == 'Z';
                          });
      if (!shaped) {
        return Error{"invalid_numbering_plan",
                     "an emergency number is 1 to 15 digits or X, N, Z (Asterisk patterns), got \"" + p + "\"",
                     "emergency_numbers[" + std::to_string(i) + "]"};
      }
    }
  }
  if (min_subscriber_digits && *min_subscriber_digits > PhoneNumber::max_digits) {
    return Error{"invalid_numbering_plan", "min_subscriber_digits must be 0 to 15", "min_subscriber_digits"};
  }
  return ok_status();
}

Result<PhoneNumber> PhoneNumber::from_e164(std::string_view digits) {
  if (digits.empty()) return number_error("invalid_phone_number", "phone number is empty");
  if (!all_digits(digits)) return number_error("invalid_phone_number", quoted(digits) + " is not all digits");
  if (digits.size() > max_digits || digits.size() < min_digits) {
    return number_error("invalid_phone_number", quoted(digits) + " must have 3 to 15 digits");
  }
  return PhoneNumber(std::string(digits));
}

Result<PhoneNumber> PhoneNumber::parse(std::string_view text, const NumberingPlan& plan) {
  // Trim surrounding white space; inner white space is a separator.
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.empty()) return number_error("invalid_phone_number", "phone number is empty");

  // "+44 (0)20 7946 0018": the "(0)" is the national trunk prefix, written for people
  // dialing inside the country; in an international number it is dropped.
  std::string without_trunk_hint;
  if (text.front() == '+' && text.find("(0)") != std::string_view::npos) {
    without_trunk_hint = std::string(text);
    for (auto at = without_trunk_hint.find("(0)"); at != std::string::npos; at = without_trunk_hint.find("(0)")) {
      without_trunk_hint.replace(at, 3, "   ");  // same length: error positions still match
    }
    text = without_trunk_hint;
  }

  bool plus = false;
  std::string digits;
  digits.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    auto position = [i] { return " at position " + std::to_string(i + 1); };
    if (std::isdigit(c)) {
      digits.push_back(static_cast<char>(c));
    } else if (c == '+') {
      if (!digits.empty() || plus) {
        return number_error("invalid_phone_number", quoted(text) + ": '+'" + position() + " may only start a number");
      }
      plus = true;
    } else if (c == ' ' || c == '\t' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')') {
      // separator
    } else if (std::isalpha(c)) {
      return number_error("invalid_phone_number", quoted(text) + ": letter '" + std::string(1, static_cast<char>(c)) +
                                                      "'" + position() + " is not allowed in a phone number");
    } else if (c < 0x20 || c >= 0x7f) {
      return number_error("invalid_phone_number", quoted(text) + ": a control or non-ASCII character" + position() +
                                                      " is not allowed in a phone number");
    } else {
      return number_error("invalid_phone_number", quoted(text) + ": character '" + std::string(1, static_cast<char>(c)) +
                                                      "'" + position() + " is not allowed in a phone number");
    }
  }
  if (digits.empty()) return number_error("invalid_phone_number", quoted(text) + " has no digits");

  if (plus) {
    // A private plan's numbers are as dialed and may start with 0; e164() prints "0101"
    // as "+0101", which must read back as the same number.
    if (digits.front() == '0' && plan.country_code.empty()) return check_length(std::move(digits), text);
    if (digits.front() == '0') {
      return number_error("invalid_phone_number", quoted(text) + ": a country code never starts with 0");
    }
    return check_length(std::move(digits), text);
  }
  // International prefix: the longest configured one that matches wins ("011" before "0").
  std::string_view best;
  for (const auto& prefix : plan.international_prefixes) {
    if (prefix.size() > best.size() && digits.size() > prefix.size() && digits.starts_with(prefix)) best = prefix;
  }
  if (!best.empty()) {
    std::string rest = digits.substr(best.size());
    if (rest.front() == '0') {
      return number_error("invalid_phone_number", quoted(text) + ": a country code never starts with 0");
    }
    return check_length(std::move(rest), text);
  }
  if (plan.country_code.empty()) return check_length(std::move(digits), text);  // as dialed
  // National: drop the trunk prefix, add the country code.
  std::string national = digits;
  if (!plan.trunk_prefix.empty() && national.starts_with(plan.trunk_prefix)) {
    national.erase(0, plan.trunk_prefix.size());
  }
  if (national.size() < 2) {
    return number_error("invalid_phone_number", quoted(text) + " is too short to be a phone number");
  }
  return check_length(plan.country_code + national, text);
}

}  // namespace callback
