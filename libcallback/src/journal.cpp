#include "journal.hpp"

#include <boost/json.hpp>

#include <array>
#include <vector>

namespace callback::journal {

namespace json = boost::json;

namespace {

std::int64_t millis(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Timestamp from_millis(std::int64_t ms) { return Timestamp{std::chrono::milliseconds(ms)}; }

json::value time_or_null(const std::optional<Timestamp>& t) { return t ? json::value(millis(*t)) : json::value(nullptr); }

json::object leg_json(const Leg& leg) {
  return {{"number", leg.number ? json::value(leg.number->digits()) : json::value(nullptr)},
          {"state", to_string(leg.state)},
          {"channel", leg.channel},
          {"uniqueid", leg.uniqueid},
          {"started", time_or_null(leg.started)},
          {"answered", time_or_null(leg.answered)},
          {"ended", time_or_null(leg.ended)},
          {"cause", leg.cause.code()},
          {"billsec", leg.reported_billsec ? json::value(leg.reported_billsec->count()) : json::value(nullptr)}};
}

// Reading: every miss is an Error naming the field, never an exception.
struct Reader {
  const json::object& o;
  std::string where;
  Error fail(const std::string& key, const std::string& what) const {
    return Error{"journal.corrupt", where + "." + key + ": " + what, key};
  }
  Result<std::string> text(const std::string& key) const {
    auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) return fail(key, "expected a string");
    return std::string(v->as_string());
  }
  Result<std::int64_t> number(const std::string& key) const {
    auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_int64()) return fail(key, "expected an integer");
    return v->as_int64();
  }
  Result<std::optional<std::int64_t>> optional_number(const std::string& key) const {
    auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) return std::optional<std::int64_t>{};
    if (!v->is_int64()) return fail(key, "expected an integer or null");
    return std::optional<std::int64_t>{v->as_int64()};
  }
};

Result<Leg> read_leg(const json::value& value, LegRole role, const std::string& where) {
  if (!value.is_object()) return Error{"journal.corrupt", where + ": expected an object", where};
  Reader r{value.as_object(), where};
  Leg leg;
  leg.role = role;
  if (auto* n = r.o.if_contains("number"); n != nullptr && n->is_string()) {
    auto number = PhoneNumber::from_e164(n->as_string());
    if (!number) return r.fail("number", number.error().message);
    leg.number = *number;
  }
  auto state = r.text("state");
  if (!state) return state.error();
  constexpr std::array states{LegState::idle, LegState::dialing, LegState::ringing, LegState::answered, LegState::ended};
  bool known = false;
  for (auto s : states) {
    if (to_string(s) == *state) leg.state = s, known = true;
  }
  if (!known) return r.fail("state", "unknown leg state \"" + *state + "\"");
  auto channel = r.text("channel");
  auto uniqueid = r.text("uniqueid");
  auto cause = r.number("cause");
  if (!channel) return channel.error();
  if (!uniqueid) return uniqueid.error();
  if (!cause) return cause.error();
  leg.channel = *channel;
  leg.uniqueid = *uniqueid;
  leg.cause = HangupCause{static_cast<int>(*cause)};
  for (auto [key, field] : {std::pair{"started", &leg.started}, std::pair{"answered", &leg.answered},
                            std::pair{"ended", &leg.ended}}) {
    auto t = r.optional_number(key);
    if (!t) return t.error();
    if (*t) *field = from_millis(**t);
  }
  auto billsec = r.optional_number("billsec");
  if (!billsec) return billsec.error();
  if (*billsec) leg.reported_billsec = std::chrono::seconds(**billsec);
  return leg;
}

std::optional<Announcement> announcement_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Announcement::enter_number); ++i) {
    if (to_string(static_cast<Announcement>(i)) == name) return static_cast<Announcement>(i);
  }
  return std::nullopt;
}

// The states a callback went through to reach `to`, judged from its legs (the journal
// keeps where it is, not how it got there; Call only takes allowed steps).
std::vector<CallState> path_to(CallState to, const Leg& a, const Leg& b, bool b_dialed) {
  std::vector<CallState> path{CallState::authorizing};
  constexpr std::array running{CallState::dialing_a, CallState::a_answered, CallState::dialing_b, CallState::bridged};
  CallState last = CallState::authorizing;
  if (!is_final(to)) {
    last = to;
  } else if (b.answered) {
    last = CallState::bridged;
  } else if (b_dialed) {
    last = CallState::dialing_b;
  } else if (a.answered) {
    last = CallState::a_answered;
  } else if (a.started) {
    last = CallState::dialing_a;
  }
  for (auto s : running) {
    if (static_cast<int>(s) > static_cast<int>(last)) break;
    path.push_back(s);
  }
  if (is_final(to)) path.push_back(to);
  return path;
}

}  // namespace

std::string encode(const Record& record) {
  const Call& call = record.call;
  const CallbackRequest& request = call.request();
  json::object payer;
  if (const auto* account = std::get_if<AccountId>(&request.payer)) {
    payer["account"] = account->value;
  } else {
    payer["campaign"] = std::get<CampaignId>(request.payer).value;
  }
  json::object metadata;
  for (const auto& [key, value] : request.metadata) metadata[key] = value;
  json::object o{
      {"v", 1},
      {"state", to_string(call.state())},
      {"created", millis(call.created_at())},
      {"updated", millis(call.updated_at())},
      {"request", json::object{{"caller", request.caller.digits()},
                               {"callee", request.callee ? request.callee->digits() : std::string()},
                               {"payer", payer},
                               {"origin", to_string(request.origin)},
                               {"limit", request.limit ? json::value(request.limit->count()) : json::value(nullptr)},
                               {"idempotency_key", request.idempotency_key},
                               {"language", request.language},
                               {"metadata", metadata}}},
      {"a", leg_json(call.leg_a())},
      {"b", leg_json(call.leg_b())},
      {"reservation", record.reservation},
      {"limit", record.limit.count()},
      {"b_dialed", record.b_dialed},
      {"server", record.server},
      {"covered", record.covered.count()},
      {"slice", record.slice.count()},
      {"ending", json::object{{"limit_reached", record.ending.limit_reached},
                              {"money_ran_out", record.ending.money_ran_out},
                              {"a_hung_up", record.ending.a_hung_up},
                              {"b_hung_up", record.ending.b_hung_up},
                              {"unobserved", record.ending.unobserved},
                              {"cancel_requested", record.ending.cancel_requested}}},
      {"outcome", record.outcome},
      {"announcement", record.announcement ? json::value(to_string(*record.announcement)) : json::value(nullptr)},
  };
  if (record.cost) {
    o["cost"] = json::object{{"micros", record.cost->micros()},
                             {"currency", record.cost->currency().code()},
                             {"exponent", record.cost->currency().minor_exponent()}};
  }
  if (record.error) o["error"] = json::object{{"code", record.error->code}, {"message", record.error->message},
                                                {"field", record.error->field}};
  return json::serialize(o);
}

Result<Record> decode(const std::string& id, const std::string& text) {
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec || !parsed.is_object()) return Error{"journal.corrupt", id + ": not a JSON object", "call"};
  Reader r{parsed.as_object(), id};
  auto* req = r.o.if_contains("request");
  if (req == nullptr || !req->is_object()) return r.fail("request", "expected an object");
  Reader q{req->as_object(), id + ".request"};
  std::vector<std::optional<PhoneNumber>> numbers;
  for (const char* key : {"caller", "callee"}) {
    auto digits = q.text(key);
    if (!digits) return digits.error();
    if (digits->empty() && numbers.size() == 1) {  // a callee not asked of A yet (IVR)
      numbers.emplace_back();
      continue;
    }
    auto number = PhoneNumber::from_e164(*digits);
    if (!number) return q.fail(key, number.error().message);
    numbers.emplace_back(*number);
  }
  CallbackRequest request{.caller = *numbers[0], .callee = numbers[1]};
  auto* payer = q.o.if_contains("payer");
  if (payer == nullptr || !payer->is_object()) return q.fail("payer", "expected an object");
  if (auto* a = payer->as_object().if_contains("account"); a != nullptr && a->is_string()) {
    request.payer = AccountId{std::string(a->as_string())};
  } else if (auto* c = payer->as_object().if_contains("campaign"); c != nullptr && c->is_string()) {
    request.payer = CampaignId{std::string(c->as_string())};
  } else {
    return q.fail("payer", "names neither an account nor a campaign");
  }
  auto origin = q.text("origin");
  if (!origin) return origin.error();
  request.origin = origin_from_string(*origin).value_or(Origin::api);
  auto limit = q.optional_number("limit");
  if (!limit) return limit.error();
  if (*limit) request.limit = std::chrono::seconds(**limit);
  auto key = q.text("idempotency_key");
  auto language = q.text("language");
  if (!key) return key.error();
  if (!language) return language.error();
  request.idempotency_key = *key;
  request.language = *language;
  if (auto* m = q.o.if_contains("metadata"); m != nullptr && m->is_object()) {
    for (const auto& [k, v] : m->as_object()) {
      if (v.is_string()) request.metadata.emplace(std::string(k), std::string(v.as_string()));
    }
  }
  auto created = r.number("created");
  auto updated = r.number("updated");
  auto state_name = r.text("state");
  if (!created) return created.error();
  if (!updated) return updated.error();
  if (!state_name) return state_name.error();
  auto state = call_state_from_string(*state_name);
  if (!state) return r.fail("state", "unknown state \"" + *state_name + "\"");
  auto* a_json = r.o.if_contains("a");
  auto* b_json = r.o.if_contains("b");
  if (a_json == nullptr || b_json == nullptr) return r.fail("a", "both legs are needed");
  auto a = read_leg(*a_json, LegRole::a, id + ".a");
  auto b = read_leg(*b_json, LegRole::b, id + ".b");
  if (!a) return a.error();
  if (!b) return b.error();

  Record record{.call = Call{id, std::move(request), from_millis(*created)}};
  auto reservation = r.text("reservation");
  auto record_limit = r.number("limit");
  auto server = r.text("server");
  auto outcome = r.text("outcome");
  if (!reservation) return reservation.error();
  if (!record_limit) return record_limit.error();
  if (!server) return server.error();
  if (!outcome) return outcome.error();
  record.reservation = *reservation;
  record.limit = std::chrono::seconds(*record_limit);
  record.server = *server;
  record.outcome = *outcome;
  if (auto* d = r.o.if_contains("b_dialed"); d != nullptr && d->is_bool()) record.b_dialed = d->as_bool();
  // Absent in entries written before they were added: whole-call reservations, nothing known.
  for (auto [name, field] : {std::pair{"covered", &record.covered}, std::pair{"slice", &record.slice}}) {
    if (auto* n = r.o.if_contains(name); n != nullptr && n->is_int64() && n->as_int64() >= 0) {
      *field = std::chrono::seconds(n->as_int64());
    }
  }
  if (auto* e = r.o.if_contains("ending"); e != nullptr && e->is_object()) {
    auto flag = [&](const char* name) {
      const auto* f = e->as_object().if_contains(name);
      return f != nullptr && f->is_bool() && f->as_bool();
    };
    record.ending = {.limit_reached = flag("limit_reached"), .money_ran_out = flag("money_ran_out"),
                     .a_hung_up = flag("a_hung_up"), .b_hung_up = flag("b_hung_up"),
                     .unobserved = flag("unobserved"), .cancel_requested = flag("cancel_requested")};
  }
  if (auto* n = r.o.if_contains("announcement"); n != nullptr && n->is_string()) {
    record.announcement = announcement_named(n->as_string());
  }
  if (auto* c = r.o.if_contains("cost"); c != nullptr && c->is_object()) {
    Reader cost{c->as_object(), id + ".cost"};
    auto micros = cost.number("micros");
    auto code = cost.text("currency");
    auto exponent = cost.number("exponent");
    if (!micros || !code || !exponent) return cost.fail("currency", "expected micros, currency and exponent");
    auto currency = Currency::of(*code, static_cast<int>(*exponent));
    if (!currency) return cost.fail("currency", currency.error().message);
    record.cost = Money::from_micros(*micros, *currency);
  }
  if (auto* e = r.o.if_contains("error"); e != nullptr && e->is_object()) {
    Reader err{e->as_object(), id + ".error"};
    record.error = Error{err.text("code").value_or(""), err.text("message").value_or(""), err.text("field").value_or("")};
  }
  const Timestamp at = from_millis(*updated);
  for (auto step : path_to(*state, *a, *b, record.b_dialed)) (void)record.call.transition(step, at);
  record.call.leg_a() = std::move(*a);
  record.call.leg_b() = std::move(*b);
  return record;
}

}  // namespace callback::journal
