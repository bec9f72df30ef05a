#pragma once
// A TriggerSink for triggers' tests: keeps each request that reached it and answers
// track() at once, with a handle ("cb-test-1", ...) or, when `refuse` is set, that Error.
#include <callback/trigger.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace callback::test {

struct RecordingSink final : TriggerSink {
  std::vector<CallbackRequest> requests;
  std::optional<Error> refuse;

  void submit(CallbackRequest, std::function<void(Result<std::string>)>) override {
    ADD_FAILURE() << "triggers use track(), not submit()";
  }
  void track(CallbackRequest request, Tracking tracking) override {
    requests.push_back(request);
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
