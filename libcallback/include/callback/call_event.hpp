#pragma once
// CallEvent: one state change of one callback, as the service tells its observers (the
// REST API's callback object, the embedding API's events, callbackctl's progress lines).
#include <callback/call.hpp>
#include <callback/engine.hpp>
#include <callback/error.hpp>
#include <callback/export.hpp>
#include <callback/money.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace callback {

// One state change of one callback, with a snapshot of the call after it.
struct CallEvent {
  Call call;
  CallState previous;
  std::optional<Announcement> announcement;  // for final states: what A heard
  std::optional<Money> cost;                 // for final states: what was charged
  std::chrono::seconds limit{0};             // how long it may talk, once authorized (else 0)
  std::optional<Error> error;                // why it was refused (denied, invalid, no engine)
  // For final states, how it ended, in words a person or a page can show: "completed",
  // an announcement's name ("time_up", "partner_busy", ...), "caller_unreachable",
  // "canceled", "refused". Empty while the call runs.
  std::string outcome;
  // Read back from the journal after a restart, not a change: streams and webhooks told
  // it before the restart.
  bool replayed = false;
};

// What CallbackService::recover found in the journal.
struct RecoveryReport {
  std::size_t finished = 0;  // finished callbacks readable again (and their idempotency keys)
  std::vector<std::string> resumed;  // in flight at the crash: handed to the engine to find
  std::vector<std::string> skipped;  // entries that could not be read ("id: why")
  std::vector<std::string> released;  // reservations left open for no callback, given back
};

class CALLBACK_EXPORT CallObserver {
 public:
  virtual ~CallObserver();
  virtual void on_call_event(const CallEvent& event) = 0;
};

}  // namespace callback
