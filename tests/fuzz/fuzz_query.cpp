// Fuzzes query strings as callbackd reads them: its HttpGuard checks the head and decodes
// the query, Pistache parses what passed, then each value goes through the parsers the handlers use (times for
// since/until, call states, currencies, phone numbers for number/lookup). Every value is
// tried with every parser. Invariants: a time reads back, to the second, from both of its printed forms
// and means the date and time written (no silent roll-over of 31 February); a state or a
// currency prints as it was written; a number's E.164 form reads back to itself. The
// handlers' own glue (the limit parameter, which parameter goes where) sits inside
// rest/server.cpp and cannot be called alone.
#include "fuzz_check.hpp"

#include <callback/call.hpp>
#include <callback/money.hpp>
#include <callback/phone_number.hpp>
#include <callback/timestamp.hpp>

#include "http_guard.hpp"

#include <pistache/http.h>

#include <ctime>
#include <vector>

using callback_fuzz::Input;

namespace {

const callback::NumberingPlan china{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};

// The numbers written in the text, in order ("2026-11-26T09:00:00Z" -> 2026 11 26 9 0 0).
std::vector<long> numbers_in(std::string_view text) {
  std::vector<long> out;
  bool in_number = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      if (!in_number) out.push_back(0);
      in_number = true;
      if (out.back() < 100'000) out.back() = out.back() * 10 + (c - '0');
    } else {
      in_number = false;
    }
  }
  return out;
}

void check_time(const std::string& value) {
  const auto at = callback::parse_timestamp(value);
  if (!at) return;
  // Both printed forms are to the second: they read back as the time with its fraction cut.
  const auto whole = std::chrono::floor<std::chrono::seconds>(*at);
  for (const auto& printed : {callback::format_rfc3339(*at), callback::format_timestamp(*at)}) {
    const auto again = callback::parse_timestamp(printed);
    FUZZ_CHECK(again && *again == whole, value, printed);
  }
  // What was accepted is what was written: the fields of the time are the numbers given.
  const std::time_t seconds = std::chrono::system_clock::to_time_t(*at);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  const std::vector<long> fields = {utc.tm_year + 1900L, utc.tm_mon + 1L, utc.tm_mday,
                                    utc.tm_hour,         utc.tm_min,      utc.tm_sec};
  // (Only where the numbers are apart: strptime also reads "2026-11-2709:00:00".)
  auto written = numbers_in(value);
  if (written.size() == 3) written.insert(written.end(), {0, 0, 0});
  if (written.size() == 6) FUZZ_CHECK(written == fields, value, callback::format_rfc3339(*at));
}

void check_value(const std::string& value) {
  check_time(value);
  if (const auto state = callback::call_state_from_string(value)) {
    FUZZ_CHECK(callback::to_string(*state) == value, value);
  }
  if (const auto currency = callback::Currency::of(value)) {
    FUZZ_CHECK(currency->code() == value, value);
  }
  if (const auto number = callback::PhoneNumber::parse(value, china)) {
    const auto again = callback::PhoneNumber::parse(number->e164(), china);
    FUZZ_CHECK(again && *again == *number, value, number->e164());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t selector = in.byte();
  std::string request;
  if ((selector & 1) != 0) {
    request.assign(in.rest());  // a whole request, headers and all
  } else {
    request = "GET /v1/cdrs?" + std::string(in.rest()) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  }
  // As callbackd's HttpGuard: the head is checked first, and Pistache gets only a head that
  // passed, then the body it declares (Pistache alone reserves any Content-Length it is
  // given: 19000000010055190 bytes, found by this target in CI).
  constexpr std::size_t body_limit = 16384;
  const auto check = callback::rest::check_request_head(request, [](std::string_view, std::string_view) { return body_limit; });
  if (const auto* rejection = std::get_if<callback::rest::Rejection>(&check)) {
    FUZZ_CHECK(!rejection->error.code.empty() && !rejection->error.message.empty(), request);
    const int status = static_cast<int>(rejection->status);  // the client's fault (4xx), or 501/505: never a 500
    FUZZ_CHECK((status >= 400 && status < 500) || status == 501 || status == 505, request, std::to_string(status));
    return 0;
  }
  const auto* head = std::get_if<callback::rest::RequestHead>(&check);
  if (head == nullptr) return 0;  // incomplete
  FUZZ_CHECK(head->content_length <= body_limit, request);
  if (request.size() - head->size < head->content_length) return 0;  // the body has not all come
  Pistache::Http::RequestParser parser(body_limit + callback::rest::max_request_head);
  FUZZ_CHECK(parser.feed(request.data() + head->preamble, head->size - head->preamble), request);
  FUZZ_CHECK(parser.feed(request.data() + head->size, head->content_length), request);
  Pistache::Http::Private::State state{};
  try {
    state = parser.parse();
  } catch (...) {
    state = Pistache::Http::Private::State::Again;
  }
  // The guard means to let through nothing Pistache refuses, so that a bad request gets an
  // error naming what was wrong; what still slips through is answered 400 "invalid_request"
  // by HttpGuard::dispatch (no crash, no 500). This target found two such (Content-Type,
  // Host with trailing whitespace), both now named by the guard.
  if (state != Pistache::Http::Private::State::Done) return 0;
  // The handlers see the guard's decoded query (HttpGuard::dispatch puts it in the request).
  for (const auto& [name, value] : head->query) {
    check_value(name);
    check_value(value);
  }
  return 0;
}
