#pragma once
// EmbeddedService: the whole product inside an application, behind one small class. It
// runs what callbackd runs (store, billing, engine, triggers, front ends from the config's
// plugins) on a thread of its own; the application submits callbacks, follows them, cancels
// them, and manages accounts, rate decks and records. The Python module binds this class.
//
//   auto service = callback::EmbeddedService::open("callback.json").value();
//   service->start().value();                            // waits for an Asterisk server
//   auto call = service->submit({.caller = "1001", .callee = "1002",
//                                .payer = callback::AccountId{"123"}}).value();
//   auto sub = service->watch(call->id(), [](const callback::CallEvent& e) { ... });  // service thread
//   auto end = call->wait(std::chrono::minutes(10));      // the final event, or nothing yet
//   service->stop(std::chrono::seconds(30));              // drain, then cancel the rest
//
// Every method may be called from any thread. Event handlers run on the service thread: keep
// them short. From a handler, cancel(), subscribe(), watch() and Subscription::reset() work
// (a cancel or a new watch takes effect once the handler returns); submit() is refused
// ("from_handler"), wait() does not wait, and stop() is ignored. Nothing throws: every
// failure is an Error that names its field.
#include <callback/account.hpp>
#include <callback/billing.hpp>
#include <callback/call_event.hpp>
#include <callback/callback_request.hpp>
#include <callback/cdr.hpp>
#include <callback/config.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/operations.hpp>
#include <callback/store.hpp>
#include <callback/subscription.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

struct EmbeddedOptions {
  std::vector<std::filesystem::path> plugin_dirs;  // searched before the config's own
  std::ostream* log = nullptr;                     // the service's log; default std::cerr
  // start() waits this long for an engine with a server ready for calls; 0: does not wait.
  std::chrono::milliseconds engine_wait{10'000};
};

// One submitted callback. Any thread; valid after the service is gone (wait() then returns
// what it had).
class CALLBACK_EXPORT CallbackTicket {
 public:
  virtual ~CallbackTicket();
  [[nodiscard]] virtual const std::string& id() const noexcept = 0;
  // The latest event: the callback's state, legs, outcome and cost so far.
  [[nodiscard]] virtual CallEvent latest() const = 0;
  [[nodiscard]] virtual bool finished() const = 0;
  // Blocks until the callback ends (its final event) or `timeout` passes (nothing). Also
  // nothing at once once the service has stopped without its end (orphaned()), and from an
  // event handler (it would wait for itself).
  [[nodiscard]] virtual std::optional<CallEvent> wait(std::chrono::milliseconds timeout) const = 0;
  // The service stopped before this callback ended: its end is in the journal, for the next
  // start (or `callbackctl reconcile`) to settle.
  [[nodiscard]] virtual bool orphaned() const = 0;
  // Cancels it at whatever stage it is; the final event still comes (state canceled, or
  // how it ended if it ended first).
  virtual Status cancel() = 0;
};

struct CallbackQuery {
  std::optional<CallState> state;  // only callbacks in this state; empty: all
  std::size_t limit = 100;         // newest first
};

class CALLBACK_EXPORT EmbeddedService {
 public:
  using EventHandler = std::function<void(const CallEvent&)>;

  // Loads the config and every plugin it names; nothing runs yet. The Error names the
  // config field at fault.
  [[nodiscard]] static Result<std::unique_ptr<EmbeddedService>> open(const std::filesystem::path& config_file,
                                                                     EmbeddedOptions options = {});
  [[nodiscard]] static Result<std::unique_ptr<EmbeddedService>> open(ServiceConfig config,
                                                                     EmbeddedOptions options = {});
  // The config as JSON text (callback.json's format).
  [[nodiscard]] static Result<std::unique_ptr<EmbeddedService>> open_text(std::string_view config_json,
                                                                          EmbeddedOptions options = {});
  ~EmbeddedService();  // stop(0 s)
  EmbeddedService(const EmbeddedService&) = delete;
  EmbeddedService& operator=(const EmbeddedService&) = delete;

  // Starts the service thread, engines, triggers and front ends, then waits for an engine
  // (EmbeddedOptions::engine_wait): Error "engine_unavailable" if none came.
  [[nodiscard]] Status start();
  // Graceful: new callbacks are refused at once ("shutting_down"); those in flight get
  // `grace` to end, then are canceled; CDRs and money are settled. Idempotent.
  void stop(std::chrono::seconds grace = std::chrono::seconds{0});
  [[nodiscard]] bool running() const noexcept;

  // --- callbacks ---
  // Checks the form (numbers with the config's numbering plan, the payer, the language)
  // and starts the callback: its ticket, or an Error naming the field. Authorization
  // follows: a denial is the callback's final event (state failed, outcome "refused",
  // CallEvent::error says why), not an Error here.
  // `on_event`: this callback's every event, from the first to the final one, on the
  // service thread (whether the ticket is kept or not).
  [[nodiscard]] Result<std::shared_ptr<CallbackTicket>> submit(CallbackForm form, EventHandler on_event = {});
  // Error "not_found" for an unknown id, "conflict" for one that has ended.
  Status cancel(const std::string& id);
  // The latest event of a callback this service ran or its journal holds.
  [[nodiscard]] Result<CallEvent> get(const std::string& id);
  // The callbacks this process knows of (the last 10,000 finished and all in flight).
  [[nodiscard]] std::vector<CallEvent> list(const CallbackQuery& query = {});
  // Every event of every callback, on the service thread.
  [[nodiscard]] Subscription subscribe(EventHandler handler);
  // One callback's events: its latest first (so nothing is missed), then each change; the
  // subscription ends by itself after the final one. Error "not_found" if unknown.
  [[nodiscard]] Result<Subscription> watch(const std::string& id, EventHandler handler);
  [[nodiscard]] std::size_t in_flight() const;

  // --- accounts, rates, records ---
  [[nodiscard]] Result<Account> create_account(const AccountForm& form);
  [[nodiscard]] Result<Account> account(const std::string& id);  // Error "not_found"
  [[nodiscard]] Result<std::vector<Account>> accounts();
  // `amount` as text in the account's currency ("10.00"): money is never a float.
  [[nodiscard]] Result<LedgerEntry> top_up(const std::string& account_id, std::string_view amount,
                                           const std::string& reference);
  [[nodiscard]] Result<std::vector<LedgerEntry>> ledger(const std::string& account_id, std::size_t limit = 100);
  // Replaces a tariff's deck with a CSV (prefix;description;rate[;...]), all or nothing;
  // the Error names the line. Needs billing enabled in the config.
  [[nodiscard]] Result<ImportReport> import_rates(const std::string& tariff, std::string_view csv,
                                                  std::string_view currency = "CNY");
  // The rate a number gets in a tariff now (longest prefix), or Error "no_rate".
  [[nodiscard]] Result<Rate> rate(const std::string& tariff, std::string_view number);
  [[nodiscard]] Result<std::vector<Cdr>> cdrs(const CdrQuery& query);
  [[nodiscard]] const NumberingPlan& numbering() const noexcept;

 private:
  class Impl;
  explicit EmbeddedService(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace callback
