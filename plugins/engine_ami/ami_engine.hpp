#pragma once
// callback.engine.ami: the Engine over the Asterisk Manager Interface. One Originate per
// callback carries the whole plan: Asterisk calls A (Local/PJSIP/SIP per `dial_string`),
// runs the `callback` context of examples/asterisk/extensions.conf when A answers, which
// dials B with L(limit:warning:repeat) and reports the result as UserEvent
// CallbackResult. This file is the connection part: servers, login, keep-alive,
// reconnects, the dialplan check. What Asterisk says about the calls goes to the
// CallTracker (call_tracker.hpp), which correlates it in any order and reports leg
// events to the service.
#include "ami_codec.hpp"
#include "call_tracker.hpp"
#include "inbound_calls.hpp"
#include "server_checks.hpp"

#include <callback/context.hpp>
#include <callback/engine.hpp>
#include <callback/store.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace callback::engine_ami {

struct AmiOptions {
  std::vector<std::string> servers{"127.0.0.1:5038"};
  std::string username = "callback";
  std::string secret;
  bool md5_auth = true;
  std::string context = "callback";
  std::string ivr_context = "callback-ivr-ami";  // A without a callee waits here (dialplan_ivr)
  std::string dial_string = "Local/{number}@phones";
  std::string events = "call,user,cdr";
  std::chrono::milliseconds ping_interval{10'000};
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{30'000};
  TrackerOptions tracking;  // how long calls wait for records, channels, a lost server
  bool check_dialplan = true;
  // Languages the announcement prompts must be installed in (the check at connect).
  std::vector<std::string> languages{"en", "zh"};
  // The service's call journal (the store's), when it has one. Shared by several nodes, it
  // says which node takes each inbound call (CallJournal::claim_inbound), and the IVR legs
  // of the other nodes' callbacks are theirs.
  CallJournal* journal = nullptr;
};

// Checks option values the types alone cannot (server addresses, dial string).
[[nodiscard]] Status validate(const AmiOptions& options);

class AmiEngine final : public Engine, private CallTracker::Sink {
 public:
  AmiEngine(Context& context, AmiOptions options);
  ~AmiEngine() override;

  // Inbound calls (Async AGI) need the agi event class, digits also dtmf (`events`).
  [[nodiscard]] Capabilities capabilities() const override;
  [[nodiscard]] Subscription subscribe(std::function<void(const LegEvent&)> on_event) override {
    return subscribers_.add(std::move(on_event));
  }
  // Inbound calls that the dialplan hands over with AGI(agi:async) (inbound_calls.hpp);
  // inactive when `events` lacks agi.
  [[nodiscard]] Subscription route_inbound(InboundRoute route, std::function<void(const InboundCall&)> on_call) override;
  void start() override;
  void stop() override;
  [[nodiscard]] EngineStatus status() const override;

  // Leg A with its whole plan (`connect`); anything else is engine.unsupported.
  void originate(const OriginateRequest& request, Completion<Channel> placed) override;
  // A's handle ("<id>-A1", its ChannelId) or B's ("<id>-B"), or an inbound channel's.
  void hangup(const Channel& channel, HangupCause cause, StatusCompletion done) override;
  // Adopts the calls; each server lists its channels (now, or once it is connected).
  void recover(const std::vector<Recovered>& calls) override;
  void forget(const std::string& call_id) override;

  // On inbound channels (inbound_calls.hpp).
  void answer(const Channel& channel, StatusCompletion done) override;
  void reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first,
              StatusCompletion done) override;
  void play(const Channel& channel, const Prompt& prompt, StatusCompletion done) override;
  void collect_digits(const Channel& channel, const DigitRequest& request, Completion<Digits> done) override;
  // The IVR (dialplan_ivr): A placed with OriginateRequest::ivr waits in [callback-ivr-ami];
  // B, its limit and caller ID are set on it and the dialplan goes on.
  void connect_b(const Channel& a, const Connect& connect, StatusCompletion done) override;
  // Not offered (see capabilities()): each answers engine.unsupported.
  void bridge(const Channel& a, const Channel& b, StatusCompletion done) override;
  void set_time_limit(const Channel& warn, const Channel& other, const TimeLimit& limit,
                      StatusCompletion done) override;

  struct Server;

 private:
  friend struct Server;
  // Handlers of the io_context check it: an engine destroyed with operations pending (a
  // test's simulated crash, a runtime torn down) is never touched by them afterwards.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // CallTracker::Sink
  void on_leg_event(const LegEvent& event) override;
  bool send(const std::string& server, std::string bytes) override;

  void emit(const LegEvent& event);
  static constexpr std::string_view a_suffix = "-A1";
  static constexpr std::string_view b_suffix = "-B";
  static Channel leg_channel(const std::string& server, const std::string& call_id, LegRole leg);
  static std::optional<std::pair<std::string, LegRole>> leg_of(const Channel& channel);
  void answer_later(StatusCompletion done, Status result);
  void unsupported(StatusCompletion done, std::string_view what);
  void on_message(Server& server, const ami::MessageView& message);
  void on_logged_in(Server& server);
  void list_channels(Server& server);  // CoreShowChannels, for the tracker's reconcile
  Server* pick_server();
  // The IVR's A of `channel` (a leg handle) once it waits in Async AGI, now or when it
  // does; an inbound channel is itself. `use` gets the channel, or why there is none.
  void with_ivr_line(const Channel& channel, std::function<void(Result<Channel>)> use);
  void ivr_over(const std::string& call_id);  // A ended: what waits for it learns so

  Context& context_;
  AmiOptions options_;
  Subscribers<std::function<void(const LegEvent&)>> subscribers_;
  std::vector<std::unique_ptr<Server>> servers_;
  CallTracker tracker_;
  InboundCalls inbound_;
  // Where inbound calls are claimed (CallJournal::claim_inbound): a database that is slow
  // or unreachable delays the calls waiting for it, never this engine's thread.
  // Made for the first claim of a journal several nodes share (none for one of its own).
  std::unique_ptr<boost::asio::thread_pool> claims_;
  struct IvrLeg {
    std::optional<Channel> line;                              // once it waits in Async AGI
    std::vector<std::function<void(Result<Channel>)>> waiting;  // operations sent before that
  };
  std::unordered_map<std::string, IvrLeg> ivr_;  // by call id
  std::size_t next_server_ = 0;
  bool stopping_ = false;
};

}  // namespace callback::engine_ami
