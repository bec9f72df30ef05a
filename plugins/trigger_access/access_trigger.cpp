#include "access_trigger.hpp"

#include <boost/asio/post.hpp>

#include <set>
#include <stdexcept>
#include <variant>
#include <unordered_map>
#include <unordered_set>

namespace callback::trigger_access {

std::optional<Mode> mode_from_string(std::string_view name) {
  if (name == "own") return Mode::own;
  if (name == "ivr") return Mode::ivr;
  if (name == "fixed") return Mode::fixed;
  return std::nullopt;
}

Status validate(const AccessOptions& options, const NumberingPlan& plan) {
  std::set<std::string> seen;
  for (const auto& n : options.numbers) {
    const std::string where = "numbers." + (n.number.empty() ? std::string("(any)") : n.number);
    if (n.number.find_first_not_of("0123456789") != std::string::npos) {
      return Error{"config.value", "an access number is digits only, as the engine reports the dialled number", where};
    }
    if (!seen.insert(n.number).second) return Error{"config.value", "the access number is listed twice", where};
    if (n.mode != Mode::own && !n.payer) {
      return Error{"config.value", "this mode needs an \"account\" or a \"campaign\" that pays", where};
    }
    if (n.mode == Mode::fixed) {
      auto b = PhoneNumber::parse(n.destination, plan);
      if (!b) return Error{"config.value", "destination: " + b.error().message, where + ".destination"};
      if (auto ok = check_dialable(*b, plan, "destination"); !ok) {
        return Error{"config.value", ok.error().message, where + ".destination"};
      }
    } else if (!n.destination.empty()) {
      return Error{"config.value", "only mode \"fixed\" has a destination (the IVR asks for B otherwise)",
                   where + ".destination"};
    }
    if (!n.language.empty()) {
      if (auto ok = check_language(n.language, where + ".language"); !ok) return ok;
    }
  }
  if (options.numbers.empty()) return Error{"config.value", "no access number is configured", "numbers"};
  return ok_status();
}

std::vector<OptionSpec> common_options() {
  return {
      {.name = "context", .type = OptionType::string, .default_value = "",
       .description = "only calls that came in through this dialplan context (callback-access, callback-access-ami); "
                      "empty: any"},
      {.name = "ring_seconds", .type = OptionType::integer, .default_value = 3,
       .description = "how long the call rings before it is rejected, unanswered", .min = 0, .max = 60},
      {.name = "reject_cause", .type = OptionType::string, .default_value = "busy",
       .description = "what the caller hears: busy (17) or congestion (34); never an answer",
       .choices = {"busy", "congestion"}},
      {.name = "callback_delay_seconds", .type = OptionType::integer, .default_value = 2,
       .description = "from the reject to calling the caller back (their line must be free)", .min = 0, .max = 300},
      {.name = "per_caller_per_hour", .type = OptionType::integer, .default_value = 6,
       .description = "calls back one caller at most this often an hour; more rings are rejected", .min = 1,
       .max = 1000},
  };
}

AccessOptions read_common_options(const Options& values, std::string trigger, Origin origin) {
  AccessOptions options;
  options.trigger = std::move(trigger);
  options.origin = origin;
  options.context = values.string("context");
  options.ring = std::chrono::seconds(values.integer("ring_seconds"));
  options.reject_cause = HangupCause{values.string("reject_cause") == "congestion" ? 34 : 17};
  options.callback_delay = std::chrono::seconds(values.integer("callback_delay_seconds"));
  options.per_caller_per_hour = static_cast<int>(values.integer("per_caller_per_hour"));
  return options;
}

std::unique_ptr<Component> make_access_trigger(const CreateArgs& args, AccessOptions options) {
  if (args.engine == nullptr || args.store == nullptr || args.plan == nullptr) {
    throw std::runtime_error("callback.trigger." + options.trigger +
                             " needs the service's engine, store and numbering plan (run it in callbackd)");
  }
  if (auto ok = validate(options, *args.plan); !ok) throw std::runtime_error(ok.error().field + ": " + ok.error().message);
  return std::make_unique<AccessTrigger>(args.context, *args.engine, *args.store, *args.plan, std::move(options));
}

struct AccessTrigger::State : std::enable_shared_from_this<State> {
  State(Context& c, Engine& e, Store& s, NumberingPlan p, AccessOptions o)
      : context(c), engine(e), store(s), plan(std::move(p)), options(std::move(o)), keeper(c, options.trigger),
        per_caller(options.per_caller_per_hour, std::chrono::hours(1)) {
    per_caller.share(s.rate_counter(), options.trigger + ".per_caller");  // every node counts in the same windows
  }

  Context& context;
  Engine& engine;
  Store& store;
  NumberingPlan plan;
  AccessOptions options;
  TriggerStatusKeeper keeper;
  RateLimiter per_caller;
  // On the engine's thread only:
  TriggerSink* sink = nullptr;
  Subscription route;
  std::unordered_set<std::string> busy_callers;  // being rejected, waiting, or called back (digits)
  std::unordered_map<std::string, std::shared_ptr<CallbackHandle>> in_flight;  // caller digits -> its callback
  std::unordered_map<std::uint64_t, TimerHandle> timers;
  std::uint64_t next_timer = 0;

  [[nodiscard]] std::string component() const { return "callback.trigger." + options.trigger; }

  // The table by number, built once ("" is the entry for any number).
  std::unordered_map<std::string, const AccessNumber*> by_number = [this] {
    std::unordered_map<std::string, const AccessNumber*> index;
    for (const auto& n : options.numbers) index.emplace(n.number, &n);
    return index;
  }();

  const AccessNumber* entry_for(const std::string& dialed) const {
    if (auto it = by_number.find(dialed); it != by_number.end()) return it->second;
    auto any = by_number.find(std::string());
    return any == by_number.end() ? nullptr : any->second;
  }

  struct Refusal {
    std::string outcome;  // refused, ignored, error
    std::string reason;   // for the log, escaped
  };

  // What to do with a call from `caller` to `entry`: the request, or why not.
  std::variant<CallbackRequest, Refusal> decide(const InboundCall& call, const AccessNumber& entry) {
    if (call.caller.empty()) return Refusal{"refused", "a withheld caller: nobody to call back"};
    auto number = PhoneNumber::parse(call.caller, plan);
    if (!number) {
      return Refusal{"refused", "caller \"" + escape_control(call.caller) + "\" is not a number: " + number.error().message};
    }
    const std::string key = number->digits();
    if (busy_callers.contains(key)) return Refusal{"ignored", "caller " + key + " is already being called back"};
    if (auto wait = per_caller.hit(key, context.clock.now()); wait.count() > 0) {
      return Refusal{"ignored", "caller " + key + " rang more than " + std::to_string(options.per_caller_per_hour) +
                                    " times in an hour"};
    }
    std::optional<Payer> payer = entry.payer;
    if (entry.mode == Mode::own) {
      auto account = store.accounts().find_by_number(*number);
      if (!account) {
        keeper.error("the store: " + escape_control(account.error().message));
        return Refusal{"error", "looking up caller " + key + ": " + escape_control(account.error().message)};
      }
      if (*account) {
        const Account& a = **account;
        if (a.status != AccountStatus::active) return Refusal{"refused", "account " + a.id + " of caller " + key + " is disabled"};
        const Money spendable = a.balance + a.credit_limit - a.reserved;
        if (spendable.is_negative() || spendable.is_zero()) {
          return Refusal{"refused", "account " + a.id + " of caller " + key + " has nothing to spend"};
        }
        payer = AccountId{a.id};
      } else if (!payer) {
        return Refusal{"refused", "caller " + key + " is not registered to any account"};
      }
    }
    CallbackForm form{.caller = number->e164(),
                      .callee = entry.mode == Mode::fixed ? entry.destination : std::string(),
                      .payer = *payer,
                      .origin = options.origin,
                      .idempotency_key = options.trigger + ":" + call.channel.server + ":" + call.channel.id,
                      .language = entry.language};
    form.ask_callee = entry.mode != Mode::fixed;
    if (!call.dialed.empty()) form.metadata["access_number"] = call.dialed;
    auto request = make_request(form, plan);
    if (!request) {
      return Refusal{"refused", request.error().field + ": " + escape_control(request.error().message)};
    }
    return std::move(*request);
  }

  void on_call(const InboundCall& call) {
    const AccessNumber* entry = entry_for(call.dialed);
    const std::string what = "a call from " + (call.caller.empty() ? std::string("(withheld)") : escape_control(call.caller)) +
                             " to " + escape_control(call.dialed);
    std::optional<CallbackRequest> request;
    if (entry == nullptr) {
      keeper.count("refused");
      context.log.warning(component(), what + ": no mapping for this access number; rejected");
    } else {
      auto decided = decide(call, *entry);
      if (auto* refusal = std::get_if<Refusal>(&decided)) {
        keeper.count(refusal->outcome);
        context.log.info(component(), what + ": " + refusal->reason + "; rejected without a callback");
      } else {
        request = std::move(std::get<CallbackRequest>(decided));
        busy_callers.insert(request->caller.digits());
        context.log.info(component(), what + ": rejected after " + std::to_string(options.ring.count()) +
                                          " ms of ringing, then called back");
      }
    }
    // Never answered: the caller pays nothing. Congestion where nobody may call back at all.
    const HangupCause cause = entry == nullptr ? HangupCause{34} : options.reject_cause;
    std::weak_ptr<State> weak = weak_from_this();
    engine.reject(call.channel, cause, options.ring,
                  [weak, request = std::move(request), what](Status rejected) mutable {
                    auto self = weak.lock();
                    if (!self) return;
                    // The caller hanging up first (channel_gone) is the usual missed call.
                    if (!rejected && rejected.error().code != engine_errc::channel_gone) {
                      self->context.log.warning(self->component(), what + ": the reject: " + rejected.error().message);
                    }
                    if (request) self->call_back_later(std::move(*request));
                  });
  }

  void call_back_later(CallbackRequest request) {
    const std::uint64_t timer = next_timer++;
    std::weak_ptr<State> weak = weak_from_this();
    timers[timer] = context.clock.schedule(options.callback_delay, [weak, timer, request = std::move(request)]() mutable {
      auto self = weak.lock();
      if (!self) return;
      self->timers.erase(timer);
      self->call_back(std::move(request));
    });
  }

  void call_back(CallbackRequest request) {
    const std::string key = request.caller.digits();
    if (sink == nullptr) {  // stopped meanwhile
      busy_callers.erase(key);
      return;
    }
    std::weak_ptr<State> weak = weak_from_this();
    Tracking tracking;
    tracking.accepted = [weak, key](Result<std::shared_ptr<CallbackHandle>> handle) {
      auto self = weak.lock();
      if (!self) return;
      if (!handle) {
        self->busy_callers.erase(key);
        self->keeper.count("refused");
        self->context.log.info(self->component(), "caller " + key + ": the service refused the callback: " +
                                                      escape_control(handle.error().message));
        return;
      }
      self->keeper.count("accepted");
      self->in_flight[key] = *handle;
      self->context.log.info(self->component(), "caller " + key + ": callback " + (*handle)->id());
    };
    tracking.ended = [weak, key](const CallEvent&) {
      auto self = weak.lock();
      if (!self) return;
      self->in_flight.erase(key);
      self->busy_callers.erase(key);
    };
    sink->track(std::move(request), std::move(tracking));
  }
};

AccessTrigger::AccessTrigger(Context& context, Engine& engine, Store& store, NumberingPlan plan, AccessOptions options)
    : state_(std::make_shared<State>(context, engine, store, std::move(plan), std::move(options))) {}

AccessTrigger::~AccessTrigger() = default;

void AccessTrigger::start(TriggerSink& sink) {
  // The engine is used on its own thread only.
  boost::asio::post(state_->context.io, [state = state_, target = &sink] {
    state->sink = target;
    InboundRoute route{.dialed = {}, .context = state->options.context};
    bool any = false;
    for (const auto& n : state->options.numbers) {
      if (n.number.empty()) any = true;
      else route.dialed.push_back(n.number);
    }
    if (any) route.dialed.clear();
    std::weak_ptr<State> weak = state;
    state->route = state->engine.route_inbound(std::move(route), [weak](const InboundCall& call) {
      if (auto self = weak.lock()) self->on_call(call);
    });
    if (!state->engine.capabilities().inbound_calls) {
      state->keeper.healthy(false);
      state->keeper.error("the engine takes no inbound calls (callback.engine.ami: add agi to `events`)");
      state->context.log.error(state->component(), "the engine takes no inbound calls: no access number works");
    }
  });
}

void AccessTrigger::stop() {
  boost::asio::post(state_->context.io, [state = state_] {
    state->route = {};
    state->sink = nullptr;
    for (auto& [id, timer] : state->timers) timer.cancel();
    state->timers.clear();
  });
}

TriggerStatus AccessTrigger::status() const { return state_->keeper.status(); }

}  // namespace callback::trigger_access
