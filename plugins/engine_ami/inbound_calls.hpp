#pragma once
// The AMI engine's inbound calls: calls that the dialplan hands to us with Async AGI
// (examples/asterisk/extensions.conf, [callback-access-ami]: `AGI(agi:async)`), routed to
// the route_inbound subscribers by the dialled number, and the primitives on them:
// answer, reject without answering, hang up, play, collect digits. Like the call tracker
// it has no socket: the connection part hands it every message and sends what it asks.
//
//   InboundCalls inbound(context, sink);
//   auto route = inbound.route({.dialed = {"5000"}}, [](const InboundCall& call) { ... });
//   inbound.on_message(server, message);  // true: it was about an inbound channel
//   inbound.answer(call.channel, [](Status answered) { ... });
//
// What Asterisk does (tests/fixtures/asterisk/ami-inbound-*, README "Async AGI (AMI)"):
//  * AsyncAGIStart names the channel (its handle here is the channel's name) with `Env`,
//    the AGI environment URL-encoded; the dialled number is `agi_extension` (`agi_dnid`
//    is `unknown` on Local channels), the caller `agi_callerid`. The channel rings: AGI
//    does not answer.
//  * Commands go one at a time as `Action: AGI` with our `CommandID`; the reply says only
//    "queued", the result comes as AsyncAGIExec with `CommandId:` and a URL-encoded
//    `Result:` ("200 result=53 endpos=4960\n"). STREAM FILE with escape digits stops at
//    the first key.
//  * Digits come as DTMFEnd events of the channel (class dtmf), whatever command runs:
//    they are collected from there, so digits pressed before a collection (type-ahead)
//    are kept for it, as the ARI engine keeps them.
//  * Reject: `Action: Hangup` with `Cause` on the unanswered channel; the caller hears the
//    cause and pays nothing. The end of a channel is its Hangup event (with the cause),
//    reported as a LegEvent `ended` with an empty call_id and the channel as handle.
//
// Bad input: events for channels we do not follow are not ours (on_message says false);
// an AGI reply that is not "200 result=..." ends that operation with engine.refused.
#include "ami_codec.hpp"
#include "call_tracker.hpp"

#include <callback/context.hpp>
#include <callback/engine.hpp>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace callback::engine_ami {

// An AGI result line ("200 result=53 endpos=4960"); nullopt when it is not one.
struct AgiReply {
  int code = 0;         // 200 is success; 510/511/520 are AGI errors
  std::string result;   // after "result=" up to the next space ("53", "-1", "")
  std::string rest;     // what follows ("endpos=4960", "(timeout)")
};
[[nodiscard]] std::optional<AgiReply> parse_agi_reply(std::string_view line);
// %XX and '+' as sent in AsyncAGI* `Env` and `Result` headers.
[[nodiscard]] std::string url_decode(std::string_view text);

class InboundCalls {
 public:
  InboundCalls(Context& context, CallTracker::Sink& sink);
  ~InboundCalls();
  InboundCalls(const InboundCalls&) = delete;
  InboundCalls& operator=(const InboundCalls&) = delete;

  [[nodiscard]] Subscription route(InboundRoute route, std::function<void(const InboundCall&)> on_call);
  // Every message from `server`; true when it was about one of our inbound channels (or a
  // reply to one of our actions) and needs nobody else.
  bool on_message(const std::string& server, const ami::MessageView& message);
  [[nodiscard]] bool owns(const Channel& channel) const;

  void answer(const Channel& channel, StatusCompletion done);
  void reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first, StatusCompletion done);
  void hangup(const Channel& channel, HangupCause cause, StatusCompletion done);
  void play(const Channel& channel, const Prompt& prompt, StatusCompletion done);
  void collect_digits(const Channel& channel, const DigitRequest& request, Completion<Digits> done);

  // The IVR of outbound calls ([callback-ivr-ami]): A, originated there, waits in Async AGI.
  // Its AsyncAGIStart makes it a held line, not an inbound call: no route, and no `ended`
  // of its own (the call tracker follows A); every event but AGI's and DTMF is left to the
  // tracker. `is_ivr_leg` says whether a Uniqueid is such an A; `held` hands its channel
  // to the engine, for collect_digits, play and release.
  std::function<bool(const std::string& uniqueid)> is_ivr_leg;
  std::function<void(const std::string& uniqueid, const Channel& channel)> held;
  // Several nodes, each with a connection to every Asterisk, see every AsyncAGIStart. A leg
  // that `is_other_nodes_leg` (another node's IVR) is left alone. Any other call is an
  // inbound one for the node that `claim`s it first (CallJournal::claim_inbound); the
  // others leave it alone too, and so does a node that cannot reach the database to ask
  // (nothing could be recorded or billed for it). Unset: every inbound call is this node's.
  // `claim` asks off the engine's thread (the database may be slow or gone) and calls
  // `done` on it; events of a call waiting for its answer are kept for it.
  std::function<bool(const std::string& uniqueid)> is_other_nodes_leg;
  std::function<void(const std::string& server, const std::string& uniqueid, std::function<void(Result<bool>)> done)>
      claim;
  // Sets each variable (SET VARIABLE), then ASYNCAGI BREAK: the dialplan goes on, and the
  // line is let go at its AsyncAGIEnd. A value with a quote, a backslash or a control
  // character is engine.invalid.
  void release(const Channel& channel, const std::vector<std::pair<std::string, std::string>>& variables,
               StatusCompletion done);

  // The connection to `server` is gone: its inbound channels end (unobserved, engine lost).
  void connection_lost(const std::string& server);
  // Engine stop: hangs up every inbound channel and ends it (engine lost).
  void stop_all();
  [[nodiscard]] std::size_t size() const noexcept { return channels_.size(); }

  struct Line;
  struct Collection;

 private:
  using AgiDone = std::function<void(Result<AgiReply>)>;
  void started(const std::string& server, const ami::MessageView& m);
  // An inbound call that is this node's: routed (or rejected when no route takes it).
  void take(const std::shared_ptr<Line>& line, InboundCall call);
  void ended(Line& line, const ami::MessageView& m);
  void finish(const std::string& key, HangupCause cause, bool unobserved);
  void agi(Line& line, std::string command, AgiDone done, std::function<bool()> skip = nullptr);
  void pump(Line& line);
  void on_exec(Line& line, const ami::MessageView& m);
  // Commands one after the other; stops at the first failure, or when `cut` says so
  // after one.
  void sequence(const std::shared_ptr<Line>& line, std::vector<std::string> commands, std::function<bool()> cut,
                StatusCompletion done);
  void send_hangup(Line& line, HangupCause cause, StatusCompletion done);
  void feed_digit(Line& line, char digit);
  void end_collection(Line& line, Result<Digits> result);
  std::shared_ptr<Line> find(const Channel& channel) const;
  template <class T>
  void later(std::function<void(T)> done, T value);
  void later(std::function<void()> f);

  Context& context_;
  CallTracker::Sink& sink_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  struct Route {
    InboundRoute route;
    std::function<void(const InboundCall&)> on_call;
  };
  Subscribers<std::shared_ptr<Route>> routes_;
  std::unordered_map<std::string, std::shared_ptr<Line>> channels_;  // by server + '\n' + channel name
  std::unordered_map<std::string, std::shared_ptr<Line>> claiming_;  // the same, waiting for `claim`
  // Our actions' replies: ActionID -> what to do with the Response (nullptr: the
  // connection went first).
  struct Reply {
    std::string server;
    std::function<void(const ami::MessageView*)> handler;
  };
  std::unordered_map<std::string, Reply> replies_;
  std::uint64_t sequence_ = 0;
};

}  // namespace callback::engine_ami
