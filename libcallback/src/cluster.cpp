#include "cluster.hpp"

#include <boost/asio/post.hpp>

#include <future>

namespace callback {

Cluster::Cluster(Context& context, CallJournal& journal, std::function<CallbackService*()> service,
                 std::chrono::seconds lease, std::function<void(const Error&)> lost)
    : context_(context), journal_(journal), service_(std::move(service)), lease_(lease), lost_(std::move(lost)) {}

void Cluster::start() {
  if (running_->exchange(true)) return;
  worker_ = std::thread([this] { worker_io_.run(); });
  notices_ = journal_.watch([this, running = running_](const JournalNotice& notice) {
    if (!*running || notice.kind == JournalNotice::Kind::changed) return;
    boost::asio::post(worker_io_, [this, running] {
      if (*running) check_cancels();
    });
  });
  // The first round at once: calls left by nodes that died while none ran are taken now.
  boost::asio::post(worker_io_, [this, running = running_] {
    if (*running) tick();
  });
}

void Cluster::stop() {
  if (!running_->exchange(false)) return;
  notices_.reset();
  // The timer lives on the service thread: cancelled there (or it finds running_ false).
  auto cancelled = std::make_shared<std::promise<void>>();
  auto done = cancelled->get_future();
  boost::asio::post(context_.io, [this, cancelled] {
    timer_.cancel();
    cancelled->set_value();
  });
  if (!context_.io.stopped()) (void)done.wait_for(std::chrono::seconds(5));
  guard_.reset();
  worker_io_.stop();
  if (worker_.joinable()) worker_.join();
}

void Cluster::arm() {
  const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(lease_) / 3;
  timer_ = context_.clock.schedule(every, [this, running = running_] {
    if (!*running) return;
    boost::asio::post(worker_io_, [this, running] {
      if (*running) tick();
    });
  });
}

void Cluster::to_service(std::function<void(CallbackService&)> work) {
  boost::asio::post(context_.io, [this, running = running_, work = std::move(work)] {
    if (!*running) return;
    if (CallbackService* service = service_()) work(*service);
  });
}

void Cluster::tick() {
  if (auto renewed = journal_.renew(); !renewed) {
    if (renewed.error().code == "node.lease_lost" || renewed.error().code == "node.duplicate") {
      context_.log.error("callback.cluster", renewed.error().describe());
      if (lost_) lost_(renewed.error());
      return;
    }
    if (!renew_failed_) {
      context_.log.error("callback.cluster", "cannot renew this node's lease: " + renewed.error().describe() +
                                                 "; if it runs out, other nodes take this node's calls over");
    }
    renew_failed_ = true;
  } else {
    if (renew_failed_) context_.log.info("callback.cluster", "this node's lease is renewed again");
    renew_failed_ = false;
    auto taken = taking_over_ ? journal_.take_over() : Result<std::vector<JournalEntry>>(std::vector<JournalEntry>{});
    if (!taken) {
      context_.log.error("callback.cluster", "cannot look for calls to take over: " + taken.error().describe());
    } else if (!taken->empty()) {
      std::string ids;
      for (const auto& e : *taken) ids += (ids.empty() ? "" : ", ") + e.id + " (of " + escape_control(e.owner) + ")";
      context_.log.warning("callback.cluster",
                           "took over " + std::to_string(taken->size()) + " callbacks of nodes whose lease ran out: " + ids);
      to_service([entries = std::move(*taken), this](CallbackService& service) {
        auto adopted = service.adopt(entries);
        if (!adopted) {
          context_.log.error("callback.cluster", "cannot take the calls up: " + adopted.error().describe());
          return;
        }
        for (const auto& skipped : adopted->skipped) context_.log.error("callback.cluster", "skipped " + skipped);
      });
    }
    check_cancels();
  }
  boost::asio::post(context_.io, [this, running = running_] {
    if (*running) arm();
  });
}

void Cluster::check_cancels() {
  auto asked = journal_.cancels_asked();
  if (!asked) {
    context_.log.error("callback.cluster", "cannot read the cancels asked of this node: " + asked.error().describe());
    return;
  }
  if (asked->empty()) return;
  to_service([ids = std::move(*asked)](CallbackService& service) {
    for (const auto& id : ids) (void)service.cancel(id);  // ending already, or not in flight here: nothing to do
  });
}

}  // namespace callback
