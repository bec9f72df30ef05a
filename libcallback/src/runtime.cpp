#include <callback_internal/runtime.hpp>

#include "cluster.hpp"

#include <cstdio>
#include <cstdlib>

#include <boost/asio/executor_work_guard.hpp>

#include <algorithm>

#include <condition_variable>
#include <future>
#include <iostream>
#include <mutex>

namespace callback {

// Hands requests to the service thread; refuses once the runtime stops accepting.
class Runtime::Sink final : public TriggerSink, public CallObserver {
 public:
  explicit Sink(Runtime& runtime) : runtime_(runtime) {}
  void submit(CallbackRequest request, std::function<void(Result<std::string>)> done) override {
    if (!runtime_.accepting()) {
      done(
          Error{"shutting_down", "the service is shutting down and takes no new calls", {}}.as(ErrorKind::unavailable));
      return;
    }
    runtime_.post([this, request = std::move(request), done = std::move(done)]() mutable {
      runtime_.service().submit(std::move(request), std::move(done));
    });
  }
  void track(CallbackRequest request, Tracking tracking) override {
    if (!runtime_.accepting()) {
      if (tracking.accepted) {
        tracking.accepted(Error{"shutting_down", "the service is shutting down and takes no new calls", {}}.as(
            ErrorKind::unavailable));
      }
      return;
    }
    runtime_.post([this, request = std::move(request), tracking = std::move(tracking)]() mutable {
      runtime_.service().track(std::move(request), std::move(tracking));
    });
  }

  // Final events come before the call leaves the service's books: count afterwards.
  void on_call_event(const CallEvent& event) override {
    if (!is_final(event.call.state())) return;
    runtime_.post([this] { update(); });
  }
  void update() {
    std::lock_guard lock(mutex_);
    // Drained once nothing runs and every ending is recorded and told.
    in_flight_ = runtime_.service().in_flight() + (runtime_.service().endings_pending() ? 1 : 0);
    ++updates_;
    changed_.notify_all();
  }
  // Waits until nothing is in flight or `timeout` passes; true when drained. Only a count
  // taken after this call counts: the one left by an earlier call's ending is stale (calls
  // started since do not update it), and trusting it ended live calls at shutdown.
  bool wait_drained(std::chrono::milliseconds timeout) {
    std::uint64_t asked = 0;
    {
      std::lock_guard lock(mutex_);
      asked = updates_ + 1;
    }
    runtime_.post([this] { update(); });
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [this, asked] { return updates_ >= asked && in_flight_ == 0; });
  }

 private:
  Runtime& runtime_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t in_flight_ = 1;  // unknown until the first update
  std::uint64_t updates_ = 0;
};

Runtime::Runtime(ServiceConfig config, RuntimeOptions options)
    : config_(std::move(config)),
      log_(std::make_unique<StreamLogger>(options.log != nullptr ? *options.log : std::cerr, config_.log_level)),
      context_{io_, clock_, *log_, metrics_} {
  auto dirs = options.plugin_dirs;
  dirs.insert(dirs.end(), config_.plugin_dirs.begin(), config_.plugin_dirs.end());
  loader_ = std::make_unique<PluginLoader>(dirs);
}

Result<std::unique_ptr<Runtime>> Runtime::open(ServiceConfig config, RuntimeOptions options) {
  std::unique_ptr<Runtime> runtime(new Runtime(std::move(config), std::move(options)));
  Runtime& r = *runtime;
  if (!r.config_.store) return Error{"config.missing", "no store configured", "store"};
  auto store = r.loader_->create_from_config<Store>(*r.config_.store, r.context_);
  if (!store) return store.error();
  r.store_ = std::move(*store);
  if (r.config_.billing) {
    auto billing = r.loader_->create_from_config<Billing>(*r.config_.billing, r.context_, r.store_.get());
    if (!billing) return billing.error();
    r.billing_ = std::move(*billing);
  }
  if (r.config_.engines.empty()) {
    return Error{"config.missing", "no engine configured: add one, e.g. {\"plugin\": \"callback.engine.ami\", ...}",
                 "engines"};
  }
  if (r.config_.engines.size() > 1) {
    return Error{"config.unsupported",
                 "one engine per service; list several Asterisk servers in the engine's own \"servers\"", "engines[1]"};
  }
  auto engine = r.loader_->create_from_config<Engine>(r.config_.engines.front(), r.context_, r.store_.get());
  if (!engine) return engine.error();
  r.engine_ = std::move(*engine);
  for (const auto& trigger : r.config_.triggers) {
    auto made = r.loader_->create_from_config<Trigger>(trigger, r.context_, r.store_.get(), &r.config_.numbering,
                                                       &r.routes_, r.engine_.get());
    if (!made) return made.error();
    r.triggers_.push_back(std::move(*made));
  }
  for (const auto& frontend : r.config_.frontends) {
    auto made = r.loader_->create_from_config<FrontEnd>(frontend, r.context_, r.store_.get(), &r.config_.numbering,
                                                        &r.routes_);
    if (!made) return made.error();
    r.frontends_.push_back(std::move(*made));
  }
  ServiceOptions service_options = r.config_.service;
  service_options.numbering = r.config_.numbering;  // the IVR reads dialled numbers with it
  r.service_ = std::make_unique<CallbackService>(r.context_, *r.engine_, r.billing_.get(), *r.store_,
                                                 std::move(service_options));
  r.sink_ = std::make_unique<Sink>(r);
  r.service_->subscribe(*r.sink_);
  return runtime;
}

Runtime::~Runtime() { stop(std::chrono::seconds{0}); }

TriggerSink& Runtime::sink() noexcept { return *sink_; }

std::vector<Runtime::TriggerReport> Runtime::trigger_status() const {
  std::vector<TriggerReport> out;
  for (std::size_t i = 0; i < triggers_.size() && i < config_.triggers.size(); ++i) {
    const auto& configured = config_.triggers[i];
    out.push_back({configured.name.empty() ? configured.plugin : configured.name, configured.plugin,
                   triggers_[i]->status()});
  }
  return out;
}

void Runtime::post(std::function<void()> work) { boost::asio::post(io_, std::move(work)); }

void Runtime::run_on_service_thread(const std::function<void()>& work) {
  if (!running_) throw std::runtime_error("the service has stopped");
  std::promise<void> done;
  post([&] {
    try {
      work();
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  done.get_future().get();
}

EngineStatus Runtime::poll_engine(std::chrono::milliseconds timeout, std::function<bool(const EngineStatus&)> done) {
  if (!running_) return {};
  // The engine reports no changes of its connections, so look every 5 ms on its thread.
  auto result = std::make_shared<std::promise<EngineStatus>>();
  auto future = result->get_future();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto check = std::make_shared<std::function<void()>>();
  *check = [this, result, deadline, done = std::move(done), weak = std::weak_ptr<std::function<void()>>(check)] {
    auto status = engine_->status();
    if (done(status) || std::chrono::steady_clock::now() >= deadline) return result->set_value(std::move(status));
    if (auto again = weak.lock()) clock_.schedule(std::chrono::milliseconds(5), [again] { (*again)(); });
  };
  post([check] { (*check)(); });
  return future.get();
}

bool Runtime::wait_for_engine(std::chrono::milliseconds timeout) {
  auto connected = [](const EngineStatus& status) {
    return std::any_of(status.servers.begin(), status.servers.end(), [](const auto& s) { return s.connected; });
  };
  return connected(poll_engine(timeout, connected));
}

EngineStatus Runtime::wait_for_checks(std::chrono::milliseconds timeout) {
  return poll_engine(timeout, [](const EngineStatus& status) {
    return std::all_of(status.servers.begin(), status.servers.end(), [](const auto& s) { return s.checked; });
  });
}

Status Runtime::start() {
  if (started_) return ok_status();
  // One service owns a journal's calls: a second would follow and bill them again. With a
  // node id, one node of several on a shared journal owns the calls it starts.
  CallJournal* journal = store_->journal();
  if (journal != nullptr) {
    if (auto claimed = journal->claim(NodeClaim{config_.service.node, config_.service.node_lease}); !claimed) {
      return claimed;
    }
  }
  started_ = true;
  thread_ = std::thread([this] {
    thread_id_ = std::this_thread::get_id();
    auto guard = boost::asio::make_work_guard(io_);
    io_.run();
  });
  running_ = true;
  run_on_service_thread([this] { engine_->start(); });
  // What the journal holds from before (a crash, a kill -9): finished callbacks readable
  // again, those in flight handed to the engine to find. Before any new request.
  Result<RecoveryReport> recovered = RecoveryReport{};
  run_on_service_thread([&] { recovered = service_->recover(); });
  if (!recovered) {
    context_.log.error("callback.runtime", "cannot read the callback journal: " + recovered.error().describe());
    return recovered.error();
  }
  recovery_ = *recovered;
  if (recovery_.finished + recovery_.resumed.size() + recovery_.skipped.size() > 0) {
    std::string ids;
    for (const auto& id : recovery_.resumed) ids += (ids.empty() ? "" : ", ") + id;
    context_.log.info("callback.runtime",
                      "journal: " + std::to_string(recovery_.finished) + " finished callbacks readable again, " +
                          std::to_string(recovery_.resumed.size()) + " in flight taken up again" +
                          (ids.empty() ? std::string() : " (" + ids + ")"));
    for (const auto& skipped : recovery_.skipped) context_.log.error("callback.runtime", "journal: skipped " + skipped);
  }
  if (journal != nullptr && journal->shared()) {
    cluster_ = std::make_unique<Cluster>(
        context_, *journal, [this] { return service_.get(); }, config_.service.node_lease, [this](const Error&) {
          // Its calls are another node's now: stopping gracefully would hang them up or bill
          // them. Out at once, as a kill would; a supervisor starts it again (systemd:
          // Restart=on-failure), and it takes up whatever is still its own.
          context_.log.error("callback.runtime", "this node stops now (exit status 75)");
          std::fflush(nullptr);
          std::_Exit(75);
        });
    cluster_->start();
  }
  for (auto& trigger : triggers_) trigger->start(*sink_);
  for (auto& frontend : frontends_) frontend->start(*sink_);
  accepting_ = true;
  return ok_status();
}

void Runtime::drain(std::chrono::seconds grace) {
  if (drained_) return;
  drained_ = true;
  accepting_ = false;
  if (cluster_) cluster_->stop_taking_over();  // the others take what is left when this node's lease ends
  if (!started_) return;
  for (auto& frontend : frontends_) frontend->stop();
  for (auto& trigger : triggers_) trigger->stop();
  if (sink_->wait_drained(grace)) return;
  std::size_t canceled = 0;
  run_on_service_thread([&] {
    for (const auto& id : service_->in_flight_ids()) canceled += service_->cancel(id).ok();
  });
  context_.log.warning("callback.runtime",
                       "grace period over: canceled " + std::to_string(canceled) + " callbacks in flight");
  // The engine confirms each cancel, or the service gives up after its stage grace.
  (void)sink_->wait_drained(config_.service.stage_grace + std::chrono::seconds{5});
}

void Runtime::stop(std::chrono::seconds grace) {
  if (stopped_) return;
  drain(grace);
  stopped_ = true;
  if (!started_) return;
  if (cluster_) cluster_->stop();  // takes nothing over any more
  // Whatever is still in flight is settled and recorded by the service's destructor.
  run_on_service_thread([this] {
    engine_->stop();
    service_.reset();
  });
  running_ = false;
  io_.stop();
  thread_.join();
}

}  // namespace callback
