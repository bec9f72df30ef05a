#pragma once
// Rating and prepaid authorization over SQL, the same code on every backend
// (callback.billing.sqlite in the embedded file, callback.billing.postgres on the shared
// server), through sqldb. Each backend's plugin opens its database and hands it over.
//
// Money never moves twice and never for the same balance twice: every authorization,
// settlement and release is one transaction on one writer connection, and concurrent
// callers are committed together (group commit: one fsync for many calls), each in a
// savepoint of its own so one failure does not undo the others. An authorization holds
// a reservation (account.reserved_micros), so what concurrent calls may spend is always
// balance - reserved + credit limit. On PostgreSQL, where several nodes write at once,
// each operation locks the payer's row and the reservation it works on ({lock}), so the
// checks and the writes of one account follow each other on every node.
//
// Rates come from an in-memory longest-prefix trie per tariff, swapped atomically when
// a new deck is imported.
#include "sqldb.hpp"
#include <callback/rate_deck.hpp>

#include <callback/billing.hpp>
#include <callback/context.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <thread>

namespace callback::billing_sql {

struct BillingRules {
  std::string default_tariff = "default";
  bool bill_leg_a = false;                 // the seed bills leg B only
  std::chrono::seconds max_call{3600};     // no single call may reserve more than this
  // An account's money is held this much talk time at a time, extended while the call
  // lasts (CGRateS's debit interval); 0: the whole call at once.
  std::chrono::seconds debit_interval{60};
  // Destinations no payer may call (E.164 digit prefixes), on top of each payer's policy:
  // satellite and international premium ranges by default.
  std::vector<std::string> deny_prefixes{"881", "882", "883", "979", "1900", "1976"};
  std::size_t max_batch = 512;             // operations committed together at most
  // Where "now" comes from (reservation and settle times, the day's spending): the
  // Context's Clock, so tests can move it. Null: the system clock. Read from the writer
  // thread: its now() must be thread-safe (SystemClock and ManualClock are).
  const Clock* clock = nullptr;
};

class SqlBilling : public Billing, Rater, Authorizer, BillingAdmin {
 public:
  // Takes the database (migrated by its plugin) and reads the decks from it. One writer
  // thread per connection given: SQLite has one writer anyway; on PostgreSQL several
  // commit their groups side by side (the row locks keep one account's operations in turn).
  [[nodiscard]] static Result<std::unique_ptr<SqlBilling>> open(
      BillingRules rules, std::vector<std::unique_ptr<sqldb::Database>> connections);
  ~SqlBilling() override;

  Rater& rater() override { return *this; }
  Authorizer& authorizer() override { return *this; }
  BillingAdmin* admin() override { return this; }

  // Rater
  [[nodiscard]] std::optional<Rate> rate(const std::string& tariff, const PhoneNumber& destination,
                                         Timestamp at) const override;
  // Authorizer
  [[nodiscard]] Result<Authorization> authorize(const AuthorizationRequest& request) override;
  [[nodiscard]] Result<Money> settle(const std::string& reservation, std::chrono::seconds billsec) override;
  Status release(const std::string& reservation) override;
  [[nodiscard]] Result<std::chrono::seconds> extend(const std::string& reservation, std::chrono::seconds wanted) override;
  void extend_async(const std::string& reservation, std::chrono::seconds wanted,
                    std::function<void(Result<std::chrono::seconds>)> done) override;
  void authorize_async(const AuthorizationRequest& request, std::function<void(Result<Authorization>)> done) override;
  void settle_async(const std::string& reservation, std::chrono::seconds billsec,
                    std::function<void(Result<Money>)> done) override;
  void release_async(const std::string& reservation, std::function<void(Status)> done) override;
  [[nodiscard]] Result<std::optional<Held>> reservation_of(const std::string& call_id) override;
  [[nodiscard]] Result<std::vector<Held>> open_reservations() override;
  // BillingAdmin
  [[nodiscard]] Result<ImportReport> import_rates(const std::string& tariff, std::istream& csv,
                                                  const Currency& currency) override;
  [[nodiscard]] Result<std::vector<TariffInfo>> tariffs() override;
  [[nodiscard]] Result<std::vector<Rate>> rates(const std::string& tariff, const std::string& prefix,
                                                std::size_t limit) override;
  Status put_campaign(const Campaign& campaign) override;
  [[nodiscard]] Result<std::vector<Campaign>> campaigns() override;
  Status put_policy(const PayerPolicy& policy) override;
  [[nodiscard]] Result<PayerPolicy> policy(const Payer& payer) override;
  [[nodiscard]] Result<std::vector<CallerStats>> caller_stats(const std::string& number, std::size_t limit) override;

  [[nodiscard]] std::shared_ptr<const RateDeck> deck(const std::string& tariff) const;

 private:
  SqlBilling(BillingRules rules, std::vector<std::unique_ptr<sqldb::Database>> connections);
  [[nodiscard]] Timestamp now() const {
    return options_.clock != nullptr ? options_.clock->now() : std::chrono::system_clock::now();
  }
  using Operation = std::function<void(sqldb::Database&)>;
  // Runs `op` inside the next group transaction on writer `writer`'s thread; waits for
  // the commit.
  Status write(Operation op, std::size_t writer = 0);
  // The same without waiting: `committed` runs on the writer thread after the commit.
  void write_async(Operation op, std::function<void(Status)> committed, std::size_t writer = 0);
  // Which writer works for a payer, and for a reservation (the one that authorized it: all
  // the operations on one account go through one writer, so the rows they lock are never
  // held by two of this process's groups at once, in two orders).
  std::size_t writer_for(const Payer& payer);
  std::size_t writer_of(const std::string& reservation, bool ends);
  // The work of an authorization / settlement, filling `out` (run by the writer).
  Operation authorize_op(AuthorizationRequest request, std::shared_ptr<Authorization> out);
  Operation settle_op(std::string reservation, std::chrono::seconds billsec, std::shared_ptr<Money> out);
  Operation release_op(std::string reservation);
  Operation extend_op(std::string reservation, std::chrono::seconds wanted, std::shared_ptr<std::chrono::seconds> out);
  // On the writer thread: a payer's policy (none: no limits), today's spend.
  static PayerPolicy read_policy(sqldb::Database& db, const Payer& payer);
  static Money spent_today(sqldb::Database& db, const Payer& payer, Timestamp now, const Currency& currency,
                           const std::string& except);
  void writer_loop(std::size_t index);
  Status load_decks();

  BillingRules options_;
  std::vector<std::unique_ptr<sqldb::Database>> connections_;  // one per writer, its alone
  mutable std::mutex decks_mutex_;
  std::map<std::string, std::shared_ptr<const RateDeck>, std::less<>> decks_;  // guarded by decks_mutex_

  struct Job {
    Operation op;
    std::function<void(Status)> committed;
  };
  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::vector<std::deque<Job>> queues_;  // one per writer; guarded by queue_mutex_
  std::unordered_map<std::string, std::size_t> reservation_writers_;  // open reservations' writers; the same
  bool stopping_ = false;
  std::vector<std::thread> writers_;
};

}  // namespace callback::billing_sql
