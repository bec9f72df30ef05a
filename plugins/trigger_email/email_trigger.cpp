#include "email_trigger.hpp"

#include <callback/account.hpp>
#include <callback/callback_request.hpp>
#include <callback/secret.hpp>
#include <callback/service.hpp>

namespace callback::trigger_email {

namespace {
constexpr std::string_view component = "callback.trigger.email";
constexpr std::size_t remembered_ids = 100'000;
}  // namespace

EmailTrigger::EmailTrigger(Context& context, Store& store, const NumberingPlan& plan, EmailOptions options)
    : context_(context), store_(store), plan_(plan), options_(std::move(options)), mailbox_(options_.imap) {
  if (!options_.smtp.url.empty()) replies_ = std::make_unique<Outbox>(context_.log, std::string(component));
  reply_limit_.share(store.rate_counter(), "email.replies");  // every node counts in the same windows
}

void EmailTrigger::reply(const std::string& to, const std::string& in_reply_to, std::string subject,
                         std::string body) {
  if (!replies_) return;
  if (reply_limit_.hit(to, context_.clock.now()).count() > 0) {
    context_.log.warning(component, "no reply to " + escape_control(to) + ": " +
                                        std::to_string(options_.replies_per_hour) + " this hour already");
    return;
  }
  const auto at = options_.smtp.from.rfind('@');
  const std::string domain = at == std::string::npos ? "callback.invalid" : options_.smtp.from.substr(at + 1);
  const std::string data = format_mail({.to = to, .subject = std::move(subject), .body = std::move(body),
                                        .in_reply_to = in_reply_to},
                                       options_.smtp.from, context_.clock.now(),
                                       hex_encode(random_bytes(12)) + "@" + domain);
  replies_->send({.what = "reply to " + escape_control(to),
                  .attempt = [smtp = options_.smtp, to, data](std::string& why) {
                    return send_mail(smtp, to, data, why);
                  }});
}

void EmailTrigger::reply_refused(const std::string& to, const MailHeader& request, const std::string& reason) {
  reply(to, request.message_id, "Your callback request was not taken",
        "We could not take your request (subject \"" + escape_control(request.subject) + "\"): " + reason +
            ".\n\nWrite the subject as the last 7 digits of the access number, then # and the number to call "
            "(5551234#13900139000). Without # and a number we call you and ask for it.\n");
}

void EmailTrigger::reply_outcome(const std::string& to, const std::string& in_reply_to, const CallEvent& event) {
  const auto& callee = event.call.request().callee;
  const std::string b = callee ? "+" + callee->digits() : "the number you keyed";
  const std::string text = outcome_text(event.outcome, b, event.call.leg_b().billsec(),
                                        event.cost && !event.cost->is_zero() ? event.cost->format() : std::string());
  reply(to, in_reply_to, callee ? "Your callback to " + b : "Your callback",
        text + "\n\n(callback " + event.call.id() + ")\n");
}

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
  const auto refuse = [&](std::string reason) -> Outcome {
    reply_refused(*address, *header, reason);
    return {"refused", std::move(reason)};
  };
  auto command = parse_subject(header->subject);
  if (!command) return refuse(command.error().message);
  const bool known_number = std::any_of(options_.access_numbers.begin(), options_.access_numbers.end(),
                                        [&](const std::string& n) { return n.ends_with(command->access_suffix); });
  if (!known_number) return refuse("no access number ends in " + command->access_suffix);
  if ((**account).caller_numbers.empty()) return refuse("account " + (**account).id + " has no registered number to call");
  if ((**account).status != AccountStatus::active) return refuse("account " + (**account).id + " is disabled");
  CallbackForm form{.caller = (**account).caller_numbers.front().e164(),
                    .callee = command->callee,
                    .payer = AccountId{(**account).id},
                    .origin = Origin::email,
                    .idempotency_key = header->message_id.empty() ? std::string() : "email:" + header->message_id};
  form.ask_callee = true;  // a subject without "#B": A is asked for it once A answers (the IVR)
  form.metadata["email_from"] = *address;
  auto request = make_request(form, plan_);
  if (!request) return refuse(request.error().field + ": " + request.error().message);
  TriggerSink* sink = nullptr;
  {
    std::lock_guard lock(mutex_);
    sink = sink_;
  }
  if (sink == nullptr) return {"retry", "not started"};
  Tracking tracking;
  tracking.accepted = [this, alive = std::weak_ptr<int>(alive_), uid = mail.uid, from = *address,
                       request_header = *header](Result<std::shared_ptr<CallbackHandle>> handle) {
    if (alive.expired()) return;
    count(handle ? "accepted" : "refused");
    if (handle) return context_.log.info(component, "mail " + std::to_string(uid) + ": accepted as " + (*handle)->id());
    context_.log.info(component, "mail " + std::to_string(uid) + ": the service refused it: " +
                                     escape_control(handle.error().message));
    reply_refused(from, request_header, handle.error().message);
  };
  tracking.ended = [this, alive = std::weak_ptr<int>(alive_), from = *address,
                    id = header->message_id](const CallEvent& event) {
    if (alive.expired()) return;
    reply_outcome(from, id, event);
  };
  sink->track(std::move(*request), std::move(tracking));
  return {"submitted", {}};
}

}  // namespace callback::trigger_email
