#pragma once
// callback.trigger.email: people ask for a callback by e-mail (the seed's "send a mail
// whose subject is the last 7 digits of the access number, and # and the number to call").
// A poller reads the mailbox over IMAP every poll interval: each mail not yet flagged
// processed is read (its From, Subject and Message-ID only), checked and flagged, so a
// restart takes no mail twice. Only a sender whose address is registered to an account is
// called back, at the account's registered number; anything else is logged and flagged,
// and calls no one. With an SMTP server configured, a customer gets one reply a mail: why
// it was refused, or how the call went once it ended (at most `replies_per_hour` to one
// address, so forged mail cannot turn us into a mail bomb).
#include "imap.hpp"
#include "mail.hpp"
#include "smtp.hpp"

#include <callback/context.hpp>
#include <callback/outbox.hpp>
#include <callback/rate_limiter.hpp>
#include <callback/phone_number.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace callback::trigger_email {

struct EmailOptions {
  ImapOptions imap;
  std::chrono::milliseconds poll_interval{30'000};  // 0: no poller thread; the owner calls poll_once() (tests)
  std::vector<std::string> access_numbers;  // the DID access numbers, as E.164 digits; a subject names one by its last 7
  std::string keyword = "$CallbackDone";    // the IMAP flag of processed mails
  std::size_t max_header = 16 * 1024;       // header fields (From, Subject, Message-ID) larger are refused unread
  std::size_t batch = 500;                  // mails read per round trip
  SmtpOptions smtp;                         // the replies; no url: none
  int replies_per_hour = 10;                // to one address
};

class EmailTrigger final : public Trigger {
 public:
  EmailTrigger(Context& context, Store& store, const NumberingPlan& plan, EmailOptions options);
  ~EmailTrigger() override;
  void start(TriggerSink& sink) override;  // starts the poller
  void stop() override;
  [[nodiscard]] TriggerStatus status() const override;

  // One poll, on the caller's thread (the poller's loop; tests): every unprocessed mail is
  // read and flagged. The number of mails it processed, or why the mailbox failed.
  Result<std::size_t> poll_once();

  // What became of one mail (the log line and the counts say it too).
  struct Outcome {
    std::string kind;    // "accepted", "refused", "ignored"
    std::string reason;  // why, when not accepted
  };

 private:
  Outcome handle(const FetchedHeader& mail);
  void run();
  void count(const std::string& kind);
  // Queues a reply to `to` (a registered address), unless that address had its share.
  void reply(const std::string& to, const std::string& in_reply_to, std::string subject, std::string body);
  void reply_refused(const std::string& to, const MailHeader& request, const std::string& reason);
  void reply_outcome(const std::string& to, const std::string& in_reply_to, const CallEvent& event);

  Context& context_;
  Store& store_;
  const NumberingPlan& plan_;
  EmailOptions options_;
  ImapMailbox mailbox_;  // the poller's thread only
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  TriggerSink* sink_ = nullptr;
  bool stopping_ = false;
  TriggerStatusKeeper keeper_{context_, "email"};
  std::unordered_set<std::string> seen_ids_;  // Message-IDs taken (a copy of a mail is ignored)
  std::deque<std::string> seen_order_;
  RateLimiter reply_limit_{options_.replies_per_hour, std::chrono::hours(1)};
  std::unique_ptr<Outbox> replies_;  // when options_.smtp.url is set
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // calls that end after us reply to no one
  std::thread poller_;
};

}  // namespace callback::trigger_email
