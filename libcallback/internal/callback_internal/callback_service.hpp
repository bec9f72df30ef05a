#pragma once
// CallbackService: the callback engine of the seed, independent of Asterisk. It takes a
// CallbackRequest from any trigger, checks it, asks the Authorizer, and runs the call
// through an Engine:
//
//   dial A (showing B's number) -> A answers, hears "please wait" -> dial B (showing A's
//   number) -> bridge -> the time limit ends it, or someone hangs up -> CDRs, settle.
//
// A failing A is recorded and charged nothing. A failing B gives A the announcement for
// the cause (busy/rejected -> partner busy, no answer -> partner away, congestion or
// network -> system busy, else a generic failure). Every stage has a timeout; a call can
// be canceled at any stage; CDRs are written and the reservation settled or released
// exactly once. Every state change goes to the observers.
//
//   CallbackService service{context, *engine, billing.get(), *store, options};  // subscribes to the engine
//   auto id = service.start(request);          // Result<std::string>: the callback id
//   service.cancel(*id);
//
// How the call runs depends on the engine (Engine::Capabilities): an engine with a
// dialplan_flow gets one originate with the whole plan; one with only the step_flow is
// driven step by step (originate A; on answer play "please wait", originate B; on B's
// answer bridge and set the limit; on B's failure play its announcement to A, hang up).
//
// All methods run on the Context's io_context (the engine's thread); call them there.
#include <callback/service.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

// Not installed: the library's own, and in-tree programs' (callbackd, callbackctl, tests).
namespace callback {

class CALLBACK_EXPORT CallbackService final : public TriggerSink {
 public:
  CallbackService(Context& context, Engine& engine, Billing* billing, Store& store, ServiceOptions options);
  ~CallbackService() override;

  // Starts a callback: the id once the request is valid, or why not. Authorization and
  // dialing follow without blocking (billing answers asynchronously); a denial ends the
  // callback as failed, seen by the observers.
  Result<std::string> start(CallbackRequest request);
  // TriggerSink: `done` gets the id once billing has allowed the call and A is being
  // dialed, or the reason it was refused (then nothing was placed or charged).
  void submit(CallbackRequest request, std::function<void(Result<std::string>)> done) override;
  // TriggerSink: the same, and the call followed to its end (Tracking). On this thread.
  void track(CallbackRequest request, Tracking tracking) override;
  // Cancels at any stage; the call ends as canceled once the engine confirms (or the
  // stage grace runs out). Unknown or finished ids are an Error.
  Status cancel(const std::string& id);

  // After a restart, before new requests: reads the store's journal. Finished callbacks
  // become readable again (with their idempotency keys); those that were in flight are
  // taken up again: the engine finds them on Asterisk and they end, are billed and
  // recorded as usual (replayed events tell observers where they stand first).
  Result<RecoveryReport> recover();
  // Several nodes: callbacks taken over from a node whose lease ran out (CallJournal::
  // take_over), followed to their end as recover() does with its own.
  Result<RecoveryReport> adopt(const std::vector<JournalEntry>& entries);
  // What a journal entry says of its callback, as the event that produced it (replayed):
  // for showing a callback another node runs.
  [[nodiscard]] static Result<CallEvent> journaled_event(const JournalEntry& entry);

  // In flight, or among the last `finished_kept` finished ones.
  [[nodiscard]] std::optional<Call> find(const std::string& id) const;
  static constexpr std::size_t finished_kept = 10'000;
  [[nodiscard]] std::size_t in_flight() const noexcept { return active_.size(); }
  [[nodiscard]] std::vector<std::string> in_flight_ids() const;
  // Calls that ended but whose CDRs are not stored (and endings not told) yet.
  [[nodiscard]] bool endings_pending() const noexcept {
    return !pending_cdrs_.empty() || !pending_events_.empty() || !pending_journal_.empty() || cdr_writes_ != 0;
  }
  void subscribe(CallObserver& observer) { observers_.push_back(&observer); }

  // What the engine reports (the service subscribes itself; tests may call it directly).
  void on_leg_event(const LegEvent& event);
  // Runs the call step by step (the engine has no dialplan_flow).
  [[nodiscard]] bool step_flow() const noexcept { return step_flow_; }

 private:
  struct Active;
  class Tracker;
  using Done = std::function<void(Result<std::string>)>;
  Result<std::string> begin(CallbackRequest request, Done done);
  // taken_over: the entries are another node's (adopt), not this one's from before a restart.
  Status take_up(const std::vector<JournalEntry>& entries, RecoveryReport& report,
                 std::vector<Engine::Recovered>& lost, bool taken_over = false);
  // The first journal write met another node's idempotency key: false if it was not the first.
  bool on_key_taken(const std::string& id, const std::string& other);
  void drop_taken(const std::string& id, const Error& why);
  void on_authorized(const std::string& id, Result<Authorization> decision, Done done);
  void refuse(Active& active, const Error& error, const Done& done);
  void complete(const std::string& id, std::optional<Money> cost);
  void flush_endings();
  void keep_for_retry(std::vector<Cdr> cdrs, const Error& error);
  void retire(Active& active);  // from in flight to finished
  void enter(Active& active, CallState to, std::optional<Announcement> announcement = {});
  void arm_stage_timer(Active& active, std::chrono::seconds budget);
  void on_stage_timeout(const std::string& id);
  void maybe_finish(Active& active);
  // Money in slices: the reservation's covered time, extended while B talks.
  void note_slice(Active& active, const Authorization& decision);
  void arm_slice_timer(Active& active, std::chrono::seconds left);
  void extend_slice(const std::string& id);
  void on_slice_extended(const std::string& id, const Result<std::chrono::seconds>& covered);
  void finish(Active& active, bool engine_lost);
  void notify(const CallEvent& event);
  void authorize(const std::string& id);
  // Asks billing for the call's request; `then` runs on this thread while the service lives
  // (else a grant is given back).
  void ask_billing(const Active& active, std::function<void(Result<Authorization>)> then);
  // The journal: `then` runs (on this thread) once the entry is durable; a failed write
  // refuses a call that waits for it (with refuse_unwritten; else `then` runs anyway).
  // Final entries go with the CDRs (flush_endings).
  void write_journal(Active& active, std::function<void()> then = nullptr, bool refuse_unwritten = true);
  void move_money(const std::string& id);
  static bool legs_ended(const Active& active);
  void on_money_moved(const std::string& id, const Result<std::optional<Money>>& moved);
  void place(const std::string& id, const OriginateRequest& originate);
  // Hangs up each leg that has a channel and has not ended; legs whose channel comes
  // later are hung up when it does.
  void hang_up(Active& active, HangupCause cause);
  void hang_up_leg(Active& active, LegRole leg);
  // The step flow's steps.
  void step(Active& active, const LegEvent& event);
  void dial_b(const std::string& id);
  void connect_b(const std::string& id);  // dialplan_ivr: the dialplan dials B
  // The IVR (a request without a callee): ask A, read the digits, authorize B.
  void ask_callee(const std::string& id);
  void on_callee_digits(const std::string& id, Result<Digits> digits);
  void on_callee_authorized(const std::string& id, Result<Authorization> decision);
  void give_up_on_callee(Active& active, Error why);
  void announce_and_end(Active& active);
  [[nodiscard]] JournalEntry journal_entry(const Active& active, const CallEvent* final) const;
  void queue_final_entry(JournalEntry entry);
  void post_flush();
  // Test hook for the crash tests: CALLBACK_CRASH_AT=<point> kills the process there.
  void crash_point(std::string_view point) const;
  void count_finished(CallState state, std::string_view outcome);
  std::string next_id();

  Context& context_;
  Engine& engine_;
  bool step_flow_ = false;
  Billing* billing_;
  Store& store_;
  ServiceOptions options_;
  std::unordered_map<std::string, std::unique_ptr<Active>> active_;
  std::unordered_map<std::string, std::string> idempotency_;  // key -> id, while the call is kept
  std::unordered_map<std::string, Call> finished_;
  std::deque<std::string> finished_order_;
  std::vector<CallObserver*> observers_;
  std::uint64_t sequence_ = 0;
  std::string id_prefix_;
  Counter& started_;
  Counter& in_flight_gauge_;
  Histogram& setup_latency_;  // request to both talking
  // Billing answers on its own thread; its answers are posted back here only while the
  // service lives.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::unique_ptr<Tracker> tracker_;  // what track() follows; the first observer
  // Calls that ended in this turn of the event loop: their CDRs go to the store (on its
  // thread, in one transaction), then their final events go out. If the store refuses,
  // the endings are told all the same and the CDRs are kept and retried every second.
  std::vector<Cdr> pending_cdrs_;
  std::vector<CallEvent> pending_events_;
  std::vector<JournalEntry> pending_journal_;
  CallJournal* journal_ = nullptr;
  std::string crash_at_;
  bool flush_posted_ = false;
  std::size_t cdr_writes_ = 0;  // append_async calls not answered yet
  bool cdr_retry_armed_ = false;
  TimerHandle cdr_retry_;
  Subscription engine_events_;  // last: unsubscribes before anything else goes
};

}  // namespace callback
