#pragma once
// The SMS trigger's outcome messages ("Your call with +86... ended after 2 min 5 s"), sent
// through the gateway's HTTP API off the service's thread: a bounded queue and one worker
// with libcurl, each message tried three times (1 s, then 5 s apart) before it is given up
// and logged.
#include <callback/context.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callback::trigger_sms {

class OutcomeSender {
 public:
  struct Message {
    std::string url;
    std::vector<std::string> headers;  // "Content-Type: application/json", ...
    std::string body;
    std::string userpwd;  // HTTP basic authentication ("sid:token"); empty: none
    std::string what;     // for the log: "outcome of cb-... to +86..."
  };
  explicit OutcomeSender(Logger& log, std::size_t max_queued = 10'000);
  ~OutcomeSender();  // what is still queued is dropped (and logged)
  OutcomeSender(const OutcomeSender&) = delete;
  OutcomeSender& operator=(const OutcomeSender&) = delete;

  void send(Message message);  // any thread; never blocks on the network

 private:
  void run();
  bool post(const Message& message, std::string& why);  // one try

  Logger& log_;
  std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Message> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace callback::trigger_sms
