#include <callback/embedded.hpp>
#include <callback_internal/runtime.hpp>
#include <callback_internal/callback_service.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace callback {

CallbackTicket::~CallbackTicket() = default;

namespace {

constexpr std::string_view component = "callback.embedded";

Error not_running() {
  return Error{"not_running", "the service is not running: start() it first", {}}.as(ErrorKind::unavailable);
}

// One handler of subscribe() or watch(). reset() may come from any thread, also from the
// handler itself: the recursive mutex makes "no call after reset() returns" hold.
struct Watcher {
  EmbeddedService::EventHandler handler;
  std::atomic<bool> active{true};
  std::recursive_mutex calling;

  void deliver(const CallEvent& event, Logger& log) {
    std::lock_guard lock(calling);
    if (!active.load()) return;
    try {
      handler(event);
    } catch (const std::exception& e) {
      log.error(component, "an event handler of " + event.call.id() + " threw: " + e.what());
    } catch (...) {
      log.error(component, "an event handler of " + event.call.id() + " threw");
    }
  }
  void reset() {
    std::lock_guard lock(calling);
    active = false;
    handler = nullptr;  // what it holds (a Python callable) goes now
  }
};

Subscription subscription_of(const std::shared_ptr<Watcher>& watcher) {
  return Subscription([watcher] { watcher->reset(); });
}

class Ticket final : public CallbackTicket {
 public:
  Ticket(std::string id, std::function<Status(const std::string&)> cancel)
      : id_(std::move(id)), cancel_(std::move(cancel)) {}
  [[nodiscard]] const std::string& id() const noexcept override { return id_; }
  [[nodiscard]] CallEvent latest() const override {
    std::lock_guard lock(mutex_);
    return *latest_;
  }
  [[nodiscard]] bool finished() const override {
    std::lock_guard lock(mutex_);
    return is_final(latest_->call.state());
  }
  [[nodiscard]] std::optional<CallEvent> wait(std::chrono::milliseconds timeout) const override {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return is_final(latest_->call.state()); })) return std::nullopt;
    return *latest_;
  }
  Status cancel() override { return cancel_(id_); }

  void update(const CallEvent& event) {
    std::lock_guard lock(mutex_);
    latest_ = event;
    changed_.notify_all();
  }
  [[nodiscard]] bool known() const {
    std::lock_guard lock(mutex_);
    return latest_.has_value();
  }

 private:
  std::string id_;
  std::function<Status(const std::string&)> cancel_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::optional<CallEvent> latest_;
};

}  // namespace

class EmbeddedService::Impl final : public CallObserver, public std::enable_shared_from_this<Impl> {
 public:
  Impl(std::unique_ptr<Runtime> runtime, EmbeddedOptions options)
      : runtime_(std::move(runtime)), options_(std::move(options)) {}

  // --- on the service thread ---
  void on_call_event(const CallEvent& event) override {
    const std::string& id = event.call.id();
    const bool final = is_final(event.call.state());
    if (capture_ != nullptr) capture_->push_back(event);
    remember(event, final);
    std::erase_if(all_, [](const auto& w) { return !w->active.load(); });
    for (const auto& watcher : std::vector(all_)) watcher->deliver(event, runtime_->context().log);
    if (auto it = by_id_.find(id); it != by_id_.end()) {
      for (const auto& watcher : std::vector(it->second)) watcher->deliver(event, runtime_->context().log);
      if (final) {
        for (const auto& watcher : it->second) watcher->reset();
        by_id_.erase(it);
      }
    }
    // The ticket last: once wait() returns, every handler has seen the final event.
    if (auto it = tickets_.find(id); it != tickets_.end()) {
      if (auto ticket = it->second.lock()) ticket->update(event);
      if (final || it->second.expired()) tickets_.erase(it);
    }
  }

  // Runs `work` on the service thread and waits; false once the runtime has stopped.
  bool on_service_thread(const std::function<void()>& work) {
    if (!started_ || stopped_) return false;
    try {
      runtime_->run_on_service_thread(work);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  Status start() {
    if (started_) return Error{"already_started", "the service was started already", {}}.as(ErrorKind::conflict);
    started_ = true;
    runtime_->post([self = shared_from_this()] { self->runtime_->service().subscribe(*self); });
    if (auto ok = runtime_->start(); !ok) {
      stopped_ = true;
      return ok;
    }
    if (options_.engine_wait.count() > 0 && !runtime_->wait_for_engine(options_.engine_wait)) {
      stop(std::chrono::seconds{0});
      return Error{"engine_unavailable",
                   "no Asterisk server became ready within " + std::to_string(options_.engine_wait.count()) + " ms",
                   "engines"}
          .as(ErrorKind::unavailable);
    }
    return ok_status();
  }

  void stop(std::chrono::seconds grace) {
    if (!started_ || stopped_) return;
    runtime_->stop(grace);
    stopped_ = true;
  }

  Result<std::shared_ptr<CallbackTicket>> submit(CallbackForm form, EventHandler on_event) {
    auto request = make_request(form, runtime_->config().numbering);
    if (!request) return request.error();
    if (!started_ || stopped_) return not_running();
    if (!runtime_->accepting()) {
      return Error{"shutting_down", "the service is shutting down and takes no new calls", {}}.as(
          ErrorKind::unavailable);
    }
    std::optional<Result<std::shared_ptr<CallbackTicket>>> out;
    const bool ran = on_service_thread([&] {
      std::vector<CallEvent> early;
      capture_ = &early;
      auto id = runtime_->service().start(std::move(*request));
      capture_ = nullptr;
      if (!id) {
        out = id.error();
        return;
      }
      std::weak_ptr<Impl> weak = shared_from_this();
      auto ticket = std::make_shared<Ticket>(*id, [weak](const std::string& which) -> Status {
        auto self = weak.lock();
        return self ? self->cancel(which) : Status(not_running());
      });
      std::shared_ptr<Watcher> watcher;
      if (on_event) {
        watcher = std::make_shared<Watcher>();
        watcher->handler = std::move(on_event);
      }
      for (const auto& event : early) {
        if (event.call.id() != *id) continue;
        ticket->update(event);
        if (watcher) watcher->deliver(event, runtime_->context().log);
      }
      if (!ticket->known()) {
        if (auto call = runtime_->service().find(*id)) ticket->update(CallEvent{.call = *call, .previous = call->state()});
      }
      if (!ticket->known() || !ticket->finished()) {
        tickets_.emplace(*id, ticket);
        if (watcher) by_id_[*id].push_back(watcher);
      } else if (watcher) {
        watcher->reset();
      }
      out = std::shared_ptr<CallbackTicket>(std::move(ticket));
    });
    if (!ran || !out) return not_running();
    return std::move(*out);
  }

  Status cancel(const std::string& id) {
    Status status = ok_status();
    if (!on_service_thread([&] { status = runtime_->service().cancel(id); })) return not_running();
    if (status) return status;
    std::lock_guard lock(known_mutex_);
    if (auto it = known_.find(id); it != known_.end() && is_final(it->second.call.state())) {
      return Error{"finished", "callback " + id + " has ended already (" + it->second.outcome + ")", "id"}.as(
          ErrorKind::conflict);
    }
    return Error{"not_found", "no callback \"" + id + "\"", "id"}.as(ErrorKind::not_found);
  }

  Result<CallEvent> get(const std::string& id) {
    {
      std::lock_guard lock(known_mutex_);
      if (auto it = known_.find(id); it != known_.end()) return it->second;
    }
    if (auto* journal = runtime_->store().journal()) {
      auto entry = journal->entry(id);
      if (!entry) return entry.error();
      if (*entry) return CallbackService::journaled_event(**entry);
    }
    return Error{"not_found", "no callback \"" + id + "\"", "id"}.as(ErrorKind::not_found);
  }

  std::vector<CallEvent> list(const CallbackQuery& query) {
    std::vector<CallEvent> out;
    {
      std::lock_guard lock(known_mutex_);
      for (const auto& [id, event] : known_) {
        if (!query.state || event.call.state() == *query.state) out.push_back(event);
      }
    }
    std::sort(out.begin(), out.end(), [](const CallEvent& a, const CallEvent& b) {
      return a.call.created_at() != b.call.created_at() ? a.call.created_at() > b.call.created_at()
                                                        : a.call.id() > b.call.id();
    });
    if (out.size() > query.limit) out.erase(out.begin() + static_cast<std::ptrdiff_t>(query.limit), out.end());
    return out;
  }

  Subscription subscribe(EventHandler handler) {
    auto watcher = std::make_shared<Watcher>();
    watcher->handler = std::move(handler);
    if (!started_ || stopped_) {
      // Before start(): added with the service's own subscription, in order.
      runtime_->post([self = shared_from_this(), watcher] { self->all_.push_back(watcher); });
    } else if (!on_service_thread([&] { all_.push_back(watcher); })) {
      watcher->reset();
    }
    return subscription_of(watcher);
  }

  Result<Subscription> watch(const std::string& id, EventHandler handler) {
    auto watcher = std::make_shared<Watcher>();
    watcher->handler = std::move(handler);
    // The latest first, then each change: both on the service thread, in that order.
    bool found = false;
    auto deliver_latest = [&](const CallEvent& latest) {
      found = true;
      watcher->deliver(latest, runtime_->context().log);
      if (is_final(latest.call.state())) {
        watcher->reset();
      } else {
        by_id_[id].push_back(watcher);
      }
    };
    on_service_thread([&] {
      std::optional<CallEvent> latest;
      {
        std::lock_guard lock(known_mutex_);
        if (auto it = known_.find(id); it != known_.end()) latest = it->second;
      }
      if (latest) deliver_latest(*latest);
    });
    if (!found) {
      // Not run by this process: what the journal says (a callback from before a restart,
      // or another node's), told once.
      auto read = get(id);
      if (!read) return read.error();
      watcher->deliver(*read, runtime_->context().log);
      watcher->reset();
    }
    return subscription_of(watcher);
  }

  std::size_t in_flight() {
    std::size_t n = 0;
    on_service_thread([&] { n = runtime_->service().in_flight(); });
    return n;
  }

  Runtime& runtime() { return *runtime_; }
  [[nodiscard]] bool running() const noexcept { return started_ && !stopped_; }

 private:
  // What list() and get() read: the latest event of every callback in flight and of the
  // last `finished_kept` finished ones.
  void remember(const CallEvent& event, bool final) {
    std::lock_guard lock(known_mutex_);
    known_.insert_or_assign(event.call.id(), event);
    if (!final) return;
    finished_order_.push_back(event.call.id());
    while (finished_order_.size() > CallbackService::finished_kept) {
      known_.erase(finished_order_.front());
      finished_order_.pop_front();
    }
  }

  std::unique_ptr<Runtime> runtime_;
  EmbeddedOptions options_;
  std::atomic<bool> started_{false}, stopped_{false};
  // Service thread only.
  std::vector<CallEvent>* capture_ = nullptr;
  std::unordered_map<std::string, std::weak_ptr<Ticket>> tickets_;
  std::vector<std::shared_ptr<Watcher>> all_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Watcher>>> by_id_;
  // Any thread.
  std::mutex known_mutex_;
  std::unordered_map<std::string, CallEvent> known_;
  std::deque<std::string> finished_order_;
};

// --- EmbeddedService -------------------------------------------------------------------------

EmbeddedService::EmbeddedService(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbeddedService::~EmbeddedService() { impl_->stop(std::chrono::seconds{0}); }

Result<std::unique_ptr<EmbeddedService>> EmbeddedService::open(ServiceConfig config, EmbeddedOptions options) {
  auto runtime = Runtime::open(std::move(config), {.plugin_dirs = options.plugin_dirs, .log = options.log});
  if (!runtime) return runtime.error();
  return std::unique_ptr<EmbeddedService>(
      new EmbeddedService(std::make_shared<Impl>(std::move(*runtime), std::move(options))));
}

Result<std::unique_ptr<EmbeddedService>> EmbeddedService::open(const std::filesystem::path& config_file,
                                                              EmbeddedOptions options) {
  auto config = load_config(config_file);
  if (!config) return config.error();
  return open(std::move(*config), std::move(options));
}

Result<std::unique_ptr<EmbeddedService>> EmbeddedService::open_text(std::string_view config_json,
                                                                   EmbeddedOptions options) {
  auto config = parse_config(config_json);
  if (!config) return config.error();
  return open(std::move(*config), std::move(options));
}

Status EmbeddedService::start() { return impl_->start(); }
void EmbeddedService::stop(std::chrono::seconds grace) { impl_->stop(grace); }
bool EmbeddedService::running() const noexcept { return impl_->running(); }
Result<std::shared_ptr<CallbackTicket>> EmbeddedService::submit(CallbackForm form, EventHandler on_event) {
  return impl_->submit(std::move(form), std::move(on_event));
}
Status EmbeddedService::cancel(const std::string& id) { return impl_->cancel(id); }
Result<CallEvent> EmbeddedService::get(const std::string& id) { return impl_->get(id); }
std::vector<CallEvent> EmbeddedService::list(const CallbackQuery& query) { return impl_->list(query); }
Subscription EmbeddedService::subscribe(EventHandler handler) { return impl_->subscribe(std::move(handler)); }
Result<Subscription> EmbeddedService::watch(const std::string& id, EventHandler handler) {
  return impl_->watch(id, std::move(handler));
}
std::size_t EmbeddedService::in_flight() const { return impl_->in_flight(); }
const NumberingPlan& EmbeddedService::numbering() const noexcept { return impl_->runtime().config().numbering; }

Result<Account> EmbeddedService::create_account(const AccountForm& form) {
  return callback::create_account(impl_->runtime().store(), form, numbering());
}

Result<Account> EmbeddedService::account(const std::string& id) {
  auto found = impl_->runtime().store().accounts().find(id);
  if (!found) return found.error();
  if (!*found) return Error{"not_found", "no account \"" + id + "\"", "id"}.as(ErrorKind::not_found);
  return std::move(**found);
}

Result<std::vector<Account>> EmbeddedService::accounts() { return impl_->runtime().store().accounts().list(); }

Result<LedgerEntry> EmbeddedService::top_up(const std::string& account_id, std::string_view amount,
                                            const std::string& reference) {
  return callback::top_up(impl_->runtime().store(), account_id, amount, reference);
}

Result<std::vector<LedgerEntry>> EmbeddedService::ledger(const std::string& account_id, std::size_t limit) {
  if (auto found = account(account_id); !found) return found.error();
  return impl_->runtime().store().ledger().entries(account_id, limit);
}

namespace {
Result<BillingAdmin*> billing_admin(Runtime& runtime, const char* what) {
  if (runtime.billing() == nullptr) {
    return Error{"billing_disabled", std::string(what) + " need billing: it is disabled in the config", "billing"}.as(
        ErrorKind::unavailable);
  }
  return runtime.billing()->admin();
}
}  // namespace

Result<ImportReport> EmbeddedService::import_rates(const std::string& tariff, std::string_view csv,
                                                   std::string_view currency) {
  auto admin = billing_admin(impl_->runtime(), "rate decks");
  if (!admin) return admin.error();
  if (*admin == nullptr) {
    return Error{"not_supported", "this billing backend does not manage rate decks", "billing"}.as(
        ErrorKind::unavailable);
  }
  auto code = Currency::of(currency);
  if (!code) return code.error().at("currency");
  std::istringstream in{std::string(csv)};
  return (*admin)->import_rates(tariff, in, *code);
}

Result<Rate> EmbeddedService::rate(const std::string& tariff, std::string_view number) {
  auto admin = billing_admin(impl_->runtime(), "rates");
  if (!admin) return admin.error();
  auto parsed = PhoneNumber::parse(number, numbering());
  if (!parsed) return parsed.error().at("number");
  auto found = impl_->runtime().billing()->rater().rate(tariff, *parsed, std::chrono::system_clock::now());
  if (!found) {
    return Error{"no_rate", "no rate for " + parsed->e164() + " in tariff \"" + tariff + "\"", "number"}.as(
        ErrorKind::not_found);
  }
  return std::move(*found);
}

Result<std::vector<Cdr>> EmbeddedService::cdrs(const CdrQuery& query) {
  std::vector<Cdr> out;
  auto ok = impl_->runtime().store().cdrs().query(query, [&](const Cdr& cdr) {
    out.push_back(cdr);
    return true;
  });
  if (!ok) return ok.error();
  return out;
}

}  // namespace callback
