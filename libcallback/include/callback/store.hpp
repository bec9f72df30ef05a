#pragma once
// Stores: where records live. A Store plugin (the SQLite one is the embedded default)
// provides CDRs, accounts, the ledger, the call journal and API keys; billing, the service and the front ends use
// them through these interfaces only. Every method is synchronous and may block on disk:
// the service calls them off its event loop. Writes are atomic: a failed call leaves
// nothing half-written. Untrusted text reaches SQL only as bound parameters.
//
//   auto store = loader.create<Store>("callback.store.sqlite", context, config);
//   store->cdrs().append(cdr);
//   store->cdrs().query({.account = "123", .since = yesterday}, [](const Cdr& cdr) {
//     print(cdr);
//     return true;  // false stops the scan
//   });
#include <callback/account.hpp>
#include <callback/cdr.hpp>
#include <callback/component.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/subscription.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace callback {

struct CdrQuery {
  std::optional<Timestamp> since;  // calldate >= since
  std::optional<Timestamp> until;  // calldate < until
  std::string account;             // accountcode, exact
  std::string number;              // src or dst, exact
  std::string callback_id;
  std::size_t limit = 0;  // 0: no limit
};

class CALLBACK_EXPORT CdrStore {
 public:
  virtual ~CdrStore();
  // Appends the records in one transaction: all or none. Assigns their ids.
  virtual Status append(std::span<Cdr> cdrs) = 0;
  Status append(Cdr& cdr) { return append(std::span<Cdr>(&cdr, 1)); }
  // The same without blocking the caller: `done` gets the outcome and the records back
  // (to keep and retry on failure), on a thread of the store's. Batches are written in
  // the order given. The default writes at once, on the caller's thread.
  using AppendDone = std::function<void(Status, std::vector<Cdr>)>;
  virtual void append_async(std::vector<Cdr> cdrs, AppendDone done);
  // Waits until every append_async so far has been written (or has failed).
  virtual void flush() {}
  // Visits matching records in calldate order without holding them all in memory.
  virtual Status query(const CdrQuery& query, const std::function<bool(const Cdr&)>& visit) = 0;
  // One caller number's statistics, or all (number empty), busiest first; at most `limit`
  // (0: all). The appends keep them, in their transaction. The default keeps none: Error
  // "not_supported".
  [[nodiscard]] virtual Result<std::vector<CallerStats>> caller_stats(const std::string& number, std::size_t limit);
};

class CALLBACK_EXPORT AccountStore {
 public:
  virtual ~AccountStore();
  virtual Status create(const Account& account) = 0;  // Error "account_exists" if taken
  [[nodiscard]] virtual Result<std::optional<Account>> find(const std::string& id) = 0;
  [[nodiscard]] virtual Result<std::vector<Account>> list() = 0;
  // The account a caller number or an e-mail address (normalize_email's form) is
  // registered to, for triggers that know people by them (SMS, missed call, e-mail).
  // Nothing when none is. The defaults read list(); a backend answers from an index.
  [[nodiscard]] virtual Result<std::optional<Account>> find_by_number(const PhoneNumber& number);
  [[nodiscard]] virtual Result<std::optional<Account>> find_by_email(std::string_view email);
  virtual Status set_status(const std::string& id, AccountStatus status) = 0;
};

class CALLBACK_EXPORT LedgerStore {
 public:
  virtual ~LedgerStore();
  // Adds the entry and moves the account's balance by its amount (an increment, never a
  // balance read and written back), in one transaction. Refuses entries in another
  // currency than the account's. A non-empty reference is posted once per account and
  // kind: posting it again returns the first entry and moves nothing (a retried settle or
  // top-up); with another amount it is refused ("reference_reused", kind conflict).
  // Returns the stored entry (id, time, balance after).
  virtual Result<LedgerEntry> post(const LedgerEntry& entry) = 0;
  [[nodiscard]] virtual Result<std::vector<LedgerEntry>> entries(const std::string& account_id,
                                                                 std::size_t limit = 0) = 0;
};

// The journal of callbacks: one row per callback, written before it is authorized and
// before anything is dialed, then as it runs, and with its CDRs when it ends (one
// transaction). After a crash the service finds here what was in flight (to follow or
// settle it), the idempotency keys given, and what finished callbacks looked like.
struct JournalEntry {
  std::string id;
  std::string idempotency_key;  // "" when none (a refused request's key is given back: "")
  std::string state;            // CallState's name
  bool final = false;
  std::string server;       // the engine's server, once known
  std::string reservation;  // billing's, once authorized
  std::string call;         // the service's own JSON of the callback (request without secret, legs, outcome)
  Timestamp created_at{}, updated_at{};
  std::string client;  // who asked: the request's "owner" metadata (an API key id), "" for none
  // Read back only: the node that owns it (the store writes the claiming node's id), and
  // whether a cancel was asked for it through the journal (ask_cancel).
  std::string owner;
  bool cancel_asked = false;
};

// Several services (callbackd nodes) may share one journal in a server database. Each
// claims it under a node id of its own, owns the callbacks it starts, and renews a lease
// while it runs. When a node's lease runs out (it died, or lost the database), another
// takes its open callbacks over: it finds them on Asterisk, follows them to their end and
// bills them. A node id "" claims the whole journal for one service, as an embedded file is.
struct NodeClaim {
  std::string node;
  std::chrono::seconds lease{15};
};

// What a shared journal tells its nodes as it changes (CallJournal::watch).
struct JournalNotice {
  enum class Kind {
    changed,  // these callbacks' entries were written (by any node)
    cancel,   // a cancel was asked for a callback this node owns: read cancels_asked()
    resync,   // notices may have been missed (the listener reconnected): re-read what you follow
  };
  Kind kind = Kind::changed;
  std::vector<std::string> ids;  // for `changed`
};

// Which entries a listing wants (CallJournal::list), newest first.
struct JournalQuery {
  std::string state;   // CallState's name; "" for all
  Timestamp since{};   // created at or after
  std::string client;  // "" for every client's
  std::size_t limit = 100;
};

class CALLBACK_EXPORT CallJournal {
 public:
  virtual ~CallJournal();
  // Writes (inserts or replaces by id) the entries and appends the CDRs, in one
  // transaction, on the store's writer thread; `done` gets the outcome and the CDRs back.
  virtual void write_async(std::vector<JournalEntry> entries, std::vector<Cdr> cdrs, CdrStore::AppendDone done) = 0;
  // Entries not final, oldest first.
  [[nodiscard]] virtual Result<std::vector<JournalEntry>> open() = 0;
  // The `limit` final entries updated last, newest first.
  [[nodiscard]] virtual Result<std::vector<JournalEntry>> recent(std::size_t limit) = 0;
  [[nodiscard]] virtual Result<std::optional<JournalEntry>> entry(const std::string& id) = 0;
  // Makes this process the journal's only user until the store closes: two services
  // recovering the same calls would bill them twice. Error (saying who holds it) when
  // another process has it.
  [[nodiscard]] Status claim() { return claim(NodeClaim{}); }
  // The same as node `node.node`: with a non-empty id, on a journal several nodes share,
  // this process owns the callbacks it writes from now on, and open() returns only
  // those. Error when another process runs under that id, or one claimed the whole
  // journal (and for a named node on a journal only one service can use).
  [[nodiscard]] virtual Status claim(const NodeClaim& node) = 0;
  // Whether this process claimed it as one node of several (a named node on a server database).
  [[nodiscard]] virtual bool shared() const { return false; }
  // The node id this process claimed it as; "" for the whole journal.
  [[nodiscard]] virtual std::string node() const { return {}; }

  // --- for several nodes; the defaults are those of a journal only one service uses ---
  // Renews this node's lease (call it every third of the lease).
  virtual Status renew() { return ok_status(); }
  // The open entries of nodes whose lease ran out, owned by this node from now on (each
  // by exactly one taker): the caller follows them to their end as after a restart.
  // Their `owner` names the node each was taken from.
  [[nodiscard]] virtual Result<std::vector<JournalEntry>> take_over() { return std::vector<JournalEntry>{}; }
  // Asks the node that owns callback `id` to cancel it; its id. Error "not_found" (kind
  // not_found) for no such callback, "already_final" (conflict) for one that ended.
  [[nodiscard]] virtual Result<std::string> ask_cancel(const std::string& id);
  // The open callbacks of this node whose cancel was asked.
  [[nodiscard]] virtual Result<std::vector<std::string>> cancels_asked() { return std::vector<std::string>{}; }
  // Every node's engine is connected to every Asterisk and sees each inbound call (an ANI
  // or DID caller): the node that claims it first handles it, and the others leave it
  // alone. True for that node only, once per (server, uniqueid); the engines name a server
  // as the nodes' configs do ("pbx1:5038"), so every node must list it alike. A journal only
  // one service uses: always true.
  [[nodiscard]] virtual Result<bool> claim_inbound(const std::string& server, const std::string& uniqueid) {
    (void)server;
    (void)uniqueid;
    return true;
  }
  // Entries of every node for a listing. Error "not_supported" by default.
  [[nodiscard]] virtual Result<std::vector<JournalEntry>> list(const JournalQuery& query);
  // Notices as the journal changes, on a thread of the store's. None by default.
  [[nodiscard]] virtual Subscription watch(std::function<void(const JournalNotice&)> on_notice) {
    (void)on_notice;
    return {};
  }
};

// The API keys of callbackd's REST API, as the backend keeps them: a digest of each key,
// never the key (rest/api_keys.hpp makes, hashes and checks them). Every node and
// callbackctl see the same keys through the same backend.
struct ApiKeyRecord {
  std::string id;        // 8 hex digits, the key's public part
  std::string name;
  std::string scope;     // "callbacks", "operator", "admin"
  std::string key_hash;  // hex SHA-256 of the whole key
  std::string webhook_secret;
  Timestamp created_at{};
  std::optional<Timestamp> revoked_at;
};

class CALLBACK_EXPORT ApiKeyStore {
 public:
  virtual ~ApiKeyStore();
  virtual Status add(const ApiKeyRecord& key) = 0;  // Error "key_exists" if the id is taken
  [[nodiscard]] virtual Result<std::vector<ApiKeyRecord>> list() = 0;  // oldest first
  [[nodiscard]] virtual Result<std::optional<ApiKeyRecord>> find(const std::string& id) = 0;
  // Error "not_found" (kind not_found) or "already_revoked".
  virtual Status revoke(const std::string& id, Timestamp at) = 0;
};

// Rate limits every node sees (the triggers' abuse limits, RateLimiter::share): fixed-window
// counters by limit name and key, kept in a server database.
class CALLBACK_EXPORT RateCounter {
 public:
  virtual ~RateCounter();
  // Limit `name`'s window for `key` at `now` (`window` long, `limit` hits): counts one hit
  // if `count` and the window has room. 0 when it had room, else the seconds until it
  // will have.
  [[nodiscard]] virtual Result<std::chrono::seconds> hit(std::string_view name, const std::string& key, int limit,
                                                         std::chrono::seconds window, Timestamp now, bool count) = 0;
};

class CALLBACK_EXPORT Store : public Component {
 public:
  virtual CdrStore& cdrs() = 0;
  // nullptr: this store keeps no journal (calls in flight are lost with the process).
  virtual CallJournal* journal() { return nullptr; }
  // nullptr: this store keeps no API keys (callbackd cannot serve its API on it).
  virtual ApiKeyStore* api_keys() { return nullptr; }
  // nullptr: rate limits stay in each process (an embedded file has one).
  virtual RateCounter* rate_counter() { return nullptr; }
  virtual AccountStore& accounts() = 0;
  virtual LedgerStore& ledger() = 0;
  // The schema version after migrations ran (for `callbackctl` and health checks).
  [[nodiscard]] virtual int schema_version() const = 0;
  // Where the data is: an embedded backend's file path; "" when not a file. A backend's
  // other parts (its billing) use it when not told otherwise, so that one path in the
  // config places them all.
  [[nodiscard]] virtual std::string location() const { return {}; }
  // Whether the database answers now (/healthz shows it): an Error saying why not. A
  // server's backend asks it; the default (an embedded file) is always there.
  [[nodiscard]] virtual Status health() { return ok_status(); }
};

}  // namespace callback
