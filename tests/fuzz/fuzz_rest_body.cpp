// Fuzzes the JSON bodies callbackd takes: POST /v1/callbacks (-> CallbackForm ->
// make_request), POST /v1/accounts (-> AccountForm -> create_account) and
// POST /v1/accounts/{id}/topups (-> top_up), the last two against a real SQLite store in
// a temporary folder. The field-by-field reading of the JSON object sits inside
// rest/server.cpp and cannot be called alone; this target reads the fields the same plain
// way and fuzzes everything after it. Invariants: a refusal names a field the body has;
// an accepted request holds the numbers the plan makes of the text; an account reads
// back as it was given; a top-up adds exactly its amount to the balance.
#include "fuzz_check.hpp"

#include "sqlite_store.hpp"

#include <callback/callback_request.hpp>
#include <callback/operations.hpp>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <unistd.h>

namespace json = boost::json;
using callback_fuzz::Input;

namespace {

const callback::NumberingPlan china{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};

std::string string_of(const json::object& body, std::string_view key) {
  const auto* v = body.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

void callback_body(const json::object& body, std::string_view text) {
  callback::CallbackForm form;
  form.origin = callback::Origin::rest;
  form.caller = string_of(body, "caller");
  form.callee = string_of(body, "callee");
  const auto account = string_of(body, "account");
  if (account.empty()) {
    form.payer = callback::CampaignId{string_of(body, "campaign")};
  } else {
    form.payer = callback::AccountId{account};
  }
  form.secret = string_of(body, "pin");
  form.language = string_of(body, "language");
  form.idempotency_key = string_of(body, "idempotency_key");
  if (const auto* limit = body.if_contains("limit_seconds"); limit != nullptr && limit->is_int64()) {
    form.limit = std::chrono::seconds(limit->get_int64());
  }
  auto made = callback::make_request(form, china);
  if (!made) {
    static const std::set<std::string, std::less<>> fields = {"caller", "callee", "account", "campaign",
                                                              "limit", "language", "idempotency_key", "pin"};
    FUZZ_CHECK(fields.contains(made.error().field) && !made.error().message.empty(), text, made.error().field,
               made.error().message);
    return;
  }
  FUZZ_CHECK(made->validate().ok(), text);
  FUZZ_CHECK(made->caller == callback::PhoneNumber::parse(form.caller, china).value(), text);
  FUZZ_CHECK(made->callee == callback::PhoneNumber::parse(form.callee, china).value(), text);
  FUZZ_CHECK(made->caller != made->callee, text);
  FUZZ_CHECK(made->payer == form.payer && made->limit == form.limit && made->language == form.language, text);
  FUZZ_CHECK(!made->limit || made->limit->count() > 0, text);
}

// Where the store lives: a folder of this process's, removed at exit.
const std::filesystem::path& store_dir() {
  static const std::filesystem::path dir =
      std::filesystem::path(std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") /
      ("callback-fuzz-" + std::to_string(getpid()));
  return dir;
}

// A fresh store now and then, so lookups do not slow down as accounts pile up.
callback::store_sqlite::SqliteStore& store() {
  static std::unique_ptr<callback::store_sqlite::SqliteStore> current;
  static unsigned uses = 0;
  if (current == nullptr) {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(store_dir(), ec);
    });
  }
  if (current == nullptr || ++uses % 2000 == 0) {
    current.reset();
    std::error_code ec;
    std::filesystem::remove_all(store_dir(), ec);
    auto opened =
        callback::store_sqlite::SqliteStore::open({.path = store_dir() / "callback.db", .synchronous = "normal"});
    FUZZ_CHECK(opened.ok(), "cannot open the store", opened.ok() ? "" : opened.error().describe());
    current = std::move(*opened);
  }
  return *current;
}

void account_body(const json::object& body, std::string_view text) {
  callback::AccountForm form;
  for (const auto& [key, target] : {std::pair<std::string_view, std::string*>{"id", &form.id},
                                    {"name", &form.name}, {"currency", &form.currency},
                                    {"balance", &form.balance}, {"credit_limit", &form.credit_limit},
                                    {"tariff", &form.tariff}, {"language", &form.language}}) {
    if (const auto* v = body.if_contains(key); v != nullptr && v->is_string()) *target = std::string(v->get_string());
  }
  // No "pin": its slow KDF would make every run take a tenth of a second.
  if (const auto* v = body.if_contains("numbers"); v != nullptr && v->is_array()) {
    for (const auto& n : v->get_array()) {
      if (n.is_string()) form.numbers.emplace_back(n.get_string());
    }
  }
  auto& s = store();
  auto created = callback::create_account(s, form, china);
  if (!created) {
    FUZZ_CHECK(!created.error().message.empty() && !created.error().field.empty(), text, created.error().describe());
    return;
  }
  const auto& a = *created;
  FUZZ_CHECK(a.id == form.id && a.name == form.name && a.tariff == form.tariff && a.language == form.language, text,
             a.id, a.name);
  FUZZ_CHECK(a.currency.code() == form.currency, text, a.currency.code());
  const auto currency = callback::Currency::of(form.currency).value();
  FUZZ_CHECK(a.balance == callback::Money::parse(form.balance, currency).value(), text, a.balance.format());
  FUZZ_CHECK(a.credit_limit == callback::Money::parse(form.credit_limit, currency).value(), text);
  // The numbers as the plan reads them, in any order (the store keeps them sorted).
  std::vector<callback::PhoneNumber> numbers;
  for (const auto& n : form.numbers) numbers.push_back(callback::PhoneNumber::parse(n, china).value());
  auto stored = a.caller_numbers;
  std::sort(numbers.begin(), numbers.end());
  std::sort(stored.begin(), stored.end());
  FUZZ_CHECK(stored == numbers, text);

  // A top-up adds exactly its amount, or changes nothing.
  const auto amount = string_of(body, "amount");
  const auto reference = string_of(body, "reference");
  auto entry = callback::top_up(s, a.id, amount, reference);
  auto after = s.accounts().find(a.id);
  FUZZ_CHECK(after.ok() && after->has_value(), text);
  if (!entry) {
    FUZZ_CHECK(entry.error().field == "amount" && !entry.error().message.empty(), text, entry.error().describe());
    FUZZ_CHECK((*after)->balance == a.balance, text, (*after)->balance.format());
    return;
  }
  const auto added = callback::Money::parse(amount, currency).value();
  FUZZ_CHECK(!added.is_negative() && !added.is_zero(), text, amount);
  FUZZ_CHECK((*after)->balance == a.balance + added && entry->balance_after == a.balance + added, text,
             (*after)->balance.format(), entry->balance_after.format());
  FUZZ_CHECK(entry->reference == reference && entry->account_id == a.id, text, entry->reference);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t selector = in.byte();
  const std::string_view text = in.rest();
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);  // as callbackd reads a body
  if (ec || !value.is_object()) return 0;
  if ((selector & 1) == 0) {
    callback_body(value.get_object(), text);
  } else {
    account_body(value.get_object(), text);
  }
  return 0;
}
