#include "admin.hpp"

#include "http_client.hpp"
#include "table.hpp"

#include <callback/billing.hpp>
#include <callback/config.hpp>
#include <callback/json.hpp>
#include <callback/operations.hpp>
#include <callback/plugin_loader.hpp>
#include <callback/secret.hpp>
#include <callback/store.hpp>
#include <callback/timestamp.hpp>

#include <boost/json/serialize.hpp>

#include <fstream>
#include <iostream>
#include <ostream>

namespace callback::cli {
namespace json = boost::json;

namespace {

// Errors of our input are 2; failures of the store or billing are 1.
int code_for(const Error& e) {
  return e.code.rfind("store_", 0) == 0 || e.code.rfind("billing_", 0) == 0 ? exit_failure : exit_bad_input;
}

}  // namespace

Result<std::unique_ptr<Embedded>> open_embedded(const PluginSource& source, bool need_billing) {
  auto embedded = std::make_unique<Embedded>();
  auto config = service_config(source);
  if (!config) return config.error();
  embedded->config = std::move(*config);
  auto dirs = source.plugin_dirs;
  dirs.insert(dirs.end(), embedded->config.plugin_dirs.begin(), embedded->config.plugin_dirs.end());
  embedded->loader = std::make_unique<PluginLoader>(dirs);
  auto store = embedded->loader->create_from_config<Store>(*embedded->config.store, embedded->context);
  if (!store) return store.error();
  embedded->store = std::move(*store);
  if (need_billing) {
    if (!embedded->config.billing) {
      return Error{"billing_unavailable", "billing is switched off in the config", "billing"}.as(
          ErrorKind::unavailable);
    }
    auto billing = embedded->loader->create_from_config<Billing>(*embedded->config.billing, embedded->context,
                                                                  embedded->store.get());
    if (!billing) return billing.error();
    embedded->billing = std::move(*billing);
  }
  return embedded;
}

namespace {

// As open_embedded, for commands on billing's own data: the backend must keep it.
Result<std::unique_ptr<Embedded>> open_admin(const PluginSource& source, const std::string& what) {
  auto embedded = open_embedded(source, true);
  if (!embedded) return embedded.error();
  if ((*embedded)->billing->admin() == nullptr) {
    return Error{"unsupported", "this billing backend keeps no " + what, "billing"};
  }
  return embedded;
}

std::string time_text(Timestamp t) { return t == Timestamp{} ? std::string() : format_timestamp(t); }

Result<std::optional<Timestamp>> parse_time_arg(const std::string& text, const std::string& field) {
  if (text.empty()) return std::optional<Timestamp>{};
  auto at = parse_timestamp(text);
  if (!at) return Error{"invalid_time", "\"" + text + "\" is not YYYY-MM-DD[ HH:MM:SS]", field};
  return std::optional<Timestamp>{*at};
}

// RFC 4180: quote when needed, double the quotes.
std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Result<CdrQuery> make_query(const CdrFilter& filter) {
  CdrQuery query{.account = filter.account, .number = filter.number, .limit = filter.limit};
  auto since = parse_time_arg(filter.since, "since");
  if (!since) return since.error();
  auto until = parse_time_arg(filter.until, "until");
  if (!until) return until.error();
  query.since = *since;
  query.until = *until;
  return query;
}

// --- shared by the embedded and the remote way ---------------------------------------------

std::string default_tariff(const std::string& t) { return t.empty() ? "(default)" : t; }
// An account without a language: its callers hear the Asterisk server's default.
std::string default_language(const std::string& l) { return l.empty() ? "(default)" : l; }

const std::vector<Column> account_columns{{"ID", "id"},
                                          {"NAME", "name"},
                                          {"BALANCE", "balance"},
                                          {"RESERVED", "reserved"},
                                          {"CURRENCY", "currency"},
                                          {"STATUS", "status"},
                                          {"TARIFF", "tariff", default_tariff},
                                          {"LANGUAGE", "language", default_language}};
const std::vector<Column> rate_columns{{"PREFIX", "prefix"},
                                       {"DESCRIPTION", "description"},
                                       {"RATE", "rate_per_minute"},
                                       {"INITIAL (s)", "initial_increment"},
                                       {"NEXT (s)", "subsequent_increment"},
                                       {"FEE", "connection_fee"}};
const std::vector<Column> cdr_columns{{"CALLDATE", "calldate"}, {"CALLBACK", "callback_id"}, {"LEG", "leg"},
                                      {"SRC", "src"},           {"DST", "dst"},                {"DISPOSITION", "disposition"},
                                      {"DURATION", "duration"}, {"BILLSEC", "billsec"},        {"COST", "cost"},
                                      {"USERFIELD", "userfield"}};
const std::vector<Column> stats_columns{{"NUMBER", "number"},     {"ATTEMPTS", "attempts"},   {"ANSWERED", "answered"},
                                        {"FAILURES", "failures"}, {"TALK (s)", "talk_seconds"}, {"LAST CALL", "last_call"}};

// A list: the JSON array with --json, else the table.
int print_records(const Output& output, const json::array& records, const std::vector<Column>& columns) {
  if (output.json) {
    output.out << json::serialize(records) << '\n';
  } else {
    print_table(output.out, records, columns);
  }
  return exit_ok;
}

std::string text(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return {};
  return v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
}

// One account as people read it (and its ledger, when there is one).
int print_account(const Output& output, json::object account, const json::array* ledger) {
  if (output.json) {
    if (ledger != nullptr) account["ledger"] = *ledger;
    output.out << json::serialize(account) << '\n';
    return exit_ok;
  }
  const std::string name = text(account, "name");
  output.out << "account    " << text(account, "id") << (name.empty() ? "" : " (" + name + ")") << "\n"
             << "status     " << text(account, "status") << "\n"
             << "balance    " << text(account, "balance") << " " << text(account, "currency") << "\n"
             << "reserved   " << text(account, "reserved") << " (calls in flight)\n"
             << "available  " << text(account, "available") << " (credit limit " << text(account, "credit_limit")
             << ")\n"
             << "tariff     " << default_tariff(text(account, "tariff")) << "\n"
             << "language   " << default_language(text(account, "language")) << "\n"
             << "PIN        " << (account.at("has_pin").as_bool() ? "set" : "none") << "\n";
  for (const auto& n : account.at("numbers").as_array()) output.out << "number     " << std::string_view(n.as_string()) << "\n";
  if (const auto* emails = account.if_contains("emails"); emails != nullptr && emails->is_array()) {
    for (const auto& e : emails->as_array()) output.out << "e-mail     " << std::string_view(e.as_string()) << "\n";
  }
  if (ledger != nullptr) {
    output.out << "\n";
    print_table(output.out, *ledger,
                {{"AT", "at"}, {"KIND", "kind"}, {"AMOUNT", "amount"}, {"BALANCE", "balance_after"},
                 {"REFERENCE", "reference"}});
  }
  return exit_ok;
}

// The API's query string: name=value&..., values percent-encoded, empty ones left out.
std::string query_string(std::initializer_list<std::pair<const char*, std::string>> params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (value.empty()) continue;
    out += out.empty() ? "?" : "&";
    out += name;
    out += '=';
    for (unsigned char c : value) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        constexpr char hex[] = "0123456789ABCDEF";
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  }
  return out;
}

int remote_only_embedded(const Output& output, const std::string& what) {
  return fail(output, Error{"not_remote", what + " works on the database itself: run it without --server", "server"});
}

}  // namespace

int accounts_add(const PluginSource& source, const Remote& remote, const AccountAdd& args, const Output& output) {
  if (!remote.server.empty()) {
    json::array numbers;
    for (const auto& n : args.numbers) numbers.emplace_back(n);
    json::array emails;
    for (const auto& e : args.emails) emails.emplace_back(e);
    json::object body{{"id", args.id},       {"name", args.name},         {"currency", args.currency},
                      {"balance", args.balance}, {"credit_limit", args.credit_limit}, {"tariff", args.tariff},
                      {"numbers", numbers},     {"emails", emails}};
    if (!args.pin.empty()) body["pin"] = args.pin;
    if (!args.language.empty()) body["language"] = args.language;
    auto account = api(remote, "POST", "/v1/accounts", json::serialize(body));
    if (!account) return fail(output, account.error(), code_for(account.error()));
    return print_account(output, account->as_object(), nullptr);
  }
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto account = create_account(*(*embedded)->store, args, (*embedded)->config.numbering);
  if (!account) return fail(output, account.error(), code_for(account.error()));
  return accounts_show(source, remote, args.id, output);
}

int accounts_list(const PluginSource& source, const Remote& remote, const Output& output) {
  json::array records;
  if (!remote.server.empty()) {
    auto list = api(remote, "GET", "/v1/accounts");
    if (!list) return fail(output, list.error(), code_for(list.error()));
    records = list->at("accounts").as_array();
  } else {
    auto embedded = open_embedded(source, false);
    if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
    auto accounts = (*embedded)->store->accounts().list();
    if (!accounts) return fail(output, accounts.error(), exit_failure);
    for (const auto& a : *accounts) records.push_back(to_json(a));
  }
  return print_records(output, records, account_columns);
}

int triggers_list(const Remote& remote, const Output& output) {
  if (remote.server.empty()) {
    return fail(output,
                Error{"needs_server", "triggers run inside callbackd: ask it with --server URL --api-key KEY", "server"},
                exit_bad_input);
  }
  auto list = api(remote, "GET", "/v1/triggers");
  if (!list) return fail(output, list.error(), code_for(list.error()));
  json::array records = list->at("triggers").as_array();
  if (!output.json) {
    for (auto& record : records) {  // "accepted=2 forged=1" for the table
      std::string counts;
      for (const auto& [outcome, n] : record.as_object().at("counts").as_object()) {
        counts += (counts.empty() ? "" : " ") + std::string(outcome) + "=" + json::serialize(n);
      }
      record.as_object()["counts"] = counts;
    }
  }
  return print_records(output, records,
                       {{"NAME", "name"}, {"PLUGIN", "plugin"}, {"HEALTHY", "healthy"}, {"LAST MESSAGE", "last_message"},
                        {"LAST POLL", "last_poll"}, {"COUNTS", "counts"}, {"LAST ERROR", "last_error"}});
}

int accounts_show(const PluginSource& source, const Remote& remote, const std::string& id, const Output& output) {
  if (!remote.server.empty()) {
    auto account = api(remote, "GET", "/v1/accounts/" + id);
    if (!account) return fail(output, account.error(), code_for(account.error()));
    return print_account(output, account->as_object(), nullptr);  // the API has no ledger (yet)
  }
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto account = (*embedded)->store->accounts().find(id);
  if (!account) return fail(output, account.error(), exit_failure);
  if (!*account) return fail(output, Error{"unknown_account", "no account " + id, "id"}.as(ErrorKind::not_found));
  auto ledger = (*embedded)->store->ledger().entries(id);
  if (!ledger) return fail(output, ledger.error(), exit_failure);
  json::array entries;
  for (const auto& e : *ledger) {
    entries.push_back(json::object{{"id", e.id}, {"at", time_text(e.at)}, {"kind", to_string(e.kind)},
                                   {"amount", e.amount.format()}, {"balance_after", e.balance_after.format()},
                                   {"reference", e.reference}, {"note", e.note}});
  }
  return print_account(output, to_json(**account), &entries);
}

int accounts_topup(const PluginSource& source, const Remote& remote, const std::string& id, const std::string& amount,
                   const std::string& reference, const Output& output) {
  std::string balance, currency;
  if (!remote.server.empty()) {
    auto account = api(remote, "POST", "/v1/accounts/" + id + "/topup",
                       json::serialize(json::object{{"amount", amount}, {"reference", reference}}));
    if (!account) return fail(output, account.error(), code_for(account.error()));
    balance = text(account->as_object(), "balance");
    currency = text(account->as_object(), "currency");
  } else {
    auto embedded = open_embedded(source, false);
    if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
    auto entry = top_up(*(*embedded)->store, id, amount, reference);
    if (!entry) return fail(output, entry.error(), code_for(entry.error()));
    balance = entry->balance_after.format();
    currency = entry->balance_after.currency().code();
  }
  if (output.json) {
    output.out << json::serialize(json::object{{"account", id}, {"balance", balance}}) << '\n';
  } else {
    output.out << id << ": balance " << balance << " " << currency << "\n";
  }
  return exit_ok;
}

int accounts_disable(const PluginSource& source, const Remote& remote, const std::string& id, const Output& output) {
  if (!remote.server.empty()) return remote_only_embedded(output, "accounts disable");
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  if (auto ok = (*embedded)->store->accounts().set_status(id, AccountStatus::disabled); !ok) {
    return fail(output, ok.error(), code_for(ok.error()));
  }
  if (!output.json) output.out << id << ": disabled\n";
  else output.out << json::serialize(json::object{{"account", id}, {"status", "disabled"}}) << '\n';
  return exit_ok;
}

int rates_import(const PluginSource& source, const Remote& remote, const std::string& tariff, const std::string& file,
                 const std::string& currency_code, const Output& output) {
  auto currency = Currency::of(currency_code);
  if (!currency) return fail(output, currency.error().at("currency"));
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(output, Error{"unreadable", "cannot open " + file, "file"});
  std::string tariff_name;
  std::size_t count = 0;
  std::int64_t took_ms = 0;
  auto located = [&](Error e) {
    if (e.field.rfind("line ", 0) == 0) e.field = file + ": " + e.field;
    return e;
  };
  if (!remote.server.empty()) {
    std::ostringstream csv;
    csv << in.rdbuf();
    auto report = api(remote, "POST", "/v1/rates/" + tariff + query_string({{"currency", currency_code}}), csv.str(),
                      {"Content-Type: text/csv"});
    if (!report) return fail(output, located(report.error()), code_for(report.error()));
    tariff_name = text(report->as_object(), "tariff");
    count = static_cast<std::size_t>(report->at("rates").to_number<std::int64_t>());
    took_ms = report->at("took_ms").to_number<std::int64_t>();
  } else {
    auto embedded = open_admin(source, "rate decks");
    if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
    auto report = (*embedded)->billing->admin()->import_rates(tariff, in, *currency);
    if (!report) return fail(output, located(report.error()), code_for(report.error()));
    tariff_name = report->tariff;
    count = report->rates;
    took_ms = report->took.count();
  }
  if (output.json) {
    output.out << json::serialize(json::object{{"tariff", tariff_name}, {"rates", count}, {"milliseconds", took_ms}})
               << '\n';
  } else {
    output.out << "tariff " << tariff_name << ": " << count << " rates imported in " << took_ms << " ms\n";
  }
  return exit_ok;
}

int rates_lookup(const PluginSource& source, const Remote& remote, const std::string& tariff,
                 const std::string& number_text, const Output& output) {
  json::object rate;
  if (!remote.server.empty()) {
    auto found = api(remote, "GET", "/v1/rates" + query_string({{"tariff", tariff}, {"lookup", number_text}}));
    if (!found) {
      const Error e = found.error();
      return fail(output, e, e.code == "not_found" ? exit_failure : code_for(e));
    }
    rate = found->at("rates").at(0).as_object();
    rate["number"] = number_text;
  } else {
    auto embedded = open_embedded(source, true);
    if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
    auto number = PhoneNumber::parse(number_text, (*embedded)->config.numbering);
    if (!number) return fail(output, number.error().at("number"));
    auto found = (*embedded)->billing->rater().rate(tariff, *number, std::chrono::system_clock::now());
    if (!found) {
      return fail(output, Error{"no_rate", "no rate for " + number->e164() + " in tariff " + tariff, "number"}, 1);
    }
    rate = to_json(*found);
    rate["number"] = number->e164();
  }
  if (output.json) {
    output.out << json::serialize(rate) << '\n';
  } else {
    output.out << text(rate, "number") << " -> " << text(rate, "prefix") << " " << text(rate, "description") << ": "
               << text(rate, "rate_per_minute") << "/min, " << text(rate, "initial_increment") << "/"
               << text(rate, "subsequent_increment") << ", connection " << text(rate, "connection_fee") << "\n";
  }
  return exit_ok;
}

int rates_list(const PluginSource& source, const Remote& remote, const std::string& tariff, const std::string& prefix,
               std::size_t limit, const Output& output) {
  if (!remote.server.empty()) {
    if (tariff.empty()) return remote_only_embedded(output, "the list of tariffs");
    auto list = api(remote, "GET",
                    "/v1/rates" + query_string({{"tariff", tariff},
                                                {"prefix", prefix},
                                                {"limit", limit == 0 ? std::string() : std::to_string(limit)}}));
    if (!list) return fail(output, list.error(), code_for(list.error()));
    return print_records(output, list->at("rates").as_array(), rate_columns);
  }
  auto embedded = open_admin(source, "rate decks");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  if (tariff.empty()) {
    auto tariffs = admin->tariffs();
    if (!tariffs) return fail(output, tariffs.error(), exit_failure);
    json::array records;
    for (const auto& t : *tariffs) {
      records.push_back(json::object{{"name", t.name}, {"currency", t.currency.code()}, {"rates", t.rates},
                                     {"imported_at", time_text(t.imported_at)}});
    }
    return print_records(output, records,
                         {{"TARIFF", "name"}, {"CURRENCY", "currency"}, {"RATES", "rates"}, {"IMPORTED", "imported_at"}});
  }
  auto rates = admin->rates(tariff, prefix, limit);
  if (!rates) return fail(output, rates.error());
  json::array records;
  for (const auto& r : *rates) records.push_back(to_json(r));
  return print_records(output, records, rate_columns);
}

int cdr_list(const PluginSource& source, const Remote& remote, const CdrFilter& filter, const Output& output) {
  auto query = make_query(filter);
  if (!query) return fail(output, query.error());
  json::array records;
  if (!remote.server.empty()) {
    auto list = api(remote, "GET",
                    "/v1/cdrs" + query_string({{"since", filter.since},
                                               {"until", filter.until},
                                               {"account", filter.account},
                                               {"number", filter.number},
                                               {"limit", std::to_string(filter.limit == 0 ? 10000 : filter.limit)}}));
    if (!list) return fail(output, list.error(), code_for(list.error()));
    records = list->at("cdrs").as_array();
  } else {
    auto embedded = open_embedded(source, false);
    if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
    auto ok = (*embedded)->store->cdrs().query(*query, [&](const Cdr& c) {
      records.push_back(to_json(c));
      return true;
    });
    if (!ok) return fail(output, ok.error(), exit_failure);
  }
  return print_records(output, records, cdr_columns);
}

int cdr_export(const PluginSource& source, const Remote& remote, const CdrFilter& filter, const Output& output) {
  if (!remote.server.empty()) return remote_only_embedded(output, "cdr export (a streamed CSV of every record)");
  auto query = make_query(filter);
  if (!query) return fail(output, query.error());
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  // Streams row by row: memory stays flat however many CDRs there are.
  output.out << "calldate,clid,src,dst,dcontext,channel,dstchannel,lastapp,lastdata,duration,billsec,disposition,"
                "amaflags,accountcode,uniqueid,userfield,callback_id,leg,cost,hangup_cause\r\n";
  auto ok = (*embedded)->store->cdrs().query(*query, [&](const Cdr& c) {
    for (const std::string& f : {time_text(c.calldate), c.clid, c.src, c.dst, c.dcontext, c.channel, c.dstchannel,
                                 c.lastapp, c.lastdata}) {
      output.out << csv_field(f) << ',';
    }
    output.out << c.duration << ',' << c.billsec << ',' << to_string(c.disposition) << ',' << c.amaflags << ','
               << csv_field(c.accountcode) << ',' << csv_field(c.uniqueid) << ',' << csv_field(c.userfield) << ','
               << csv_field(c.callback_id) << ',' << to_string(c.leg) << ',' << (c.cost ? c.cost->format() : "")
               << ',' << c.hangup_cause.code() << "\r\n";
    return static_cast<bool>(output.out);
  });
  if (!ok) return fail(output, ok.error(), exit_failure);
  return exit_ok;
}

int stats(const PluginSource& source, const Remote& remote, const std::string& number_text, std::size_t limit,
          const Output& output) {
  json::array records;
  if (!remote.server.empty()) {
    auto list = api(remote, "GET",
                    "/v1/stats" + query_string({{"number", number_text},
                                                {"limit", std::to_string(limit == 0 ? 10000 : limit)}}));
    if (!list) return fail(output, list.error(), code_for(list.error()));
    records = list->at("stats").as_array();
  } else {
    auto embedded = open_admin(source, "statistics");
    if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
    std::string digits;
    if (!number_text.empty()) {
      auto number = PhoneNumber::parse(number_text, (*embedded)->config.numbering);
      if (!number) return fail(output, number.error().at("number"));
      digits = number->digits();
    }
    auto rows = (*embedded)->billing->admin()->caller_stats(digits, limit);
    if (!rows) return fail(output, rows.error(), exit_failure);
    for (const auto& s : *rows) records.push_back(to_json(s));
  }
  return print_records(output, records, stats_columns);
}

int campaigns_add(const PluginSource& source, const Remote& remote, const CampaignAdd& args, const Output& output) {
  if (!remote.server.empty()) return remote_only_embedded(output, "campaigns add");
  auto embedded = open_admin(source, "campaigns");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  Campaign c{.id = args.id, .limit = std::chrono::seconds(args.limit_seconds), .uses_per_day = args.uses_per_day,
             .once_ever = args.once_ever, .min_hours_between = args.min_hours_between,
             .daily_budget = std::chrono::seconds(args.daily_budget_seconds), .tariff = args.tariff};
  if (auto ok = admin->put_campaign(c); !ok) return fail(output, ok.error(), code_for(ok.error()));
  return campaigns_list(source, remote, output);
}

int campaigns_list(const PluginSource& source, const Remote& remote, const Output& output) {
  if (!remote.server.empty()) return remote_only_embedded(output, "campaigns list");
  auto embedded = open_admin(source, "campaigns");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  auto list = admin->campaigns();
  if (!list) return fail(output, list.error(), exit_failure);
  if (output.json) {
    json::array out;
    for (const auto& c : *list) {
      out.push_back(json::object{{"id", c.id}, {"limit_seconds", c.limit.count()}, {"uses_per_day", c.uses_per_day},
                                 {"once_ever", c.once_ever}, {"min_hours_between", c.min_hours_between},
                                 {"daily_budget_seconds", c.daily_budget.count()}, {"active", c.active},
                                 {"tariff", c.tariff}});
    }
    output.out << json::serialize(out) << '\n';
    return exit_ok;
  }
  Table table({"CAMPAIGN", "LIMIT (s)", "PER DAY", "ONCE", "GAP (h)", "DAILY BUDGET (s)", "ACTIVE", "TARIFF"});
  for (const auto& c : *list) {
    table.add({c.id, std::to_string(c.limit.count()), std::to_string(c.uses_per_day), c.once_ever ? "yes" : "no",
               std::to_string(c.min_hours_between), std::to_string(c.daily_budget.count()), c.active ? "yes" : "no",
               c.tariff.empty() ? "(default)" : c.tariff});
  }
  table.print(output.out);
  return exit_ok;
}

namespace {

Result<Payer> policy_payer(const PolicySet& args) {
  if (args.account.empty() == args.campaign.empty()) {
    return Error{"invalid_arguments", "give exactly one of --account or --campaign", "--account"};
  }
  if (!args.account.empty()) return Payer{AccountId{args.account}};
  return Payer{CampaignId{args.campaign}};
}

int print_policy(const PayerPolicy& policy, const Output& output) {
  const auto record = to_json(policy);
  if (output.json) {
    output.out << json::serialize(record) << '\n';
    return exit_ok;
  }
  auto list = [](const json::value& v) {
    std::string text;
    for (const auto& p : v.as_array()) {
      if (!text.empty()) text += ' ';
      text += std::string_view(p.as_string());
    }
    return text.empty() ? std::string("-") : text;
  };
  auto amount = [](const json::value& v) { return v.is_null() ? std::string("-") : std::string(v.as_string()); };
  Table table({"ALLOW", "DENY", "MAX CALL COST", "DAILY SPEND", "MAX CONCURRENT"});
  table.add({list(record.at("allow_prefixes")), list(record.at("deny_prefixes")), amount(record.at("max_call_cost")),
             amount(record.at("daily_spend")),
             policy.max_concurrent == 0 ? std::string("-") : std::to_string(policy.max_concurrent)});
  table.print(output.out);
  return exit_ok;
}

}  // namespace

int policy_set(const PluginSource& source, const Remote& remote, const PolicySet& args, const Output& output) {
  if (!remote.server.empty()) return remote_only_embedded(output, "policy set");
  auto payer = policy_payer(args);
  if (!payer) return fail(output, payer.error(), exit_bad_input);
  auto policy = make_policy({.payer = *payer, .allow_prefixes = args.allow, .deny_prefixes = args.deny,
                             .max_call_cost = args.max_call_cost, .daily_spend = args.daily_spend,
                             .max_concurrent = args.max_concurrent});
  if (!policy) return fail(output, policy.error(), exit_bad_input);
  auto embedded = open_admin(source, "policies");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  if (auto ok = admin->put_policy(*policy); !ok) return fail(output, ok.error(), code_for(ok.error()));
  return print_policy(*policy, output);
}

int policy_show(const PluginSource& source, const Remote& remote, const PolicySet& args, const Output& output) {
  if (!remote.server.empty()) return remote_only_embedded(output, "policy show");
  auto payer = policy_payer(args);
  if (!payer) return fail(output, payer.error(), exit_bad_input);
  auto embedded = open_admin(source, "policies");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto policy = (*embedded)->billing->admin()->policy(*payer);
  if (!policy) return fail(output, policy.error(), exit_failure);
  return print_policy(*policy, output);
}

}  // namespace callback::cli
