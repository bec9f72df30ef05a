#include "sql_billing.hpp"

#include <callback/account.hpp>
#include <callback/secret.hpp>

#include <callback/timestamp.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <sstream>

namespace callback::billing_sql {
namespace {

// A payer's policy (payer_policy, as p): read with its account's or campaign's row.
#define POLICY_COLUMNS "p.allow_prefixes, p.deny_prefixes, p.max_call_cost_micros, p.daily_spend_micros, p.max_concurrent"
PayerPolicy policy_from(sqldb::Statement& select, int first, const Payer& payer);

std::string format_time(Timestamp t) { return format_timestamp(t); }
Timestamp parse_time(const std::string& text) { return parse_timestamp(text).value_or(Timestamp{}); }

// A rate as kept in a reservation, so the call is billed at the rate it was authorized
// with even if a new deck arrives meanwhile: "price,initial,subsequent,fee,minimum".
std::string encode(const Rate& rate) {
  return std::to_string(rate.price_per_minute.micros()) + "," + std::to_string(rate.initial_increment.count()) + "," +
         std::to_string(rate.subsequent_increment.count()) + "," + std::to_string(rate.connection_fee.micros()) + "," +
         std::to_string(rate.minimum_duration.count());
}

std::optional<Rate> decode(std::string_view text, const Currency& currency) {
  std::int64_t v[5] = {};
  for (int i = 0; i < 5; ++i) {
    const auto comma = text.find(',');
    const auto part = text.substr(0, comma);
    if (std::from_chars(part.data(), part.data() + part.size(), v[i]).ec != std::errc{}) return std::nullopt;
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return Rate{.price_per_minute = Money::from_micros(v[0], currency),
              .initial_increment = std::chrono::seconds(v[1]),
              .subsequent_increment = std::chrono::seconds(v[2]),
              .connection_fee = Money::from_micros(v[3], currency),
              .minimum_duration = std::chrono::seconds(v[4])};
}

Authorization deny(DenialReason reason, std::string message) {
  return Authorization{.allowed = false, .reason = reason, .message = std::move(message)};
}

// The longest time, on an increment boundary, whose cost (both legs) fits in `available`.
std::chrono::seconds affordable(const Rate& b, const std::optional<Rate>& a, Money available, std::chrono::seconds cap) {
  using std::chrono::seconds;
  auto cost = [&](seconds t) { return a ? b.cost(t) + a->cost(t) : b.cost(t); };
  const seconds step = std::max(b.subsequent_increment, seconds{1});
  const seconds initial = std::max({b.initial_increment, b.minimum_duration, seconds{1}});
  if (cost(initial) > available) return seconds{0};
  // Estimate from the per-minute price, then correct on the boundaries.
  const std::int64_t per_minute = b.price_per_minute.micros() + (a ? a->price_per_minute.micros() : 0);
  const std::int64_t fees = b.connection_fee.micros() + (a ? a->connection_fee.micros() : 0);
  seconds t = cap;
  if (per_minute > 0) {
    const std::int64_t estimate = (available.micros() - fees) * 60 / per_minute;
    t = std::min(cap, seconds{std::max<std::int64_t>(estimate, initial.count())});
  }
  if (t > initial) t = initial + ((t - initial) / step) * step;
  if (t < initial) t = initial;
  while (t > initial && cost(t) > available) t -= step;
  return cost(t) > available ? seconds{0} : t;
}

// The same second formats the same: many operations of a batch share it.
std::string now_text(Timestamp at) {
  thread_local std::time_t last = -1;
  thread_local std::string text;
  const std::time_t seconds = std::chrono::system_clock::to_time_t(at);
  if (seconds != last) {
    last = seconds;
    text = format_time(at);
  }
  return text;
}

std::string today(Timestamp at) { return now_text(at).substr(0, 10); }

}  // namespace

SqlBilling::SqlBilling(BillingRules rules, std::vector<std::unique_ptr<sqldb::Database>> connections)
    : options_(std::move(rules)), connections_(std::move(connections)), queues_(connections_.size()) {
  for (std::size_t i = 0; i < connections_.size(); ++i) writers_.emplace_back([this, i] { writer_loop(i); });
}

SqlBilling::~SqlBilling() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_ready_.notify_all();
  for (auto& writer : writers_) writer.join();
}

Result<std::unique_ptr<SqlBilling>> SqlBilling::open(BillingRules rules,
                                                     std::vector<std::unique_ptr<sqldb::Database>> connections) {
  if (connections.empty()) return Error{"config.value", "billing needs at least one connection", "connections"};
  std::unique_ptr<SqlBilling> billing(new SqlBilling(std::move(rules), std::move(connections)));
  if (auto ok = billing->load_decks(); !ok) return ok.error();
  return billing;
}

Status SqlBilling::load_decks() {
  // Read on the writer thread: the connection is its own.
  std::map<std::string, std::shared_ptr<const RateDeck>, std::less<>> decks;
  auto loaded = write([&](sqldb::Database& db) {
    decks.clear();  // a batch may be replayed
    std::map<std::string, Currency> currencies;
    sqldb::Statement& tariffs = db.prepared("SELECT name, currency, minor_exponent FROM tariff");
    while (tariffs.executeStep()) {
      currencies.emplace(tariffs.getColumn(0).getString(),
                         Currency::of(tariffs.getColumn(1).getString(), tariffs.getColumn(2).getInt()).value());
    }
    for (const auto& [name, currency] : currencies) {
      std::vector<RateLine> lines;
      auto select_owned = db.statement("SELECT prefix, description, price_micros, initial_increment, subsequent_increment, "
                               "connection_fee_micros, minimum_duration, effective_from, weekdays, start_minute, "
                               "end_minute, blocked FROM rate WHERE tariff = ?");
      auto& select = *select_owned;
      select.bind(1, name);
      while (select.executeStep()) {
        RateLine line;
        line.rate.prefix = select.getColumn(0).getString();
        line.rate.description = select.getColumn(1).getString();
        line.rate.price_per_minute = Money::from_micros(select.getColumn(2).getInt64(), currency);
        line.rate.initial_increment = std::chrono::seconds(select.getColumn(3).getInt());
        line.rate.subsequent_increment = std::chrono::seconds(select.getColumn(4).getInt());
        line.rate.connection_fee = Money::from_micros(select.getColumn(5).getInt64(), currency);
        line.rate.minimum_duration = std::chrono::seconds(select.getColumn(6).getInt());
        const auto effective = select.getColumn(7).getString();
        if (!effective.empty()) line.effective_from = parse_time(effective);
        line.weekdays = static_cast<std::uint8_t>(select.getColumn(8).getInt());
        line.start_minute = static_cast<std::uint16_t>(select.getColumn(9).getInt());
        line.end_minute = static_cast<std::uint16_t>(select.getColumn(10).getInt());
        line.blocked = select.getColumn(11).getInt() != 0;
        lines.push_back(std::move(line));
      }
      decks.emplace(name, RateDeck::build(std::move(lines)));
    }
  });
  if (!loaded) return loaded;
  std::lock_guard lock(decks_mutex_);
  decks_ = std::move(decks);
  return ok_status();
}

std::shared_ptr<const RateDeck> SqlBilling::deck(const std::string& tariff) const {
  std::lock_guard lock(decks_mutex_);
  auto it = decks_.find(tariff.empty() ? options_.default_tariff : tariff);
  return it == decks_.end() ? nullptr : it->second;
}

std::optional<Rate> SqlBilling::rate(const std::string& tariff, const PhoneNumber& destination, Timestamp at) const {
  auto d = deck(tariff);
  if (!d) return std::nullopt;
  const RateLine* line = d->lookup(destination.digits(), at);
  if (line == nullptr || line->blocked) return std::nullopt;
  return line->rate;
}

// --- the writer: one connection, group commit ------------------------------------------

Status SqlBilling::write(Operation op, std::size_t writer) {
  std::promise<Status> promise;
  auto done = promise.get_future();
  write_async(std::move(op), [&promise](Status status) { promise.set_value(std::move(status)); }, writer);
  return done.get();
}

void SqlBilling::write_async(Operation op, std::function<void(Status)> committed, std::size_t writer) {
  {
    std::lock_guard lock(queue_mutex_);
    if (!stopping_) {
      queues_[writer % queues_.size()].push_back({std::move(op), std::move(committed)});
      committed = nullptr;
    }
  }
  if (committed) return committed(Error{"billing_stopped", "billing is shutting down", {}});
  if (queues_.size() == 1) {
    queue_ready_.notify_one();
  } else {
    queue_ready_.notify_all();  // the writer it is for
  }
}

std::size_t SqlBilling::writer_for(const Payer& payer) {
  if (queues_.size() == 1) return 0;
  const auto* account = std::get_if<AccountId>(&payer);
  const std::string& id = account != nullptr ? account->value : std::get<CampaignId>(payer).value;
  return std::hash<std::string>{}(id) % queues_.size();
}

std::size_t SqlBilling::writer_of(const std::string& reservation, bool ends) {
  if (queues_.size() == 1) return 0;
  std::lock_guard lock(queue_mutex_);
  auto found = reservation_writers_.find(reservation);
  if (found == reservation_writers_.end()) return 0;  // authorized before a restart: any writer is right, one is safe
  const std::size_t writer = found->second;
  if (ends) reservation_writers_.erase(found);
  return writer;
}

void SqlBilling::writer_loop(std::size_t index) {
  sqldb::Database& db = *connections_[index];
  std::deque<Job>& queue = queues_[index];
  std::vector<Job> batch;
  while (true) {
    {
      std::unique_lock lock(queue_mutex_);
      queue_ready_.wait(lock, [&] { return stopping_ || !queue.empty(); });
      if (queue.empty()) return;  // stopping, nothing left
      while (!queue.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
    }
    std::vector<Status> results(batch.size(), ok_status());
    auto run = [&](const char* sql) {  // compiled once, like every statement here
      db.prepared(sql).exec();
      db.reset_statements();
    };
    auto begin = [&] {
      db.begin_write();
      db.reset_statements();
    };
    auto rollback = [&] {
      db.reset_statements();
      try {
        db.exec("ROLLBACK");
      } catch (...) {
      }
    };
    // Fast path: the whole batch in one transaction. Operations check everything before
    // they write, so one that throws is rare (a refused settle, a full disk); then the
    // batch is undone and every operation runs again in a transaction of its own, so
    // each gets its own answer and nothing is half-written.
    bool batch_ok = true;
    try {
      db.ensure_connected();
      begin();
      for (auto& job : batch) {
        job.op(db);
        db.reset_statements();
      }
      run("COMMIT");
    } catch (...) {
      rollback();
      batch_ok = false;
    }
    if (!batch_ok) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        try {
          db.ensure_connected();
          begin();
          batch[i].op(db);
          db.reset_statements();
          run("COMMIT");
        } catch (const Exception& e) {
          rollback();
          results[i] = e.error();
        } catch (const std::exception& e) {
          rollback();
          results[i] = Error{"billing_failed", e.what(), {}};
        } catch (...) {
          rollback();
          results[i] = Error{"billing_failed", "unknown failure", {}};
        }
      }
    }
    // Nothing a caller's continuation does may take the writer thread down.
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        batch[i].committed(std::move(results[i]));
      } catch (...) {
      }
    }
    batch.clear();
  }
}

// --- authorization ---------------------------------------------------------------------

SqlBilling::Operation SqlBilling::authorize_op(AuthorizationRequest request, std::shared_ptr<Authorization> out) {
  return [this, request = std::move(request), out](sqldb::Database& db) {
    const Timestamp now = this->now();
    const std::string reservation_id = "res-" + request.call_id;
    Authorization& result = *out;
    result = Authorization{};
    auto deny_for = [&](DenialReason reason, std::string message, std::string field, std::string rule = {}) {
      result = deny(reason, std::move(message));
      result.field = std::move(field);
      result.rule = std::move(rule);
    };
    const auto* account_id = std::get_if<AccountId>(&request.payer);
    const bool is_account = account_id != nullptr;
    const std::string& payer_id = is_account ? account_id->value : std::get<CampaignId>(request.payer).value;
    const std::string payer_field = is_account ? "account" : "campaign";
    const std::string destination = request.destination.digits();

    // --- who pays, and may they ----------------------------------------------------
    Currency currency;
    Money available;  // accounts: balance - reserved + credit
    std::string tariff;
    std::string language;
    std::chrono::seconds campaign_limit{0};
    std::int64_t campaign_budget = 0;  // seconds a day; 0: none
    PayerPolicy policy{.payer = request.payer};
    if (is_account) {
      // The payer's policy comes in the same read (one round trip to a database server).
      sqldb::Statement& select = db.prepared(
          "SELECT a.currency, a.minor_exponent, a.balance_micros, a.credit_limit_micros, a.reserved_micros, a.status, "
          "a.tariff, a.secret_hash, a.language, " POLICY_COLUMNS " FROM account a LEFT JOIN payer_policy p ON "
          "p.payer_kind = 'account' AND p.payer_id = a.id WHERE a.id = ?{lock a}");
      select.bindNoCopy(1, payer_id);
      if (!select.executeStep()) return deny_for(DenialReason::unknown_account, "no account " + payer_id, payer_field);
      currency = Currency::of(select.getColumn(0).getString(), select.getColumn(1).getInt()).value_or(Currency{});
      const Money balance = Money::from_micros(select.getColumn(2).getInt64(), currency);
      const Money credit = Money::from_micros(select.getColumn(3).getInt64(), currency);
      const Money reserved = Money::from_micros(select.getColumn(4).getInt64(), currency);
      available = balance - reserved + credit;
      if (select.getColumn(5).getString() != "active") {
        return deny_for(DenialReason::disabled, "account " + payer_id + " is disabled", payer_field);
      }
      tariff = select.getColumn(6).getString();
      const std::string secret_hash = select.getColumn(7).getString();
      language = select.getColumn(8).getString();  // for the call's announcements, from this same read
      policy = policy_from(select, 9, request.payer);
      // Who may spend it: the PIN/password, or a call from a registered number.
      if (!request.secret.empty()) {
        if (secret_hash.empty() || !verify_secret(request.secret, secret_hash)) {
          return deny_for(DenialReason::bad_secret, "wrong PIN or password for account " + payer_id, "pin");
        }
      } else if (!secret_hash.empty()) {
        sqldb::Statement& number = db.prepared("SELECT 1 FROM account_number WHERE account_id = ? AND number = ?");
        number.bindNoCopy(1, payer_id);
        number.bind(2, request.caller.digits());
        if (!number.executeStep()) {
          return deny_for(DenialReason::bad_secret,
                          "account " + payer_id + " needs its PIN, or a call from a registered number", "pin");
        }
      }
    } else {
      sqldb::Statement& select = db.prepared(
          "SELECT c.limit_seconds, c.uses_per_day, c.once_ever, c.min_hours_between, c.daily_budget_seconds, c.status, "
          "c.tariff, " POLICY_COLUMNS " FROM campaign c LEFT JOIN payer_policy p ON p.payer_kind = 'campaign' AND "
          "p.payer_id = c.id WHERE c.id = ?{lock c}");
      select.bindNoCopy(1, payer_id);
      if (!select.executeStep()) return deny_for(DenialReason::campaign_limit, "no campaign " + payer_id, payer_field);
      campaign_limit = std::chrono::seconds(select.getColumn(0).getInt());
      const int per_day = select.getColumn(1).getInt();
      const bool once = select.getColumn(2).getInt() != 0;
      const int hours_between = select.getColumn(3).getInt();
      campaign_budget = select.getColumn(4).getInt64();
      if (select.getColumn(5).getString() != "active") {
        return deny_for(DenialReason::disabled, "campaign " + payer_id + " is over", payer_field);
      }
      tariff = select.getColumn(6).getString();
      policy = policy_from(select, 7, request.payer);
      // A use is a call that is in flight or talked; attempts that never connected do not
      // count. Counted by the caller's E.164 number, however it was typed.
      sqldb::Statement& uses = db.prepared("SELECT COUNT(*), COALESCE(SUM(CASE WHEN day = ? THEN 1 ELSE 0 END), 0), MAX(at) FROM campaign_use "
                             "WHERE campaign = ? AND caller = ? AND (status = 'open' OR (status = 'settled' AND seconds > 0))");
      uses.bind(1, today(now));
      uses.bindNoCopy(2, payer_id);
      uses.bind(3, request.caller.digits());
      uses.executeStep();
      const auto ever = uses.getColumn(0).getInt64();
      const auto today_uses = uses.getColumn(1).getInt64();
      if (once && ever > 0) {
        return deny_for(DenialReason::campaign_limit, request.caller.e164() + " already used campaign " + payer_id,
                        "caller", "once_ever");
      }
      if (per_day > 0 && today_uses >= per_day) {
        return deny_for(DenialReason::campaign_limit, request.caller.e164() + " used campaign " + payer_id + " " +
                                                          std::to_string(today_uses) + " times today",
                        "caller", "uses_per_day " + std::to_string(per_day));
      }
      if (hours_between > 0 && !uses.getColumn(2).isNull()) {
        const auto last = parse_time(uses.getColumn(2).getString());
        if (now - last < std::chrono::hours(hours_between)) {
          return deny_for(DenialReason::campaign_limit,
                          request.caller.e164() + " must wait " + std::to_string(hours_between) + " h between calls",
                          "caller", "min_hours_between " + std::to_string(hours_between));
        }
      }
    }

    // --- where to: the deny lists, the allow list, the deck ---------------------------
    auto denied_prefix = [&](const std::vector<std::string>& prefixes) -> std::optional<std::string> {
      for (const auto& prefix : prefixes) {
        if (destination.starts_with(prefix)) return prefix;
      }
      return std::nullopt;
    };
    if (auto prefix = denied_prefix(options_.deny_prefixes)) {
      return deny_for(DenialReason::destination_blocked,
                      request.destination.e164() + " is in a denied range (+" + *prefix + ", billing's default list)",
                      "callee", "deny_prefix +" + *prefix + " (default)");
    }
    if (auto prefix = denied_prefix(policy.deny_prefixes)) {
      return deny_for(DenialReason::destination_blocked,
                      request.destination.e164() + " is in a range " + payer_field + " " + payer_id + " may not call",
                      "callee", "deny_prefix +" + *prefix);
    }
    if (!policy.allow_prefixes.empty() && !denied_prefix(policy.allow_prefixes)) {
      std::string allowed;
      for (const auto& prefix : policy.allow_prefixes) allowed += (allowed.empty() ? "+" : " +") + prefix;
      return deny_for(DenialReason::destination_blocked,
                      request.destination.e164() + " is outside the ranges " + payer_field + " " + payer_id +
                          " may call",
                      "callee", "allow_prefixes " + allowed);
    }
    const std::string tariff_name = tariff.empty() ? options_.default_tariff : tariff;
    auto d = deck(tariff);
    const RateLine* line_b = d ? d->lookup(destination, now) : nullptr;
    if (line_b != nullptr && line_b->blocked) {
      return deny_for(DenialReason::destination_blocked,
                      request.destination.e164() + " is barred (" + line_b->rate.prefix + ")", "callee",
                      "BLOCKED " + line_b->rate.prefix + " in tariff " + tariff_name);
    }
    // An account pays by the deck, so it needs a rate; a campaign needs one when its deck
    // exists (a range the operator prices nowhere is not one to give away) or it was named.
    if (line_b == nullptr && (is_account || d != nullptr || !tariff.empty())) {
      return deny_for(DenialReason::no_rate,
                      "no rate for " + request.destination.e164() + " in tariff \"" + tariff_name + "\"", "callee",
                      "no rate in tariff " + tariff_name);
    }
    std::optional<Rate> rate_b;
    if (line_b != nullptr) rate_b = line_b->rate;
    if (!is_account && rate_b) currency = rate_b->price_per_minute.currency();
    if (is_account && !(line_b->rate.price_per_minute.currency() == currency)) {
      return deny_for(DenialReason::no_rate,
                      "tariff is in " + std::string(line_b->rate.price_per_minute.currency().code()) +
                          ", the account in " + std::string(currency.code()),
                      payer_field);
    }
    std::optional<Rate> rate_a;
    if (is_account && options_.bill_leg_a) {
      const RateLine* line_a = d->lookup(request.caller.digits(), now);
      if (line_a == nullptr || line_a->blocked) {
        return deny_for(DenialReason::no_rate, "no rate for the caller's leg " + request.caller.e164(), "caller",
                        "no rate in tariff " + tariff_name);
      }
      rate_a = line_a->rate;
    }

    // --- how many at once -------------------------------------------------------------
    if (policy.max_concurrent > 0) {
      sqldb::Statement& open = db.prepared(is_account
                                                 ? "SELECT COUNT(*) FROM reservation WHERE account_id = ? AND status = 'open'"
                                                 : "SELECT COUNT(*) FROM reservation WHERE campaign = ? AND status = 'open'");
      open.bindNoCopy(1, payer_id);
      open.executeStep();
      if (open.getColumn(0).getInt64() >= policy.max_concurrent) {
        return deny_for(DenialReason::too_many_calls,
                        payer_field + " " + payer_id + " has " + std::to_string(open.getColumn(0).getInt64()) +
                            " calls in flight, the most it may",
                        payer_field, "max_concurrent " + std::to_string(policy.max_concurrent));
      }
    }

    // --- how long: what the money, the policy and the caller allow ---------------------
    std::chrono::seconds cap = is_account ? options_.max_call : campaign_limit;
    if (request.max_duration) cap = std::min(cap, std::max(*request.max_duration, std::chrono::seconds{1}));
    if (!is_account && campaign_budget > 0) {
      sqldb::Statement& spent = db.prepared("SELECT COALESCE(SUM(seconds), 0) FROM campaign_use WHERE campaign = ? AND day = ? "
                                  "AND status <> 'released'");
      spent.bindNoCopy(1, payer_id);
      spent.bind(2, today(now));
      spent.executeStep();
      const auto left = campaign_budget - spent.getColumn(0).getInt64();
      if (left < 60) {
        return deny_for(DenialReason::campaign_limit, "campaign " + payer_id + " has spent today's budget",
                        payer_field, "daily_budget_seconds " + std::to_string(campaign_budget));
      }
      cap = std::min(cap, std::chrono::seconds(left));
    }
    std::chrono::seconds seconds = cap;
    Money amount = Money::zero(currency);
    if (rate_b) {
      auto cost = [&](std::chrono::seconds t) { return rate_a ? rate_b->cost(t) + rate_a->cost(t) : rate_b->cost(t); };
      // Each money limit in turn: the one that cuts the call shortest says why when it is nothing.
      struct Limit {
        Money money;
        DenialReason reason;
        std::string rule;
      };
      std::vector<Limit> limits;
      if (is_account) limits.push_back({available, DenialReason::insufficient_balance, {}});
      if (policy.max_call_cost) {
        limits.push_back({Money::from_micros(policy.max_call_cost->micros(), currency), DenialReason::spend_limit,
                          "max_call_cost " + Money::from_micros(policy.max_call_cost->micros(), currency).format()});
      }
      if (policy.daily_spend) {
        const Money spent = spent_today(db, request.payer, now, currency, {});
        limits.push_back({Money::from_micros(policy.daily_spend->micros(), currency) - spent, DenialReason::spend_limit,
                          "daily_spend " + Money::from_micros(policy.daily_spend->micros(), currency).format()});
      }
      for (const auto& limit : limits) {
        const auto fits = affordable(*rate_b, rate_a, limit.money, seconds);
        if (fits.count() == 0) {
          std::string message = limit.rule.empty()
                                    ? "available " + limit.money.format() + " " + std::string(currency.code()) +
                                          " is less than the first increment at " +
                                          rate_b->price_per_minute.format() + "/min"
                                    : "the first increment at " + rate_b->price_per_minute.format() +
                                          "/min goes past the " + payer_field + "'s limit";
          return deny_for(limit.reason, std::move(message), limit.rule.empty() ? payer_field : "callee", limit.rule);
        }
        seconds = std::min(seconds, fits);
      }
      amount = cost(seconds);
    }
    // Accounts' money is held one debit interval at a time, extended while the call lasts.
    std::chrono::seconds covered = seconds;
    if (is_account && options_.debit_interval.count() > 0 && options_.debit_interval < seconds) {
      covered = affordable(*rate_b, rate_a, amount, options_.debit_interval);
      if (covered.count() == 0 || covered > seconds) covered = seconds;
      amount = rate_a ? rate_b->cost(covered) + rate_a->cost(covered) : rate_b->cost(covered);
    }

    // --- hold it ------------------------------------------------------------------------
    sqldb::Statement& insert = db.prepared("INSERT INTO reservation (id, account_id, campaign, call_id, amount_micros, max_seconds, "
                             "limit_seconds, rate, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert.bindNoCopy(1, reservation_id);
    if (is_account) {
      insert.bindNoCopy(2, payer_id);
      insert.bind(3);
    } else {
      insert.bind(2);
      insert.bindNoCopy(3, payer_id);
    }
    insert.bind(4, request.call_id);
    insert.bind(5, amount.micros());
    insert.bind(6, static_cast<std::int64_t>(covered.count()));
    insert.bind(7, static_cast<std::int64_t>(seconds.count()));
    insert.bind(8, rate_b ? encode(*rate_b) + (rate_a ? ";" + encode(*rate_a) : std::string()) : std::string());
    insert.bind(9, now_text(now));
    insert.send();
    if (is_account) {
      sqldb::Statement& hold = db.prepared("UPDATE account SET reserved_micros = reserved_micros + ? WHERE id = ?");
      hold.bind(1, amount.micros());
      hold.bindNoCopy(2, payer_id);
      hold.send();
    } else {
      sqldb::Statement& use = db.prepared("INSERT INTO campaign_use (reservation, campaign, caller, at, day, seconds) "
                                "VALUES (?, ?, ?, ?, ?, ?)");
      use.bindNoCopy(1, reservation_id);
      use.bindNoCopy(2, payer_id);
      use.bind(3, request.caller.digits());
      use.bind(4, now_text(now));
      use.bind(5, today(now));
      use.bind(6, static_cast<std::int64_t>(seconds.count()));
      use.send();
    }
    result = Authorization{.allowed = true, .max_duration = seconds, .reserved_for = covered,
                           .reservation = reservation_id, .rate = rate_b, .language = std::move(language)};
  };
}

// Today's spend of a payer (UTC day): open reservations' holds and settled charges,
// leaving out one reservation (the one being extended).
Money SqlBilling::spent_today(sqldb::Database& db, const Payer& payer, Timestamp now, const Currency& currency,
                                 const std::string& except) {
  const bool is_account = std::holds_alternative<AccountId>(payer);
  sqldb::Statement& spent = db.prepared(is_account ? "SELECT COALESCE(SUM(CASE status WHEN 'open' THEN amount_micros WHEN 'settled' THEN cost_micros "
                       "ELSE 0 END), 0) FROM reservation WHERE account_id = ? AND created_at >= ? AND id <> ?"
                     : "SELECT COALESCE(SUM(CASE status WHEN 'open' THEN amount_micros WHEN 'settled' THEN cost_micros "
                       "ELSE 0 END), 0) FROM reservation WHERE campaign = ? AND created_at >= ? AND id <> ?");
  spent.bind(1, is_account ? std::get<AccountId>(payer).value : std::get<CampaignId>(payer).value);
  spent.bind(2, today(now));
  spent.bind(3, except);
  spent.executeStep();
  return Money::from_micros(spent.getColumn(0).getInt64(), currency);
}

Result<Authorization> SqlBilling::authorize(const AuthorizationRequest& request) {
  std::promise<Result<Authorization>> promise;
  auto answer = promise.get_future();
  authorize_async(request, [&promise](Result<Authorization> result) { promise.set_value(std::move(result)); });
  return answer.get();
}

void SqlBilling::authorize_async(const AuthorizationRequest& request,
                                    std::function<void(Result<Authorization>)> done) {
  auto out = std::make_shared<Authorization>();
  const std::size_t writer = writer_for(request.payer);
  write_async(
      authorize_op(request, out),
      [this, out, writer, done = std::move(done)](Status written) {
        if (!written) return done(Error{"billing_unavailable", written.error().message, {}}.as(ErrorKind::unavailable));
        if (out->allowed && queues_.size() > 1) {
          std::lock_guard lock(queue_mutex_);
          reservation_writers_[out->reservation] = writer;  // its settle goes to the same writer
        }
        done(std::move(*out));
      },
      writer);
}



namespace {

// What a settled reservation charged, in its account's currency (0 for a campaign's).
Money settled_cost(sqldb::Database& db, const std::string& reservation) {
  auto select_owned = db.statement("SELECT r.cost_micros, a.currency, a.minor_exponent FROM reservation r "
                               "LEFT JOIN account a ON a.id = r.account_id WHERE r.id = ?");
  auto& select = *select_owned;
  select.bind(1, reservation);
  if (!select.executeStep() || select.getColumn(1).isNull()) return Money{};
  const Currency currency = Currency::of(select.getColumn(1).getString(), select.getColumn(2).getInt()).value_or(Currency{});
  return Money::from_micros(select.getColumn(0).getInt64(), currency);
}

}  // namespace

Result<std::vector<Authorizer::Held>> SqlBilling::open_reservations() {
  std::vector<Held> held;
  auto read = write([&held](sqldb::Database& db) {
    auto select_owned = db.statement("SELECT id, call_id, max_seconds FROM reservation WHERE status = 'open' ORDER BY created_at");
    auto& select = *select_owned;
    while (select.executeStep()) {
      held.push_back(Held{.reservation = select.getColumn(0).getString(), .call_id = select.getColumn(1).getString(),
                          .status = "open", .covered = std::chrono::seconds(select.getColumn(2).getInt64())});
    }
  });
  if (!read) return read.error();
  return held;
}

Result<std::optional<Authorizer::Held>> SqlBilling::reservation_of(const std::string& call_id) {
  std::optional<Held> held;
  auto read = write([&held, call_id](sqldb::Database& db) {
    auto select_owned = db.statement("SELECT id, status, max_seconds FROM reservation WHERE call_id = ? ORDER BY created_at DESC LIMIT 1");
    auto& select = *select_owned;
    select.bind(1, call_id);
    if (!select.executeStep()) return;
    held = Held{.reservation = select.getColumn(0).getString(), .call_id = call_id,
                .status = select.getColumn(1).getString(),
                .covered = std::chrono::seconds(select.getColumn(2).getInt64())};
    if (held->status == "settled") held->cost = settled_cost(db, held->reservation);
  });
  if (!read) return read.error();
  return held;
}

SqlBilling::Operation SqlBilling::settle_op(std::string reservation, std::chrono::seconds billsec,
                                                  std::shared_ptr<Money> out) {
  return [this, reservation = std::move(reservation), billsec, out](sqldb::Database& db) {
    Money& charged = *out;
    // The account's currency in the same read: the account's row is locked by the charge's
    // update below, in the same order as every writer (reservation, then account).
    sqldb::Statement& select = db.prepared(
        "SELECT r.account_id, r.campaign, r.call_id, r.amount_micros, r.max_seconds, r.rate, r.status, a.currency, "
        "a.minor_exponent FROM reservation r LEFT JOIN account a ON a.id = r.account_id WHERE r.id = ?{lock r}");
    select.bindNoCopy(1, reservation);
    if (!select.executeStep()) throw Exception(Error{"unknown_reservation", "no reservation " + reservation, "reservation"});
    if (select.getColumn(6).getString() == "settled") {
      // Settled before (a crash came between the charge and the call's records): the
      // same answer again, nothing charged twice.
      charged = settled_cost(db, reservation);
      return;
    }
    if (select.getColumn(6).getString() != "open") {
      throw Exception(Error{"reservation_ended", "reservation " + reservation + " is already " +
                                                     select.getColumn(6).getString() + "; nothing charged twice",
                            "reservation"});
    }
    const auto now = now_text(this->now());
    if (select.getColumn(0).isNull()) {  // a campaign call: free for the caller, counted for the campaign
      sqldb::Statement& use = db.prepared("UPDATE campaign_use SET status = 'settled', seconds = ? WHERE reservation = ?");
      use.bind(1, static_cast<std::int64_t>(billsec.count()));
      use.bindNoCopy(2, reservation);
      use.send();
      // What it cost the operator at the campaign's deck (its spend limits count it); nobody is charged.
      std::int64_t cost = 0;
      if (auto rate = decode(select.getColumn(5).getString(), Currency{})) {
        cost = std::min(rate->cost(billsec).micros(), select.getColumn(3).getInt64());
      }
      sqldb::Statement& end = db.prepared("UPDATE reservation SET status = 'settled', ended_at = ?, billsec = ?, cost_micros = ? "
                                "WHERE id = ?");
      end.bindNoCopy(1, now);
      end.bind(2, static_cast<std::int64_t>(billsec.count()));
      end.bind(3, cost);
      end.bindNoCopy(4, reservation);
      end.send();
      charged = Money{};
      return;
    }
    const std::string account_id = select.getColumn(0).getString();
    const std::string call_id = select.getColumn(2).getString();
    const std::int64_t amount = select.getColumn(3).getInt64();
    const std::string rates = select.getColumn(5).getString();
    if (select.getColumn(7).isNull()) {
      throw Exception(Error{"unknown_account", "no account " + account_id, "account"}.as(ErrorKind::not_found));
    }
    const Currency currency = Currency::of(select.getColumn(7).getString(), select.getColumn(8).getInt()).value_or(Currency{});
    const auto semicolon = rates.find(';');
    auto rate_b = decode(std::string_view(rates).substr(0, semicolon), currency);
    if (!rate_b) throw Exception(Error{"corrupt_reservation", "reservation " + reservation + " has no rate", {}});
    Money cost = rate_b->cost(billsec);
    if (semicolon != std::string::npos) {
      if (auto rate_a = decode(std::string_view(rates).substr(semicolon + 1), currency)) cost += rate_a->cost(billsec);
    }
    // Never more than was reserved: the reservation is the promise that the balance holds.
    if (cost.micros() > amount) cost = Money::from_micros(amount, currency);
    // The charge goes through the ledger's one way of moving money (an increment, the call
    // as its reference), and the hold ends in the same update. The reference is new: this
    // is the call's one reservation (its id is the call's), found open under its lock, and
    // the charge and the reservation's end commit together, so no lookup is needed.
    sqldb::post_ledger(db,
                       {.account_id = account_id, .amount = -cost, .kind = LedgerKind::call_charge,
                        .reference = call_id, .note = std::to_string(billsec.count()) + " s", .at = parse_time(now)},
                       currency, {.first = true, .release_reserved = amount, .unread = true});
    sqldb::Statement& end = db.prepared("UPDATE reservation SET status = 'settled', ended_at = ?, billsec = ?, cost_micros = ? "
                              "WHERE id = ?");
    end.bindNoCopy(1, now);
    end.bind(2, static_cast<std::int64_t>(billsec.count()));
    end.bind(3, cost.micros());
    end.bindNoCopy(4, reservation);
    end.send();
    charged = cost;
  };
}

Result<Money> SqlBilling::settle(const std::string& reservation, std::chrono::seconds billsec) {
  if (billsec.count() < 0) return Error{"invalid_billsec", "billsec cannot be negative", "billsec"};
  auto out = std::make_shared<Money>();
  auto written = write(settle_op(reservation, billsec, out), writer_of(reservation, true));
  if (!written) return written.error();
  return *out;
}

void SqlBilling::settle_async(const std::string& reservation, std::chrono::seconds billsec,
                                 std::function<void(Result<Money>)> done) {
  if (billsec.count() < 0) return done(Error{"invalid_billsec", "billsec cannot be negative", "billsec"});
  auto out = std::make_shared<Money>();
  const std::size_t writer = writer_of(reservation, true);
  write_async(
      settle_op(reservation, billsec, out),
      [out, done = std::move(done)](Status written) {
        if (!written) return done(written.error());
        done(*out);
      },
      writer);
}



Status SqlBilling::release(const std::string& reservation) {
  return write(release_op(reservation), writer_of(reservation, true));
}

void SqlBilling::release_async(const std::string& reservation, std::function<void(Status)> done) {
  write_async(release_op(reservation), std::move(done), writer_of(reservation, true));
}

SqlBilling::Operation SqlBilling::release_op(std::string reservation) {
  return [this, reservation = std::move(reservation)](sqldb::Database& db) {
    sqldb::Statement& select = db.prepared("SELECT account_id, amount_micros, status FROM reservation WHERE id = ?{lock}");
    select.bindNoCopy(1, reservation);
    if (!select.executeStep()) throw Exception(Error{"unknown_reservation", "no reservation " + reservation, "reservation"});
    if (select.getColumn(2).getString() != "open") {
      throw Exception(Error{"reservation_ended", "reservation " + reservation + " is already " +
                                                     select.getColumn(2).getString(), "reservation"});
    }
    if (!select.getColumn(0).isNull()) {
      sqldb::Statement& update = db.prepared("UPDATE account SET reserved_micros = reserved_micros - ? WHERE id = ?");
      update.bind(1, select.getColumn(1).getInt64());
      update.bind(2, select.getColumn(0).getString());
      update.send();
    } else {
      sqldb::Statement& use = db.prepared("UPDATE campaign_use SET status = 'released', seconds = 0 WHERE reservation = ?");
      use.bindNoCopy(1, reservation);
      use.send();
    }
    sqldb::Statement& end = db.prepared("UPDATE reservation SET status = 'released', ended_at = ? WHERE id = ?");
    end.bind(1, format_time(this->now()));
    end.bindNoCopy(2, reservation);
    end.send();
  };
}

// --- extending a reservation (debit intervals) ----------------------------------------

SqlBilling::Operation SqlBilling::extend_op(std::string reservation, std::chrono::seconds wanted,
                                                  std::shared_ptr<std::chrono::seconds> out) {
  return [this, reservation = std::move(reservation), wanted, out](sqldb::Database& db) {
    const Timestamp now = this->now();
    sqldb::Statement& select = db.prepared("SELECT account_id, amount_micros, max_seconds, limit_seconds, rate, status "
                                 "FROM reservation WHERE id = ?{lock}");
    select.bindNoCopy(1, reservation);
    if (!select.executeStep()) throw Exception(Error{"unknown_reservation", "no reservation " + reservation, "reservation"});
    if (select.getColumn(5).getString() != "open") {
      throw Exception(Error{"reservation_ended", "reservation " + reservation + " is already " +
                                                     select.getColumn(5).getString(), "reservation"});
    }
    const std::chrono::seconds covered(select.getColumn(2).getInt64());
    const std::chrono::seconds limit(select.getColumn(3).getInt64());
    *out = covered;
    // Campaigns and whole-call reservations already cover all they ever will.
    if (select.getColumn(0).isNull() || limit <= covered || wanted <= covered) return;
    const std::string account_id = select.getColumn(0).getString();
    const std::int64_t held = select.getColumn(1).getInt64();
    const std::string rates = select.getColumn(4).getString();
    sqldb::Statement& account = db.prepared("SELECT currency, minor_exponent, balance_micros, credit_limit_micros, "
                                  "reserved_micros FROM account WHERE id = ?{lock}");
    account.bindNoCopy(1, account_id);
    if (!account.executeStep()) {
      throw Exception(Error{"unknown_account", "no account " + account_id, "account"}.as(ErrorKind::not_found));
    }
    const Currency currency = Currency::of(account.getColumn(0).getString(), account.getColumn(1).getInt()).value_or(Currency{});
    // What this call may hold in all: its own hold plus what is free, within the policy.
    Money money = Money::from_micros(account.getColumn(2).getInt64() + account.getColumn(3).getInt64() -
                                         account.getColumn(4).getInt64() + held, currency);
    const Payer payer = AccountId{account_id};
    const PayerPolicy policy = read_policy(db, payer);
    if (policy.daily_spend) {
      const Money left = Money::from_micros(policy.daily_spend->micros(), currency) -
                         spent_today(db, payer, now, currency, reservation);
      if (left < money) money = left;
    }
    const auto semicolon = rates.find(';');
    auto rate_b = decode(std::string_view(rates).substr(0, semicolon), currency);
    if (!rate_b) throw Exception(Error{"corrupt_reservation", "reservation " + reservation + " has no rate", {}});
    std::optional<Rate> rate_a;
    if (semicolon != std::string::npos) rate_a = decode(std::string_view(rates).substr(semicolon + 1), currency);
    const auto target = std::min(wanted, limit);
    const auto grown = affordable(*rate_b, rate_a, money, target);
    if (grown <= covered) return;  // the money ran out: the call ends at `covered`
    const std::int64_t amount = (rate_a ? rate_b->cost(grown) + rate_a->cost(grown) : rate_b->cost(grown)).micros();
    sqldb::Statement& hold = db.prepared("UPDATE account SET reserved_micros = reserved_micros + ? WHERE id = ?");
    hold.bind(1, amount - held);
    hold.bindNoCopy(2, account_id);
    hold.send();
    sqldb::Statement& update = db.prepared("UPDATE reservation SET amount_micros = ?, max_seconds = ? WHERE id = ?");
    update.bind(1, amount);
    update.bind(2, static_cast<std::int64_t>(grown.count()));
    update.bindNoCopy(3, reservation);
    update.send();
    *out = grown;
  };
}

Result<std::chrono::seconds> SqlBilling::extend(const std::string& reservation, std::chrono::seconds wanted) {
  auto out = std::make_shared<std::chrono::seconds>(0);
  auto written = write(extend_op(reservation, wanted, out), writer_of(reservation, false));
  if (!written) return written.error();
  return *out;
}

void SqlBilling::extend_async(const std::string& reservation, std::chrono::seconds wanted,
                                 std::function<void(Result<std::chrono::seconds>)> done) {
  auto out = std::make_shared<std::chrono::seconds>(0);
  const std::size_t writer = writer_of(reservation, false);
  write_async(
      extend_op(reservation, wanted, out),
      [out, done = std::move(done)](Status written) {
        if (!written) return done(written.error());
        done(*out);
      },
      writer);
}

// --- payers' policies -------------------------------------------------------------------

namespace {

std::string join_prefixes(const std::vector<std::string>& prefixes) {
  std::string out;
  for (const auto& p : prefixes) out += (out.empty() ? "" : ",") + p;
  return out;
}

std::vector<std::string> split_prefixes(const std::string& text) {
  std::vector<std::string> out;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    if (comma != 0) out.emplace_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

// A payer's policy from POLICY_COLUMNS, read from column `first` on (all NULL: no policy).
PayerPolicy policy_from(sqldb::Statement& select, int first, const Payer& payer) {
  PayerPolicy policy{.payer = payer};
  policy.allow_prefixes = split_prefixes(select.getColumn(first).getString());
  policy.deny_prefixes = split_prefixes(select.getColumn(first + 1).getString());
  if (auto cost = select.getColumn(first + 2); !cost.isNull()) {
    policy.max_call_cost = Money::from_micros(cost.getInt64(), Currency{});
  }
  if (auto spend = select.getColumn(first + 3); !spend.isNull()) {
    policy.daily_spend = Money::from_micros(spend.getInt64(), Currency{});
  }
  policy.max_concurrent = select.getColumn(first + 4).getInt();
  return policy;
}

std::pair<const char*, std::string> payer_key(const Payer& payer) {
  if (const auto* account = std::get_if<AccountId>(&payer)) return {"account", account->value};
  return {"campaign", std::get<CampaignId>(payer).value};
}

}  // namespace

PayerPolicy SqlBilling::read_policy(sqldb::Database& db, const Payer& payer) {
  const auto [kind, id] = payer_key(payer);
  sqldb::Statement& select = db.prepared("SELECT " POLICY_COLUMNS " FROM payer_policy p WHERE payer_kind = ? AND payer_id = ?");
  select.bind(1, kind);
  select.bind(2, id);
  if (!select.executeStep()) return PayerPolicy{.payer = payer};
  return policy_from(select, 0, payer);
}

Status SqlBilling::put_policy(const PayerPolicy& policy) {
  const auto [kind, id] = payer_key(policy.payer);
  if (auto ok = Account::validate_id(id); !ok) return Error{"invalid_policy", ok.error().message, kind};
  for (const auto* list : {&policy.allow_prefixes, &policy.deny_prefixes}) {
    const std::string field = list == &policy.allow_prefixes ? "allow_prefixes" : "deny_prefixes";
    for (const auto& prefix : *list) {
      if (prefix.empty() || prefix.size() > PhoneNumber::max_digits ||
          !std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return Error{"invalid_policy", "a prefix is 1 to 15 digits of an E.164 number (\"882\", \"1900\"), got \"" +
                                           prefix + "\"", field};
      }
    }
  }
  for (auto [amount, field] : {std::pair{&policy.max_call_cost, "max_call_cost"}, {&policy.daily_spend, "daily_spend"}}) {
    if (*amount && (*amount)->micros() <= 0) return Error{"invalid_policy", "must be more than 0 (leave it out for no limit)", field};
  }
  if (policy.max_concurrent < 0) return Error{"invalid_policy", "must be 0 (no limit) or more", "max_concurrent"};
  return write([&, kind = kind, id = id](sqldb::Database& db) {
    sqldb::Statement& upsert = db.prepared("INSERT INTO payer_policy (payer_kind, payer_id, allow_prefixes, deny_prefixes, max_call_cost_micros, "
        "daily_spend_micros, max_concurrent) VALUES (?,?,?,?,?,?,?) ON CONFLICT (payer_kind, payer_id) DO UPDATE SET "
        "allow_prefixes = excluded.allow_prefixes, deny_prefixes = excluded.deny_prefixes, "
        "max_call_cost_micros = excluded.max_call_cost_micros, daily_spend_micros = excluded.daily_spend_micros, "
        "max_concurrent = excluded.max_concurrent");
    upsert.bind(1, kind);
    upsert.bind(2, id);
    upsert.bind(3, join_prefixes(policy.allow_prefixes));
    upsert.bind(4, join_prefixes(policy.deny_prefixes));
    if (policy.max_call_cost) upsert.bind(5, policy.max_call_cost->micros()); else upsert.bind(5);
    if (policy.daily_spend) upsert.bind(6, policy.daily_spend->micros()); else upsert.bind(6);
    upsert.bind(7, policy.max_concurrent);
    upsert.exec();
  });
}

Result<PayerPolicy> SqlBilling::policy(const Payer& payer) {
  PayerPolicy out;
  auto written = write([&](sqldb::Database& db) { out = read_policy(db, payer); });
  if (!written) return written.error();
  return out;
}

// --- administration ---------------------------------------------------------------------

Result<ImportReport> SqlBilling::import_rates(const std::string& tariff, std::istream& csv, const Currency& currency) {
  const auto started = std::chrono::steady_clock::now();
  if (auto ok = Account::validate_id(tariff); !ok) {
    return Error{"invalid_tariff", "tariff name may contain only letters, digits, '-', '_' and '.' (1-64)", "tariff"};
  }
  auto parsed = parse_rate_csv(csv, currency);
  if (!parsed) return parsed.error();
  // The trie first: its lines are sorted by prefix, and rows in index order go into the
  // table's (tariff, prefix) index at its right edge instead of at random pages (on
  // PostgreSQL a million rows COPY in less than half the time).
  auto deck = RateDeck::build(std::move(*parsed));
  const std::vector<RateLine>& lines = deck->lines();
  const std::size_t count = lines.size();
  auto written = write([&](sqldb::Database& db) {
    // The rates first, then their tariff: no foreign key checks each copied row
    // (PostgreSQL's migration 6 dropped it; this is the only writer of either table).
    sqldb::Statement& drop_rates = db.prepared("DELETE FROM rate WHERE tariff = ?");
    drop_rates.bind(1, tariff);
    drop_rates.exec();
    sqldb::Statement& drop = db.prepared("DELETE FROM tariff WHERE name = ?");
    drop.bind(1, tariff);
    drop.exec();
    sqldb::Statement& add = db.prepared("INSERT INTO tariff (name, currency, minor_exponent, imported_at, rates) VALUES (?,?,?,?,?)");
    add.bind(1, tariff);
    add.bind(2, std::string(currency.code()));
    add.bind(3, currency.minor_exponent());
    add.bind(4, format_time(this->now()));
    add.bind(5, static_cast<std::int64_t>(count));
    add.exec();
    db.bulk_insert("rate",
                   {"tariff", "prefix", "description", "price_micros", "initial_increment", "subsequent_increment",
                    "connection_fee_micros", "minimum_duration", "effective_from", "weekdays", "start_minute",
                    "end_minute", "blocked"},
                   lines.size(), [&](std::size_t i, sqldb::Database::Row& row) {
                     const RateLine& line = lines[i];
                     row[0] = tariff;
                     row[1] = line.rate.prefix;
                     row[2] = line.rate.description;
                     row[3] = std::to_string(line.rate.price_per_minute.micros());
                     row[4] = std::to_string(line.rate.initial_increment.count());
                     row[5] = std::to_string(line.rate.subsequent_increment.count());
                     row[6] = std::to_string(line.rate.connection_fee.micros());
                     row[7] = std::to_string(line.rate.minimum_duration.count());
                     row[8] = line.effective_from == Timestamp{} ? std::string() : format_time(line.effective_from);
                     row[9] = std::to_string(line.weekdays);
                     row[10] = std::to_string(line.start_minute);
                     row[11] = std::to_string(line.end_minute);
                     row[12] = line.blocked ? "1" : "0";
                   });
  });
  if (!written) return written.error();
  // Stored: swap the new deck in. Lookups in progress keep the old one until they finish.
  {
    std::lock_guard lock(decks_mutex_);
    decks_[tariff] = std::move(deck);
  }
  return ImportReport{tariff, count, std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)};
}

Result<std::vector<TariffInfo>> SqlBilling::tariffs() {
  std::vector<TariffInfo> out;
  auto written = write([&](sqldb::Database& db) {
    out.clear();  // a batch may be replayed
    sqldb::Statement& select = db.prepared("SELECT name, currency, minor_exponent, rates, imported_at FROM tariff ORDER BY name");
    while (select.executeStep()) {
      out.push_back({select.getColumn(0).getString(),
                     Currency::of(select.getColumn(1).getString(), select.getColumn(2).getInt()).value_or(Currency{}),
                     static_cast<std::size_t>(select.getColumn(3).getInt64()), parse_time(select.getColumn(4).getString())});
    }
  });
  if (!written) return written.error();
  return out;
}

Result<std::vector<Rate>> SqlBilling::rates(const std::string& tariff, const std::string& prefix, std::size_t limit) {
  auto d = deck(tariff);
  if (!d) return Error{"unknown_tariff", "no tariff \"" + tariff + "\"", "tariff"};
  std::vector<Rate> out;
  for (const auto& line : d->lines()) {
    if (!line.rate.prefix.starts_with(prefix)) continue;
    out.push_back(line.rate);
    if (limit > 0 && out.size() == limit) break;
  }
  return out;
}

Status SqlBilling::put_campaign(const Campaign& c) {
  if (auto ok = Account::validate_id(c.id); !ok) return Error{"invalid_campaign", ok.error().message, "id"};
  if (!c.tariff.empty()) {
    if (auto ok = Account::validate_id(c.tariff); !ok) return Error{"invalid_campaign", ok.error().message, "tariff"};
  }
  if (c.limit.count() <= 0 || c.uses_per_day < 0 || c.min_hours_between < 0 || c.daily_budget.count() < 0) {
    return Error{"invalid_campaign", "limits must be positive (per call) or zero (none)", "limit"};
  }
  return write([&](sqldb::Database& db) {
    auto upsert_owned = db.statement("INSERT INTO campaign (id, limit_seconds, uses_per_day, once_ever, min_hours_between, "
                             "daily_budget_seconds, status, tariff) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
                             "limit_seconds = excluded.limit_seconds, uses_per_day = excluded.uses_per_day, "
                             "once_ever = excluded.once_ever, min_hours_between = excluded.min_hours_between, "
                             "daily_budget_seconds = excluded.daily_budget_seconds, status = excluded.status, "
                             "tariff = excluded.tariff");
    auto& upsert = *upsert_owned;
    upsert.bind(1, c.id);
    upsert.bind(2, static_cast<std::int64_t>(c.limit.count()));
    upsert.bind(3, c.uses_per_day);
    upsert.bind(4, c.once_ever ? 1 : 0);
    upsert.bind(5, c.min_hours_between);
    upsert.bind(6, static_cast<std::int64_t>(c.daily_budget.count()));
    upsert.bind(7, c.active ? "active" : "ended");
    upsert.bind(8, c.tariff);
    upsert.exec();
  });
}

Result<std::vector<Campaign>> SqlBilling::campaigns() {
  std::vector<Campaign> out;
  auto written = write([&](sqldb::Database& db) {
    out.clear();  // a batch may be replayed
    sqldb::Statement& select = db.prepared("SELECT id, limit_seconds, uses_per_day, once_ever, min_hours_between, "
                                 "daily_budget_seconds, status, tariff FROM campaign ORDER BY id");
    while (select.executeStep()) {
      out.push_back({select.getColumn(0).getString(), std::chrono::seconds(select.getColumn(1).getInt64()),
                     select.getColumn(2).getInt(), select.getColumn(3).getInt() != 0, select.getColumn(4).getInt(),
                     std::chrono::seconds(select.getColumn(5).getInt64()), select.getColumn(6).getString() == "active",
                     select.getColumn(7).getString()});
    }
  });
  if (!written) return written.error();
  return out;
}

Result<std::vector<CallerStats>> SqlBilling::caller_stats(const std::string& number, std::size_t limit) {
  std::vector<CallerStats> out;
  auto written = write([&](sqldb::Database& db) { out = sqldb::read_caller_stats(db, number, limit); });
  if (!written) return written.error();
  return out;
}

}  // namespace callback::billing_sql
