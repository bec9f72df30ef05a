// callbackctl: the operator's shell front end. Parses the command line into typed
// arguments and hands them to the commands; every error is one line and an exit code.
#include "admin.hpp"
#include "calls.hpp"
#include "keys.hpp"
#include "commands.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  using namespace callback::cli;
  CLI::App app{"callbackctl: run and inspect a callback service"};
  app.require_subcommand(1);
  bool json = false;
  std::string config_path;
  PluginSource source;
  // Global options may come anywhere (fallthrough from every subcommand).
  app.add_flag("--json", json, "print JSON for scripts instead of tables");
  app.add_option("--config", config_path, "config file (default: embedded SQLite store and billing)");
  app.add_option("--plugin-dir", source.plugin_dirs, "also search this folder for plugins (repeatable)")
      ->allow_extra_args(false);
  Remote remote;
  app.add_option("--server", remote.server, "a running callbackd (http://host:port); default: embedded")
      ->envname("CALLBACK_SERVER");
  app.add_option("--api-key", remote.api_key, "API key for --server (callbackctl keys add)")->envname("CALLBACK_API_KEY");
  app.fallthrough();

  int result = exit_ok;
  auto out = [&] {
    if (!config_path.empty()) source.config = config_path;
    return Output{std::cout, std::cerr, json};
  };
  auto group = [&](const char* name, const char* help) {
    auto* g = app.add_subcommand(name, help);
    g->require_subcommand(1);
    g->fallthrough();
    return g;
  };
  auto command = [](CLI::App* parent, const char* name, const char* help) {
    auto* c = parent->add_subcommand(name, help);
    c->fallthrough();
    return c;
  };

  command(&app, "version", "print the version, plugin ABI and build fingerprint")->callback([&] {
    result = version_command(out());
  });

  auto* plugins = group("plugins", "list and describe plugins");
  command(plugins, "list", "every plugin in the search path: name, kind, version, status, path")->callback([&] {
    result = plugins_list_command(source, out());
  });
  std::string plugin_name;
  auto* describe = command(plugins, "describe", "a plugin's options: type, default, description");
  describe->add_option("NAME", plugin_name, "canonical name (callback.store.sqlite) or path to a plugin file")->required();
  describe->callback([&] { result = plugins_describe_command(source, plugin_name, out()); });

  auto* config = group("config", "check configuration files");
  std::string check_file;
  auto* check = command(config, "check", "parse a config file and check every plugin and option in it");
  check->add_option("FILE", check_file, "the config file")->required();
  check->callback([&] { result = config_check_command(check_file, out()); });

  // Accounts.
  auto* accounts = group("accounts", "prepaid accounts: add, list, show, topup, disable");
  AccountAdd add_args;
  auto* add = command(accounts, "add", "open an account");
  add->add_option("ID", add_args.id, "account id (letters, digits, - _ .)")->required();
  add->add_option("--name", add_args.name, "holder's name");
  add->add_option("--currency", add_args.currency, "ISO 4217 code")->capture_default_str();
  add->add_option("--balance", add_args.balance, "opening balance, e.g. 5.00")->capture_default_str();
  add->add_option("--credit-limit", add_args.credit_limit, "how far below zero it may go")->capture_default_str();
  add->add_option("--tariff", add_args.tariff, "rate deck (default: the default tariff)");
  add->add_option("--number", add_args.numbers, "registered caller number (repeatable)")->allow_extra_args(false);
  add->add_option("--email", add_args.emails, "registered e-mail address (repeatable; the e-mail trigger)")
      ->allow_extra_args(false);
  add->add_option("--pin", add_args.pin, "PIN or password (stored as a scrypt hash)");
  add->add_option("--language", add_args.language,
                  "what its callers hear announcements in (Asterisk sound language: en, zh, pt_BR)");
  add->callback([&] { result = accounts_add(source, remote, add_args, out()); });
  command(accounts, "list", "every account with its balance")->callback([&] { result = accounts_list(source, remote, out()); });
  std::string account_id, amount, reference;
  auto* show = command(accounts, "show", "one account and its ledger");
  show->add_option("ID", account_id, "account id")->required();
  show->callback([&] { result = accounts_show(source, remote, account_id, out()); });
  auto* topup = command(accounts, "topup", "credit an account (a ledger entry)");
  topup->add_option("ID", account_id, "account id")->required();
  topup->add_option("AMOUNT", amount, "e.g. 10.00")->required();
  topup->add_option("--reference", reference, "payment reference");
  topup->callback([&] { result = accounts_topup(source, remote, account_id, amount, reference, out()); });
  auto* disable = command(accounts, "disable", "refuse new calls for an account");
  disable->add_option("ID", account_id, "account id")->required();
  disable->callback([&] { result = accounts_disable(source, remote, account_id, out()); });

  // Rates.
  auto* rates = group("rates", "rate decks: import, lookup, list");
  std::string tariff, file, currency = "CNY", number, prefix;
  std::size_t limit = 0;
  auto* import = command(rates, "import", "replace a tariff's deck with a carrier CSV (all or nothing)");
  import->add_option("TARIFF", tariff, "tariff name")->required();
  import->add_option("FILE", file, "CSV file: prefix;description;rate[;increment;...]")->required();
  import->add_option("--currency", currency, "currency of the rates")->capture_default_str();
  import->callback([&] { result = rates_import(source, remote, tariff, file, currency, out()); });
  auto* lookup = command(rates, "lookup", "the rate a number gets (longest prefix)");
  lookup->add_option("TARIFF", tariff, "tariff name")->required();
  lookup->add_option("NUMBER", number, "a phone number")->required();
  lookup->callback([&] { result = rates_lookup(source, remote, tariff, number, out()); });
  auto* list_rates = command(rates, "list", "tariffs, or the rates of one");
  list_rates->add_option("TARIFF", tariff, "tariff name (none: list the tariffs)");
  list_rates->add_option("--prefix", prefix, "only prefixes starting with this");
  list_rates->add_option("--limit", limit, "at most this many (0: all)");
  list_rates->callback([&] { result = rates_list(source, remote, tariff, prefix, limit, out()); });

  // CDRs.
  auto* cdr = group("cdr", "call detail records: list, export");
  CdrFilter filter;
  for (auto* c : {command(cdr, "list", "CDRs as a table"), command(cdr, "export", "CDRs as CSV, streamed")}) {
    c->add_option("--since", filter.since, "from (YYYY-MM-DD[ HH:MM:SS] UTC)");
    c->add_option("--until", filter.until, "before");
    c->add_option("--account", filter.account, "account code");
    c->add_option("--number", filter.number, "source or destination digits");
    c->add_option("--limit", filter.limit, "at most this many");
  }
  cdr->get_subcommand("list")->callback([&] { result = cdr_list(source, remote, filter, out()); });
  cdr->get_subcommand("export")->callback([&] { result = cdr_export(source, remote, filter, out()); });

  // Statistics and campaigns.
  auto* stats_cmd = command(&app, "stats", "per caller number: attempts, answered, talk time");
  stats_cmd->add_option("NUMBER", number, "one number (none: the busiest)");
  stats_cmd->add_option("--limit", limit, "at most this many (0: all)");
  stats_cmd->callback([&] { result = stats(source, remote, number, limit, out()); });
  auto* campaigns = group("campaigns", "free or promotional campaigns and their rules");
  CampaignAdd campaign;
  auto* campaign_add = command(campaigns, "add", "create or change a campaign");
  campaign_add->add_option("ID", campaign.id, "campaign id")->required();
  campaign_add->add_option("--limit", campaign.limit_seconds, "seconds per call")->capture_default_str();
  campaign_add->add_option("--per-day", campaign.uses_per_day, "calls per caller number a day (0: any)");
  campaign_add->add_flag("--once", campaign.once_ever, "one call per caller number, ever");
  campaign_add->add_option("--gap-hours", campaign.min_hours_between, "hours between calls of one number");
  campaign_add->add_option("--daily-budget", campaign.daily_budget_seconds, "talk seconds a day for all (0: any)");
  campaign_add->add_option("--tariff", campaign.tariff, "rate deck its calls are checked and priced with (default: billing's)");
  campaign_add->callback([&] { result = campaigns_add(source, remote, campaign, out()); });
  command(campaigns, "list", "campaigns")->callback([&] { result = campaigns_list(source, remote, out()); });

  // Toll-fraud policy of an account or a campaign.
  auto* policy = group("policy", "toll-fraud controls of an account or a campaign");
  PolicySet policy_args;
  auto* policy_set_cmd = command(policy, "set", "replace a payer's policy (what is not given has no limit)");
  auto* policy_show_cmd = command(policy, "show", "a payer's policy");
  for (auto* c : {policy_set_cmd, policy_show_cmd}) {
    c->add_option("--account", policy_args.account, "the account");
    c->add_option("--campaign", policy_args.campaign, "the campaign");
  }
  policy_set_cmd->add_option("--allow", policy_args.allow, "destination prefixes it may call (+86 ...); none: all");
  policy_set_cmd->add_option("--deny", policy_args.deny, "destination prefixes it may not call (+882 +1900 ...)");
  policy_set_cmd->add_option("--max-call-cost", policy_args.max_call_cost, "most one call may cost (2.00)");
  policy_set_cmd->add_option("--daily-spend", policy_args.daily_spend, "most all its calls may cost a day (UTC)");
  policy_set_cmd->add_option("--max-concurrent", policy_args.max_concurrent, "calls at once (0: any)");
  policy_set_cmd->callback([&] { result = policy_set(source, remote, policy_args, out()); });
  policy_show_cmd->callback([&] { result = policy_show(source, remote, policy_args, out()); });

  // The service itself, and calls.
  std::string listen;
  auto* serve = command(&app, "serve", "run the service with its REST API and web page (as callbackd)");
  serve->add_option("--listen", listen, "HOST:PORT to serve on (default: the config's server.listen)");
  serve->callback([&] {
    out();
    result = serve_command(source, listen.empty() ? std::nullopt : std::optional<std::string>(listen));
  });
  CallArgs call_args;
  auto* call = command(&app, "call", "call CALLER back and connect CALLEE; shows progress until it ends");
  call->add_option("CALLER", call_args.caller, "called first (leg A)")->required();
  call->add_option("CALLEE", call_args.callee, "called once CALLER answers (leg B)")->required();
  call->add_option("--account", call_args.account, "the paying account");
  call->add_option("--campaign", call_args.campaign, "the paying campaign (free calls)");
  call->add_option("--pin", call_args.pin, "the account's PIN, if it has one");
  call->add_option("--limit", call_args.limit_seconds, "at most this many seconds of talk");
  call->add_option("--language", call_args.language,
                   "what CALLER hears announcements in (en, zh, ...; default: the account's, else Asterisk's)");
  call->add_option("--idempotency-key", call_args.idempotency_key, "repeat-safe: the same key is the same call");
  call->add_flag("--wait", call_args.wait,
                 "with --server: follow the call to its end (embedded calls always do); exit 0 talked, 3 did not "
                 "connect, 4 refused");
  call->callback([&] { result = call_command(source, remote, call_args, out()); });
  std::string callback_id;
  auto* status = command(&app, "status", "a callback's state (--server) or its records (embedded)");
  status->add_option("ID", callback_id, "callback id (cb-...)")->required();
  bool status_wait = false;
  status->add_flag("--wait", status_wait, "with --server: follow it to its end, printing each change");
  status->callback([&] { result = status_command(source, remote, callback_id, status_wait, out()); });
  auto* cancel = command(&app, "cancel", "cancel a callback in callbackd (--server)");
  cancel->add_option("ID", callback_id, "callback id (cb-...)")->required();
  cancel->callback([&] { result = cancel_command(remote, callback_id, out()); });

  int reconcile_timeout = 3600;
  auto* reconcile = command(&app, "reconcile",
                            "after a crash (callbackd stopped): settle or release the money of callbacks that were in "
                            "flight, follow those still up on Asterisk to their end, write their CDRs; prints what it "
                            "fixed");
  reconcile->add_option("--timeout", reconcile_timeout, "seconds to follow calls still up (default 3600)")
      ->check(CLI::Range(1, 86400));
  reconcile->callback([&] { result = reconcile_command(source, reconcile_timeout, out()); });

  // What the engine finds on each Asterisk (and one test call).
  auto* asterisk = group("asterisk", "the Asterisk servers of the config (or of callbackd with --server)");
  AsteriskCheckArgs check_args;
  auto* ast_check = command(asterisk, "check",
                        "log in to each Asterisk and check the manager user's classes, cdr_manager, the shipped "
                        "dialplan's version and the prompts in each language; one line a check, exit 1 naming "
                        "what failed");
  ast_check->add_option("--call", check_args.call, "then place one test callback CALLER CALLEE and follow it to its end")
      ->expected(2);
  ast_check->add_option("--account", check_args.payer.account, "the test call's paying account");
  ast_check->add_option("--campaign", check_args.payer.campaign, "the test call's paying campaign");
  ast_check->add_option("--pin", check_args.payer.pin, "the account's PIN, if it has one");
  ast_check->add_option("--language", check_args.payer.language, "the test call's announcement language");
  ast_check->add_option("--timeout", check_args.timeout_seconds, "seconds to wait for every server's answers (embedded)")
      ->check(CLI::Range(1, 600));
  ast_check->callback([&] { result = asterisk_check_command(source, remote, check_args, out()); });

  // API keys for callbackd.
  command(&app, "triggers", "callbackd's triggers (--server): health, last message, counts, last error")
      ->callback([&] { result = triggers_list(remote, out()); });

  auto* keys = group("keys", "API keys for callbackd's REST API (stored hashed)");
  std::string key_name, key_id, key_scope = "callbacks";
  auto* key_add = command(keys, "add", "create a key; it is printed once, with its webhook secret");
  key_add->alias("create");
  key_add->add_option("NAME", key_name, "who or what uses it (\"crm\", \"billing-sync\")")->required();
  key_add->add_option("--scope", key_scope,
                      "callbacks: its own callbacks only; operator: accounts, rates, CDRs, statistics; admin: all")
      ->check(CLI::IsMember({"callbacks", "operator", "admin"}))
      ->capture_default_str();
  key_add->callback([&] { result = keys_add(source, key_name, key_scope, out()); });
  command(keys, "list", "keys, their scopes, when made, whether revoked (never the keys themselves)")->callback([&] {
    result = keys_list(source, out());
  });
  auto* key_revoke = command(keys, "revoke", "revoke a key; callbackd refuses it within a second");
  key_revoke->add_option("ID", key_id, "the key's id (the 8 characters after cbk_)")->required();
  key_revoke->callback([&] { result = keys_revoke(source, key_id, out()); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports "a subcommand is required" for a misspelled one; name the word instead.
    const auto unknown = app.remaining(true);
    if (!unknown.empty()) {
      std::cerr << "callbackctl: unknown command or argument \"" << unknown.front() << "\" (see callbackctl --help)\n";
    } else {
      std::cerr << "callbackctl: " << e.what() << " (see callbackctl --help)\n";
    }
    return exit_bad_input;
  } catch (const std::exception& e) {
    std::cerr << "callbackctl: " << e.what() << '\n';
    return exit_failure;
  }
  return result;
}
