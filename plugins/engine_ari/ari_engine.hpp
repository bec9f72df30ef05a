#pragma once
// callback.engine.ari: the Engine over the Asterisk REST Interface. It offers the step
// flow: the service originates each leg into our Stasis application, plays prompts,
// bridges A and B in a mixing bridge and sets a time limit, which this engine times (ARI
// has nothing like Dial's L()): "you have N seconds" at warning_before and every
// warning_repeat, then "time up" and both legs hung up. Inbound calls that the dialplan
// sends into the app (`Stasis(callback-app,access,${EXTEN})`, examples/asterisk) go to
// the route_inbound subscribers, which answer or reject them and collect digits.
//
// What Asterisk sends is in tests/fixtures/asterisk/README.md ("ARI"); the quirks this
// file relies on:
//  * we choose the channel ids (channelId/otherChannelId = <call>-a, <call>-a2), so
//    events that arrive before the originate's HTTP reply are ours already;
//  * a Local channel's ;1 half reports cause 0 for busy or congestion: the Dial event's
//    dialstatus and the ;2 half's ChannelDestroyed say what happened;
//  * no Dial NOANSWER on an originate timeout: cause 19 on ChannelDestroyed;
//  * an inbound channel gets no ChannelDestroyed: its end is StasisEnd, its cause the
//    last ChannelHangupRequest that is not soft;
//  * a play answers 201; a missing prompt ends PlaybackFinished "failed".
// Several servers: calls go to the connected one with the fewest legs. A server whose
// WebSocket drops keeps its legs for lost_call_grace; after the reconnect GET
// /ari/channels says which are still up (followed on) and which ended (ended as not
// observed). Every timer runs on the Context's Clock.
#include "ari_client.hpp"

#include <callback/context.hpp>
#include <callback/engine.hpp>
#include <callback/store.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace callback::engine_ari {

struct AriOptions {
  std::vector<std::string> servers{"127.0.0.1:8088"};  // host:port of Asterisk's HTTP server
  std::string username = "callback";
  std::string password;
  std::string app = "callback-app";
  std::string dial_string = "Local/{number}@phones";
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{30'000};
  std::chrono::milliseconds lost_call_grace{30'000};  // legs of a lost server wait this long for it
  std::chrono::milliseconds event_idle_timeout{30'000};
  std::size_t max_connections = 4;  // HTTP connections per server
  // REST calls over the event WebSocket where Asterisk takes them (ari::Client::Options):
  // fewer system calls, but a call in flight when the WebSocket is lost fails.
  bool rest_over_websocket = false;
  // The hangup handler each B leg gets (examples/asterisk/extensions.conf): it leaves B's
  // end in a global on Asterisk, read back for a B that ended while we were away (a
  // restart, a lost connection), so that call is billed. Empty: none, and such a B is
  // billed up to when it was last seen.
  std::string leg_end_context = "callback-ari-leg-end";
  // The service's call journal, when it has one. Shared by several nodes, each node's
  // engine runs its own application, <app>-<node>: Asterisk gives an application's events to
  // one WebSocket only. A node taking over another's calls moves their channels into its
  // own (POST /channels/{id}/move).
  CallJournal* journal = nullptr;
};

[[nodiscard]] Status validate(const AriOptions& options);

class AriEngine final : public Engine {
 public:
  AriEngine(Context& context, AriOptions options);
  ~AriEngine() override;

  [[nodiscard]] Capabilities capabilities() const override {
    return {.step_flow = true, .inbound_calls = true, .collect_digits = true};
  }
  [[nodiscard]] Subscription subscribe(std::function<void(const LegEvent&)> on_event) override;
  [[nodiscard]] Subscription route_inbound(InboundRoute route, std::function<void(const InboundCall&)> on_call) override;
  void start() override;
  void stop() override;
  [[nodiscard]] EngineStatus status() const override;

  void originate(const OriginateRequest& request, Completion<Channel> placed) override;
  void hangup(const Channel& channel, HangupCause cause, StatusCompletion done) override;
  void recover(const std::vector<Recovered>& calls) override;
  void forget(const std::string& call_id) override;
  void answer(const Channel& channel, StatusCompletion done) override;
  void reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first,
              StatusCompletion done) override;
  void play(const Channel& channel, const Prompt& prompt, StatusCompletion done) override;
  void bridge(const Channel& a, const Channel& b, StatusCompletion done) override;
  void set_time_limit(const Channel& warn, const Channel& other, const TimeLimit& limit,
                      StatusCompletion done) override;
  void collect_digits(const Channel& channel, const DigitRequest& request, Completion<Digits> done) override;

  struct Server;
  struct Leg;
  struct Collection;

 private:
  friend struct Server;
  void on_event(Server& server, const boost::json::object& event);
  void on_opened(Server& server);
  void on_closed(Server& server, const Error& why);
  void reconcile(Server& server, const boost::json::array& channels);
  void find_bridges(Server& server);
  void move_here(Server& server, const std::shared_ptr<Leg>& leg, int attempt = 0);
  void inbound(Server& server, const boost::json::object& channel, const std::string& dialed, Timestamp at);
  void leg_ended(Leg& leg, Timestamp at, bool unobserved);
  void end_unobserved(const std::shared_ptr<Leg>& leg, Timestamp last_seen);
  void delete_bridge(Leg& leg);
  void emit(const LegEvent& event);
  void answered(Leg& leg, Timestamp at);
  void warn_or_end(const std::string& id);
  void end_collection(const std::string& channel_id, Result<Digits> result);
  void feed_digit(Leg& leg, char digit);
  Server* pick_server();
  Server* server_named(const std::string& name);
  std::shared_ptr<Leg> find(const Channel& channel);
  // Runs `f` later on the io_context, unless the engine is gone by then.
  void later(std::function<void()> f);
  template <class T>
  void answer_later(std::function<void(Result<T>)> done, Result<T> result) {
    later([done = std::move(done), result = std::move(result)] {
      if (done) done(result);
    });
  }
  void request(Server& server, boost::beast::http::verb method, std::string target,
               std::function<void(Result<ari::Response>)> done, boost::json::object body = {});

  Context& context_;
  AriOptions options_;
  std::string app_;  // the Stasis application we run: options_.app, or <app>-<node> (start())
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<std::unique_ptr<Server>> servers_;
  std::size_t next_server_ = 0;
  bool stopping_ = false;
  Subscribers<std::function<void(const LegEvent&)>> subscribers_;
  struct Route {
    InboundRoute route;
    std::function<void(const InboundCall&)> on_call;
  };
  Subscribers<std::shared_ptr<Route>> routes_;
  // Every channel we follow, by id: both halves of each leg we placed, and inbound calls.
  std::unordered_map<std::string, std::shared_ptr<Leg>> legs_;
  std::size_t legs_in_flight_ = 0;
  std::unordered_map<std::string, std::shared_ptr<Collection>> collections_;  // by channel id
  std::unordered_map<std::string, StatusCompletion> playbacks_;              // by playback id
  std::uint64_t sequence_ = 0;
  std::set<std::string> adopting_;  // callback ids given to recover(): their bridges are ours
  // Callbacks whose B was placed with the end record's hangup handler: the server it is on.
  std::unordered_map<std::string, std::string> recorded_on_;
};

}  // namespace callback::engine_ari
