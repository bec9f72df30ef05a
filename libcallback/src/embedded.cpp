#include <callback/embedded.hpp>
#include <callback_internal/runtime.hpp>
#include <callback_internal/callback_service.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <shared_mutex>
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
    auto call = handler;  // a handler may end its own subscription: it lives until it returns
    try {
      call(event);
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
  // `in_handler`: true on the service thread, where waiting would wait for itself.
  Ticket(std::string id, std::function<Status(const std::string&)> cancel, std::function<bool()> in_handler)
      : id_(std::move(id)), cancel_(std::move(cancel)), in_handler_(std::move(in_handler)) {}
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
    if (in_handler_()) timeout = std::chrono::milliseconds{0};
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return is_final(latest_->call.state()) || orphaned_; });
    if (!is_final(latest_->call.state())) return std::nullopt;
    return *latest_;
  }
  [[nodiscard]] bool orphaned() const override {
    std::lock_guard lock(mutex_);
    return orphaned_ && !is_final(latest_->call.state());
  }
  // The service stopped before this callback ended: no more events will come.
  void orphan() {
    std::lock_guard lock(mutex_);
    orphaned_ = true;
    changed_.notify_all();
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
  std::function<bool()> in_handler_;
  mutable std::mutex mutex_;
  bool orphaned_ = false;
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

  // From another thread: runs `work` on the service thread and waits; false unless the
  // service runs. stop() waits for the calls in progress, and none starts after it.
  bool on_service_thread(const std::function<void()>& work) {
    std::shared_lock lock(lifecycle_);
    if (!started_ || stopped_) return false;
    try {
      runtime_->run_on_service_thread(work);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  // A handler calling back into the service runs on the service thread: what would wait
  // for that thread is refused or done later on it instead.
  [[nodiscard]] bool in_handler() const noexcept { return runtime_->on_service_thread(); }
  static Error from_handler(const std::string& what) {
    return Error{"from_handler",
                 what + " from an event handler would wait for the thread that runs the handler: call it from "
                        "another thread",
                 {}}
        .as(ErrorKind::conflict);
  }

  Status start() {
    std::unique_lock lock(lifecycle_);
    if (started_) return Error{"already_started", "the service was started already", {}}.as(ErrorKind::conflict);
    started_ = true;
    std::weak_ptr<Impl> weak = shared_from_this();
    runtime_->post([weak] {
      if (auto self = weak.lock()) self->runtime_->service().subscribe(*self);
    });
    if (auto ok = runtime_->start(); !ok) {
      stopped_ = true;
      return ok;
    }
    if (options_.engine_wait.count() > 0 && !runtime_->wait_for_engine(options_.engine_wait)) {
      stop_locked(std::chrono::seconds{0});
      return Error{"engine_unavailable",
                   "no Asterisk server became ready within " + std::to_string(options_.engine_wait.count()) + " ms",
                   "engines"}
          .as(ErrorKind::unavailable);
    }
    return ok_status();
  }

  void stop(std::chrono::seconds grace) {
    if (in_handler()) {
      runtime_->context().log.error(component, "stop() from an event handler is ignored: call it from another thread");
      return;
    }
    std::unique_lock lock(lifecycle_);
    stop_locked(grace);
  }

  Result<std::shared_ptr<CallbackTicket>> submit(CallbackForm form, EventHandler on_event) {
    auto request = make_request(form, runtime_->config().numbering);
    if (!request) return request.error();
    if (in_handler()) return from_handler("submit()");
    if (!running()) return not_running();
    if (!runtime_->accepting()) {
      return Error{"shutting_down", "the service is shutting down and takes no new calls", {}}.as(
          ErrorKind::unavailable);
    }
    std::optional<Result<std::shared_ptr<CallbackTicket>>> out;
    const bool ran = on_service_thread([&] {
      std::vector<CallEvent> early;
      struct Capture {
        std::vector<CallEvent>*& to;
        ~Capture() { to = nullptr; }
      } capture{capture_};
      capture_ = &early;
      auto id = runtime_->service().start(std::move(*request));
      capture_ = nullptr;
      if (!id) {
        out = id.error();
        return;
      }
      std::weak_ptr<Impl> weak = shared_from_this();
      auto ticket = std::make_shared<Ticket>(
          *id,
          [weak](const std::string& which) -> Status {
            auto self = weak.lock();
            return self ? self->cancel(which) : Status(not_running());
          },
          [weak] {
            auto self = weak.lock();
            return self && self->in_handler();
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
    if (in_handler()) {
      // Known and running: canceled once the handler returns (the service is telling its
      // observers now, and a cancel in the middle of that would run inside it).
      auto known = get(id);
      if (!known) return known.error();
      if (is_final(known->call.state())) return finished(id, known->outcome);
      runtime_->post([weak = weak_from_this(), id] {
        if (auto self = weak.lock()) (void)self->runtime_->service().cancel(id);
      });
      return ok_status();
    }
    if (!on_service_thread([&] { status = runtime_->service().cancel(id); })) return not_running();
    if (status) return status;
    auto known = get(id);  // no longer in flight: ending (ok), ended (conflict) or unknown
    if (!known) return known.error();
    if (!is_final(known->call.state())) return ok_status();
    return finished(id, known->outcome);
  }
  static Error finished(const std::string& id, const std::string& outcome) {
    return Error{"finished", "callback " + id + " has ended already (" + outcome + ")", "id"}.as(ErrorKind::conflict);
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
    std::weak_ptr<Impl> weak = shared_from_this();
    auto add = [weak, watcher] {
      if (auto self = weak.lock()) self->all_.push_back(watcher);
    };
    if (in_handler()) {
      runtime_->post(add);  // from the next event on
    } else if (!started_) {
      runtime_->post(add);  // before start(): added with the service's own subscription, in order
    } else if (!on_service_thread(add)) {
      watcher->reset();  // stopped: no events will come
    }
    return subscription_of(watcher);
  }

  Result<Subscription> watch(const std::string& id, EventHandler handler) {
    auto watcher = std::make_shared<Watcher>();
    watcher->handler = std::move(handler);
    // The latest first, then each change: both on the service thread, in that order.
    std::weak_ptr<Impl> weak = shared_from_this();
    auto follow = [weak, watcher, id]() -> bool {
      auto self = weak.lock();
      if (!self) return false;
      std::optional<CallEvent> latest;
      {
        std::lock_guard lock(self->known_mutex_);
        if (auto it = self->known_.find(id); it != self->known_.end()) latest = it->second;
      }
      if (!latest) return false;
      watcher->deliver(*latest, self->runtime_->context().log);
      if (is_final(latest->call.state())) {
        watcher->reset();
      } else {
        self->by_id_[id].push_back(watcher);
      }
      return true;
    };
    bool found = false;
    if (in_handler()) {
      std::lock_guard lock(known_mutex_);
      found = known_.contains(id);
      if (found) runtime_->post([follow] { follow(); });  // after the event being told now
    } else {
      on_service_thread([&] { found = follow(); });
    }
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
    if (in_handler()) return runtime_->service().in_flight();
    std::size_t n = 0;
    on_service_thread([&] { n = runtime_->service().in_flight(); });
    return n;
  }

  Runtime& runtime() { return *runtime_; }
  [[nodiscard]] bool running() const noexcept { return started_ && !stopped_; }

 private:
  void stop_locked(std::chrono::seconds grace) {
    if (!started_ || stopped_) return;
    runtime_->stop(grace);
    stopped_ = true;
    // The service thread has ended: what never got its final event gets no more.
    for (auto& [id, weak] : tickets_) {
      if (auto ticket = weak.lock()) ticket->orphan();
    }
    tickets_.clear();
    for (auto& [id, watchers] : by_id_) {
      for (auto& watcher : watchers) watcher->reset();
    }
    by_id_.clear();
    for (auto& watcher : all_) watcher->reset();
    all_.clear();
  }

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
  std::shared_mutex lifecycle_;  // start() and stop() exclusive; calls into the running service shared
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
