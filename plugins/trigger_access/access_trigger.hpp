#pragma once
// The access-number triggers: a person rings one of our numbers and hangs up (or is hung
// up on): we call them back. The seed's two ways:
//
//  * callback.trigger.ani, the missed call: a registered caller rings the access number;
//    the caller's own account pays, and once they answer the IVR asks for B.
//  * callback.trigger.did, DID/DNIS access numbers: a table of numbers, each with a mode:
//      fixed  - B is the number's destination; its account or campaign pays;
//      ivr    - B is asked by the IVR; its account or campaign pays;
//      own    - B is asked by the IVR; the caller's own account pays (as ANI).
//
// Either way the call is never answered: the engine rejects it after `ring` of ringing,
// with `reject_cause` (busy), so the caller pays nothing; then, `callback_delay` later
// (their line is free again), the callback starts: A is the caller.
//
//   AccessTrigger trigger(context, engine, store, plan, options);
//   trigger.start(sink);   // routes the numbers' inbound calls to itself (on the engine's thread)
//
// Refused without a callback, each a log line and a count (trigger="ani"|"did"):
//  * a withheld caller (no number to call back), or one that is not a phone number;
//  * a caller with no account where the mode needs one (unless the number has a campaign,
//    which pays for anyone), a disabled account, one with nothing to spend;
//  * a caller already being called back, or over `per_caller_per_hour`;
//  * an access number with no mapping (the engine's route does not take it: the engine
//    rejects it with congestion and logs it).
#include <callback/callback_request.hpp>
#include <callback/context.hpp>
#include <callback/engine.hpp>
#include <callback/hangup_cause.hpp>
#include <callback/options.hpp>
#include <callback/phone_number.hpp>
#include <callback/plugin.hpp>
#include <callback/rate_limiter.hpp>
#include <callback/store.hpp>
#include <callback/trigger.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callback::trigger_access {

enum class Mode { own, ivr, fixed };
[[nodiscard]] std::optional<Mode> mode_from_string(std::string_view name);

struct AccessNumber {
  std::string number;  // the dialled number as the engine reports it (DNIS); "" for any
  Mode mode = Mode::own;
  // fixed and ivr: who pays. own: who pays for a caller with no account (a campaign that
  // allows anyone); none: such callers are refused.
  std::optional<Payer> payer;
  std::string destination;  // fixed: B, as dialled (read with the numbering plan)
  std::string language;     // what the caller hears; empty: the account's
};

struct AccessOptions {
  std::string trigger = "ani";  // "ani" or "did": logs, metrics, idempotency keys
  Origin origin = Origin::ani;
  std::vector<AccessNumber> numbers;
  std::string context;  // only calls that came in through this dialplan context; empty: any
  std::chrono::milliseconds ring{3000};             // ringing before the reject
  HangupCause reject_cause{17};                      // busy: the caller pays nothing
  std::chrono::milliseconds callback_delay{2000};   // from the reject to calling back
  int per_caller_per_hour = 6;
};

// Checks the table (numbers digits only and distinct, fixed ones with a destination that
// the plan reads and may dial, payers where the mode needs one); the Error names the entry.
[[nodiscard]] Status validate(const AccessOptions& options, const NumberingPlan& plan);

// What the two plugins share: the options about ringing, rejecting and limits, and making
// the trigger (checks that callbackd gave it an engine, a store and a plan, and validates).
[[nodiscard]] std::vector<OptionSpec> common_options();
// The options both read, for the trigger named `trigger` ("ani", "did") with that origin.
[[nodiscard]] AccessOptions read_common_options(const Options& values, std::string trigger, Origin origin);
[[nodiscard]] std::unique_ptr<Component> make_access_trigger(const CreateArgs& args, AccessOptions options);

class AccessTrigger final : public Trigger {
 public:
  AccessTrigger(Context& context, Engine& engine, Store& store, NumberingPlan plan, AccessOptions options);
  ~AccessTrigger() override;

  void start(TriggerSink& sink) override;
  void stop() override;
  [[nodiscard]] TriggerStatus status() const override;

  struct State;  // lives on the engine's thread, outlives this while work is posted

 private:
  std::shared_ptr<State> state_;
};

}  // namespace callback::trigger_access
