#pragma once
// Runtime: the service composed from a config file (store, billing, engine, front ends
// and triggers, each from its plugin), running on a thread of its own. callbackd and
// `callbackctl call` (embedded) are this plus their way of talking to people.
//
//   auto runtime = Runtime::open(load_config("callback.json").value(), {}).value();
//   runtime->start().value();                      // engines connect, front ends listen
//   runtime->sink().submit(request, [](Result<std::string> id) { ... });   // any thread
//   runtime->stop(std::chrono::seconds(30));       // drain, cancel the rest, flush
//
// Not installed (the library's and this tree's programs'): an application embeds the
// service through callback/embedded.hpp, which runs one of these behind its pimpl.
//
// Everything that touches the service runs on its thread: post() work there. sink() may
// be used from any thread; after stop() begins it refuses with "shutting_down".
#include <callback/billing.hpp>
#include <callback/config.hpp>
#include <callback/context.hpp>
#include <callback/engine.hpp>
#include <callback/error.hpp>
#include <callback/http.hpp>
#include <callback/export.hpp>
#include <callback/plugin_loader.hpp>
#include <callback_internal/callback_service.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <thread>
#include <vector>

namespace callback {

class Cluster;  // src/cluster.hpp

struct RuntimeOptions {
  std::vector<std::filesystem::path> plugin_dirs;  // searched before the config's own
  std::ostream* log = nullptr;                     // default: std::cerr
};

class CALLBACK_EXPORT Runtime {
 public:
  // Loads and creates every component; nothing runs yet. The first problem is the Error
  // (with the config path of the component at fault).
  [[nodiscard]] static Result<std::unique_ptr<Runtime>> open(ServiceConfig config, RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts the service thread, the engine, the triggers and the front ends.
  [[nodiscard]] Status start();
  // Graceful, first half: new requests are refused at once; calls in flight get `grace`
  // to end by themselves, then are canceled and given the service's stage grace to end.
  // The service still runs (front ends can still show the calls ending).
  void drain(std::chrono::seconds grace);
  // drain(grace) if not done, then: the engine stops, CDRs and settlements of anything
  // left are written, the thread ends. Idempotent; the destructor calls stop(0s).
  void stop(std::chrono::seconds grace);

  // Thread-safe entrance to the service (what triggers and front ends get).
  [[nodiscard]] TriggerSink& sink() noexcept;
  // Runs `work` on the service thread.
  void post(std::function<void()> work);
  // Runs `work` on the service thread and waits for it (not from that thread). Throws
  // std::runtime_error once the runtime has stopped.
  void run_on_service_thread(const std::function<void()>& work);
  [[nodiscard]] bool accepting() const noexcept { return accepting_.load(); }
  // True on the service thread itself (where run_on_service_thread would wait for itself).
  [[nodiscard]] bool on_service_thread() const noexcept { return std::this_thread::get_id() == thread_id_.load(); }
  // What start() found in the store's journal (CallbackService::recover).
  [[nodiscard]] const RecoveryReport& recovery() const noexcept { return recovery_; }
  // Waits until the engine has a server ready for calls (an embedded `callbackctl call`
  // right after start, tests); false if none is within `timeout`.
  [[nodiscard]] bool wait_for_engine(std::chrono::milliseconds timeout);
  // Waits until every server has answered the engine's checks (EngineStatus::Server::
  // checked: logged in and checked, or failed to log in), or `timeout`; the status then.
  [[nodiscard]] EngineStatus wait_for_checks(std::chrono::milliseconds timeout);

  // Owned components. service() and engine() only on the service thread.
  [[nodiscard]] CallbackService& service() noexcept { return *service_; }
  [[nodiscard]] Engine& engine() noexcept { return *engine_; }
  [[nodiscard]] Store& store() noexcept { return *store_; }
  [[nodiscard]] Billing* billing() noexcept { return billing_.get(); }
  [[nodiscard]] Context& context() noexcept { return context_; }
  [[nodiscard]] const ServiceConfig& config() const noexcept { return config_; }
  [[nodiscard]] const std::vector<PluginPtr<FrontEnd>>& frontends() const noexcept { return frontends_; }
  // Each configured trigger: its instance and plugin names, and its status. Any thread.
  struct TriggerReport {
    std::string name, plugin;
    TriggerStatus status;
  };
  [[nodiscard]] std::vector<TriggerReport> trigger_status() const;
  // What triggers and front ends added to callbackd's HTTP routes (CreateArgs::routes).
  [[nodiscard]] const HttpRouteTable& http_routes() const noexcept { return routes_; }

 private:
  // Looks at the engine's status every 5 ms on its thread until `done(status)` or the
  // timeout; the last status seen.
  EngineStatus poll_engine(std::chrono::milliseconds timeout, std::function<bool(const EngineStatus&)> done);
  class Sink;
  Runtime(ServiceConfig config, RuntimeOptions options);

  ServiceConfig config_;
  std::unique_ptr<PluginLoader> loader_;
  boost::asio::io_context io_;
  SystemClock clock_{io_};
  std::unique_ptr<Logger> log_;
  Metrics metrics_;
  Context context_;
  HttpRouteTable routes_;  // before the plugins that add to it, after them in destruction
  PluginPtr<Store> store_;
  PluginPtr<Billing> billing_;
  PluginPtr<Engine> engine_;
  std::vector<PluginPtr<Trigger>> triggers_;
  std::vector<PluginPtr<FrontEnd>> frontends_;
  std::unique_ptr<CallbackService> service_;
  std::unique_ptr<Cluster> cluster_;  // several nodes on a shared journal
  std::unique_ptr<Sink> sink_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  RecoveryReport recovery_;
  std::atomic<bool> accepting_{false};
  bool started_ = false;
  bool drained_ = false;
  bool stopped_ = false;
  std::atomic<bool> running_{false};
};

}  // namespace callback
