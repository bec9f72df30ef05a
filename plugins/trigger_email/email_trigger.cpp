#include "email_trigger.hpp"

#include <callback/account.hpp>
#include <callback/callback_request.hpp>

namespace callback::trigger_email {

namespace {
constexpr std::string_view component = "callback.trigger.email";
constexpr std::size_t remembered_ids = 100'000;
}  // namespace

EmailTrigger::EmailTrigger(Context& context, Store& store, const NumberingPlan& plan, EmailOptions options)
    : context_(context), store_(store), plan_(plan), options_(std::move(options)), mailbox_(options_.imap) {}

EmailTrigger::~EmailTrigger() { stop(); }

void EmailTrigger::start(TriggerSink& sink) {
  std::lock_guard lock(mutex_);
  sink_ = &sink;
  stopping_ = false;
  if (!poller_.joinable() && options_.poll_interval.count() > 0) poller_ = std::thread([this] { run(); });
}

void EmailTrigger::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    sink_ = nullptr;
  }
  wake_.notify_all();
  if (poller_.joinable()) poller_.join();
}

TriggerStatus EmailTrigger::status() const {
  return keeper_.status();
}

void EmailTrigger::count(const std::string& kind) { keeper_.count(kind, false); }

void EmailTrigger::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    auto polled = poll_once();
    lock.lock();
    keeper_.polled();
    keeper_.healthy(polled.ok());
    if (!polled) {
      keeper_.error(escape_control(polled.error().message));
      context_.log.warning(component, polled.error().message);
    }
    wake_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
  }
}

Result<std::size_t> EmailTrigger::poll_once() {
  std::size_t processed = 0;
  while (true) {
    auto uids = mailbox_.unprocessed(options_.keyword, options_.batch);
    if (!uids) return uids.error();
    if (uids->empty()) return processed;
    auto mails = mailbox_.headers(*uids, options_.max_header);
    if (!mails) return mails.error();
    std::vector<std::uint32_t> done;
    for (const auto& mail : *mails) {
      const Outcome outcome = handle(mail);
      if (outcome.kind == "retry") continue;  // the store was away, or not started: next poll
      if (outcome.kind != "submitted") count(outcome.kind);  // else counted once the service answers
      context_.log.info(component, "mail " + std::to_string(mail.uid) + ": " + outcome.kind +
                                       (outcome.reason.empty() ? "" : " (" + outcome.reason + ")"));
      done.push_back(mail.uid);
    }
    // Flagged a batch at a time: a crash before it leaves them to the next start, which
    // calls no one twice (the Message-ID is the callback's idempotency key).
    if (auto marked = mailbox_.mark(done, options_.keyword); !marked) return marked.error();
    processed += done.size();
    if (done.size() < uids->size()) return processed;  // some wait for the next poll
  }
}

EmailTrigger::Outcome EmailTrigger::handle(const FetchedHeader& mail) {
  if (mail.too_large) return {"ignored", "its header is over " + std::to_string(options_.max_header) + " bytes"};
  auto header = parse_mail_header(mail.header);
  if (!header) return {"ignored", header.error().message};
  auto address = normalize_email(header->from);
  if (!address) return {"ignored", "the sender's address: " + address.error().message};
  {
    keeper_.received();
    std::lock_guard lock(mutex_);
    if (!header->message_id.empty()) {
      if (!seen_ids_.insert(header->message_id).second) {
        return {"ignored", "repeated Message-ID " + escape_control(header->message_id)};
      }
      seen_order_.push_back(header->message_id);
      if (seen_order_.size() > remembered_ids) {
        seen_ids_.erase(seen_order_.front());
        seen_order_.pop_front();
      }
    }
  }
  auto account = store_.accounts().find_by_email(*address);
  if (!account) {
    std::lock_guard lock(mutex_);
    keeper_.error("the store: " + escape_control(account.error().message));
    seen_ids_.erase(header->message_id);  // taken again at the next poll
    return {"retry", account.error().message};
  }
  if (!*account) return {"ignored", "unknown sender " + escape_control(*address)};
  // From here the sender is a customer (the reply mail, when there is one, goes to it).
  auto command = parse_subject(header->subject);
  if (!command) return {"refused", command.error().message};
  const bool known_number = std::any_of(options_.access_numbers.begin(), options_.access_numbers.end(),
                                        [&](const std::string& n) { return n.ends_with(command->access_suffix); });
  if (!known_number) return {"refused", "no access number ends in " + command->access_suffix};
  if ((**account).caller_numbers.empty()) return {"refused", "account " + (**account).id + " has no registered number to call"};
  if ((**account).status != AccountStatus::active) return {"refused", "account " + (**account).id + " is disabled"};
  CallbackForm form{.caller = (**account).caller_numbers.front().e164(),
                    .callee = command->callee,
                    .payer = AccountId{(**account).id},
                    .origin = Origin::email,
                    .idempotency_key = header->message_id.empty() ? std::string() : "email:" + header->message_id};
  form.ask_callee = true;  // a subject without "#B": A is asked for it once A answers (the IVR)
  form.metadata["email_from"] = *address;
  auto request = make_request(form, plan_);
  if (!request) return {"refused", request.error().field + ": " + request.error().message};
  TriggerSink* sink = nullptr;
  {
    std::lock_guard lock(mutex_);
    sink = sink_;
  }
  if (sink == nullptr) return {"retry", "not started"};
  Tracking tracking;
  tracking.accepted = [this, uid = mail.uid](Result<std::shared_ptr<CallbackHandle>> handle) {
    count(handle ? "accepted" : "refused");
    if (handle) return context_.log.info(component, "mail " + std::to_string(uid) + ": accepted as " + (*handle)->id());
    context_.log.info(component, "mail " + std::to_string(uid) + ": the service refused it: " +
                                     escape_control(handle.error().message));
  };
  sink->track(std::move(*request), std::move(tracking));
  return {"submitted", {}};
}

}  // namespace callback::trigger_email
