#pragma once
// A TriggerSink for triggers' tests: keeps each request that reached it and answers
// track() at once, with a handle ("cb-test-1", ...) or, when `refuse` is set, that Error.
// end() then ends an accepted one as the service would tell its trigger.
#include <callback_internal/callback_service.hpp>
#include <callback/trigger.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace callback::test {

struct RecordingSink final : TriggerSink {
  std::vector<CallbackRequest> requests;
  std::vector<Tracking> trackings;  // of each request, in the same order
  std::optional<Error> refuse;

  // The i-th request's call ends with `outcome` ("partner_busy", "completed", ...).
  void end(std::size_t i, std::string outcome, std::optional<Money> cost = std::nullopt) {
    ASSERT_LT(i, trackings.size());
    CallEvent event{.call = Call("cb-test-" + std::to_string(i + 1), requests.at(i), Timestamp{}),
                    .previous = CallState::dialing_b,
                    .cost = std::move(cost),
                    .outcome = std::move(outcome)};
    if (trackings[i].ended) trackings[i].ended(event);
  }

  void submit(CallbackRequest, std::function<void(Result<std::string>)>) override {
    ADD_FAILURE() << "triggers use track(), not submit()";
  }
  void track(CallbackRequest request, Tracking tracking) override {
    requests.push_back(request);
    trackings.push_back(tracking);
    struct Handle final : CallbackHandle {
      explicit Handle(std::string id) : id_(std::move(id)) {}
      const std::string& id() const noexcept override { return id_; }
      void cancel() override {}
      std::string id_;
    };
    if (refuse) return tracking.accepted(*refuse);
    tracking.accepted(
        std::shared_ptr<CallbackHandle>(std::make_shared<Handle>("cb-test-" + std::to_string(requests.size()))));
  }
};

}  // namespace callback::test
