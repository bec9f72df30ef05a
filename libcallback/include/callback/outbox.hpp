#pragma once
// Outbox: messages a trigger sends back to people (an outcome SMS through a gateway's
// HTTP API, a reply mail over SMTP), off the service's thread. A bounded queue and one
// worker; each message is tried, then tried again after each pause (1 s, then 5 s by
// default) before it is given up and logged. What is still queued when the Outbox is
// destroyed is dropped, and logged.
//
//   Outbox outbox(context.log, "callback.trigger.email");
//   outbox.send({.what = "reply to li@example.com", .attempt = [mail](std::string& why) {
//     return send_mail(smtp, mail, why);   // false and `why` when this try failed
//   }});
#include <callback/context.hpp>
#include <callback/export.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callback {

class CALLBACK_EXPORT Outbox {
 public:
  struct Message {
    std::string what;                              // for the log: "outcome of cb-... to +86..."
    std::function<bool(std::string& why)> attempt;  // one try, on the worker: sent, or false and why not
  };
  Outbox(Logger& log, std::string component, std::size_t max_queued = 10'000,
         std::vector<std::chrono::milliseconds> pauses = {std::chrono::seconds{1}, std::chrono::seconds{5}});
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  void send(Message message);  // any thread; never waits for the network

 private:
  void run();

  Logger& log_;
  std::string component_;
  std::size_t max_queued_;
  std::vector<std::chrono::milliseconds> pauses_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Message> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace callback
