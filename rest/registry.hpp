#pragma once
// CallRegistry: what callbackd knows of each callback, for readers on any thread. The
// service's observer (on the service thread) stores each callback's latest JSON and
// pushes it to the callback's event-stream subscribers; GETs read the stored JSON under
// a shared lock, so reads never wait for the service thread.
#include <callback_internal/callback_service.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace callback::rest {

// One event-stream client. `send` gets one SSE frame; it returns false when the client
// is gone. `close` ends the stream after a final state.
struct Subscriber {
  std::function<bool(const std::string& frame)> send;
  std::function<void()> close;
};

struct Snapshot {
  std::string id;
  std::string json;  // the callback object
  CallState state = CallState::created;
  Timestamp created_at{};
  std::string owner;        // request metadata "owner": the API key id ("" for the web page)
  std::string webhook_url;  // request metadata "status_callback"
  bool remote = false;      // another node runs it: read from the shared journal
};

class CallRegistry final : public CallObserver {
 public:
  explicit CallRegistry(std::size_t finished_kept = 10'000) : finished_kept_(finished_kept) {}
  void on_call_event(const CallEvent& event) override;

  [[nodiscard]] std::optional<Snapshot> find(const std::string& id) const;
  // Newest first; empty state matches all; with `owner`, only that API key's callbacks.
  [[nodiscard]] std::vector<Snapshot> list(std::optional<CallState> state, Timestamp since, std::size_t limit,
                                           const std::optional<std::string>& owner = std::nullopt) const;
  // Sends the current snapshot, then every change; closes after the final one. False if
  // the id is unknown.
  bool subscribe(const std::string& id, std::shared_ptr<Subscriber> subscriber);
  // Several nodes: a callback another node runs, read from the journal, streamed to
  // `subscriber` from this snapshot on, then at each remote_changed(). Closes at once
  // if it is final.
  void follow_remote(Snapshot snapshot, std::shared_ptr<Subscriber> subscriber);
  // What the journal says of a followed remote callback now: sent if it changed; the
  // stream closes, and the entry goes, once it is final.
  void remote_changed(const Snapshot& snapshot);
  [[nodiscard]] std::vector<std::string> remote_ids() const;
  // Sends `frame` (an SSE comment) to every open stream; forgets those whose client left.
  void ping(const std::string& frame);
  // Hook for status webhooks: every event, with the snapshot it produced.
  std::function<void(const CallEvent&, const Snapshot&)> on_event;

  [[nodiscard]] static std::string frame(const std::string& json) { return "event: callback\ndata: " + json + "\n\n"; }
  // The first frame of a stream: browsers reconnect after 2 s when it is cut.
  [[nodiscard]] static std::string first_frame(const std::string& json) { return "retry: 2000\n" + frame(json); }

 private:
  struct Entry {
    Snapshot snapshot;
    std::vector<std::shared_ptr<Subscriber>> subscribers;
  };
  std::size_t finished_kept_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> finished_;
};

}  // namespace callback::rest
