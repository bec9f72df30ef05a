#include "registry.hpp"

#include <callback/json.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <mutex>

namespace callback::rest {

void CallRegistry::on_call_event(const CallEvent& event) {
  std::string json = boost::json::serialize(to_json(event));
  const bool final = is_final(event.call.state());
  std::vector<std::shared_ptr<Subscriber>> to_close;
  Snapshot copy;
  {
    std::unique_lock lock(mutex_);
    Entry& entry = entries_[event.call.id()];
    entry.snapshot.remote = false;  // ours now (taken over), if it was another node's
    entry.snapshot.id = event.call.id();
    entry.snapshot.json = std::move(json);
    entry.snapshot.state = event.call.state();
    entry.snapshot.created_at = event.call.created_at();
    if (entry.snapshot.owner.empty() && entry.snapshot.webhook_url.empty()) {
      const auto& metadata = event.call.request().metadata;
      if (auto m = metadata.find("owner"); m != metadata.end()) entry.snapshot.owner = m->second;
      if (auto m = metadata.find("status_callback"); m != metadata.end()) entry.snapshot.webhook_url = m->second;
    }
    if (!entry.subscribers.empty()) {
      const std::string frame_text = frame(entry.snapshot.json);
      std::erase_if(entry.subscribers, [&](const auto& s) { return !s->send(frame_text); });
    }
    if (final && event.outcome == "refused" && !event.call.leg_a().started) {
      // Refused before anything was placed: the client got the error instead of an id,
      // so there is no callback to show.
      to_close = std::move(entry.subscribers);
      entries_.erase(event.call.id());
    } else if (final) {
      to_close = std::move(entry.subscribers);
      entry.subscribers.clear();
      finished_.push_back(event.call.id());
      while (finished_.size() > finished_kept_) {
        entries_.erase(finished_.front());
        finished_.pop_front();
      }
    }
    if (on_event && entries_.contains(event.call.id())) copy = entries_.at(event.call.id()).snapshot;
  }
  for (auto& s : to_close) s->close();
  if (on_event) on_event(event, copy);
}

std::optional<Snapshot> CallRegistry::find(const std::string& id) const {
  std::shared_lock lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.snapshot;
}

std::vector<Snapshot> CallRegistry::list(std::optional<CallState> state, Timestamp since, std::size_t limit,
                                         const std::optional<std::string>& owner) const {
  std::vector<Snapshot> out;
  {
    std::shared_lock lock(mutex_);
    for (const auto& [id, entry] : entries_) {
      if (state && entry.snapshot.state != *state) continue;
      if (owner && entry.snapshot.owner != *owner) continue;
      if (entry.snapshot.created_at < since) continue;
      out.push_back(entry.snapshot);
    }
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) {
    return a.created_at != b.created_at ? a.created_at > b.created_at : a.id > b.id;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

void CallRegistry::follow_remote(Snapshot snapshot, std::shared_ptr<Subscriber> subscriber) {
  {
    std::unique_lock lock(mutex_);
    auto [it, added] = entries_.try_emplace(snapshot.id);
    if (added) {
      snapshot.remote = true;
      it->second.snapshot = std::move(snapshot);
    }
    const Snapshot& now = it->second.snapshot;
    if (subscriber->send(first_frame(now.json)) && !is_final(now.state)) {
      it->second.subscribers.push_back(std::move(subscriber));
      return;
    }
    if (added) entries_.erase(it);
  }
  subscriber->close();
}

void CallRegistry::remote_changed(const Snapshot& snapshot) {
  std::vector<std::shared_ptr<Subscriber>> to_close;
  {
    std::unique_lock lock(mutex_);
    auto it = entries_.find(snapshot.id);
    if (it == entries_.end() || !it->second.snapshot.remote) return;  // not followed, or ours now
    Entry& entry = it->second;
    if (entry.snapshot.json != snapshot.json) {
      entry.snapshot = snapshot;
      entry.snapshot.remote = true;
      const std::string frame_text = frame(entry.snapshot.json);
      std::erase_if(entry.subscribers, [&](const auto& s) { return !s->send(frame_text); });
    }
    if (is_final(entry.snapshot.state) || entry.subscribers.empty()) {
      to_close = std::move(entry.subscribers);
      entries_.erase(it);
    }
  }
  for (auto& s : to_close) s->close();
}

std::vector<std::string> CallRegistry::remote_ids() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, entry] : entries_) {
    if (entry.snapshot.remote) ids.push_back(id);
  }
  return ids;
}

void CallRegistry::ping(const std::string& text) {
  std::unique_lock lock(mutex_);
  for (auto& [id, entry] : entries_) {
    std::erase_if(entry.subscribers, [&](const auto& s) { return !s->send(text); });
  }
}

bool CallRegistry::subscribe(const std::string& id, std::shared_ptr<Subscriber> subscriber) {
  bool close_now = false;
  {
    std::unique_lock lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    if (!subscriber->send(first_frame(it->second.snapshot.json))) return true;
    if (is_final(it->second.snapshot.state)) {
      close_now = true;
    } else {
      it->second.subscribers.push_back(subscriber);
    }
  }
  if (close_now) subscriber->close();
  return true;
}

}  // namespace callback::rest
