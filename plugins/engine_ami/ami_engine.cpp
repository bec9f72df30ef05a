#include "ami_engine.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <charconv>

namespace callback::engine_ami {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view component = "callback.engine.ami";
constexpr std::string_view a1_suffix = "-A1";
constexpr std::string_view a2_suffix = "-A2";

int to_int(std::string_view text, int fallback = 0) {
  int value = fallback;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} ? value : fallback;
}


// Asterisk's DIALSTATUS for a B that never answered, as a cause (see the fixtures
// README's Dial() table: the cause itself is often 0 on Local channels).
HangupCause cause_for_dial_status(std::string_view status, int reported_cause) {
  if (reported_cause != 0) return HangupCause{reported_cause};
  if (status == "BUSY") return HangupCause{17};
  if (status == "NOANSWER") return HangupCause{19};
  if (status == "CONGESTION") return HangupCause{34};
  if (status == "CANCEL") return HangupCause{16};
  if (status == "ANSWER") return HangupCause{16};
  return HangupCause{3};  // CHANUNAVAIL with no cause: no route (no such number here)
}

// OriginateResponse Reason -> the cause of A's failure (README: 3 no answer, 5 busy,
// 8 congestion, 0 everything else: then the cause is only in the Hangup events).
HangupCause cause_for_reason(int reason, int hangup_cause) {
  switch (reason) {
    case 3: return HangupCause{19};
    case 5: return HangupCause{17};
    case 8: return HangupCause{34};
    case 1: return HangupCause{16};  // hung up (we canceled it)
    default: return hangup_cause != 0 ? HangupCause{hangup_cause} : HangupCause{3};
  }
}

}  // namespace

Status validate(const AmiOptions& options) {
  if (options.servers.empty()) return Error{"config.value", "at least one server is needed", "servers"};
  for (std::size_t i = 0; i < options.servers.size(); ++i) {
    const auto& s = options.servers[i];
    const auto colon = s.rfind(':');
    const int port = colon == std::string::npos ? 0 : to_int(std::string_view(s).substr(colon + 1));
    if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
      return Error{"config.value", "server must be host:port, got \"" + s + "\"", "servers[" + std::to_string(i) + "]"};
    }
  }
  if (options.dial_string.find("{number}") == std::string::npos) {
    return Error{"config.value", "dial string must contain {number}, got \"" + options.dial_string + "\"",
                 "dial_string"};
  }
  for (const auto* value : {&options.username, &options.secret, &options.context, &options.dial_string,
                            &options.events}) {
    if (!ami::Action::is_safe_value(*value)) return Error{"config.value", "must not contain line breaks", {}};
  }
  return ok_status();
}

std::string expand_dial_string(const std::string& pattern, const std::string& number) {
  std::string out = pattern;
  for (auto at = out.find("{number}"); at != std::string::npos; at = out.find("{number}", at + number.size())) {
    out.replace(at, 8, number);
  }
  return out;
}

// --- one callback as Asterisk reports it -------------------------------------------------

struct AmiEngine::Call {
  std::string id;
  std::string a1, a2;  // A's Uniqueids (ChannelId / OtherChannelId)
  Server* server = nullptr;
  std::string a_channel;             // A;1's channel name
  std::string b_channel, b_uniqueid;  // B's first channel (;1 for Local)
  std::set<std::string> live;         // channels seen and not hung up
  std::set<std::string> b_channels;
  bool queued = false;          // Originate acknowledged
  bool originate_done = false;  // OriginateResponse seen
  bool originate_ok = false;
  int reason = -1;
  bool a_ringing = false, a_answered = false;
  bool b_dialing = false, b_ringing = false, b_answered = false;
  bool user_event = false, where_h = false;
  int limit_header = -1;  // our dialplan's LimitReached: 1/0; -1 when absent (fixtures' dialplan)
  std::string dial_status;
  int user_hangup_cause = 0;
  int a_hangup_cause = 0, b_hangup_cause = 0;
  char first_to_leave = 0;  // 'A' or 'B': who left the bridge first
  bool hangup_requested = false;
  bool hangup_sent = false;
  HangupCause requested_cause;
  std::optional<std::chrono::seconds> a_billsec, b_billsec;
  bool orphaned = false;  // its server connection was lost
  bool grace_armed_for_cdr = false;
  bool grace_armed_for_channels = false;
  bool a_seen = false;  // A;1's Newchannel arrived
  bool done = false;
  TimerHandle grace;
};

// --- one Asterisk server connection ---------------------------------------------------

struct AmiEngine::Server {
  enum class State { idle, connecting, login, ready, backoff };

  Server(AmiEngine& owner, std::string address)
      : engine(owner), name(std::move(address)), socket(owner.context_.io), timer(owner.context_.io),
        ping_timer(owner.context_.io) {}

  AmiEngine& engine;
  std::string name;
  tcp::socket socket;
  asio::steady_timer timer;       // connect timeout, backoff
  asio::steady_timer ping_timer;  // keep-alive
  State state = State::idle;
  std::string detail = "not connected";
  bool dialplan_ok = true;
  ami::Parser parser;
  std::array<char, 64 * 1024> read_buffer{};
  std::deque<std::string> write_queue;
  bool writing = false;
  std::chrono::milliseconds backoff{0};
  std::uint64_t generation = 0;  // bumps on every new connection: stale handlers stop
  std::uint64_t action_seq = 0;
  std::string challenge_id, login_id, ping_id, dialplan_id, channels_id;
  bool ping_outstanding = false;
  std::uint64_t received = 0;          // bytes read on this connection
  std::uint64_t received_at_ping = 0;  // `received` when the outstanding Ping went out
  std::size_t in_flight = 0;
  std::set<std::string> listed_linkedids;  // CoreShowChannels after a reconnect
  std::set<std::string> listed_uniqueids;

  [[nodiscard]] bool healthy() const { return state == State::ready && dialplan_ok; }
  std::string next_id(std::string_view what) { return std::string(what) + "-" + std::to_string(++action_seq); }

  void connect() {
    if (engine.stopping_) return;
    state = State::connecting;
    ++generation;
    parser.reset();
    write_queue.clear();
    writing = false;
    ping_outstanding = false;
    const auto colon = name.rfind(':');
    boost::system::error_code ec;
    auto address = asio::ip::make_address(name.substr(0, colon), ec);
    if (ec) {
      tcp::resolver resolver(engine.context_.io);
      auto results = resolver.resolve(name.substr(0, colon), name.substr(colon + 1), ec);
      if (ec || results.empty()) return lost("cannot resolve " + name.substr(0, colon));
      address = results.begin()->endpoint().address();
    }
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(to_int(name.substr(colon + 1))));
    socket = tcp::socket(engine.context_.io);
    const auto gen = generation;
    timer.expires_after(engine.options_.connect_timeout);
    timer.async_wait([this, gen](const boost::system::error_code& e) {
      if (!e && gen == generation && state == State::connecting) lost("connect timed out");
    });
    socket.async_connect(endpoint, [this, gen](const boost::system::error_code& e) {
      if (gen != generation) return;
      timer.cancel();
      if (e) return lost("connect failed: " + e.message());
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      state = State::login;
      detail = "logging in";
      if (engine.options_.md5_auth) {
        challenge_id = next_id("challenge");
        send(ami::Action("Challenge").add("ActionID", challenge_id).add("AuthType", "MD5").str());
      } else {
        login_id = next_id("login");
        send(ami::Action("Login")
                 .add("ActionID", login_id)
                 .add("Username", engine.options_.username)
                 .add("Secret", engine.options_.secret)
                 .add("Events", engine.options_.events)
                 .str());
      }
      read();
    });
  }

  void read() {
    const auto gen = generation;
    socket.async_read_some(asio::buffer(read_buffer), [this, gen](const boost::system::error_code& e, std::size_t n) {
      if (gen != generation) return;
      if (e) return lost(e == asio::error::eof ? "Asterisk closed the connection" : "read failed: " + e.message());
      received += n;
      auto ok = parser.feed(std::string_view(read_buffer.data(), n),
                            [&](const ami::MessageView& message) { engine.on_message(*this, message); });
      if (gen != generation) return;  // a handler dropped the connection
      if (!ok) return lost("protocol error: " + ok.error().message);
      read();
    });
  }

  void send(std::string bytes) {
    write_queue.push_back(std::move(bytes));
    if (!writing) write_next();
  }

  void write_next() {
    if (write_queue.empty()) {
      writing = false;
      return;
    }
    writing = true;
    const auto gen = generation;
    asio::async_write(socket, asio::buffer(write_queue.front()), [this, gen](const boost::system::error_code& e, std::size_t) {
      if (gen != generation) return;
      if (e) return lost("write failed: " + e.message());
      write_queue.pop_front();
      write_next();
    });
  }

  void schedule_ping() {
    const auto gen = generation;
    ping_timer.expires_after(engine.options_.ping_interval);
    ping_timer.async_wait([this, gen](const boost::system::error_code& e) {
      if (e || gen != generation || state != State::ready) return;
      if (ping_outstanding) {
        // Anything read since the Ping proves the link alive: a busy Asterisk answers a
        // Ping behind megabytes of events. Only a silent interval means it is gone.
        if (received == received_at_ping) {
          return lost("no answer to Ping within " + std::to_string(engine.options_.ping_interval.count()) + " ms");
        }
        received_at_ping = received;
        return schedule_ping();
      }
      ping_outstanding = true;
      received_at_ping = received;
      ping_id = next_id("ping");
      send(ami::Action("Ping").add("ActionID", ping_id).str());
      if (!dialplan_ok) check_dialplan();
      schedule_ping();
    });
  }

  void check_dialplan() {
    dialplan_id = next_id("dialplan");
    send(ami::Action("Command").add("ActionID", dialplan_id).add("Command", "dialplan show " + engine.options_.context).str());
  }

  void lost(const std::string& why) {
    const bool was_up = state == State::ready || state == State::login;
    ++generation;
    boost::system::error_code ignored;
    socket.close(ignored);
    timer.cancel();
    ping_timer.cancel();
    write_queue.clear();
    writing = false;
    detail = why;
    if (engine.stopping_) {
      state = State::idle;
      return;
    }
    state = State::backoff;
    backoff = backoff.count() == 0 ? engine.options_.reconnect_min : std::min(backoff * 2, engine.options_.reconnect_max);
    if (was_up) engine.context_.log.warning(component, name + ": " + why + "; reconnecting");
    engine.on_connection_lost(*this, why);
    const auto gen = generation;
    timer.expires_after(backoff);
    timer.async_wait([this, gen](const boost::system::error_code& e) {
      if (!e && gen == generation) connect();
    });
  }

  void close() {
    ++generation;
    boost::system::error_code ignored;
    socket.close(ignored);
    timer.cancel();
    ping_timer.cancel();
    state = State::idle;
    detail = "stopped";
  }
};

// --- the engine -----------------------------------------------------------------------

AmiEngine::AmiEngine(Context& context, AmiOptions options) : context_(context), options_(std::move(options)) {
  for (const auto& address : options_.servers) servers_.push_back(std::make_unique<Server>(*this, address));
}

AmiEngine::~AmiEngine() {
  stopping_ = true;
  for (auto& server : servers_) server->close();
  for (auto& [id, call] : calls_) call->grace.cancel();
}

void AmiEngine::start() {
  stopping_ = false;
  for (auto& server : servers_) {
    if (server->state == Server::State::idle) server->connect();
  }
}

void AmiEngine::stop() {
  // Calls still up are hung up first: nobody would follow (or bill) them any more.
  for (auto& [id, call] : calls_) {
    if (call->server != nullptr && call->server->state == Server::State::ready && !call->live.empty()) {
      call->server->send(ami::Action("Hangup")
                             .add("ActionID", "hangup-" + id)
                             .add("Channel", call->a_channel.empty() ? call->a1 : call->a_channel)
                             .add("Cause", "16")
                             .str());
    }
  }
  for (auto& server : servers_) {
    if (server->state == Server::State::ready) server->send(ami::Action("Logoff").add("ActionID", "logoff").str());
  }
  stopping_ = true;
  std::vector<Call*> open;
  for (auto& [id, call] : calls_) open.push_back(call.get());
  for (auto* call : open) finish_call(*call, true);
  // Let the Logoff go out before closing.
  asio::post(context_.io, [this] {
    for (auto& server : servers_) server->close();
  });
}

EngineStatus AmiEngine::status() const {
  EngineStatus status;
  for (const auto& server : servers_) {
    std::string detail = server->detail;
    status.servers.push_back({server->name, server->healthy(), detail});
  }
  status.calls_in_flight = calls_.size();
  return status;
}

AmiEngine::Server* AmiEngine::pick_server() {
  // The healthy server with the fewest calls; ties go round-robin.
  Server* best = nullptr;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    Server* s = servers_[(next_server_ + i) % servers_.size()].get();
    if (s->healthy() && (best == nullptr || s->in_flight < best->in_flight)) best = s;
  }
  ++next_server_;
  return best;
}

void AmiEngine::emit(const LegEvent& event) {
  if (observer_ != nullptr) observer_->on_leg_event(event);
}

void AmiEngine::originate(const OriginateRequest& request) {
  const Timestamp now = context_.clock.now();
  Server* server = stopping_ ? nullptr : pick_server();
  if (server == nullptr) {
    // No Asterisk to place it on: the call fails at once, and says why.
    emit({.call_id = request.call_id, .leg = LegRole::a, .type = LegEventType::dialing, .at = now});
    emit({.call_id = request.call_id, .leg = LegRole::a, .type = LegEventType::ended, .at = now,
          .cause = HangupCause::engine_lost()});
    return;
  }
  auto call = std::make_unique<Call>();
  call->id = request.call_id;
  call->a1 = request.call_id + std::string(a1_suffix);
  call->a2 = request.call_id + std::string(a2_suffix);
  call->server = server;
  ++server->in_flight;
  ami::Action action("Originate");
  action.add("ActionID", request.call_id)
      .add("Channel", expand_dial_string(options_.dial_string, request.number.digits()))
      .add("Context", options_.context)
      .add("Exten", request.connect ? request.connect->number.digits() : std::string("s"))
      .add("Priority", "1")
      .add("Timeout", std::to_string(std::chrono::milliseconds(request.ring_timeout).count()))
      .add("CallerID", "\"" + request.caller_name + "\" <" + request.caller_id.digits() + ">")
      .add("ChannelId", call->a1)
      .add("OtherChannelId", call->a2)
      .add("Account", request.account_code)
      .add("Variable", "CB_ID=" + request.call_id)
      .add("Variable", "CB_A=" + request.number.digits());
  if (request.connect) {
    const auto& c = *request.connect;
    action.add("Variable", "CB_LIMIT=" + std::to_string(std::chrono::milliseconds(c.limit).count()))
        .add("Variable", "CB_WARN=" + std::to_string(std::chrono::milliseconds(c.warning_before).count()))
        .add("Variable", "CB_WARN_REPEAT=" + std::to_string(std::chrono::milliseconds(c.warning_repeat).count()))
        .add("Variable", "CB_DIAL_TIMEOUT=" + std::to_string(c.ring_timeout.count()))
        .add("Variable", "CB_B_CALLERID=" + c.caller_id.digits())
        .add("Variable", "CB_DIAL=" + expand_dial_string(options_.dial_string, c.number.digits()));
  }
  action.add("Async", "true");
  calls_.emplace(request.call_id, std::move(call));
  server->send(action.str());
}

void AmiEngine::hangup(const std::string& call_id, LegRole leg, HangupCause cause) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  Call& call = *it->second;
  if (leg == LegRole::b) {
    // Hanging up A ends B as well (the dialplan's Dial goes with it); B alone only when
    // B's channel is known.
    if (!call.b_uniqueid.empty() && call.server->state == Server::State::ready) {
      call.server->send(ami::Action("Hangup")
                            .add("ActionID", "hangup-" + call_id + "-B")
                            .add("Channel", call.b_channel)
                            .add("Cause", std::to_string(cause.code() > 127 ? 16 : cause.code()))
                            .str());
    }
    return;
  }
  call.hangup_requested = true;
  call.requested_cause = cause;
  // Before Asterisk created A's channel the Hangup would find nothing: it is sent once
  // the channel appears (Newchannel).
  if (call.live.count(call.a1) == 0 || call.server->state != Server::State::ready) return;
  call.hangup_sent = true;
  call.server->send(ami::Action("Hangup")
                        .add("ActionID", "hangup-" + call_id)
                        .add("Channel", call.a_channel.empty() ? call.a1 : call.a_channel)
                        .add("Cause", std::to_string(cause.code() > 127 ? 16 : cause.code()))
                        .str());
}

void AmiEngine::bridge(const std::string&) {
  throw std::logic_error("callback.engine.ami connects server-side; bridge() is for engines with primitives");
}
void AmiEngine::set_time_limit(const std::string&, std::chrono::seconds, std::chrono::seconds, std::chrono::seconds) {
  throw std::logic_error("callback.engine.ami sets the limit in the Originate (CB_LIMIT)");
}
void AmiEngine::play(const std::string&, LegRole, Announcement) {
  throw std::logic_error("callback.engine.ami plays announcements in the dialplan");
}
void AmiEngine::collect_digits(const std::string&, LegRole, std::size_t, char, std::chrono::seconds) {
  throw std::logic_error("callback.engine.ami does not collect digits");
}

AmiEngine::Call* AmiEngine::call_for_linkedid(std::string_view linkedid) {
  if (linkedid.size() <= a1_suffix.size() || !linkedid.ends_with(a1_suffix)) return nullptr;
  auto it = calls_.find(std::string(linkedid.substr(0, linkedid.size() - a1_suffix.size())));
  return it == calls_.end() ? nullptr : it->second.get();
}

void AmiEngine::on_logged_in(Server& server) {
  server.state = Server::State::ready;
  server.backoff = 0ms;
  server.detail = "connected";
  context_.log.info(component, server.name + ": logged in");
  if (options_.check_dialplan) {
    server.dialplan_ok = false;  // until `dialplan show` says it is there
    server.detail = "checking the dialplan";
    server.check_dialplan();
  }
  // Calls that were in flight when the connection dropped: ask what is still up.
  bool orphans = false;
  for (auto& [id, call] : calls_) orphans = orphans || (call->server == &server && call->orphaned);
  if (orphans) {
    server.listed_linkedids.clear();
    server.listed_uniqueids.clear();
    server.channels_id = server.next_id("channels");
    server.send(ami::Action("CoreShowChannels").add("ActionID", server.channels_id).str());
  }
  server.schedule_ping();
}

void AmiEngine::on_connection_lost(Server& server, const std::string& why) {
  // Calls on this server: we no longer see them. They wait for the reconnect to tell
  // whether they are still up; past lost_call_grace they end as "engine lost".
  for (auto& [id, call] : calls_) {
    if (call->server != &server || call->orphaned) continue;
    call->orphaned = true;
    const std::string call_id = id;
    call->grace.cancel();
    call->grace = context_.clock.schedule(options_.lost_call_grace, [this, call_id] {
      if (auto it = calls_.find(call_id); it != calls_.end() && it->second->orphaned) finish_call(*it->second, true);
    });
  }
  (void)why;
}

void AmiEngine::on_message(Server& server, const ami::MessageView& m) {
  const Timestamp now = context_.clock.now();
  if (context_.log.enabled(LogLevel::debug)) {
    std::string line = server.name + " <-";
    for (const auto& h : m.headers()) {
      if (ami::iequals(h.name, "Event") || ami::iequals(h.name, "Response") || ami::iequals(h.name, "ActionID") ||
          ami::iequals(h.name, "Uniqueid") || ami::iequals(h.name, "DestUniqueid") || ami::iequals(h.name, "Cause") ||
          ami::iequals(h.name, "DialStatus") || ami::iequals(h.name, "Reason") || ami::iequals(h.name, "Where")) {
        line.append(" ").append(h.name).append("=").append(h.value);
      }
    }
    context_.log.debug(component, line);
  }
  if (m.is_response()) {
    const auto action_id = m.action_id();
    const bool success = m.response() == "Success";
    if (action_id == server.challenge_id && !action_id.empty()) {
      if (!success) return server.lost("MD5 challenge refused: " + std::string(m.get("Message")));
      server.login_id = server.next_id("login");
      server.send(ami::Action("Login")
                      .add("ActionID", server.login_id)
                      .add("AuthType", "MD5")
                      .add("Username", options_.username)
                      .add("Key", ami::md5_login_key(m.get("Challenge"), options_.secret))
                      .add("Events", options_.events)
                      .str());
      return;
    }
    if (action_id == server.login_id && !action_id.empty()) {
      if (!success) {
        context_.log.error(component, server.name + ": login as " + options_.username + " failed: " +
                                          std::string(m.get("Message")) + " (check username/secret and manager.conf)");
        return server.lost("login failed: " + std::string(m.get("Message")));
      }
      return on_logged_in(server);
    }
    if (action_id == server.ping_id && !action_id.empty()) {
      server.ping_outstanding = false;
      return;
    }
    if (action_id == server.dialplan_id && !action_id.empty()) {
      bool found = success;
      for (auto line : m.all("Output")) {
        if (line.find("There is no existence") != std::string_view::npos) found = false;
      }
      if (found && !server.dialplan_ok) {
        server.dialplan_ok = true;
        server.detail = "connected";
      } else if (!found && server.dialplan_ok == false && server.detail != "dialplan missing") {
        server.detail = "dialplan missing";
        context_.log.error(component, server.name + ": the dialplan context '" + options_.context +
                                          "' is not loaded; install examples/asterisk/extensions.conf "
                                          "(see README) and run 'dialplan reload'. No calls go to this server.");
      }
      return;
    }
    if (action_id == server.channels_id && !action_id.empty()) return;  // list follows as events
    // The Originate's acknowledgement (ActionID = call id).
    if (auto it = calls_.find(std::string(action_id)); it != calls_.end()) {
      Call& call = *it->second;
      if (success) {
        if (!call.queued) {
          call.queued = true;
          emit({.call_id = call.id, .leg = LegRole::a, .type = LegEventType::dialing, .at = now,
                .uniqueid = call.a1, .server = server.name});
        }
      } else {
        // Refused outright (bad channel, permission): it never started.
        call.originate_done = true;
        call.reason = 0;
        context_.log.warning(component, call.id + ": Originate refused: " + std::string(m.get("Message")));
        check_done(call);
      }
    }
    return;
  }
  if (!m.is_event()) return;
  const auto event = m.event();

  if (event == "CoreShowChannel" && server.channels_id == m.action_id()) {
    server.listed_linkedids.insert(std::string(m.get("Linkedid")));
    server.listed_uniqueids.insert(std::string(m.get("Uniqueid")));
    return;
  }
  if (event == "CoreShowChannelsComplete" && server.channels_id == m.action_id()) {
    // Reconcile: orphans still up on Asterisk go on being tracked; the rest are gone.
    std::vector<Call*> gone;
    std::vector<std::string> kept;
    for (auto& [id, call] : calls_) {
      if (call->server != &server || !call->orphaned) continue;
      if (server.listed_linkedids.count(call->a1) > 0) {
        call->orphaned = false;
        call->grace.cancel();
        call->grace_armed_for_cdr = call->grace_armed_for_channels = false;
        // Channels that hung up while we were away are gone now.
        std::erase_if(call->live, [&](const std::string& u) { return server.listed_uniqueids.count(u) == 0; });
        kept.push_back(call->id);
      } else {
        gone.push_back(call.get());
      }
    }
    for (auto* call : gone) finish_call(*call, true);
    for (const auto& id : kept) {
      auto it = calls_.find(id);
      if (it == calls_.end()) continue;
      Call& call = *it->second;
      // A cancel asked for while we were away goes out now.
      if (call.hangup_requested && !call.hangup_sent) hangup(call.id, LegRole::a, call.requested_cause);
      check_done(call);
    }
    return;
  }

  if (event == "UserEvent") {
    if (m.get("UserEvent") != "CallbackResult") return;
    auto it = calls_.find(std::string(m.get("CallbackID")));
    if (it == calls_.end()) return;
    Call& call = *it->second;
    call.user_event = true;
    call.dial_status = std::string(m.get("DialStatus"));
    call.user_hangup_cause = to_int(m.get("HangupCause"));
    call.where_h = m.get("Where") == "h";
    if (m.has("LimitReached")) call.limit_header = to_int(m.get("LimitReached"));
    return check_done(call);
  }

  if (event == "OriginateResponse") {
    auto it = calls_.find(std::string(m.action_id()));
    if (it == calls_.end()) return;
    Call& call = *it->second;
    call.originate_done = true;
    call.originate_ok = m.get("Response") == "Success";
    call.reason = to_int(m.get("Reason"), -1);
    if (call.originate_ok && !call.a_answered) {
      call.a_answered = true;
      emit({.call_id = call.id, .leg = LegRole::a, .type = LegEventType::answered, .at = now,
            .channel = call.a_channel, .uniqueid = call.a1, .server = server.name});
    }
    return check_done(call);
  }

  if (event == "Cdr") {
    const auto uniqueid = m.get("UniqueID");
    Call* call = nullptr;
    bool is_a = false;
    if (uniqueid.ends_with(a2_suffix) || uniqueid.ends_with(a1_suffix)) {
      auto it = calls_.find(std::string(uniqueid.substr(0, uniqueid.size() - 3)));
      call = it == calls_.end() ? nullptr : it->second.get();
      is_a = true;
    } else if (auto c = channel_calls_.find(std::string(uniqueid)); c != channel_calls_.end()) {
      auto it = calls_.find(c->second);
      call = it == calls_.end() ? nullptr : it->second.get();
    }
    if (call == nullptr) return;
    // A leg's own record (DestinationChannel empty) holds its answered time; for A the
    // ;2 half (A;1's records belong to the Dial), for B any of its channels.
    if (!m.get("DestinationChannel").empty()) return;
    const auto billsec = std::chrono::seconds(to_int(m.get("BillableSeconds")));
    if (is_a) {
      if (uniqueid.ends_with(a2_suffix)) call->a_billsec = billsec;
    } else if (m.get("Disposition") == "ANSWERED" || !call->b_billsec) {
      call->b_billsec = billsec;
    }
    return check_done(*call);
  }

  // Channel events: find the call through the Linkedid (or DestLinkedid for Dial*).
  const bool dial_event = event.starts_with("Dial");
  Call* call = call_for_linkedid(m.get(dial_event ? "DestLinkedid" : "Linkedid"));
  if (call == nullptr) return;
  const auto uniqueid = m.get(dial_event ? "DestUniqueid" : "Uniqueid");
  const auto channel = m.get(dial_event ? "DestChannel" : "Channel");
  const bool is_a = uniqueid == call->a1 || uniqueid == call->a2;

  if (event == "Newchannel") {
    call->live.insert(std::string(uniqueid));
    if (uniqueid == call->a1) {
      call->a_seen = true;
      call->a_channel = std::string(channel);
      if (call->hangup_requested && !call->hangup_sent) hangup(call->id, LegRole::a, call->requested_cause);
    } else if (!is_a) {
      call->b_channels.insert(std::string(uniqueid));
      channel_calls_.emplace(std::string(uniqueid), call->id);
      if (call->b_uniqueid.empty() || channel.ends_with(";1")) {
        call->b_uniqueid = std::string(uniqueid);
        call->b_channel = std::string(channel);
      }
    }
    return;
  }
  if (event == "Hangup") {
    call->live.erase(std::string(uniqueid));
    const int cause = to_int(m.get("Cause"));
    if (is_a) {
      call->a_hangup_cause = std::max(call->a_hangup_cause, cause);
    } else {
      call->b_hangup_cause = std::max(call->b_hangup_cause, cause);
    }
    return check_done(*call);
  }
  if (event == "BridgeLeave") {
    if (call->first_to_leave == 0) call->first_to_leave = is_a ? 'A' : 'B';
    return;
  }
  if (event == "Newstate") {
    const int state = to_int(m.get("ChannelState"));
    if (uniqueid == call->a1 && state == 5 && !call->a_ringing) {
      call->a_ringing = true;
      emit({.call_id = call->id, .leg = LegRole::a, .type = LegEventType::ringing, .at = now,
            .channel = call->a_channel, .uniqueid = call->a1, .server = server.name});
    } else if (uniqueid == call->a1 && state == 6 && !call->a_answered) {
      call->a_answered = true;
      emit({.call_id = call->id, .leg = LegRole::a, .type = LegEventType::answered, .at = now,
            .channel = call->a_channel, .uniqueid = call->a1, .server = server.name});
    }
    return;
  }
  if (is_a) return;  // the rest concerns B
  auto b_event = [&](LegEventType type) {
    emit({.call_id = call->id, .leg = LegRole::b, .type = type, .at = now, .channel = call->b_channel,
          .uniqueid = call->b_uniqueid, .server = server.name});
  };
  auto b_dialing = [&] {
    if (!call->b_dialing) {
      call->b_dialing = true;
      b_event(LegEventType::dialing);
    }
  };
  if (event == "DialBegin") {
    b_dialing();
  } else if (event == "DialState") {
    b_dialing();
    if (m.get("DialStatus") == "RINGING" && !call->b_ringing) {
      call->b_ringing = true;
      b_event(LegEventType::ringing);
    }
  } else if (event == "DialEnd" || event == "BridgeEnter") {
    if (event == "DialEnd" && m.get("DialStatus") != "ANSWER") return;
    b_dialing();
    if (!call->b_answered) {
      call->b_answered = true;
      b_event(LegEventType::connected);
    }
  }
}

void AmiEngine::check_done(Call& call) {
  if (call.done) return;
  if (!call.originate_done || !call.live.empty()) return;
  // OriginateResponse can come before A's Newchannel (fixtures: a-unreachable): a
  // failed call is done once A's channels have come and gone, or, when none come
  // (refused outright), after a short wait.
  if (!call.a_seen) {
    if (!call.grace_armed_for_channels) {
      call.grace_armed_for_channels = true;
      const std::string id = call.id;
      call.grace = context_.clock.schedule(options_.cdr_grace, [this, id] {
        if (auto it = calls_.find(id); it != calls_.end()) finish_call(*it->second, false);
      });
    }
    return;
  }
  if (call.originate_ok && !call.user_event) return;  // the dialplan's result is still to come
  // B's talk time comes in B's own Cdr, which may trail the Hangup events a little.
  const bool need_b_cdr = call.b_answered && !call.b_billsec;
  if (need_b_cdr && !call.grace_armed_for_cdr) {
    call.grace_armed_for_cdr = true;
    const std::string id = call.id;
    call.grace.cancel();
    call.grace = context_.clock.schedule(options_.cdr_grace, [this, id] {
      if (auto it = calls_.find(id); it != calls_.end()) finish_call(*it->second, false);
    });
    return;
  }
  if (need_b_cdr) return;
  finish_call(call, false);
}

void AmiEngine::finish_call(Call& call, bool engine_lost) {
  if (call.done) return;
  call.done = true;
  call.grace.cancel();
  const Timestamp now = context_.clock.now();
  const std::string server_name = call.server != nullptr ? call.server->name : std::string();
  const bool we_hung_up = call.hangup_requested;
  if (call.b_dialing || call.b_answered || !call.b_channels.empty() || (call.user_event && call.originate_ok)) {
    LegEvent b{.call_id = call.id, .leg = LegRole::b, .type = LegEventType::ended, .at = now,
               .channel = call.b_channel, .uniqueid = call.b_uniqueid, .server = server_name};
    if (!call.b_dialing && !call.b_answered) emit({.call_id = call.id, .leg = LegRole::b,
                                                   .type = LegEventType::dialing, .at = now,
                                                   .channel = call.b_channel, .uniqueid = call.b_uniqueid,
                                                   .server = server_name});
    if (engine_lost) {
      b.cause = HangupCause::engine_lost();
    } else if (we_hung_up) {
      b.cause = call.requested_cause;
    } else {
      b.cause = cause_for_dial_status(call.dial_status, call.user_hangup_cause != 0 ? call.user_hangup_cause
                                                                                    : (call.b_answered ? 16 : call.b_hangup_cause));
    }
    b.dial_status = call.dial_status;
    b.billsec = call.b_answered ? call.b_billsec : std::optional<std::chrono::seconds>{std::chrono::seconds{0}};
    // L() ends the call with the dialplan going on (no `h`), and A leaves the bridge
    // first; when B hangs up, B leaves first (fixtures: answered-limit, b-hangs-up).
    // Our shipped dialplan says so itself (LimitReached: 1).
    b.limit_reached = !engine_lost && !we_hung_up && call.dial_status == "ANSWER" && !call.where_h &&
                      (call.limit_header >= 0 ? call.limit_header == 1 : call.first_to_leave != 'B');
    b.far_end_hung_up = !engine_lost && !we_hung_up && call.dial_status == "ANSWER" && call.first_to_leave == 'B';
    emit(b);
  }
  LegEvent a{.call_id = call.id, .leg = LegRole::a, .type = LegEventType::ended, .at = now,
             .channel = call.a_channel, .uniqueid = call.a1, .server = server_name};
  if (engine_lost) {
    a.cause = HangupCause::engine_lost();
  } else if (we_hung_up) {
    a.cause = call.requested_cause;
  } else if (!call.originate_ok) {
    a.cause = cause_for_reason(call.reason, call.a_hangup_cause);
  } else {
    a.cause = HangupCause{call.a_hangup_cause != 0 ? call.a_hangup_cause : 16};
  }
  a.billsec = call.a_billsec;
  a.far_end_hung_up = !engine_lost && !we_hung_up && call.where_h;
  if (!call.queued && !call.originate_done) {
    emit({.call_id = call.id, .leg = LegRole::a, .type = LegEventType::dialing, .at = now, .server = server_name});
  }
  if (call.server != nullptr && call.server->in_flight > 0) --call.server->in_flight;
  for (const auto& b_id : call.b_channels) channel_calls_.erase(b_id);
  auto node = calls_.extract(call.id);  // keeps `call` alive until the end of this scope
  emit(a);
}

}  // namespace callback::engine_ami
