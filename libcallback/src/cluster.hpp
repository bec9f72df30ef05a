#pragma once
// Cluster: a node's part among several callbackd nodes on one shared journal (a server
// database; store.hpp, NodeClaim). Every third of its lease it renews the lease, takes
// over the open callbacks of nodes whose lease ran out (the service follows them to their
// end, as after a restart), and cancels the callbacks of its own that another node was
// asked to cancel; a cancel's notice (CallJournal::watch) does the last at once. The
// database work runs on a thread of its own; what the service does runs on its thread.
#include <callback/context.hpp>
#include <callback_internal/callback_service.hpp>
#include <callback/store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace callback {

class Cluster {
 public:
  // `service` is read on the service thread (context.io); it may be gone by then (nullptr).
  // `lost` runs (on the worker) when this node's lease was taken over or its id taken by
  // another process: the calls it follows are another node's now, and it must stop at
  // once without touching them (callbackd exits).
  Cluster(Context& context, CallJournal& journal, std::function<CallbackService*()> service, std::chrono::seconds lease,
          std::function<void(const Error&)> lost);
  ~Cluster() { stop(); }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  void start();  // any thread
  // Draining (a graceful stop): the lease is still renewed, but nothing more is taken over.
  void stop_taking_over() { taking_over_ = false; }
  void stop();   // any thread but the worker's; nothing runs after it returns

 private:
  void arm();            // on the service thread
  void tick();           // on the worker: renew, take over, cancels
  void check_cancels();  // on the worker
  void to_service(std::function<void(CallbackService&)> work);

  Context& context_;
  CallJournal& journal_;
  std::function<CallbackService*()> service_;
  std::chrono::seconds lease_;
  std::function<void(const Error&)> lost_;
  std::atomic<bool> taking_over_{true};
  boost::asio::io_context worker_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{worker_io_.get_executor()};
  std::thread worker_;
  TimerHandle timer_;  // on the service thread
  Subscription notices_;
  std::shared_ptr<std::atomic<bool>> running_ = std::make_shared<std::atomic<bool>>(false);
  bool renew_failed_ = false;  // on the worker
};

}  // namespace callback
