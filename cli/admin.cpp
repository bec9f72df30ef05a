#include "admin.hpp"

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

// The store and billing of the configured (or default) service, opened in-process.
struct Embedded {
  boost::asio::io_context io;
  SystemClock clock{io};
  StreamLogger log{std::cerr, LogLevel::warning};
  Metrics metrics;
  Context context{io, clock, log, metrics};
  ServiceConfig config;
  std::unique_ptr<PluginLoader> loader;
  PluginPtr<Store> store;
  PluginPtr<Billing> billing;
};


// Errors of our input are 2; failures of the store or billing are 1.
int code_for(const Error& e) {
  return e.code.rfind("store_", 0) == 0 || e.code.rfind("billing_", 0) == 0 ? exit_failure : exit_bad_input;
}

Result<std::unique_ptr<Embedded>> open_embedded(const PluginSource& source, bool need_billing) {
  auto embedded = std::make_unique<Embedded>();
  if (source.config) {
    auto config = load_config(*source.config);
    if (!config) return config.error();
    embedded->config = std::move(*config);
  } else {
    embedded->config = default_config();
  }
  auto dirs = source.plugin_dirs;
  dirs.insert(dirs.end(), embedded->config.plugin_dirs.begin(), embedded->config.plugin_dirs.end());
  embedded->loader = std::make_unique<PluginLoader>(dirs);
  auto store = embedded->loader->create_from_config<Store>(*embedded->config.store, embedded->context);
  if (!store) return store.error();
  embedded->store = std::move(*store);
  if (need_billing) {
    if (!embedded->config.billing) return Error{"billing_unavailable", "billing is switched off in the config", "billing"};
    auto billing = embedded->loader->create_from_config<Billing>(*embedded->config.billing, embedded->context,
                                                                  embedded->store.get());
    if (!billing) return billing.error();
    embedded->billing = std::move(*billing);
  }
  return embedded;
}

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

}  // namespace

int accounts_add(const PluginSource& source, const AccountAdd& args, const Output& output) {
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto account = create_account(*(*embedded)->store, args, (*embedded)->config.numbering);
  if (!account) return fail(output, account.error(), code_for(account.error()));
  return accounts_show(source, args.id, output);
}

int accounts_list(const PluginSource& source, const Output& output) {
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto accounts = (*embedded)->store->accounts().list();
  if (!accounts) return fail(output, accounts.error(), exit_failure);
  if (output.json) {
    json::array list;
    for (const auto& a : *accounts) list.push_back(to_json(a));
    output.out << json::serialize(list) << '\n';
    return exit_ok;
  }
  Table table({"ID", "NAME", "BALANCE", "RESERVED", "CURRENCY", "STATUS", "TARIFF"});
  for (const auto& a : *accounts) {
    table.add({a.id, a.name, a.balance.format(), a.reserved.format(), std::string(a.currency.code()),
               std::string(to_string(a.status)), a.tariff.empty() ? "(default)" : a.tariff});
  }
  table.print(output.out);
  return exit_ok;
}

int accounts_show(const PluginSource& source, const std::string& id, const Output& output) {
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto account = (*embedded)->store->accounts().find(id);
  if (!account) return fail(output, account.error(), exit_failure);
  if (!*account) return fail(output, Error{"unknown_account", "no account " + id, "id"});
  auto ledger = (*embedded)->store->ledger().entries(id);
  if (!ledger) return fail(output, ledger.error(), exit_failure);
  const Account& a = **account;
  if (output.json) {
    json::object o = to_json(a);
    json::array entries;
    for (const auto& e : *ledger) {
      entries.push_back(json::object{{"id", e.id}, {"at", time_text(e.at)}, {"kind", to_string(e.kind)},
                                     {"amount", e.amount.format()}, {"balance_after", e.balance_after.format()},
                                     {"reference", e.reference}, {"note", e.note}});
    }
    o["ledger"] = entries;
    output.out << json::serialize(o) << '\n';
    return exit_ok;
  }
  output.out << "account    " << a.id << (a.name.empty() ? "" : " (" + a.name + ")") << "\n"
             << "status     " << to_string(a.status) << "\n"
             << "balance    " << a.balance.format() << " " << a.currency.code() << "\n"
             << "reserved   " << a.reserved.format() << " (calls in flight)\n"
             << "available  " << (a.balance - a.reserved + a.credit_limit).format() << " (credit limit "
             << a.credit_limit.format() << ")\n"
             << "tariff     " << (a.tariff.empty() ? "(default)" : a.tariff) << "\n"
             << "PIN        " << (a.secret_hash.empty() ? "none" : "set") << "\n";
  for (const auto& n : a.caller_numbers) output.out << "number     " << n.e164() << "\n";
  output.out << "\n";
  Table table({"AT", "KIND", "AMOUNT", "BALANCE", "REFERENCE"});
  for (const auto& e : *ledger) {
    table.add({time_text(e.at), std::string(to_string(e.kind)), e.amount.format(), e.balance_after.format(), e.reference});
  }
  table.print(output.out);
  return exit_ok;
}

int accounts_topup(const PluginSource& source, const std::string& id, const std::string& amount,
                   const std::string& reference, const Output& output) {
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto entry = top_up(*(*embedded)->store, id, amount, reference);
  if (!entry) return fail(output, entry.error(), code_for(entry.error()));
  if (output.json) {
    output.out << json::serialize(json::object{{"account", id}, {"balance", entry->balance_after.format()}}) << '\n';
  } else {
    output.out << id << ": balance " << entry->balance_after.format() << " " << entry->balance_after.currency().code()
               << "\n";
  }
  return exit_ok;
}

int accounts_disable(const PluginSource& source, const std::string& id, const Output& output) {
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  if (auto ok = (*embedded)->store->accounts().set_status(id, AccountStatus::disabled); !ok) {
    return fail(output, ok.error(), code_for(ok.error()));
  }
  if (!output.json) output.out << id << ": disabled\n";
  else output.out << json::serialize(json::object{{"account", id}, {"status", "disabled"}}) << '\n';
  return exit_ok;
}

int rates_import(const PluginSource& source, const std::string& tariff, const std::string& file,
                 const std::string& currency_code, const Output& output) {
  auto currency = Currency::of(currency_code);
  if (!currency) return fail(output, currency.error().at("currency"));
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(output, Error{"unreadable", "cannot open " + file, "file"});
  auto embedded = open_admin(source, "rate decks");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  auto report = admin->import_rates(tariff, in, *currency);
  if (!report) {
    Error e = report.error();
    if (e.field.rfind("line ", 0) == 0) e.field = file + ": " + e.field;
    return fail(output, e, code_for(e));
  }
  if (output.json) {
    output.out << json::serialize(json::object{{"tariff", report->tariff}, {"rates", report->rates},
                                               {"milliseconds", report->took.count()}})
               << '\n';
  } else {
    output.out << "tariff " << report->tariff << ": " << report->rates << " rates imported in " << report->took.count()
               << " ms\n";
  }
  return exit_ok;
}

int rates_lookup(const PluginSource& source, const std::string& tariff, const std::string& number_text,
                 const Output& output) {
  auto embedded = open_embedded(source, true);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto number = PhoneNumber::parse(number_text, (*embedded)->config.numbering);
  if (!number) return fail(output, number.error().at("number"));
  auto rate = (*embedded)->billing->rater().rate(tariff, *number, std::chrono::system_clock::now());
  if (!rate) return fail(output, Error{"no_rate", "no rate for " + number->e164() + " in tariff " + tariff, "number"}, 1);
  if (output.json) {
    json::object body = to_json(*rate);
    body["number"] = number->e164();
    output.out << json::serialize(body) << '\n';
  } else {
    output.out << number->e164() << " -> " << rate->prefix << " " << rate->description << ": "
               << rate->price_per_minute.format() << "/min, " << rate->initial_increment.count() << "/"
               << rate->subsequent_increment.count() << ", connection " << rate->connection_fee.format() << "\n";
  }
  return exit_ok;
}

int rates_list(const PluginSource& source, const std::string& tariff, const std::string& prefix, std::size_t limit,
               const Output& output) {
  auto embedded = open_admin(source, "rate decks");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  if (tariff.empty()) {
    auto tariffs = admin->tariffs();
    if (!tariffs) return fail(output, tariffs.error(), exit_failure);
    if (output.json) {
      json::array list;
      for (const auto& t : *tariffs) {
        list.push_back(json::object{{"name", t.name}, {"currency", t.currency.code()}, {"rates", t.rates},
                                    {"imported_at", time_text(t.imported_at)}});
      }
      output.out << json::serialize(list) << '\n';
      return exit_ok;
    }
    Table table({"TARIFF", "CURRENCY", "RATES", "IMPORTED"});
    for (const auto& t : *tariffs) {
      table.add({t.name, std::string(t.currency.code()), std::to_string(t.rates), time_text(t.imported_at)});
    }
    table.print(output.out);
    return exit_ok;
  }
  auto rates = admin->rates(tariff, prefix, limit);
  if (!rates) return fail(output, rates.error());
  if (output.json) {
    json::array list;
    for (const auto& r : *rates) {
      list.push_back(to_json(r));
    }
    output.out << json::serialize(list) << '\n';
    return exit_ok;
  }
  Table table({"PREFIX", "DESCRIPTION", "RATE", "INCREMENT", "FEE"});
  for (const auto& r : *rates) {
    table.add({r.prefix, r.description, r.price_per_minute.format(),
               std::to_string(r.initial_increment.count()) + "/" + std::to_string(r.subsequent_increment.count()),
               r.connection_fee.format()});
  }
  table.print(output.out);
  return exit_ok;
}

int cdr_list(const PluginSource& source, const CdrFilter& filter, const Output& output) {
  auto query = make_query(filter);
  if (!query) return fail(output, query.error());
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  Table table({"CALLDATE", "CALLBACK", "LEG", "SRC", "DST", "DISPOSITION", "DURATION", "BILLSEC", "COST", "USERFIELD"});
  json::array list;
  auto ok = (*embedded)->store->cdrs().query(*query, [&](const Cdr& c) {
    if (output.json) {
      list.push_back(to_json(c));
    } else {
      table.add({time_text(c.calldate), c.callback_id, std::string(to_string(c.leg)), c.src, c.dst,
                 std::string(to_string(c.disposition)), std::to_string(c.duration), std::to_string(c.billsec),
                 c.cost ? c.cost->format() : "", c.userfield});
    }
    return true;
  });
  if (!ok) return fail(output, ok.error(), exit_failure);
  if (output.json) {
    output.out << json::serialize(list) << '\n';
  } else {
    table.print(output.out);
  }
  return exit_ok;
}

int cdr_export(const PluginSource& source, const CdrFilter& filter, const Output& output) {
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

int stats(const PluginSource& source, const std::string& number_text, std::size_t limit, const Output& output) {
  auto embedded = open_admin(source, "statistics");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  std::string digits;
  if (!number_text.empty()) {
    auto number = PhoneNumber::parse(number_text, (*embedded)->config.numbering);
    if (!number) return fail(output, number.error().at("number"));
    digits = number->digits();
  }
  auto* admin = (*embedded)->billing->admin();
  auto rows = admin->caller_stats(digits, limit);
  if (!rows) return fail(output, rows.error(), exit_failure);
  if (output.json) {
    json::array list;
    for (const auto& s : *rows) {
      list.push_back(to_json(s));
    }
    output.out << json::serialize(list) << '\n';
    return exit_ok;
  }
  Table table({"NUMBER", "ATTEMPTS", "ANSWERED", "FAILURES", "TALK (s)", "LAST CALL"});
  for (const auto& s : *rows) {
    table.add({s.number, std::to_string(s.attempts), std::to_string(s.answered), std::to_string(s.failures),
               std::to_string(s.talk_seconds), s.last_call ? time_text(*s.last_call) : ""});
  }
  table.print(output.out);
  return exit_ok;
}

int campaigns_add(const PluginSource& source, const CampaignAdd& args, const Output& output) {
  auto embedded = open_admin(source, "campaigns");
  if (!embedded) return fail(output, embedded.error(), code_for(embedded.error()));
  auto* admin = (*embedded)->billing->admin();
  Campaign c{.id = args.id, .limit = std::chrono::seconds(args.limit_seconds), .uses_per_day = args.uses_per_day,
             .once_ever = args.once_ever, .min_hours_between = args.min_hours_between,
             .daily_budget = std::chrono::seconds(args.daily_budget_seconds)};
  if (auto ok = admin->put_campaign(c); !ok) return fail(output, ok.error(), code_for(ok.error()));
  return campaigns_list(source, output);
}

int campaigns_list(const PluginSource& source, const Output& output) {
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
                                 {"daily_budget_seconds", c.daily_budget.count()}, {"active", c.active}});
    }
    output.out << json::serialize(out) << '\n';
    return exit_ok;
  }
  Table table({"CAMPAIGN", "LIMIT (s)", "PER DAY", "ONCE", "GAP (h)", "DAILY BUDGET (s)", "ACTIVE"});
  for (const auto& c : *list) {
    table.add({c.id, std::to_string(c.limit.count()), std::to_string(c.uses_per_day), c.once_ever ? "yes" : "no",
               std::to_string(c.min_hours_between), std::to_string(c.daily_budget.count()), c.active ? "yes" : "no"});
  }
  table.print(output.out);
  return exit_ok;
}

}  // namespace callback::cli
