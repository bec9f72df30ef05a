#include <callback_internal/callback_service.hpp>

#include "journal.hpp"

#include <boost/asio/post.hpp>

#include <csignal>
#include <cstdlib>
#include <random>
#include <set>
#include <unordered_map>

namespace callback {

CallObserver::~CallObserver() = default;

std::optional<Announcement> announcement_for(const LegOutcome& outcome) {
  if (outcome.a_hung_up) return std::nullopt;  // nobody left to hear it
  if (outcome.b_answered) {
    if (outcome.limit_reached) return Announcement::time_up;
    if (outcome.b_hung_up) return Announcement::partner_hangup;
    return std::nullopt;  // we ended it (cancel)
  }
  // B never answered: the cause says why (the seed's s-17, s-18, s-19, s-21, s-38).
  switch (outcome.b_cause.code()) {
    case 17:
    case 21: return Announcement::partner_busy;
    case 18:
    case 19: return Announcement::partner_away;
    case 34:
    case 38:
    case 42: return Announcement::system_busy;
    default: return Announcement::call_failed;
  }
}

struct CallbackService::Active {
  explicit Active(Call c) : call(std::move(c)) {}
  Call call;
  std::string reservation;     // while it is to be settled or released
  std::string reservation_id;  // kept for the journal
  std::string server;          // the engine's, once an event named it
  bool journaled = false;      // has an entry in the journal
  std::chrono::seconds limit{0};
  std::chrono::seconds warning_before{0}, warning_repeat{0};
  bool finishing = false;  // billing is settling; engine events no longer matter
  std::function<void(Result<std::string>)> pending_done;  // submit()'s answer, while authorizing
  bool b_dialed = false;
  bool a_ended = false;
  bool b_ended = false;
  bool cancel_requested = false;
  bool limit_reached = false;
  bool engine_lost = false;
  bool unobserved = false;  // the engine did not see it end (LegEvent::unobserved)
  bool a_hung_up = false;  // A's own phone ended the call
  bool b_hung_up = false;
  int timeouts = 0;
  std::string b_dial_status;
  bool authorized = false;
  std::optional<Error> refusal;
  TimerHandle stage_timer;
  // Money held in slices (billing's debit interval): the talk time the reservation covers
  // now, the size of one slice, and the timer that extends it or ends the call.
  std::chrono::seconds covered{0};
  std::chrono::seconds slice{0};
  TimerHandle slice_timer;
  std::chrono::seconds money_retry_delay{0};  // billing failed to settle or release: the next wait
  bool money_ran_out = false;  // the service hung up: ends as "time up", like the limit
  // The legs' channels, once the engine named them (originate's answer, or an event).
  Channel a_channel, b_channel;
  std::optional<HangupCause> hangup_cause;  // we hang up: legs whose channel comes later too
  bool a_hangup_sent = false, b_hangup_sent = false;
  std::string language;  // of A's announcements
  bool announcing = false;  // step flow: A hears B's outcome before we hang up
  int ivr_asked = 0;        // the IVR: times A was asked for the callee
  bool ivr_failed = false;  // the IVR gave up (no number, or B refused): A hears "call failed"
};

namespace {

// A payer without the money is asked to pay (HTTP 402); every other refusal is a policy's.
ErrorKind kind_of(DenialReason reason) {
  return reason == DenialReason::insufficient_balance ? ErrorKind::payment_required : ErrorKind::forbidden;
}

std::string random_prefix() {
  std::random_device random;
  constexpr char hex[] = "0123456789abcdef";
  std::string prefix;
  for (int i = 0; i < 6; ++i) prefix.push_back(hex[random() % 16]);
  return prefix;
}

std::string payer_account(const Payer& payer) {
  if (const auto* account = std::get_if<AccountId>(&payer)) return account->value;
  return std::get<CampaignId>(payer).value;
}

// `service_number`: what A's phone showed when the callee was never known (the IVR got none).
Cdr make_cdr(const Call& call, const Leg& leg, const PhoneNumber& service_number) {
  Cdr cdr;
  const bool is_a = leg.role == LegRole::a;
  const PhoneNumber& a = call.request().caller;
  const std::string b = call.request().callee ? call.request().callee->digits() : service_number.digits();
  cdr.calldate = leg.started.value_or(call.created_at());
  cdr.src = is_a ? b : a.digits();  // the number the leg's phone showed
  cdr.clid = "\"Callback\" <" + cdr.src + ">";
  cdr.dst = leg.number ? leg.number->digits() : std::string();
  cdr.dcontext = "callback";
  cdr.channel = leg.channel;
  cdr.dstchannel = is_a ? call.leg_b().channel : std::string();
  cdr.lastapp = "Dial";
  cdr.duration = leg.duration().count();
  cdr.billsec = leg.billsec().count();  // Asterisk's, when the engine reported it
  cdr.billsec = std::min(cdr.billsec, std::max(cdr.duration, cdr.billsec));
  cdr.duration = std::max(cdr.duration, cdr.billsec);
  cdr.disposition = disposition_for(leg.cause, leg.answered.has_value());
  cdr.accountcode = payer_account(call.request().payer);
  cdr.uniqueid = leg.uniqueid;
  cdr.userfield = "Hangupcause:" + std::to_string(leg.cause.code());  // as the seed's dialplan
  cdr.callback_id = call.id();
  cdr.leg = leg.role;
  cdr.hangup_cause = leg.cause;
  return cdr;
}

}  // namespace

// Follows the calls that track() took, for their triggers. On the service thread.
class CallbackService::Tracker final : public CallObserver {
 public:
  explicit Tracker(CallbackService& service) : service_(service) {}

  void track(CallbackRequest request, Tracking tracking) {
    auto tracked = std::make_shared<Tracked>();
    tracked->tracking = std::move(tracking);
    // The service's first event while it takes the request is the new call's own (it
    // enters `authorizing` before anything else can happen); a refusal of the request as
    // it stands, or a repeated idempotency key, comes with none.
    binding_ = tracked;
    service_.submit(std::move(request), [this, tracked](Result<std::string> id) { accept(tracked, id); });
    binding_.reset();
  }

  void on_call_event(const CallEvent& event) override {
    if (binding_ && binding_->id.empty()) {
      binding_->id = event.call.id();
      tracked_[binding_->id] = binding_;
    }
    if (tracked_.empty()) return;
    auto it = tracked_.find(event.call.id());
    if (it == tracked_.end()) return;
    auto tracked = it->second;
    if (tracked->tracking.event) tracked->tracking.event(event);
    if (!is_final(event.call.state())) return;
    if (!tracked->told) {
      tracked->final_event = event;  // told after `accepted`, or dropped if that is a refusal
      return;
    }
    tracked_.erase(event.call.id());
    if (tracked->tracking.ended) tracked->tracking.ended(event);
  }

 private:
  struct Tracked {
    Tracking tracking;
    std::string id;
    bool told = false;                     // `accepted` was called
    std::optional<CallEvent> final_event;  // the end, when it came before `accepted` was told
  };
  class Handle final : public CallbackHandle {
   public:
    Handle(CallbackService& service, std::string id) : service_(service), alive_(service.alive_), id_(std::move(id)) {}
    const std::string& id() const noexcept override { return id_; }
    void cancel() override {
      boost::asio::post(service_.context_.io, [&service = service_, alive = alive_, id = id_] {
        if (!alive.expired()) (void)service.cancel(id);  // an ended one: nothing to do
      });
    }

   private:
    CallbackService& service_;
    std::weak_ptr<int> alive_;
    std::string id_;
  };

  void accept(const std::shared_ptr<Tracked>& tracked, const Result<std::string>& id) {
    tracked->told = true;
    if (!id) {
      // Refused, or never placed: there is no call to follow (`ended` is for accepted ones).
      if (!tracked->id.empty()) tracked_.erase(tracked->id);
      if (tracked->tracking.accepted) tracked->tracking.accepted(id.error());
      return;
    }
    if (tracked->id.empty()) {  // a repeated idempotency key: the call it named before
      tracked->id = *id;
      auto call = service_.find(*id);
      if (call && is_final(call->state())) {
        tracked->final_event = CallEvent{.call = *call, .previous = call->state()};
      } else {
        tracked_[*id] = tracked;
      }
    }
    if (tracked->tracking.accepted) {
      tracked->tracking.accepted(std::shared_ptr<CallbackHandle>(std::make_shared<Handle>(service_, *id)));
    }
    if (tracked->final_event) {
      tracked_.erase(*id);
      if (tracked->tracking.ended) tracked->tracking.ended(*tracked->final_event);
    }
  }

  CallbackService& service_;
  std::unordered_map<std::string, std::shared_ptr<Tracked>> tracked_;
  std::shared_ptr<Tracked> binding_;
};

CallbackService::CallbackService(Context& context, Engine& engine, Billing* billing, Store& store,
                                 ServiceOptions options)
    : context_(context),
      engine_(engine),
      billing_(billing),
      store_(store),
      options_(std::move(options)),
      id_prefix_(random_prefix()),
      started_(context.metrics.counter("callback_started_total", "Callbacks started")),
      in_flight_gauge_(context.metrics.gauge("callback_in_flight", "Callbacks in flight")),
      setup_latency_(context.metrics.histogram("callback_setup_seconds",
                                               "From the request to A and B talking (includes A's ringing)",
                                               {}, {0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90})),
      journal_(store.journal()) {
  if (const char* point = std::getenv("CALLBACK_CRASH_AT")) crash_at_ = point;
  const auto can = engine_.capabilities();
  step_flow_ = !can.dialplan_flow && can.step_flow;
  engine_events_ = engine_.subscribe([this](const LegEvent& event) { on_leg_event(event); });
  tracker_ = std::make_unique<Tracker>(*this);
  observers_.push_back(tracker_.get());
}

bool CallbackService::on_key_taken(const std::string& id, const std::string& other) {
  auto it = active_.find(id);
  if (it == active_.end()) return true;
  // Only the first write can meet another node's key (later ones carry the same key): then
  // nothing was asked of billing or dialed yet.
  if (it->second->authorized || it->second->call.state() != CallState::authorizing) return false;
  // Another node has a callback under this idempotency key: that one is the answer, and
  // this one ends here.
  Done done = std::exchange(it->second->pending_done, nullptr);
  it->second->journaled = false;
  refuse(*it->second,
         Error{"idempotency_key_taken", "the idempotency key names callback " + other + " (on another node)", {}},
         nullptr);
  if (done) done(other);
  return true;
}

void CallbackService::drop_taken(const std::string& id, const Error& why) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  // Another node took this call over (this node's lease ran out): it follows the call,
  // settles it and writes its records now. Nothing more is done here, no money moved.
  context_.log.warning("callback.service", "dropping " + id + ": " + why.message);
  Active& active = *it->second;
  active.stage_timer.cancel();
  active.slice_timer.cancel();
  if (!active.call.request().idempotency_key.empty()) idempotency_.erase(active.call.request().idempotency_key);
  active_.erase(it);
  in_flight_gauge_.set(static_cast<std::int64_t>(active_.size()));
}

void CallbackService::crash_point(std::string_view point) const {
  if (!crash_at_.empty() && crash_at_ == point) std::raise(SIGKILL);  // as kill -9 would, at a known moment
}

CallbackService::~CallbackService() {
  cdr_retry_.cancel();
  std::vector<Cdr> cdrs = std::exchange(pending_cdrs_, {});
  std::vector<JournalEntry> entries = std::exchange(pending_journal_, {});
  for (auto& [id, active] : active_) {
    active->stage_timer.cancel();
    active->slice_timer.cancel();
  }
  if (journal_ != nullptr) {
    // Shutting down with calls still in flight (callbackd cancels and waits first; this is
    // the last line): they stay open in the journal, as after a crash, and the next start
    // (or `callbackctl reconcile`) finds out from Asterisk how they ended and bills them
    // then, once. What has ended is written now: its final entries with its CDRs, in one
    // transaction, so a restart never completes it a second time.
    if (!cdrs.empty() || !entries.empty()) {
      journal_->write_async(std::move(entries), std::move(cdrs), [](Status, std::vector<Cdr>) {});
    }
    store_.cdrs().flush();  // waits for the store's writer: the write above is on disk
    return;
  }
  // Without a journal nothing would end them later: money and records end here, once.
  // Blocking is fine here.
  const Timestamp now = context_.clock.now();
  for (auto& [id, active] : active_) {
    Call& call = active->call;
    if (call.state() == CallState::authorizing) continue;  // nothing placed; a late grant is given back
    for (Leg* leg : {&call.leg_a(), &call.leg_b()}) {
      if (leg->state == LegState::ended || (leg == &call.leg_b() && !active->b_dialed)) continue;
      leg->state = LegState::ended;
      if (!leg->started) leg->started = call.created_at();
      leg->ended = now;
      leg->cause = HangupCause::canceled();
    }
    std::optional<Money> cost;
    if (!active->finishing && billing_ != nullptr && !active->reservation.empty()) {
      const auto billsec = call.leg_b().billsec();
      if (call.leg_b().answered && billsec.count() > 0) {
        if (auto settled = billing_->authorizer().settle(active->reservation, billsec)) cost = *settled;
      } else {
        (void)billing_->authorizer().release(active->reservation);
      }
    }
    cdrs.push_back(make_cdr(call, call.leg_a(), options_.service_number));
    if (active->b_dialed) {
      cdrs.push_back(make_cdr(call, call.leg_b(), options_.service_number));
      cdrs.back().cost = cost;
    }
  }
  if (!cdrs.empty()) (void)store_.cdrs().append(cdrs);  // observers may be gone: store only
  store_.cdrs().flush();  // and what is still on its way to the disk
}

std::vector<std::string> CallbackService::in_flight_ids() const {
  std::vector<std::string> ids;
  ids.reserve(active_.size());
  for (const auto& [id, active] : active_) ids.push_back(id);
  return ids;
}

std::string CallbackService::next_id() {
  // The sequence zero-padded to 8 digits: every id is as long as the 100,000,000th, so a
  // long-running service's memory does not step up when the ids grow a digit (soak test).
  std::string n = std::to_string(++sequence_);
  if (n.size() < 8) n.insert(0, 8 - n.size(), '0');
  return "cb-" + id_prefix_ + "-" + n;
}

void CallbackService::count_finished(CallState state, std::string_view outcome) {
  context_.metrics
      .counter("callback_finished_total", "Callbacks finished, by final state and outcome",
               "state=\"" + std::string(to_string(state)) + "\",outcome=\"" + std::string(outcome) + "\"")
      .add();
}

void CallbackService::notify(const CallEvent& event) {
  // An observer's failure must not cost the others their event, nor escape into the
  // event loop (this runs inside the engine's read handlers).
  for (auto* observer : observers_) {
    try {
      observer->on_call_event(event);
    } catch (const std::exception& e) {
      context_.log.error("callback.service", std::string("an observer failed: ") + e.what());
    } catch (...) {
      context_.log.error("callback.service", "an observer failed");
    }
  }
}

namespace {

// A request the service stopped (a crash) before placing it was not refused by policy: it
// is shown (the client never got an answer) and its key is free again all the same.
std::string refusal_outcome(const Error& error) { return error.code == "interrupted" ? "interrupted" : "refused"; }

// Who asked (the front end's "owner" metadata: an API key id), for listings by client.
std::string client_of(const Call& call) {
  const auto& metadata = call.request().metadata;
  auto it = metadata.find("owner");
  return it == metadata.end() ? std::string() : it->second;
}

}  // namespace

void CallbackService::enter(Active& active, CallState to, std::optional<Announcement> announcement) {
  const CallState previous = active.call.state();
  if (previous == to) return;
  if (auto ok = active.call.transition(to, context_.clock.now()); !ok) {
    context_.log.warning("callback.service", ok.error().message);
    return;
  }
  if (to == CallState::bridged) {
    setup_latency_.observe(std::chrono::duration_cast<std::chrono::nanoseconds>(context_.clock.now() -
                                                                               active.call.created_at()));
  }
  CallEvent event{active.call, previous, announcement, {}};
  if (active.authorized) event.limit = active.limit;
  event.error = active.refusal;
  if (is_final(to)) event.outcome = active.refusal ? refusal_outcome(*active.refusal) : to == CallState::canceled ? "canceled" : "failed";
  notify(event);
}

Result<std::string> CallbackService::start(CallbackRequest request) { return begin(std::move(request), nullptr); }

void CallbackService::track(CallbackRequest request, Tracking tracking) {
  tracker_->track(std::move(request), std::move(tracking));
}

void CallbackService::submit(CallbackRequest request, std::function<void(Result<std::string>)> done) {
  (void)begin(std::move(request), std::move(done));
}

Result<std::string> CallbackService::begin(CallbackRequest request, Done done) {
  auto refuse_now = [&](Error error) -> Result<std::string> {
    if (done) done(error);
    return error;
  };
  if (auto ok = request.validate(); !ok) return refuse_now(ok.error());
  if (!request.callee) {
    const auto can = engine_.capabilities();
    if (!can.collect_digits || !(can.step_flow || can.dialplan_ivr)) {
      return refuse_now(Error{"unsupported",
                              "this engine cannot ask the caller for the number to call (it needs digit collection "
                              "and the step flow or an IVR in its dialplan); give the callee in the request",
                              "callee"});
    }
  }
  if (options_.max_in_flight != 0 && active_.size() >= options_.max_in_flight) {
    return refuse_now(Error{"overloaded",
                            std::to_string(active_.size()) + " callbacks are in flight, the most this service takes; "
                                                             "try again shortly",
                            {}}.as(ErrorKind::unavailable));
  }
  if (!request.idempotency_key.empty()) {
    if (auto it = idempotency_.find(request.idempotency_key); it != idempotency_.end()) {
      if (done) done(it->second);
      return it->second;
    }
  }
  const std::string id = next_id();
  auto owned = std::make_unique<Active>(Call{id, request, context_.clock.now()});
  Active& active = *owned;
  active_.emplace(id, std::move(owned));
  if (!request.idempotency_key.empty()) idempotency_.emplace(request.idempotency_key, id);
  started_.add();
  in_flight_gauge_.set(static_cast<std::int64_t>(active_.size()));
  enter(active, CallState::authorizing);

  // How long the call may last: what billing authorizes, capped by the campaign, the
  // request and the service's own maximum.
  active.limit = options_.max_duration;
  active.warning_before = options_.warning_before;
  active.warning_repeat = options_.warning_repeat;
  const auto* campaign_id = std::get_if<CampaignId>(&request.payer);
  if (campaign_id != nullptr) {
    // The service's own limits for the campaign, if it has any; with billing, billing's
    // campaign policy decides too (and is enough: its grant carries the limit).
    auto campaign = options_.campaigns.find(campaign_id->value);
    if (campaign != options_.campaigns.end()) {
      active.limit = std::min(active.limit, campaign->second.limit);
      active.warning_before = campaign->second.warning_before;
      active.warning_repeat = campaign->second.warning_repeat;
    } else if (billing_ == nullptr) {
      Error error{"unknown_campaign", "no campaign \"" + campaign_id->value + "\"", "campaign"};
      refuse(active, error, done);
      return error;
    }
  }
  if (request.limit) active.limit = std::min(active.limit, *request.limit);
  if (billing_ == nullptr && campaign_id == nullptr) {
    Error error{"billing_unavailable", "account callbacks need a billing backend; none is configured", "account", {},
                ErrorKind::unavailable};
    refuse(active, error, done);
    return error;
  }
  active.pending_done = std::move(done);
  arm_stage_timer(active, std::chrono::seconds{0});  // billing and the journal get a deadline
  // In the journal before billing reserves anything: a crash from here on leaves a trace
  // that the next start settles or releases.
  write_journal(active, [this, id] { authorize(id); });
  return id;
}

void CallbackService::authorize(const std::string& id) {
  auto found = active_.find(id);
  if (found == active_.end()) return;
  Active& active = *found->second;
  const CallbackRequest& request = active.call.request();
  crash_point("authorizing");  // in the journal, billing not asked yet
  if (billing_ == nullptr || !request.callee) {
    // Without a callee (the IVR) billing is asked once A has dialled it: nothing is
    // reserved for A's leg, which the trigger vouched for (a registered caller, a campaign).
    on_authorized(id, Authorization{.allowed = true, .max_duration = active.limit}, nullptr);
    return;
  }
  ask_billing(active, [this, id](Result<Authorization> decision) { on_authorized(id, std::move(decision), nullptr); });
}

void CallbackService::ask_billing(const Active& active, std::function<void(Result<Authorization>)> then) {
  const CallbackRequest& request = active.call.request();
  // The answer comes on billing's thread: carry it back to ours. If the service is gone
  // by then, a grant is given back at once (billing outlives the service).
  std::weak_ptr<int> alive = alive_;
  boost::asio::io_context& io = context_.io;
  Authorizer& authorizer = billing_->authorizer();
  authorizer.authorize_async(
      {request.payer, request.caller, *request.callee, active.call.id(), request.secret, active.limit},
      [alive, &io, &authorizer, then = std::move(then)](Result<Authorization> decision) mutable {
        auto give_back = [&authorizer](const Result<Authorization>& d) {
          if (d && d->allowed && !d->reservation.empty()) authorizer.release_async(d->reservation, [](Status) {});
        };
        if (alive.expired()) return give_back(decision);
        boost::asio::post(io, [alive, decision = std::move(decision), give_back, then = std::move(then)]() mutable {
          if (alive.expired()) return give_back(decision);
          then(std::move(decision));
        });
      });
}

void CallbackService::refuse(Active& active, const Error& error, const Done& done) {
  active.stage_timer.cancel();
  // A refused request placed nothing: the same key may try again.
  if (!active.call.request().idempotency_key.empty()) idempotency_.erase(active.call.request().idempotency_key);
  if (!active.cancel_requested) active.refusal = error;
  enter(active, active.cancel_requested ? CallState::canceled : CallState::failed);
  const std::string outcome = active.cancel_requested ? "canceled" : refusal_outcome(error);
  count_finished(active.call.state(), outcome);
  if (active.journaled) {
    CallEvent ending{active.call, active.call.state(), {}, {}, {}, active.refusal, outcome};
    queue_final_entry(journal_entry(active, &ending));
  }
  retire(active);  // destroys `active`
  if (done) done(error);
}

void CallbackService::on_authorized(const std::string& id, Result<Authorization> decision, Done done) {
  auto it = active_.find(id);
  if (it == active_.end()) {
    // Given up on meanwhile (billing was too slow): give the grant back.
    if (decision && decision->allowed && billing_ != nullptr && !decision->reservation.empty()) {
      billing_->authorizer().release_async(decision->reservation, [](Status) {});
    }
    return;
  }
  if (!done) done = std::exchange(it->second->pending_done, nullptr);
  Active& active = *it->second;
  if (!decision) {
    return refuse(
        active,
        Error{"billing_unavailable", "billing failed: " + decision.error().message, {}}.as(ErrorKind::unavailable),
        done);
  }
  if (!decision->allowed) {
    const auto reason = decision->reason.value_or(DenialReason::unavailable);
    return refuse(active,
                  Error{"denied." + std::string(to_string(reason)),
                        decision->message.empty() ? std::string(to_string(reason)) : decision->message,
                        decision->field.empty() ? "payer" : decision->field, decision->rule}.as(kind_of(reason)),
                  done);
  }
  active.reservation = decision->reservation;
  active.reservation_id = decision->reservation;
  crash_point("authorized");  // the grant is durable, nothing is dialed yet
  active.limit = std::min(active.limit, decision->max_duration);
  note_slice(active, *decision);
  if (active.limit <= std::chrono::seconds{0} || active.cancel_requested) {
    if (billing_ != nullptr && !active.reservation.empty()) {
      billing_->authorizer().release_async(active.reservation, [](Status) {});
    }
    return refuse(active,
                  active.cancel_requested
                      ? Error{"canceled", "canceled before it was dialed", "id"}
                      : Error{"denied.insufficient_balance", "no talk time is available", "payer"}.as(
                            ErrorKind::payment_required),
                  done);
  }
  active.authorized = true;
  enter(active, CallState::dialing_a);
  const CallbackRequest& request = active.call.request();
  const PhoneNumber& a = request.caller;
  // The request's own language (validated with it), else the paying account's, which billing
  // read with the account's row; checked here too, as it goes into an AMI action.
  std::string language = request.language;
  if (language.empty() && !decision->language.empty()) {
    if (auto ok = check_language(decision->language); ok) {
      language = decision->language;
    } else {
      context_.log.warning("callback.service", id + ": the account's language is ignored: " + ok.error().message);
    }
  }
  active.language = language;
  OriginateRequest originate{
      .call_id = id,
      .leg = LegRole::a,
      .number = a,
      .caller_id = options_.show_callee_to_caller && request.callee ? *request.callee : options_.service_number,
      .caller_name = "Callback",
      .ring_timeout = options_.a_ring_timeout,
      .connect = std::nullopt,
      .account_code = payer_account(request.payer),
      .language = std::move(language),
  };
  // Step flow: B is dialed by dial_b once A has answered (and, without a callee, dialled it).
  // A dialplan flow without a callee holds A in the engine's IVR until connect_b.
  originate.ivr = !step_flow_ && !request.callee;
  if (!step_flow_ && request.callee) {
    originate.connect = Connect{.number = *request.callee,
                                .caller_id = a,
                                .ring_timeout = options_.b_ring_timeout,
                                .limit = active.limit,
                                .warning_before = std::min(active.warning_before, active.limit),
                                .warning_repeat = active.warning_repeat};
  }
  arm_stage_timer(active, options_.a_ring_timeout);
  // In the journal as dialing, with its reservation, before anything is dialed: a restart
  // then looks for it on Asterisk (a crash before this write finds it "authorizing" and
  // gives the grant back).
  active.pending_done = std::move(done);
  write_journal(active, [this, id, originate = std::move(originate)] { place(id, originate); });
}

void CallbackService::place(const std::string& id, const OriginateRequest& originate) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  Done done = std::exchange(active.pending_done, nullptr);
  if (active.cancel_requested) {  // while the journal was written
    if (billing_ != nullptr && !active.reservation.empty()) {
      billing_->authorizer().release_async(std::exchange(active.reservation, std::string()), [](Status) {});
    }
    return refuse(active, Error{"canceled", "canceled before it was dialed", "id"}, done);
  }
  std::weak_ptr<int> alive = alive_;
  engine_.originate(originate, [this, alive, id, done = std::move(done)](Result<Channel> placed) {
    if (alive.expired()) return;
    auto found = active_.find(id);
    if (placed && found != active_.end() && found->second->a_channel.empty()) {
      found->second->a_channel = *placed;
      if (found->second->hangup_cause) hang_up_leg(*found->second, LegRole::a);  // canceled meanwhile
    }
    if (!done) return;
    if (placed) return done(id);
    // The engine ends the leg too (its `ended` event), so the call ends as engine lost.
    done(Error{"engine_unavailable", "the call could not be placed: " + placed.error().message, {}}.as(
        ErrorKind::unavailable));
  });
}

void CallbackService::hang_up(Active& active, HangupCause cause) {
  if (!active.hangup_cause) active.hangup_cause = cause;
  hang_up_leg(active, LegRole::a);
  if (active.b_dialed) hang_up_leg(active, LegRole::b);
}

void CallbackService::hang_up_leg(Active& active, LegRole leg) {
  const bool is_a = leg == LegRole::a;
  const Channel& channel = is_a ? active.a_channel : active.b_channel;
  bool& sent = is_a ? active.a_hangup_sent : active.b_hangup_sent;
  if (channel.empty() || sent || (is_a ? active.a_ended : active.b_ended)) return;
  sent = true;
  const std::string id = active.call.id();
  engine_.hangup(channel, active.hangup_cause.value_or(HangupCause::normal()), [this, id](Status done) {
    if (!done && done.error().code != engine_errc::channel_gone) {
      context_.log.warning("callback.service", id + ": hanging up failed: " + done.error().message);
    }
  });
}

Status CallbackService::cancel(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end()) return Error{"unknown_callback", "no callback " + id + " in flight", "id"};
  Active& active = *it->second;
  if (active.cancel_requested || active.finishing) return ok_status();  // ending anyway
  active.cancel_requested = true;
  if (active.call.state() == CallState::authorizing) return ok_status();  // billing's answer ends it
  hang_up(active, HangupCause::canceled());
  arm_stage_timer(active, std::chrono::seconds{0});
  return ok_status();
}

std::optional<Call> CallbackService::find(const std::string& id) const {
  if (auto it = active_.find(id); it != active_.end()) return it->second->call;
  if (auto it = finished_.find(id); it != finished_.end()) return it->second;
  return std::nullopt;
}

void CallbackService::arm_stage_timer(Active& active, std::chrono::seconds budget) {
  active.stage_timer.cancel();
  const std::string id = active.call.id();
  active.stage_timer = context_.clock.schedule(budget + options_.stage_grace, [this, id] { on_stage_timeout(id); });
}

void CallbackService::on_stage_timeout(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  if (active.call.state() == CallState::authorizing) {
    // Nothing placed yet; a grant that still comes is given back (on_authorized).
    Done done = std::exchange(active.pending_done, nullptr);
    return refuse(active, Error{"billing_unavailable", "billing did not answer in time", {}}.as(ErrorKind::unavailable),
                  done);
  }
  if (active.timeouts++ == 0) {
    // The engine went quiet past the stage's own time: end the call ourselves.
    context_.log.warning("callback.service", id + ": no word from the engine in state " +
                                                 std::string(to_string(active.call.state())) + "; hanging up");
    hang_up(active, HangupCause::engine_lost());
    arm_stage_timer(active, std::chrono::seconds{0});
    return;
  }
  finish(active, true);
}

void CallbackService::on_leg_event(const LegEvent& event) {
  auto it = active_.find(event.call_id);
  if (it == active_.end() || it->second->finishing) return;  // finished already, or not ours
  Active& active = *it->second;
  Call& call = active.call;
  Leg& leg = event.leg == LegRole::a ? call.leg_a() : call.leg_b();
  if (active.server.empty() && !event.server.empty()) active.server = event.server;
  if (!event.channel.empty()) leg.channel = event.channel;
  if (!event.uniqueid.empty()) leg.uniqueid = event.uniqueid;
  const bool is_a = event.leg == LegRole::a;
  if (!event.handle.empty()) {
    Channel& channel = is_a ? active.a_channel : active.b_channel;
    if (channel.empty()) {
      channel = event.handle;
      if (active.hangup_cause && event.type != LegEventType::ended) hang_up_leg(active, event.leg);
    }
  }
  switch (event.type) {
    case LegEventType::dialing:
      if (!leg.started) leg.started = event.at;
      if (leg.state == LegState::idle) leg.state = LegState::dialing;
      if (!is_a) {
        active.b_dialed = true;
        if (call.state() == CallState::dialing_a) enter(active, CallState::a_answered);
        if (call.state() == CallState::a_answered) {
          enter(active, CallState::dialing_b);
          active.timeouts = 0;
          arm_stage_timer(active, options_.b_ring_timeout);
        }
      }
      break;
    case LegEventType::ringing:
      if (!leg.started) leg.started = event.at;
      if (leg.state == LegState::idle || leg.state == LegState::dialing) leg.state = LegState::ringing;
      break;
    case LegEventType::answered:
    case LegEventType::connected:
      if (!leg.started) leg.started = event.at;
      if (!leg.answered) leg.answered = event.at;
      leg.state = LegState::answered;
      if (is_a) {
        // A late "A answered" (AMI can report it after B) must not shorten a live call.
        if (call.state() == CallState::dialing_a) {
          enter(active, CallState::a_answered);
          active.timeouts = 0;
          arm_stage_timer(active, options_.b_ring_timeout);
        }
      } else {
        active.b_dialed = true;
        if (call.state() == CallState::dialing_a) enter(active, CallState::a_answered);
        if (call.state() == CallState::a_answered) enter(active, CallState::dialing_b);
        if (call.state() != CallState::bridged) {
          enter(active, CallState::bridged);
          active.timeouts = 0;
          arm_stage_timer(active, active.limit);
          arm_slice_timer(active, active.covered);  // talk time runs from B's answer
          write_journal(active);
        }
      }
      break;
    case LegEventType::warning:
      context_.metrics.counter("callback_warnings_total", "Time-left warnings played").add();
      break;
    case LegEventType::digits:
      break;
    case LegEventType::ended:
      if (!leg.started) leg.started = event.at;
      leg.ended = event.at;
      leg.state = LegState::ended;
      leg.cause = event.cause;
      leg.reported_billsec = event.billsec;
      if (event.unobserved) active.unobserved = true;
      if (is_a) {
        active.a_ended = true;
        active.a_hung_up = event.far_end_hung_up;
      } else {
        active.b_ended = true;
        active.b_dialed = true;
        active.limit_reached = event.limit_reached;
        active.b_hung_up = event.far_end_hung_up;
        active.b_dial_status = event.dial_status;
      }
      maybe_finish(active);
      break;
  }
  if (step_flow_) {
    auto again = active_.find(event.call_id);
    if (again != active_.end() && !again->second->finishing) step(*again->second, event);
  } else if (event.type == LegEventType::answered && event.leg == LegRole::a) {
    // A dialplan flow without a callee: A answered into the engine's IVR.
    auto again = active_.find(event.call_id);
    if (again == active_.end() || again->second->finishing) return;
    const Active& held = *again->second;
    if (!held.call.request().callee && !held.b_dialed && !held.hangup_cause &&
        held.call.state() == CallState::a_answered) {
      ask_callee(event.call_id);
    }
  }
}

void CallbackService::step(Active& active, const LegEvent& event) {
  const std::string id = active.call.id();
  std::weak_ptr<int> alive = alive_;
  const bool is_a = event.leg == LegRole::a;
  if (event.type == LegEventType::answered && is_a) {
    if (active.b_dialed || active.hangup_cause || active.call.state() != CallState::a_answered) return;
    if (!active.call.request().callee) return ask_callee(id);
    // "Please wait", then B (whatever became of the prompt: a missing one must not stop the call).
    engine_.play(active.a_channel, Prompt::announcement(Announcement::welcome, active.language),
                 [this, alive, id](Status played) {
                   if (alive.expired()) return;
                   if (!played && played.error().code != engine_errc::channel_gone) {
                     context_.log.warning("callback.service", id + ": the welcome prompt: " + played.error().message);
                   }
                   dial_b(id);
                 });
  } else if (event.type == LegEventType::answered) {
    // B answered: bridge them, then the limit.
    engine_.bridge(active.a_channel, active.b_channel, [this, alive, id](Status bridged) {
      if (alive.expired()) return;
      auto it = active_.find(id);
      if (it == active_.end() || it->second->finishing) return;
      Active& call = *it->second;
      if (!bridged) {
        if (bridged.error().code != engine_errc::channel_gone) {
          context_.log.warning("callback.service", id + ": bridging A and B failed: " + bridged.error().message);
        }
        return hang_up(call, HangupCause::normal());
      }
      const TimeLimit limit{.limit = call.limit,
                            .warning_before = std::min(call.warning_before, call.limit),
                            .warning_repeat = call.warning_repeat,
                            .language = call.language};
      engine_.set_time_limit(call.a_channel, call.b_channel, limit, [this, alive, id](Status armed) {
        if (alive.expired() || armed) return;
        auto found = active_.find(id);
        if (found == active_.end() || found->second->finishing) return;
        // Without the engine's limit the call could run past what is paid for: end it.
        context_.log.warning("callback.service", id + ": the time limit could not be set: " + armed.error().message);
        hang_up(*found->second, HangupCause::normal());
      });
    });
  } else if (event.type == LegEventType::ended && is_a) {
    if (active.b_dialed && !active.b_ended) {
      if (!active.hangup_cause) active.hangup_cause = HangupCause::normal();
      hang_up_leg(active, LegRole::b);
    }
  } else if (event.type == LegEventType::ended && !active.a_ended) {
    announce_and_end(active);
  }
}

void CallbackService::dial_b(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  if (active.a_ended || active.hangup_cause || active.b_dialed) return;
  active.b_dialed = true;  // from now on the call ends only with B's end too
  const CallbackRequest& request = active.call.request();
  OriginateRequest b{.call_id = id,
                     .leg = LegRole::b,
                     .number = *request.callee,
                     .caller_id = request.caller,  // B sees A's number
                     .caller_name = "Callback",
                     .ring_timeout = options_.b_ring_timeout,
                     .connect = std::nullopt,
                     .account_code = payer_account(request.payer),
                     .language = {}};
  arm_stage_timer(active, options_.b_ring_timeout);
  std::weak_ptr<int> alive = alive_;
  engine_.originate(b, [this, alive, id](Result<Channel> placed) {
    if (alive.expired() || !placed) return;  // a refusal comes as B's `ended` too
    auto found = active_.find(id);
    if (found == active_.end() || found->second->finishing) return;
    Active& call = *found->second;
    if (call.b_channel.empty()) call.b_channel = *placed;
    if (call.hangup_cause) hang_up_leg(call, LegRole::b);
  });
}

void CallbackService::ask_callee(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  if (active.a_ended || active.hangup_cause) return;
  ++active.ivr_asked;
  const DigitRequest request{.max_digits = 20,  // an international prefix and 15 digits, with room
                             .terminator = '#',
                             .first_digit_timeout = options_.ivr_first_digit_timeout,
                             .inter_digit_timeout = options_.ivr_inter_digit_timeout,
                             .prompt = Prompt::announcement(Announcement::enter_number, active.language)};
  // The prompt, the first digit and up to 20 more: then the engine is late.
  arm_stage_timer(active, std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::seconds{30} + request.first_digit_timeout + 21 * request.inter_digit_timeout));
  std::weak_ptr<int> alive = alive_;
  engine_.collect_digits(active.a_channel, request, [this, alive, id](Result<Digits> digits) {
    if (!alive.expired()) on_callee_digits(id, std::move(digits));
  });
}

void CallbackService::on_callee_digits(const std::string& id, Result<Digits> digits) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  if (active.a_ended || active.hangup_cause) return;  // A's end (or our hangup) ends the call
  if (!digits) {
    if (digits.error().code == engine_errc::channel_gone || digits.error().code == engine_errc::canceled) return;
    context_.log.warning("callback.service", id + ": collecting the number from A failed: " + digits.error().message);
    return give_up_on_callee(
        active,
        Error{"engine_unavailable", "the number could not be collected: " + digits.error().message, "callee"}.as(
            ErrorKind::unavailable));
  }
  // What A pressed, for the log: digits, '*' and '#' only (the engine's), never longer than asked.
  auto wrong = [&](std::string why) -> std::optional<Error> {
    return Error{"no_number", std::move(why), "callee"};
  };
  std::optional<Error> refused;
  std::optional<PhoneNumber> callee;
  if (digits->digits.empty()) {
    refused = wrong(digits->stop == Digits::Stop::terminator ? "A pressed # without a number"
                                                              : "A dialled nothing (" + std::string(to_string(digits->stop)) + ")");
  } else if (digits->digits.find_first_not_of("0123456789") != std::string::npos) {
    refused = wrong("A dialled \"" + digits->digits + "\": only digits make a number");
  } else if (digits->stop == Digits::Stop::max_digits) {
    refused = wrong("A dialled more than " + std::to_string(digits->digits.size()) + " digits");
  } else if (auto parsed = PhoneNumber::parse(digits->digits, options_.numbering); !parsed) {
    refused = wrong("A dialled " + digits->digits + ": " + parsed.error().message);
  } else if (auto dialable = check_dialable(*parsed, options_.numbering, "callee"); !dialable) {
    refused = dialable.error();
  } else if (*parsed == active.call.request().caller) {
    refused = wrong("A dialled their own number");
  } else {
    callee = *parsed;
  }
  if (refused) {
    context_.log.info("callback.service", id + ": the IVR: " + refused->message + " (attempt " +
                                              std::to_string(active.ivr_asked) + " of " +
                                              std::to_string(options_.ivr_attempts) + ")");
    if (active.ivr_asked < options_.ivr_attempts) return ask_callee(id);
    return give_up_on_callee(active, *refused);
  }
  active.call.set_callee(*callee);
  if (billing_ == nullptr) {
    on_callee_authorized(id, Authorization{.allowed = true, .max_duration = active.limit});
    return;
  }
  arm_stage_timer(active, std::chrono::seconds{0});  // billing gets the stage grace
  ask_billing(active, [this, id](Result<Authorization> decision) { on_callee_authorized(id, std::move(decision)); });
}

void CallbackService::on_callee_authorized(const std::string& id, Result<Authorization> decision) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) {
    // Ended while billing thought (A hung up, a cancel, the stage timer): give the grant back.
    if (decision && decision->allowed && !decision->reservation.empty()) {
      billing_->authorizer().release_async(decision->reservation, [](Status) {});
    }
    return;
  }
  Active& active = *it->second;
  if (!decision) {
    return give_up_on_callee(active, Error{"billing_unavailable", "billing failed: " + decision.error().message, {}}.as(
                                         ErrorKind::unavailable));
  }
  if (!decision->allowed) {
    const auto reason = decision->reason.value_or(DenialReason::unavailable);
    return give_up_on_callee(
        active, Error{"denied." + std::string(to_string(reason)),
                      decision->message.empty() ? std::string(to_string(reason)) : decision->message,
                      decision->field.empty() ? "payer" : decision->field, decision->rule}.as(kind_of(reason)));
  }
  active.reservation = decision->reservation;
  active.reservation_id = decision->reservation;
  active.limit = std::min(active.limit, decision->max_duration);
  note_slice(active, *decision);
  if (active.limit <= std::chrono::seconds{0}) {
    if (billing_ != nullptr && !active.reservation.empty()) {
      billing_->authorizer().release_async(std::exchange(active.reservation, std::string()), [](Status) {});
    }
    return give_up_on_callee(active, Error{"denied.insufficient_balance", "no talk time is available", "payer"}.as(
                                         ErrorKind::payment_required));
  }
  if (active.a_ended || active.hangup_cause) {  // A went (or was canceled) while billing thought
    if (billing_ != nullptr && !active.reservation.empty()) {
      billing_->authorizer().release_async(std::exchange(active.reservation, std::string()), [](Status) {});
    }
    return maybe_finish(active);
  }
  if (active.language.empty() && !decision->language.empty() && check_language(decision->language)) {
    active.language = decision->language;
  }
  // In the journal with B and its reservation before B is dialed: a restart settles it.
  write_journal(active, [this, id] {
    auto found = active_.find(id);
    if (found == active_.end() || found->second->finishing) return;
    if (!step_flow_) return connect_b(id);  // the dialplan says "please wait" and dials B
    // "Please wait", then B, as for a request that named B.
    std::weak_ptr<int> alive = alive_;
    engine_.play(found->second->a_channel, Prompt::announcement(Announcement::welcome, found->second->language),
                 [this, alive, id](Status) {
                   if (!alive.expired()) dial_b(id);
                 });
  }, false);
}

void CallbackService::connect_b(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  if (active.a_ended || active.hangup_cause || active.b_dialed) return;
  active.b_dialed = true;  // from now on the call ends only with B's end too
  const CallbackRequest& request = active.call.request();
  const Connect connect{.number = *request.callee,
                        .caller_id = request.caller,  // B sees A's number
                        .ring_timeout = options_.b_ring_timeout,
                        .limit = active.limit,
                        .warning_before = std::min(active.warning_before, active.limit),
                        .warning_repeat = active.warning_repeat};
  arm_stage_timer(active, options_.b_ring_timeout);
  std::weak_ptr<int> alive = alive_;
  engine_.connect_b(active.a_channel, connect, [this, alive, id](Status connected) {
    if (alive.expired() || connected) return;
    auto found = active_.find(id);
    if (found == active_.end() || found->second->finishing) return;
    if (connected.error().code != engine_errc::channel_gone) {
      context_.log.warning("callback.service", id + ": B could not be connected: " + connected.error().message);
    }
    found->second->b_dialed = false;  // nothing of B will come
    hang_up(*found->second, HangupCause::normal());
  });
}

void CallbackService::give_up_on_callee(Active& active, Error why) {
  context_.log.info("callback.service", active.call.id() + ": no callee: " + why.message);
  active.refusal = std::move(why);
  active.ivr_failed = true;
  arm_stage_timer(active, std::chrono::seconds{30});  // "call failed", then A's end
  announce_and_end(active);
}

void CallbackService::announce_and_end(Active& active) {
  if (active.announcing) return;
  active.announcing = true;
  if (active.limit_reached) return;  // the engine's limit says "time up" and ends A itself
  const Leg& b = active.call.leg_b();
  const auto announcement = active.ivr_failed ? std::optional(Announcement::call_failed)
                                              : announcement_for({.b_answered = b.answered.has_value(),
                                                                  .b_cause = b.cause,
                                                                  .limit_reached = active.money_ran_out,
                                                                  .b_hung_up = active.b_hung_up,
                                                                  .a_hung_up = false});
  if (!active.hangup_cause) active.hangup_cause = HangupCause::normal();
  if (!announcement || active.cancel_requested) return hang_up_leg(active, LegRole::a);
  const std::string id = active.call.id();
  std::weak_ptr<int> alive = alive_;
  engine_.play(active.a_channel, Prompt::announcement(*announcement, active.language), [this, alive, id](Status) {
    if (alive.expired()) return;
    auto it = active_.find(id);
    if (it != active_.end() && !it->second->finishing) hang_up_leg(*it->second, LegRole::a);
  });
}

void CallbackService::maybe_finish(Active& active) {
  if (active.a_ended && (active.b_ended || !active.b_dialed)) finish(active, false);
}

void CallbackService::finish(Active& active, bool engine_lost) {
  if (active.finishing) return;  // exactly once
  active.stage_timer.cancel();
  active.slice_timer.cancel();
  Call& call = active.call;
  const Timestamp now = context_.clock.now();
  // Legs the engine never reported as ended end now (A was always placed; B if dialed).
  for (Leg* leg : {&call.leg_a(), &call.leg_b()}) {
    if (leg->state == LegState::ended || (leg == &call.leg_b() && !active.b_dialed)) continue;
    leg->state = LegState::ended;
    if (!leg->started) leg->started = call.created_at();
    leg->ended = now;
    leg->cause = engine_lost ? HangupCause::engine_lost() : leg->cause;
  }

  active.engine_lost = engine_lost;
  active.finishing = true;
  const std::string id = call.id();
  if (billing_ == nullptr || active.reservation.empty()) return complete(id, std::nullopt);
  // The legs' ends reach the journal before the money moves: a restart after the charge
  // finds there what it was for, and completes the call without asking anyone.
  if (active.journaled) {
    return write_journal(active, [this, id] {
      crash_point("ended");  // the legs' ends are durable, the money not moved yet
      move_money(id);
    }, false);
  }
  move_money(id);
}

void CallbackService::move_money(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& active = *it->second;
  Call& call = active.call;
  const bool b_answered = call.leg_b().answered.has_value();
  // Money first, exactly once: talk time on leg B is charged, anything else released.
  // Billing answers on its own thread; the rest of the ending continues back here. If
  // billing fails (its database busy, gone), the call stays in flight and the same
  // settle or release is tried again: a call never ends with its reservation open.
  const auto billsec = call.leg_b().billsec();
  const std::string reservation = active.reservation;
  std::weak_ptr<int> alive = alive_;
  boost::asio::io_context& io = context_.io;
  const bool crash_when_settled = !crash_at_.empty() && crash_at_ == "settled";
  auto back = [this, alive, &io, id](Result<std::optional<Money>> moved) {
    if (alive.expired()) return;
    boost::asio::post(io, [this, alive, id, moved = std::move(moved)] {
      if (!alive.expired()) on_money_moved(id, moved);
    });
  };
  if (b_answered && billsec.count() > 0) {
    billing_->authorizer().settle_async(reservation, billsec, [back, crash_when_settled](Result<Money> settled) {
      if (crash_when_settled) std::raise(SIGKILL);  // charged, the records not written yet
      if (!settled) return back(settled.error());
      back(std::optional<Money>(*settled));
    });
  } else {
    billing_->authorizer().release_async(reservation, [back](Status released) {
      if (!released) return back(released.error());
      back(std::optional<Money>());
    });
  }
}

void CallbackService::on_money_moved(const std::string& id, const Result<std::optional<Money>>& moved) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& active = *it->second;
  if (moved) {
    active.reservation.clear();
    active.money_retry_delay = std::chrono::seconds{0};
    return complete(id, *moved);
  }
  if (moved.error().code == "reservation_ended" || moved.error().code == "unknown_reservation") {
    // Nothing to try again: billing has no open reservation by that id (ended already).
    context_.log.error("callback.service", id + ": reservation " + active.reservation + ": " + moved.error().message);
    active.reservation.clear();
    return complete(id, std::nullopt);
  }
  // Not moved: try again, 1 s, then doubling up to a minute, for as long as it takes.
  active.money_retry_delay = std::clamp(active.money_retry_delay * 2, std::chrono::seconds{1}, std::chrono::seconds{60});
  context_.log.error("callback.service", id + ": " + (active.call.leg_b().answered ? "settling" : "releasing") +
                                             " reservation " + active.reservation + " failed: " + moved.error().message +
                                             "; trying again in " + std::to_string(active.money_retry_delay.count()) + " s");
  active.stage_timer = context_.clock.schedule(active.money_retry_delay, [this, id] { move_money(id); });
}

void CallbackService::complete(const std::string& id, std::optional<Money> cost) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& active = *it->second;
  Call& call = active.call;
  const Timestamp now = context_.clock.now();
  const bool a_answered = call.leg_a().answered.has_value();
  const bool b_answered = call.leg_b().answered.has_value();

  // One CDR per leg that was placed.
  pending_cdrs_.push_back(make_cdr(call, call.leg_a(), options_.service_number));
  if (active.b_dialed) {
    pending_cdrs_.push_back(make_cdr(call, call.leg_b(), options_.service_number));
    pending_cdrs_.back().cost = cost;
  }

  CallState final_state = CallState::failed;
  std::optional<Announcement> announcement;
  if (active.cancel_requested) {
    final_state = CallState::canceled;
  } else if (a_answered) {
    final_state = CallState::completed;
    announcement = announcement_for({.b_answered = b_answered,
                                     .b_cause = call.leg_b().cause,
                                     .limit_reached = active.limit_reached || active.money_ran_out,
                                     .b_hung_up = active.b_hung_up,
                                     .a_hung_up = active.a_hung_up || active.engine_lost});
  }
  if (final_state == CallState::completed && call.state() == CallState::dialing_a) enter(active, CallState::a_answered);
  const CallState previous = call.state();
  if (auto ok = call.transition(final_state, now); !ok) {
    context_.log.warning("callback.service", ok.error().message);
  }
  CallEvent event{call, previous, announcement, cost, active.limit};
  if (call.state() == CallState::canceled) {
    event.outcome = "canceled";
  } else if (active.engine_lost || active.unobserved || call.leg_a().cause == HangupCause::engine_lost() ||
             call.leg_b().cause == HangupCause::engine_lost()) {
    // Asterisk (or this process) was away when the call ended, so nobody saw the end:
    // billed from what Asterisk recorded, else up to the last moment it was known up.
    event.outcome = "engine_lost";
  } else if (call.state() == CallState::failed) {
    event.outcome = "caller_unreachable";
  } else if (active.ivr_failed && active.refusal) {
    // A was asked for B and gave no usable number, or billing refused it: A heard "call failed".
    event.announcement = Announcement::call_failed;
    event.outcome = active.refusal->code == "no_number" ? "no_number" : refusal_outcome(*active.refusal);
    event.error = active.refusal;
  } else {
    event.outcome = announcement ? std::string(to_string(*announcement)) : "completed";
  }
  count_finished(call.state(), event.outcome);
  if (Done done = std::exchange(active.pending_done, nullptr)) {
    // Ended while its placing was being journaled (a cancel, a stalled disk): it never went out.
    done(active.cancel_requested ? Error{"canceled", "canceled before it was dialed", "id"}
                                 : Error{"store_unavailable", "the call could not be recorded in time; nothing was dialed", {}});
  }
  if (active.journaled) pending_journal_.push_back(journal_entry(active, &event));
  pending_events_.push_back(std::move(event));
  retire(active);
  post_flush();
}

void CallbackService::post_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  std::weak_ptr<int> alive = alive_;
  boost::asio::post(context_.io, [this, alive] {
    if (!alive.expired()) flush_endings();
  });
}

void CallbackService::queue_final_entry(JournalEntry entry) {
  pending_journal_.push_back(std::move(entry));
  post_flush();
}

JournalEntry CallbackService::journal_entry(const Active& active, const CallEvent* final) const {
  const Call& call = active.call;
  journal::Record record{.call = call,
                         .reservation = active.reservation_id,
                         .limit = active.limit,
                         .b_dialed = active.b_dialed,
                         .server = active.server,
                         .covered = active.covered,
                         .slice = active.slice,
                         .ending = {.limit_reached = active.limit_reached,
                                    .money_ran_out = active.money_ran_out,
                                    .a_hung_up = active.a_hung_up,
                                    .b_hung_up = active.b_hung_up,
                                    .unobserved = active.unobserved || active.engine_lost,
                                    .cancel_requested = active.cancel_requested}};
  if (final != nullptr) {
    record.outcome = final->outcome;
    record.announcement = final->announcement;
    record.cost = final->cost;
    record.error = final->error;
  }
  // A refused request's key is given back (the same key may try again).
  const bool keep_key = final == nullptr || (final->outcome != "refused" && final->outcome != "interrupted");
  return JournalEntry{.id = call.id(),
                      .idempotency_key = keep_key ? call.request().idempotency_key : std::string(),
                      .state = std::string(to_string(call.state())),
                      .final = final != nullptr,
                      .server = active.server,
                      .reservation = active.reservation_id,
                      .call = journal::encode(record),
                      .created_at = call.created_at(),
                      .updated_at = context_.clock.now(),
                      .client = client_of(call)};
}

void CallbackService::write_journal(Active& active, std::function<void()> then, bool refuse_unwritten) {
  if (journal_ == nullptr) {
    if (then) then();
    return;
  }
  active.journaled = true;
  std::weak_ptr<int> alive = alive_;
  boost::asio::io_context& io = context_.io;
  const std::string id = active.call.id();
  journal_->write_async({journal_entry(active, nullptr)}, {},
                        [this, alive, &io, id, then = std::move(then), refuse_unwritten](Status written,
                                                                                        std::vector<Cdr>) mutable {
                          if (written && !then) return;
                          if (alive.expired()) return;
                          boost::asio::post(io, [this, alive, id, written = std::move(written), then = std::move(then),
                                                 refuse_unwritten] {
                            if (alive.expired()) return;
                            if (written) return then();
                            if (written.error().code == "idempotency_key_taken" && on_key_taken(id, written.error().field)) {
                              return;
                            }
                            if (written.error().code == "node.fenced") return drop_taken(id, written.error());
                            context_.log.error("callback.service",
                                               id + ": the callback journal was not written: " + written.error().message);
                            if (!then) return;  // a later write (or the final one) carries it
                            if (!refuse_unwritten) return then();
                            auto it = active_.find(id);
                            if (it == active_.end()) return;
                            Done done = std::exchange(it->second->pending_done, nullptr);
                            it->second->journaled = false;
                            if (billing_ != nullptr && !it->second->reservation.empty()) {
                              billing_->authorizer().release_async(
                                  std::exchange(it->second->reservation, std::string()), [](Status) {});
                            }
                            refuse(*it->second,
                                   Error{"store_unavailable",
                                         "the callback could not be recorded before dialing: " + written.error().message,
                                         {}},
                                   done);
                          });
                        });
}

void CallbackService::flush_endings() {
  flush_posted_ = false;
  std::vector<Cdr> cdrs = std::exchange(pending_cdrs_, {});
  std::vector<CallEvent> events = std::exchange(pending_events_, {});
  std::vector<JournalEntry> entries = std::exchange(pending_journal_, {});
  if (cdrs.empty() && entries.empty()) {
    for (const auto& event : events) notify(event);
    return;
  }
  // The store writes on its own thread (the event loop never waits for the disk); the
  // endings are told once their CDRs are stored, back on this thread.
  std::weak_ptr<int> alive = alive_;
  boost::asio::io_context& io = context_.io;
  Logger& log = context_.log;
  ++cdr_writes_;
  auto written = [this, alive, &io, &log, events = std::move(events), entries](Status stored,
                                                                              std::vector<Cdr> back) mutable {
        if (alive.expired()) {
          if (!stored) log.error("callback.service", std::to_string(back.size()) + " CDRs not stored at shutdown: " +
                                                         stored.error().message);
          return;
        }
        boost::asio::post(io, [this, alive, &log, stored = std::move(stored), back = std::move(back),
                               events = std::move(events), entries = std::move(entries)]() mutable {
          if (alive.expired()) {  // the service went meanwhile: nobody is left to retry
            if (!stored) log.error("callback.service", std::to_string(back.size()) + " CDRs not stored at shutdown: " +
                                                           stored.error().message);
            return;
          }
          --cdr_writes_;
          if (!stored) {
            pending_journal_.insert(pending_journal_.begin(), entries.begin(), entries.end());
            keep_for_retry(std::move(back), stored.error());
          } else {
            // Their ends are on disk: what the engine kept on Asterisk to recover them may go.
            for (const auto& entry : entries) {
              if (entry.final) engine_.forget(entry.id);
            }
            if (journal_ == nullptr) {
              for (const auto& event : events) {
                if (is_final(event.call.state())) engine_.forget(event.call.id());
              }
            }
          }
          for (const auto& event : events) notify(event);
        });
      };
  // The final journal entries go with their CDRs, in one transaction.
  if (journal_ != nullptr) {
    journal_->write_async(std::move(entries), std::move(cdrs), std::move(written));
  } else {
    store_.cdrs().append_async(std::move(cdrs), std::move(written));
  }
}

// --- money in slices (billing's debit interval) -----------------------------------------
// A reservation may cover less than the call's limit; then, while B talks, it is extended
// one slice at a time a little before the covered time runs out, and when billing gives
// no more the service hangs up B at the end of what is covered ("time up", as the limit).

void CallbackService::note_slice(Active& active, const Authorization& decision) {
  active.covered = decision.reserved_for.count() > 0 ? std::min(decision.reserved_for, active.limit) : active.limit;
  active.slice = active.covered;
}

void CallbackService::arm_slice_timer(Active& active, std::chrono::seconds left) {
  active.slice_timer.cancel();
  if (billing_ == nullptr || active.reservation.empty() || active.covered >= active.limit) return;
  // Ask early enough for billing to answer: a quarter of the slice, at most 10 s.
  const auto lead = std::min(std::chrono::seconds{10}, active.slice / 4);
  const std::string id = active.call.id();
  active.slice_timer = context_.clock.schedule(std::max(left - lead, std::chrono::seconds{0}),
                                               [this, id] { extend_slice(id); });
}

void CallbackService::extend_slice(const std::string& id) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  const auto wanted = std::min(active.covered + active.slice, active.limit);
  std::weak_ptr<int> alive = alive_;
  boost::asio::io_context& io = context_.io;
  billing_->authorizer().extend_async(active.reservation, wanted,
                                      [this, alive, &io, id](Result<std::chrono::seconds> covered) {
                                        if (alive.expired()) return;
                                        boost::asio::post(io, [this, alive, id, covered = std::move(covered)] {
                                          if (!alive.expired()) on_slice_extended(id, covered);
                                        });
                                      });
}

void CallbackService::on_slice_extended(const std::string& id, const Result<std::chrono::seconds>& covered) {
  auto it = active_.find(id);
  if (it == active_.end() || it->second->finishing) return;
  Active& active = *it->second;
  const auto answered = active.call.leg_b().answered.value_or(context_.clock.now());
  const auto talked = std::chrono::duration_cast<std::chrono::seconds>(context_.clock.now() - answered);
  if (covered && *covered > active.covered) {
    active.covered = *covered;
    return arm_slice_timer(active, active.covered - talked);
  }
  if (!covered) context_.log.error("callback.service", id + ": extending the reservation failed: " + covered.error().message);
  // No more money: hang up when what is covered is talked.
  active.slice_timer = context_.clock.schedule(std::max(active.covered - talked, std::chrono::seconds{0}), [this, id] {
    auto found = active_.find(id);
    if (found == active_.end() || found->second->finishing) return;
    Active& ending = *found->second;
    context_.log.info("callback.service", id + ": the money ran out after " + std::to_string(ending.covered.count()) +
                                              " s; hanging up");
    ending.money_ran_out = true;
    if (!ending.hangup_cause) ending.hangup_cause = HangupCause::normal();
    hang_up_leg(ending, LegRole::b);
    arm_stage_timer(ending, std::chrono::seconds{0});  // and A, if the engine does not end it
  });
}

void CallbackService::keep_for_retry(std::vector<Cdr> cdrs, const Error& error) {
  // Kept and tried again (a locked or full disk passes): a CDR is never dropped.
  context_.log.error("callback.service", std::to_string(cdrs.size()) + " CDRs not stored yet (" + error.message +
                                             "); trying again in 1 s");
  pending_cdrs_.insert(pending_cdrs_.begin(), std::make_move_iterator(cdrs.begin()), std::make_move_iterator(cdrs.end()));
  if (cdr_retry_armed_) return;
  cdr_retry_armed_ = true;
  std::weak_ptr<int> alive = alive_;
  cdr_retry_ = context_.clock.schedule(std::chrono::seconds{1}, [this, alive] {
    if (alive.expired()) return;
    cdr_retry_armed_ = false;
    if (!flush_posted_) flush_endings();
  });
}

void CallbackService::retire(Active& active) {
  // Keep the finished call for lookups (and its idempotency key) for a while.
  const std::string id = active.call.id();
  finished_order_.push_back(id);
  finished_.insert_or_assign(id, active.call);
  active.stage_timer.cancel();
  active.slice_timer.cancel();
  active_.erase(id);  // destroys `active`
  in_flight_gauge_.set(static_cast<std::int64_t>(active_.size()));
  if (finished_order_.size() > finished_kept) {
    auto oldest = finished_.find(finished_order_.front());
    if (oldest != finished_.end()) {
      idempotency_.erase(oldest->second.request().idempotency_key);
      finished_.erase(oldest);
    }
    finished_order_.pop_front();
  }
}

namespace {

// Every leg that was placed has ended (A always; B when it was dialed).
bool legs_ended_of(const Call& call, bool b_dialed) {
  return call.leg_a().state == LegState::ended && (!b_dialed || call.leg_b().state == LegState::ended);
}

}  // namespace

bool CallbackService::legs_ended(const Active& active) { return legs_ended_of(active.call, active.b_dialed); }

Result<RecoveryReport> CallbackService::recover() {
  RecoveryReport report;
  if (journal_ == nullptr) return report;
  auto recent = journal_->recent(finished_kept);
  if (!recent) return recent.error();
  // Finished ones, oldest first: readable again, keys honoured again.
  for (auto it = recent->rbegin(); it != recent->rend(); ++it) {
    auto record = journal::decode(it->id, it->call);
    if (!record) {
      report.skipped.push_back(it->id + ": " + record.error().message);
      continue;
    }
    const Call& call = record->call;
    if (!it->idempotency_key.empty()) idempotency_[it->idempotency_key] = call.id();
    finished_order_.push_back(call.id());
    finished_.insert_or_assign(call.id(), call);
    CallEvent event{call, call.state(), record->announcement, record->cost, record->limit, record->error,
                    record->outcome};
    event.replayed = true;
    notify(event);
    ++report.finished;
  }
  auto open = journal_->open();
  if (!open) return open.error();
  std::vector<Engine::Recovered> lost;
  if (auto ok = take_up(*open, report, lost); !ok) return ok.error();
  // Reservations still open for no callback in flight: their release was on its way
  // (billing's thread) when the final entry (the store's thread) was written, and the
  // process stopped between the two. Given back now; nothing else would ever do it.
  // With several nodes, the others' calls in flight are theirs: only reservations whose
  // callback ended (or never was journaled) are given back.
  if (billing_ != nullptr) {
    auto held = billing_->authorizer().open_reservations();
    if (!held) return held.error();
    std::set<std::string> journaled;
    for (const auto& entry : *open) journaled.insert(entry.id);
    for (const auto& h : *held) {
      if (journaled.count(h.call_id) > 0 || active_.count(h.call_id) > 0) continue;
      if (journal_->shared()) {
        auto other = journal_->entry(h.call_id);
        if (!other) return other.error();
        if (*other && !(*other)->final) continue;  // in flight on another node
      }
      context_.log.warning("callback.service", "reservation " + h.reservation + " of " + h.call_id +
                                                   " was left open by a stop; releasing it");
      report.released.push_back(h.reservation);
      billing_->authorizer().release_async(h.reservation, [](Status) {});
    }
  }
  in_flight_gauge_.set(static_cast<std::int64_t>(active_.size()));
  if (!lost.empty()) engine_.recover(lost);
  return report;
}

Result<RecoveryReport> CallbackService::adopt(const std::vector<JournalEntry>& entries) {
  RecoveryReport report;
  std::vector<Engine::Recovered> lost;
  if (auto ok = take_up(entries, report, lost, true); !ok) return ok.error();
  in_flight_gauge_.set(static_cast<std::int64_t>(active_.size()));
  if (!lost.empty()) engine_.recover(lost);
  return report;
}

Status CallbackService::take_up(const std::vector<JournalEntry>& entries, RecoveryReport& report,
                                std::vector<Engine::Recovered>& lost, bool taken_over) {
  for (const auto& entry : entries) {
    if (active_.count(entry.id) > 0) continue;  // ours already (reconcile run twice)
    auto record = journal::decode(entry.id, entry.call);
    if (!record) {
      report.skipped.push_back(entry.id + ": " + record.error().message);
      continue;
    }
    auto owned = std::make_unique<Active>(record->call);
    Active& active = *owned;
    active.journaled = true;
    active.server = record->server.empty() ? entry.server : record->server;
    active.limit = record->limit;
    active.b_dialed = record->b_dialed;
    active.authorized = active.call.state() != CallState::authorizing;
    active.warning_before = options_.warning_before;
    active.warning_repeat = options_.warning_repeat;
    active.covered = record->covered;
    active.slice = record->slice;
    active.limit_reached = record->ending.limit_reached;
    active.money_ran_out = record->ending.money_ran_out;
    active.a_hung_up = record->ending.a_hung_up;
    active.b_hung_up = record->ending.b_hung_up;
    active.unobserved = record->ending.unobserved;
    active.cancel_requested = record->ending.cancel_requested;
    // What billing holds for it: the journal may not have heard of the grant yet (a crash
    // right after it), and the charge may be made already (a crash while settling).
    std::string reservation = record->reservation.empty() ? entry.reservation : record->reservation;
    std::optional<Money> settled_cost;
    if (billing_ != nullptr) {
      auto held = billing_->authorizer().reservation_of(entry.id);
      if (!held) {
        // Followed all the same, with the reservation the journal has (its settlement
        // retries like any other): a call left unfollowed would never end or be billed.
        context_.log.error("callback.service", entry.id + ": cannot read its reservation (" + held.error().message +
                                                   "); using the journal's");
        held = std::optional<Authorizer::Held>{};
      }
      if (*held) reservation = (*held)->status == "open" ? (*held)->reservation : std::string();
      if (*held && (*held)->status == "open" && (*held)->covered > active.covered) active.covered = (*held)->covered;
      if (*held && (*held)->status == "settled" && legs_ended(active)) settled_cost = (*held)->cost;
    }
    active.reservation = reservation;
    active.reservation_id = reservation;
    if (!active.call.request().idempotency_key.empty()) {
      idempotency_[active.call.request().idempotency_key] = entry.id;
    }
    report.resumed.push_back(entry.id);
    if (settled_cost) {
      // Charged before the crash; the journal has the legs' ends the charge was for.
      active.finishing = true;
      active_.emplace(entry.id, std::move(owned));
      complete(entry.id, settled_cost);
      continue;
    }
    if (active.authorized && legs_ended(active)) {
      // Ended before the stop, the legs' ends in the journal, the money not moved yet (a
      // crash between the two): moved now from what the journal says, without asking
      // Asterisk, which may have forgotten the call.
      active.finishing = true;
      active_.emplace(entry.id, std::move(owned));
      if (billing_ != nullptr && !active.reservation.empty()) {
        move_money(entry.id);
      } else {
        complete(entry.id, std::nullopt);
      }
      continue;
    }
    if (!active.authorized) {
      // Stopped while billing was asked: nothing was dialed. What billing may have
      // granted meanwhile is given back, and the request ends refused (its key free again).
      if (billing_ != nullptr && !active.reservation.empty()) {
        billing_->authorizer().release_async(active.reservation, [](Status) {});
        active.reservation.clear();
      }
      active_.emplace(entry.id, std::move(owned));
      refuse(active,
             Error{"interrupted", "the service stopped before this callback was placed; nothing was dialed or charged",
                   {}},
             nullptr);
      continue;
    }
    lost.push_back({.call_id = entry.id, .server = active.server, .limit = active.limit, .b_dialed = active.b_dialed,
                    .taken_from = taken_over ? entry.owner : std::string(),
                    .b_answered = active.call.leg_b().answered});
    active_.emplace(entry.id, std::move(owned));
    CallEvent event{active.call, active.call.state(), {}, {}, active.limit};
    event.replayed = true;
    notify(event);
    // The engine answers for each; if it cannot, the stage timer ends it as engine lost.
    arm_stage_timer(active, options_.a_ring_timeout + options_.b_ring_timeout + active.limit);
    // Talking on money held in slices: the next slice is asked for as before the stop.
    if (active.call.state() == CallState::bridged && active.call.leg_b().answered) {
      const auto talked =
          std::chrono::duration_cast<std::chrono::seconds>(context_.clock.now() - *active.call.leg_b().answered);
      arm_slice_timer(active, active.covered - talked);
    }
  }
  return ok_status();
}

Result<CallEvent> CallbackService::journaled_event(const JournalEntry& entry) {
  auto record = journal::decode(entry.id, entry.call);
  if (!record) return record.error();
  CallEvent event{record->call, record->call.state(), record->announcement, record->cost, record->limit, record->error,
                  record->outcome};
  event.replayed = true;
  return event;
}

}  // namespace callback
