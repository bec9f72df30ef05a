#include "calls.hpp"

#include "admin.hpp"
#include "daemon.hpp"
#include "http_client.hpp"
#include "table.hpp"

#include <callback/config.hpp>
#include <callback/json.hpp>
#include <callback_internal/runtime.hpp>
#include <callback/store.hpp>
#include <callback/timestamp.hpp>

#include <boost/json.hpp>
#include <curl/curl.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace callback::cli {

namespace json = boost::json;

namespace {


// By the error's kind (a remote one's comes from its HTTP status).
int code_for(const Error& e) {
  switch (e.kind) {
    case ErrorKind::forbidden:
    case ErrorKind::payment_required:
    case ErrorKind::rate_limited:
      return exit_refused;
    case ErrorKind::unavailable:
    case ErrorKind::internal:
      return exit_failure;
    default:
      return exit_bad_input;
  }
}

// One line a state change, as people read it.
std::string describe(const json::object& cb) {
  const std::string state(cb.at("state").as_string());
  const std::string caller(cb.at("caller").as_string());
  const std::string callee = cb.at("callee").is_string() ? std::string(cb.at("callee").as_string()) : "the number dialled";
  if (state == "created" || state == "authorizing") return "checking the account";
  if (state == "dialing_a") return "calling " + caller + "...";
  if (state == "a_answered") return caller + " answered";
  if (state == "dialing_b") return "connecting " + callee + "...";
  if (state == "bridged") {
    const auto& limit = cb.at("limit_seconds");
    return "connected" + (limit.is_int64() ? ", at most " + std::to_string(limit.as_int64()) + " s" : std::string());
  }
  std::string line = "ended: " + (cb.at("outcome").is_string() ? std::string(cb.at("outcome").as_string()) : state);
  if (cb.at("error").is_object()) line += " (" + std::string(cb.at("error").at("message").as_string()) + ")";
  if (cb.at("cost").is_object()) {
    line += ", cost " + std::string(cb.at("cost").at("amount").as_string()) + " " +
            std::string(cb.at("cost").at("currency").as_string());
  }
  return line;
}

bool is_final_state(const json::object& cb) {
  const auto& state = cb.at("state").as_string();
  return state == "completed" || state == "failed" || state == "canceled";
}

int exit_for(const json::object& cb) {
  if (!is_final_state(cb)) return exit_ok;  // still running
  if (cb.at("outcome").is_string() && cb.at("outcome").as_string() == "refused") return exit_refused;
  return cb.at("legs").at("b").at("answered_at").is_null() ? exit_not_connected : exit_ok;
}

void print_event(const Output& output, const json::object& cb) {
  if (output.json) {
    output.out << json::serialize(cb) << std::endl;
  } else {
    output.out << format_timestamp(std::chrono::system_clock::now()).substr(11) << "  " << std::string(cb.at("id").as_string())
               << "  " << describe(cb) << std::endl;
  }
}

// Follows /events to the final state, printing each change; the last callback object.
// callbackd may cut a stream (Pistache's request timeout): reconnecting gives the current
// state first, which is printed only if it changed.
Result<json::object> follow_remote(const Remote& remote, const std::string& id, const Output& output) {
  json::object last;
  for (int empty_streams = 0; empty_streams < 3;) {
    std::string pending;
    bool got_any = false;
    auto r = http(remote, "GET", "/v1/callbacks/" + id + "/events", {}, {}, [&](std::string_view chunk) {
      pending.append(chunk);
      for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
        const std::string frame = pending.substr(0, end);
        pending.erase(0, end + 2);
        std::istringstream lines(frame);
        for (std::string line; std::getline(lines, line);) {
          if (!line.starts_with("data: ")) continue;
          boost::system::error_code ec;
          auto value = json::parse(line.substr(6), ec);
          if (ec || !value.is_object()) continue;
          got_any = true;
          if (value.as_object() != last) print_event(output, value.as_object());
          last = value.as_object();
        }
      }
      return true;
    });
    if (!r) return r.error();
    if (r->status != 200) return api_error(*r);
    if (!last.empty() && is_final_state(last)) return last;
    empty_streams = got_any ? 0 : empty_streams + 1;
  }
  return Error{"http", "the event stream of " + id + " keeps ending without news", {}};
}

// --- embedded ----------------------------------------------------------------------------

class Printer final : public CallObserver {
 public:
  explicit Printer(const Output& output) : output_(output) {}
  // Prints the events of one callback, the one this process placed. The runtime may tell
  // others before that one's id is known (callbacks its journal held from before, ending
  // as it starts): events are kept until follow() names the id, and only its are shown.
  void on_call_event(const CallEvent& event) override {
    if (event.replayed) return;  // a finished callback from before, told again
    std::lock_guard lock(mutex_);
    if (!id_) {
      early_.push_back(event);
      return;
    }
    if (event.call.id() == *id_) show(event);
  }
  void follow(const std::string& id) {
    std::lock_guard lock(mutex_);
    id_ = id;
    for (const auto& event : early_) {
      if (event.call.id() == id) show(event);
    }
    early_.clear();
  }
  json::object wait() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return !final_.empty(); });
    return final_;
  }

 private:
  void show(const CallEvent& event) {
    auto object = to_json(event);
    print_event(output_, object);
    if (is_final(event.call.state())) {
      final_ = object;
      done_.notify_all();
    }
  }
  const Output& output_;
  std::mutex mutex_;
  std::condition_variable done_;
  json::object final_;
  std::optional<std::string> id_;
  std::vector<CallEvent> early_;
};

// Follows the callbacks a runtime took up from its journal to their ends.
class Reconciler final : public CallObserver {
 public:
  void on_call_event(const CallEvent& event) override {
    if (event.replayed || !is_final(event.call.state())) return;
    std::lock_guard lock(mutex_);
    ended_.insert_or_assign(event.call.id(), to_json(event));
    changed_.notify_all();
  }
  // The final events of `ids` that came within `timeout`.
  std::map<std::string, json::object> wait(const std::vector<std::string>& ids, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] {
      return std::all_of(ids.begin(), ids.end(), [&](const auto& id) { return ended_.contains(id); });
    });
    return ended_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, json::object> ended_;
};

}  // namespace

int serve_command(const PluginSource& source, const std::optional<std::string>& listen) {
  return rest::run_daemon({.config = source.config, .listen = listen, .plugin_dirs = source.plugin_dirs});
}

int call_command(const PluginSource& source, const Remote& remote, const CallArgs& args, const Output& output) {
  if (args.account.empty() == args.campaign.empty()) {
    return fail(output, Error{"missing_field", "give exactly one of --account or --campaign", "account"},
                exit_bad_input);
  }
  if (!remote.server.empty()) {
    json::object body{{"caller", args.caller}, {"callee", args.callee}};
    if (!args.account.empty()) body["account"] = args.account;
    if (!args.campaign.empty()) body["campaign"] = args.campaign;
    if (!args.pin.empty()) body["pin"] = args.pin;
    if (args.limit_seconds > 0) body["limit_seconds"] = args.limit_seconds;
    if (!args.language.empty()) body["language"] = args.language;
    std::vector<std::string> headers;
    if (!args.idempotency_key.empty()) headers.push_back("Idempotency-Key: " + args.idempotency_key);
    auto r = http(remote, "POST", "/v1/callbacks", json::serialize(body), headers);
    if (!r) return fail(output, r.error(), exit_failure);
    if (r->status != 202) {
      const Error e = api_error(*r);
      return fail(output, e, code_for(e));
    }
    auto accepted = json::parse(r->body).as_object();
    print_event(output, accepted);
    if (!args.wait) return exit_ok;
    auto last = follow_remote(remote, std::string(accepted.at("id").as_string()), output);
    if (!last) return fail(output, last.error(), code_for(last.error()));
    return exit_for(*last);
  }

  // Embedded: this process runs the service until the call ends.
  auto config = service_config(source);
  if (!config) return fail(output, config.error(), exit_bad_input);
  CallbackForm form{.caller = args.caller, .callee = args.callee, .origin = Origin::cli, .secret = args.pin,
                    .language = args.language};
  form.payer = args.account.empty() ? Payer{CampaignId{args.campaign}} : Payer{AccountId{args.account}};
  if (args.limit_seconds > 0) form.limit = std::chrono::seconds(args.limit_seconds);
  auto request = make_request(form, config->numbering);
  if (!request) return fail(output, request.error(), exit_bad_input);
  auto runtime = Runtime::open(std::move(*config), {.plugin_dirs = source.plugin_dirs});
  if (!runtime) return fail(output, runtime.error(), exit_bad_input);
  Printer printer(output);  // the only call this process runs
  (*runtime)->post([&] { (*runtime)->service().subscribe(printer); });
  if (auto ok = (*runtime)->start(); !ok) return fail(output, ok.error(), exit_failure);
  if (!(*runtime)->wait_for_engine(std::chrono::seconds(10))) {
    (*runtime)->stop(std::chrono::seconds{0});
    return fail(output,
                Error{"engine_unavailable", "no Asterisk server became ready within 10 s", "engines"}.as(
                    ErrorKind::unavailable),
                exit_failure);
  }
  std::promise<Result<std::string>> accepted;
  (*runtime)->run_on_service_thread([&] {
    accepted.set_value((*runtime)->service().start(std::move(*request)));
  });
  auto id = accepted.get_future().get();
  if (!id) {
    (*runtime)->stop(std::chrono::seconds{0});
    return fail(output, id.error(), code_for(id.error()));
  }
  printer.follow(*id);
  const auto last = printer.wait();
  (*runtime)->stop(std::chrono::seconds{0});
  return exit_for(last);
}

int reconcile_command(const PluginSource& source, int timeout_seconds, const Output& output) {
  auto config = service_config(source);
  if (!config) return fail(output, config.error(), exit_bad_input);
  auto runtime = Runtime::open(std::move(*config), {.plugin_dirs = source.plugin_dirs});
  if (!runtime) return fail(output, runtime.error(), exit_bad_input);
  Reconciler reconciler;
  (*runtime)->post([&] { (*runtime)->service().subscribe(reconciler); });
  // start() reads the journal (refused while callbackd owns the store) and hands the
  // callbacks that were in flight to the engine, which looks for them on each Asterisk.
  if (auto ok = (*runtime)->start(); !ok) return fail(output, ok.error(), exit_failure);
  const RecoveryReport report = (*runtime)->recovery();
  auto ended = reconciler.wait(report.resumed, std::chrono::seconds(timeout_seconds));
  (*runtime)->stop(std::chrono::seconds{0});  // flushes the CDRs and settlements

  json::array fixed, open;
  Table table({"ID", "STATE", "OUTCOME", "COST", "BILLSEC"});
  for (const auto& id : report.resumed) {
    auto it = ended.find(id);
    if (it == ended.end()) {
      open.push_back(json::value(id));
      table.add({id, "(still open)", "", "", ""});
      continue;
    }
    const auto& e = it->second;
    auto text = [&](std::string_view key) {
      const auto* v = e.if_contains(key);
      return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
    };
    std::string cost, billsec;
    if (const auto* c = e.if_contains("cost"); c != nullptr && c->is_object()) {
      cost = std::string(c->at("amount").as_string()) + " " + std::string(c->at("currency").as_string());
    }
    if (const auto* b = e.at("legs").at("b").as_object().if_contains("billsec"); b != nullptr && b->is_int64()) {
      billsec = std::to_string(b->as_int64());
    }
    table.add({id, text("state"), text("outcome"), cost, billsec});
    fixed.push_back(e);
  }
  json::array skipped;
  for (const auto& s : report.skipped) skipped.push_back(json::value(s));
  json::array released;
  for (const auto& r : report.released) released.push_back(json::value(r));
  if (output.json) {
    output.out << json::serialize(json::object{{"finished", report.finished},
                                               {"fixed", fixed},
                                               {"still_open", open},
                                               {"released", released},
                                               {"skipped", skipped}})
               << '\n';
  } else {
    output.out << "journal: " << report.finished << " finished callbacks on record, " << report.resumed.size()
               << " were in flight";
    if (!report.resumed.empty()) output.out << ", " << fixed.size() << " ended, billed and recorded now";
    output.out << '\n';
    if (!report.resumed.empty()) table.print(output.out);
    for (const auto& r : report.released) output.out << "released (left open by a stop): " << r << '\n';
    for (const auto& s : report.skipped) output.out << "skipped (unreadable): " << s << '\n';
  }
  if (!open.empty()) {
    return fail(output,
                Error{"reconcile_incomplete",
                      std::to_string(open.size()) + " callbacks did not end within " + std::to_string(timeout_seconds) +
                          " s; they stay in the journal for the next start or reconcile",
                      "timeout"},
                exit_failure);
  }
  return report.skipped.empty() ? 0 : exit_failure;
}

int status_command(const PluginSource& source, const Remote& remote, const std::string& id, bool wait,
                   const Output& output) {
  if (!remote.server.empty() && wait) {
    auto last = follow_remote(remote, id, output);
    if (!last) return fail(output, last.error(), code_for(last.error()));
    return exit_for(*last);
  }
  if (wait) {
    return fail(output, Error{"needs_server", "--wait follows a call in callbackd: give --server URL", "server"},
                exit_bad_input);
  }
  if (!remote.server.empty()) {
    auto r = http(remote, "GET", "/v1/callbacks/" + id, {});
    if (!r) return fail(output, r.error(), exit_failure);
    if (r->status != 200) {
      const Error e = api_error(*r);
      return fail(output, e, code_for(e));
    }
    auto cb = json::parse(r->body).as_object();
    if (output.json) {
      output.out << json::serialize(cb) << '\n';
    } else {
      Table table({"ID", "STATE", "CALLER", "CALLEE", "OUTCOME", "LIMIT (s)"});
      table.add({std::string(cb.at("id").as_string()), std::string(cb.at("state").as_string()),
                 std::string(cb.at("caller").as_string()),
                 cb.at("callee").is_string() ? std::string(cb.at("callee").as_string()) : "(asked by IVR)",
                 cb.at("outcome").is_string() ? std::string(cb.at("outcome").as_string()) : "",
                 cb.at("limit_seconds").is_int64() ? std::to_string(cb.at("limit_seconds").as_int64()) : ""});
      table.print(output.out);
    }
    return exit_for(cb);
  }
  // Embedded: what the records say (the call itself lives in callbackd).
  auto embedded = open_embedded(source, false);
  if (!embedded) return fail(output, embedded.error(), exit_bad_input);
  json::array cdrs;
  Table table({"LEG", "SRC", "DST", "DISPOSITION", "BILLSEC", "CAUSE", "COST"});
  auto ok = (*embedded)->store->cdrs().query({.callback_id = id}, [&](const Cdr& c) {
    cdrs.push_back(to_json(c));
    table.add({std::string(to_string(c.leg)), c.src, c.dst, std::string(to_string(c.disposition)),
               std::to_string(c.billsec), std::to_string(c.hangup_cause.code()), c.cost ? c.cost->format() : ""});
    return true;
  });
  if (!ok) return fail(output, ok.error(), exit_failure);
  if (cdrs.empty()) {
    return fail(output,
                Error{"not_found", "no records of callback \"" + id + "\" (running calls: ask callbackd with --server)",
                      "id"}.as(ErrorKind::not_found),
                exit_bad_input);
  }
  if (output.json) {
    output.out << json::serialize(json::object{{"id", id}, {"cdrs", cdrs}}) << '\n';
  } else {
    table.print(output.out);
  }
  return exit_ok;
}

int cancel_command(const Remote& remote, const std::string& id, const Output& output) {
  if (remote.server.empty()) {
    return fail(output,
                Error{"needs_server", "a call runs inside callbackd: cancel it there with --server URL --api-key KEY",
                      "server"},
                exit_bad_input);
  }
  auto r = http(remote, "DELETE", "/v1/callbacks/" + id, {});
  if (!r) return fail(output, r.error(), exit_failure);
  if (r->status != 202) {
    const Error e = api_error(*r);
    return fail(output, e, e.code == "already_final" ? exit_failure : code_for(e));
  }
  if (output.json) {
    output.out << r->body << '\n';
  } else {
    output.out << "cancel of " << id << " requested\n";
  }
  return exit_ok;
}

// --- asterisk check ------------------------------------------------------------------------

int asterisk_check_command(const PluginSource& source, const Remote& remote, const AsteriskCheckArgs& args,
                           const Output& output) {
  if (!args.call.empty() && args.call.size() != 2) {
    return fail(output, Error{"invalid_arguments", "--call takes CALLER CALLEE", "call"}, exit_bad_input);
  }
  if (!args.call.empty() && args.payer.account.empty() == args.payer.campaign.empty()) {
    return fail(output, Error{"missing_field", "the test call needs exactly one of --account or --campaign", "account"},
                exit_bad_input);
  }
  // The servers as the engine sees them, in /healthz's form.
  json::array servers;
  if (!remote.server.empty()) {
    auto r = http(remote, "GET", "/healthz", {}, {});
    if (!r) return fail(output, r.error(), exit_failure);
    boost::system::error_code ec;
    auto body = json::parse(r->body, ec);
    if (ec || !body.is_object() || !body.as_object().contains("engines")) {
      return fail(output, Error{"http", "callbackd's /healthz answered " + std::to_string(r->status) + " without engines", {}},
                  exit_failure);
    }
    servers = body.at("engines").at("servers").as_array();
  } else {
    auto config = service_config(source);
    if (!config) return fail(output, config.error(), exit_bad_input);
    auto runtime = Runtime::open(std::move(*config), {.plugin_dirs = source.plugin_dirs});
    if (!runtime) return fail(output, runtime.error(), exit_bad_input);
    if (auto ok = (*runtime)->start(); !ok) return fail(output, ok.error(), exit_failure);
    const auto status = (*runtime)->wait_for_checks(std::chrono::seconds(args.timeout_seconds));
    (*runtime)->stop(std::chrono::seconds{0});
    for (const auto& server : status.servers) servers.push_back(to_json(server));
  }

  std::vector<std::string> failed;
  for (const auto& value : servers) {
    const auto& server = value.as_object();
    const std::string name(server.at("name").as_string());
    const auto& checks = server.at("checks").as_array();
    if (checks.empty() || !server.at("checked").as_bool()) failed.push_back(name + " (no answer within the timeout)");
    for (const auto& c : checks) {
      const auto& check = c.as_object();
      const bool ok = check.at("ok").as_bool();
      const std::string check_name(check.at("name").as_string());
      if (!ok) failed.push_back(name + " " + check_name);
      if (output.json) continue;
      output.out << (ok ? "ok    " : "FAIL  ") << name << "  " << check_name
                 << std::string(check_name.size() < 16 ? 16 - check_name.size() : 1, ' ')
                 << std::string(check.at("detail").as_string()) << "\n";
    }
  }
  if (output.json) output.out << json::serialize(json::object{{"servers", servers}}) << std::endl;
  if (servers.empty()) failed.emplace_back("no Asterisk server in the config's engines");
  if (!failed.empty()) {
    std::string list;
    for (const auto& f : failed) list += (list.empty() ? "" : ", ") + f;
    return fail(output, Error{"check_failed", "asterisk check failed: " + list, "engines"}, exit_failure);
  }
  if (args.call.empty()) return exit_ok;

  // One test callback, followed to its end (exit 0 talked, 3 did not connect, 4 refused).
  CallArgs call = args.payer;
  call.caller = args.call[0];
  call.callee = args.call[1];
  call.wait = true;
  return call_command(source, remote, call, output);
}

}  // namespace callback::cli
