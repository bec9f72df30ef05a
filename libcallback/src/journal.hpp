#pragma once
// The service's own form of a callback in the store's journal (store.hpp, CallJournal):
// everything needed to follow, settle or show it again after a restart. Times are kept
// in milliseconds; the secret is never written.
//
//   std::string json = journal::encode(record);
//   auto back = journal::decode(id, json);   // Result<journal::Record>: the same again
#include <callback/call.hpp>
#include <callback/engine.hpp>
#include <callback/error.hpp>
#include <callback/money.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace callback::journal {

struct Record {
  Call call;
  std::string reservation;
  std::chrono::seconds limit{0};
  bool b_dialed = false;
  std::string server;
  // Money held in slices: the talk time the reservation covers, one slice (0: whole call).
  std::chrono::seconds covered{0};
  std::chrono::seconds slice{0};
  // How the legs ended, as far as the service knows (for the outcome of a call completed
  // from the journal after a crash).
  struct Ending {
    bool limit_reached = false;
    bool money_ran_out = false;
    bool a_hung_up = false;
    bool b_hung_up = false;
    bool unobserved = false;
    bool cancel_requested = false;
    bool operator==(const Ending&) const = default;
  } ending;
  // Once final: what the service told.
  std::string outcome;
  std::optional<Announcement> announcement;
  std::optional<Money> cost;
  std::optional<Error> error;
};

[[nodiscard]] std::string encode(const Record& record);
// The Error names what is wrong in the stored text (a journal written by a newer or
// broken callback), so recovery can say which entry it skipped and why.
[[nodiscard]] Result<Record> decode(const std::string& id, const std::string& json);

}  // namespace callback::journal
