#include "sms_trigger.hpp"

#include <callback/callback_request.hpp>
#include <callback/secret.hpp>
#include <callback/service.hpp>

#include <boost/json.hpp>

namespace callback::trigger_sms {

namespace json = boost::json;

namespace {
constexpr std::string_view component = "callback.trigger.sms";

SmsTrigger::Answer ignored(std::string reason) {
  return {.kind = SmsTrigger::Answer::Kind::ignored, .reason = std::move(reason)};
}
SmsTrigger::Answer refused(std::string reason, std::string reply) {
  return {.kind = SmsTrigger::Answer::Kind::refused, .reply = std::move(reply), .reason = std::move(reason)};
}
// Not started, or the store is down: the gateway tries again later.
HttpResponse unavailable_response() {
  auto response =
      error_response(Error{"unavailable", "not taking messages now; try again later", {}}.as(ErrorKind::unavailable));
  response.headers.emplace_back("Retry-After", "10");
  return response;
}
std::string_view kind_name(SmsTrigger::Answer::Kind kind) {
  switch (kind) {
    case SmsTrigger::Answer::Kind::accepted: return "accepted";
    case SmsTrigger::Answer::Kind::refused: return "refused";
    case SmsTrigger::Answer::Kind::ignored: return "ignored";
    case SmsTrigger::Answer::Kind::unavailable: return "unavailable";
  }
  return "ignored";
}
}  // namespace

SmsTrigger::SmsTrigger(Context& context, Store& store, const NumberingPlan& plan, HttpRoutes* routes,
                       SmsOptions options)
    : context_(context),
      store_(store),
      plan_(plan),
      options_(std::move(options)),
      dummy_hash_(hash_secret("no account has this password").value_or("")),
      per_sender_(options_.per_sender_per_hour, std::chrono::hours(1)),
      bad_passwords_(options_.bad_passwords_per_hour, std::chrono::hours(1)) {
  // Every node counts in the same windows (a server database's store).
  per_sender_.share(store.rate_counter(), "sms.per_sender");
  bad_passwords_.share(store.rate_counter(), "sms.bad_passwords");
  if (!options_.outcome_url.empty()) outcomes_ = std::make_unique<Outbox>(context_.log, "callback.trigger.sms");
  if (routes == nullptr) return;
  if (!options_.twilio_auth_token.empty()) {
    auto added = routes->add("POST", options_.twilio_path,
                             [this](const HttpRequest& request, HttpRespond respond) { on_twilio(request, std::move(respond)); });
    if (!added) throw std::runtime_error(added.error().message);
  }
  if (!options_.hmac_secret.empty()) {
    auto added = routes->add("POST", options_.path,
                             [this](const HttpRequest& request, HttpRespond respond) { on_json(request, std::move(respond)); });
    if (!added) throw std::runtime_error(added.error().message);
  }
}

SmsTrigger::~SmsTrigger() = default;

void SmsTrigger::start(TriggerSink& sink) {
  std::lock_guard lock(mutex_);
  sink_ = &sink;
}

void SmsTrigger::stop() {
  std::lock_guard lock(mutex_);
  sink_ = nullptr;
}

bool SmsTrigger::first_time(const std::string& id) {
  std::lock_guard lock(mutex_);
  if (!seen_.insert(id).second) return false;
  seen_order_.push_back(id);
  if (seen_order_.size() > options_.remembered_messages) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  return true;
}

TriggerStatus SmsTrigger::status() const {
  TriggerStatus status = keeper_.status();
  std::lock_guard lock(mutex_);
  status.healthy = sink_ != nullptr;
  return status;
}

void SmsTrigger::note_error(std::string what) { keeper_.error(std::move(what)); }

void SmsTrigger::forget(const std::string& id) {
  std::lock_guard lock(mutex_);
  seen_.erase(id);  // its place in seen_order_ goes when it comes round
}

void SmsTrigger::count(std::string_view outcome) { keeper_.count(outcome, outcome != "forged"); }

void SmsTrigger::receive(const Sms& sms, std::function<void(Answer)> done) {
  const std::string from = escape_control(sms.from);
  auto finish = [this, from, done, id = sms.id](Answer answer) {
    // Not taken (not started, the store away): the gateway's retry must not count as a repeat.
    if (answer.kind == Answer::Kind::unavailable && !id.empty()) forget(id);
    count(kind_name(answer.kind));
    context_.log.info(component, "SMS from " + from + ": " + std::string(kind_name(answer.kind)) +
                                     (answer.reason.empty() ? "" : " (" + answer.reason + ")"));
    done(std::move(answer));
  };
  // A gateway sends a message again when our answer was late; it asks for one call.
  if (!sms.id.empty() && !first_time(sms.id)) return finish(ignored("repeated message " + escape_control(sms.id)));
  auto sender = PhoneNumber::parse(sms.from, plan_);
  if (!sender) return finish(ignored("the sender is not a phone number"));
  const auto now = context_.clock.now();
  const std::string sender_key = sender->e164();
  if (bad_passwords_.blocked(sender_key, now).count() > 0) return finish(ignored("too many wrong passwords"));
  if (per_sender_.hit(sender_key, now).count() > 0) return finish(ignored("over the sender's limit"));
  if (sms.text.size() > options_.max_text) return finish(ignored("a message of " + std::to_string(sms.text.size()) + " bytes"));

  auto command = parse_sms_command(sms.text);
  std::optional<Account> account;
  if (command && !command->account.empty()) {
    // Whoever sends it: the account's password says who pays. Checked as long for an
    // unknown account as for a known one.
    auto found = store_.accounts().find(command->account);
    if (!found) {
      note_error("the store: " + found.error().message);
      return finish({.kind = Answer::Kind::unavailable, .reason = "store: " + found.error().message});
    }
    const bool known = found->has_value() && !(**found).secret_hash.empty();
    const bool password_ok = verify_secret(command->password, known ? (**found).secret_hash : dummy_hash_) && known;
    if (!password_ok) {
      (void)bad_passwords_.hit(sender_key, now);
      return finish(ignored("wrong account or password"));
    }
    account = std::move(**found);
  } else {
    auto found = store_.accounts().find_by_number(*sender);
    if (!found) {
      note_error("the store: " + found.error().message);
      return finish({.kind = Answer::Kind::unavailable, .reason = "store: " + found.error().message});
    }
    if (!*found) return finish(ignored("unknown sender"));
    account = std::move(**found);
  }
  // From here the sender is a customer: a refusal is told.
  if (!command) return finish(refused(command.error().code, command.error().message));
  if (account->status != AccountStatus::active) {
    return finish(refused("denied.disabled", "Your account " + account->id + " is disabled."));
  }
  CallbackForm form{.caller = command->caller.empty() ? sender_key : command->caller,
                    .callee = command->callee,
                    .payer = AccountId{account->id},
                    .origin = Origin::sms,
                    .idempotency_key = sms.id.empty() ? std::string() : "sms:" + sms.id,
                    .secret = command->password};
  form.metadata["sms_from"] = sender_key;
  auto request = make_request(form, plan_);
  if (!request) {
    const std::string field = request.error().field == "callee" ? "the number to call" : "your number";
    return finish(refused(request.error().code, "Not called: " + field + ": " + request.error().message));
  }
  TriggerSink* sink = nullptr;
  {
    std::lock_guard lock(mutex_);
    sink = sink_;
  }
  if (sink == nullptr) return finish({.kind = Answer::Kind::unavailable, .reason = "not started"});
  const std::string a = request->caller.e164(), b = request->callee->e164();  // SMS always names B
  Tracking tracking;
  tracking.accepted = [finish, a, b](Result<std::shared_ptr<CallbackHandle>> handle) {
    if (!handle) {
      return finish(refused(handle.error().code, "Not called: " + handle.error().message));
    }
    finish({.kind = Answer::Kind::accepted,
            .reply = "Calling you at " + a + " now, then " + b + ". (" + (*handle)->id() + ")",
            .reason = {},
            .callback_id = (*handle)->id()});
  };
  tracking.ended = [this, alive = std::weak_ptr<int>(alive_), from, sms, sender_key, b](const CallEvent& event) {
    if (alive.expired()) return;
    context_.log.info(component, "callback " + event.call.id() + " for SMS from " + from + " ended: " + event.outcome);
    send_outcome(sms, sender_key, b, event);
  };
  sink->track(std::move(*request), std::move(tracking));
}

void SmsTrigger::send_outcome(const Sms& sms, const std::string& sender, const std::string& callee,
                              const CallEvent& event) {
  if (!outcomes_) return;
  const std::string text = outcome_text(event.outcome, callee, event.call.leg_b().billsec(),
                                        event.cost && !event.cost->is_zero() ? event.cost->format() : std::string());
  HttpPost message{.url = options_.outcome_url};
  if (options_.outcome_twilio) {
    const auto field = [](std::string_view name, std::string_view value) {
      std::string out(name);
      out += '=';
      for (const char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                           c == '.' || c == '_' || c == '~';
        out += plain ? std::string(1, ch) : "%" + hex_encode(std::string_view(&ch, 1));
      }
      return out;
    };
    message.headers = {"Content-Type: application/x-www-form-urlencoded"};
    message.body = field("To", sender) + "&" + field("From", sms.to) + "&" + field("Body", text);
    message.userpwd = options_.twilio_account_sid + ":" + options_.twilio_auth_token;
  } else {
    message.body = json::serialize(json::object{{"to", sender},
                                                {"from", sms.to},
                                                {"text", text},
                                                {"callback_id", event.call.id()},
                                                {"outcome", event.outcome}});
    message.headers = {"Content-Type: application/json", "X-Callback-Event: sms.outcome"};
    if (!options_.outcome_secret.empty()) {
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(context_.clock.now().time_since_epoch()).count();
      message.headers.push_back("Callback-Signature: " + webhook_signature(options_.outcome_secret, now, message.body));
    }
  }
  outcomes_->send({.what = "outcome SMS of " + event.call.id() + " to " + sender,
                   .attempt = [message = std::move(message)](std::string& why) { return post_once(message, why); }});
}

void SmsTrigger::on_twilio(const HttpRequest& request, HttpRespond respond) {
  const auto fail = [&](const Error& error) { respond(error_response(error)); };
  auto fields = decode_form(request.body);
  if (!fields) return fail(fields.error());
  const auto signature = request.header("X-Twilio-Signature");
  if (!twilio_signature_ok(options_.twilio_auth_token, options_.twilio_url, *fields, signature.value_or(""))) {
    count("forged");
    const std::string what = "a Twilio webhook from " + escape_control(request.client_ip) +
                             (signature ? " with a wrong X-Twilio-Signature" : " without X-Twilio-Signature") +
                             " was refused";
    context_.log.warning(component, what);
    note_error(what);
    return fail(Error{"bad_signature", "X-Twilio-Signature does not match (is twilio_url the URL configured at Twilio?)",
                      "X-Twilio-Signature"}
                    .as(ErrorKind::forbidden));
  }
  Sms sms;
  for (const auto& [name, value] : *fields) {
    if (name == "From") sms.from = value;
    if (name == "To") sms.to = value;
    if (name == "Body") sms.text = value;
    if (name == "MessageSid") sms.id = value;
  }
  if (sms.from.empty() || sms.id.empty()) return fail(Error{"missing_field", "From and MessageSid are required", "From"});
  receive(sms, [respond](Answer answer) {
    if (answer.kind == Answer::Kind::unavailable) return respond(unavailable_response());
    std::string twiml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>";
    if (!answer.reply.empty()) twiml += "<Message>" + xml_escape(answer.reply) + "</Message>";
    twiml += "</Response>";
    respond({.status = 200, .content_type = "text/xml; charset=utf-8", .body = std::move(twiml)});
  });
}

void SmsTrigger::on_json(const HttpRequest& request, HttpRespond respond) {
  const auto fail = [&](const Error& error) { respond(error_response(error)); };
  if (auto signed_ok = check_gateway_signature(options_.hmac_secret, request, context_.clock.now(), options_.max_skew);
      !signed_ok) {
    count("forged");
    const std::string what =
        "an SMS webhook from " + escape_control(request.client_ip) + " was refused: " + signed_ok.error().message;
    context_.log.warning(component, what);
    note_error(what);
    return fail(signed_ok.error().as(ErrorKind::forbidden));
  }
  boost::system::error_code ec;
  auto body = json::parse(request.body, ec);
  if (ec || !body.is_object()) return fail(Error{"invalid_json", "the body must be a JSON object", "body"});
  Sms sms;
  for (auto [key, target] : {std::pair{"from", &sms.from}, std::pair{"to", &sms.to}, std::pair{"text", &sms.text},
                             std::pair{"id", &sms.id}}) {
    const auto* v = body.as_object().if_contains(key);
    if (v == nullptr) continue;
    if (!v->is_string()) return fail(Error{"invalid_type", "must be a string", key});
    *target = std::string(v->as_string());
  }
  if (sms.from.empty() || sms.id.empty()) return fail(Error{"missing_field", "from and id are required", "from"});
  receive(sms, [respond](Answer answer) {
    if (answer.kind == Answer::Kind::unavailable) return respond(unavailable_response());
    json::object out{{"status", kind_name(answer.kind)}};
    if (!answer.reply.empty()) out["reply"] = answer.reply;
    if (answer.kind != Answer::Kind::ignored) out["reason"] = answer.reason;
    if (!answer.callback_id.empty()) out["callback_id"] = answer.callback_id;
    respond({.status = 200, .body = json::serialize(out)});
  });
}

}  // namespace callback::trigger_sms
