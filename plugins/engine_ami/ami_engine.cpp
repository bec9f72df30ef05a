#include "ami_engine.hpp"

#include <callback/callback_request.hpp>

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

int to_int(std::string_view text, int fallback = 0) {
  int value = fallback;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} ? value : fallback;
}


}  // namespace

Status validate(const AmiOptions& options) {
  if (auto ok = validate_servers(options.servers); !ok) return ok;
  if (auto ok = validate_dial_string(options.dial_string); !ok) return ok;
  for (const auto* value : {&options.username, &options.secret, &options.context, &options.ivr_context, &options.dial_string,
                            &options.events}) {
    if (!ami::Action::is_safe_value(*value)) return Error{"config.value", "must not contain line breaks", {}};
  }
  for (std::size_t i = 0; i < options.languages.size(); ++i) {
    if (auto ok = check_language(options.languages[i], "languages[" + std::to_string(i) + "]"); !ok) {
      return Error{"config.value", ok.error().message, ok.error().field};
    }
  }
  return ok_status();
}


// --- one Asterisk server connection ---------------------------------------------------

struct AmiEngine::Server {
  enum class State { idle, connecting, login, ready, backoff };

  Server(AmiEngine& owner, std::string address)
      : engine(owner), name(std::move(address)), socket(owner.context_.io) {}

  AmiEngine& engine;
  std::string name;
  tcp::socket socket;
  TimerHandle timer;       // connect timeout, backoff (on the Context's Clock, like every timer)
  TimerHandle ping_timer;  // keep-alive
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
  std::string challenge_id, login_id, ping_id, dialplan_id, channels_id, booted_id;
  // Asterisk opens AMI while it still loads modules; an Originate then fails. Its
  // "core waitfullybooted" answers once it is up (AMI answers a session's actions in order).
  bool booted = false;
  bool ping_outstanding = false;
  std::uint64_t received = 0;          // bytes read on this connection
  std::uint64_t received_at_ping = 0;  // `received` when the outstanding Ping went out
  std::vector<ListedChannel> listed;  // CoreShowChannels after a (re)connect
  std::optional<ServerChecks> checks;  // what this login found (server_checks.hpp)
  bool attempted = false;              // a connect attempt has ended (logged in or not)

  [[nodiscard]] bool healthy() const { return state == State::ready && booted && dialplan_ok; }
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
    timer.cancel();
    timer = engine.context_.clock.schedule(engine.options_.connect_timeout,
                                           [this, gen, alive = std::weak_ptr<bool>(engine.alive_)] {
      if (alive.expired()) return;  // the engine was destroyed with this handler pending
      if (gen == generation && state == State::connecting) lost("connect timed out");
    });
    socket.async_connect(endpoint, [this, gen, alive = std::weak_ptr<bool>(engine.alive_)](
                                       const boost::system::error_code& e) {
      if (alive.expired()) return;  // the engine was destroyed with this handler pending
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
    socket.async_read_some(asio::buffer(read_buffer), [this, gen, alive = std::weak_ptr<bool>(engine.alive_)](
                                                          const boost::system::error_code& e, std::size_t n) {
      if (alive.expired()) return;  // the engine was destroyed with this handler pending
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
    asio::async_write(socket, asio::buffer(write_queue.front()),
                      [this, gen, alive = std::weak_ptr<bool>(engine.alive_)](const boost::system::error_code& e,
                                                                              std::size_t) {
      if (alive.expired()) return;  // the engine was destroyed with this handler pending
      if (gen != generation) return;
      if (e) return lost("write failed: " + e.message());
      write_queue.pop_front();
      write_next();
    });
  }

  void schedule_ping() {
    const auto gen = generation;
    ping_timer.cancel();
    ping_timer = engine.context_.clock.schedule(engine.options_.ping_interval,
                                                [this, gen, alive = std::weak_ptr<bool>(engine.alive_)] {
      if (alive.expired()) return;  // the engine was destroyed with this handler pending
      if (gen != generation || state != State::ready) return;
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
    attempted = true;
    booted = false;
    checks.reset();
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
    engine.tracker_.connection_lost(name);
    engine.inbound_.connection_lost(name);
    const auto gen = generation;
    timer.cancel();
    timer = engine.context_.clock.schedule(backoff, [this, gen, alive = std::weak_ptr<bool>(engine.alive_)] {
      if (alive.expired()) return;  // the engine was destroyed with this handler pending
      if (gen == generation) connect();
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

AmiEngine::AmiEngine(Context& context, AmiOptions options)
    : context_(context),
      options_(std::move(options)),
      tracker_(context.clock, context.log, *this, options_.tracking),
      inbound_(context, *this) {
  for (const auto& address : options_.servers) servers_.push_back(std::make_unique<Server>(*this, address));
  inbound_.is_ivr_leg = [this](const std::string& uniqueid) {
    const auto leg = leg_of(Channel{{}, uniqueid});
    return leg && leg->second == LegRole::a && ivr_.count(leg->first) != 0;
  };
  // A leg placed with our ChannelId (the callback's id and -A) that is none of ours: when
  // several nodes share the journal, another node's callback waiting in its IVR.
  inbound_.is_other_nodes_leg = [this](const std::string& uniqueid) {
    return options_.journal != nullptr && options_.journal->shared() && leg_of(Channel{{}, uniqueid}).has_value();
  };
  if (options_.journal != nullptr) {
    inbound_.claim = [this](const std::string& server, const std::string& uniqueid,
                            std::function<void(Result<bool>)> done) {
      if (!options_.journal->shared()) {
        // The journal is this service's alone (claimed by now): every inbound call is ours,
        // without a trip through the claims' thread.
        asio::post(context_.io, [done = std::move(done), alive = std::weak_ptr<bool>(alive_)]() mutable {
          if (!alive.expired()) done(true);
        });
        return;
      }
      if (!claims_) claims_ = std::make_unique<asio::thread_pool>(1);  // on the first claim of a shared journal
      asio::post(*claims_, [this, server, uniqueid, done = std::move(done), alive = std::weak_ptr<bool>(alive_)]() mutable {
        auto mine = options_.journal->claim_inbound(server, uniqueid);
        asio::post(context_.io, [done = std::move(done), mine = std::move(mine), alive]() mutable {
          if (!alive.expired()) done(std::move(mine));
        });
      });
    };
  }
  inbound_.held = [this](const std::string& uniqueid, const Channel& line) {
    const auto leg = leg_of(Channel{{}, uniqueid});
    if (!leg) return;
    auto it = ivr_.find(leg->first);
    if (it == ivr_.end()) return;
    it->second.line = line;
    for (auto& use : std::exchange(it->second.waiting, {})) use(line);
  };
}

AmiEngine::~AmiEngine() {
  stopping_ = true;
  for (auto& server : servers_) server->close();
  if (claims_) {
    claims_->stop();  // claims not begun are dropped; one under way ends first
    claims_->join();
  }
}

void AmiEngine::start() {
  stopping_ = false;
  for (auto& server : servers_) {
    if (server->state == Server::State::idle) server->connect();
  }
}

void AmiEngine::stop() {
  // Calls still up are hung up, then each server is logged off; every call ends as
  // engine lost (nobody would follow or bill it any more).
  tracker_.stop_all();
  inbound_.stop_all();
  for (auto& server : servers_) {
    if (server->state == Server::State::ready) server->send(ami::Action("Logoff").add("ActionID", "logoff").str());
  }
  stopping_ = true;
  // Let the Logoff go out before closing.
  asio::post(context_.io, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    for (auto& server : servers_) server->close();
  });
}

EngineStatus AmiEngine::status() const {
  EngineStatus status;
  for (const auto& server : servers_) {
    EngineStatus::Server out{.name = server->name, .connected = server->healthy(), .detail = server->detail};
    if (server->state == Server::State::ready) {
      out.checks.push_back({.name = "login", .ok = true, .detail = "logged in as " + options_.username});
      if (server->checks) {
        for (auto& check : server->checks->results()) out.checks.push_back(std::move(check));
        out.checked = server->checks->done();
      }
    } else if (server->attempted) {
      out.checks.push_back({.name = "login", .ok = false, .detail = server->detail});
      out.checked = true;
    }
    status.servers.push_back(std::move(out));
  }
  status.calls_in_flight = tracker_.size();
  return status;
}

AmiEngine::Server* AmiEngine::pick_server() {
  // The healthy server with the fewest calls; ties go round-robin.
  Server* best = nullptr;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    Server* s = servers_[(next_server_ + i) % servers_.size()].get();
    if (s->healthy() && (best == nullptr || tracker_.in_flight(s->name) < tracker_.in_flight(best->name))) best = s;
  }
  ++next_server_;
  return best;
}

void AmiEngine::emit(const LegEvent& event) {
  if (event.type == LegEventType::ended && event.leg == LegRole::a && !ivr_.empty()) ivr_over(event.call_id);
  if (!event.handle.empty() || event.call_id.empty()) return subscribers_.each(event);
  LegEvent named = event;
  named.handle = leg_channel(event.server, event.call_id, event.leg);
  subscribers_.each(named);
}

Channel AmiEngine::leg_channel(const std::string& server, const std::string& call_id, LegRole leg) {
  // A's ;1 half has the ChannelId we gave it; B's channels are named by its dialplan, so
  // B's handle names the call and the leg, which is how the tracker knows both.
  return Channel{server, call_id + std::string(leg == LegRole::a ? a_suffix : b_suffix)};
}

std::optional<std::pair<std::string, LegRole>> AmiEngine::leg_of(const Channel& channel) {
  for (auto [suffix, leg] : {std::pair{a_suffix, LegRole::a}, std::pair{b_suffix, LegRole::b}}) {
    if (channel.id.size() > suffix.size() && channel.id.ends_with(suffix)) {
      return std::pair{channel.id.substr(0, channel.id.size() - suffix.size()), leg};
    }
  }
  return std::nullopt;
}

void AmiEngine::answer_later(StatusCompletion done, Status result) {
  asio::post(context_.io, [done = std::move(done), result = std::move(result), alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired() && done) done(result);
  });
}

void AmiEngine::unsupported(StatusCompletion done, std::string_view what) {
  answer_later(std::move(done), engine_error(engine_errc::unsupported,
                                             std::string("callback.engine.ami runs calls in the dialplan; ") +
                                                 std::string(what) + " is not offered (capabilities())"));
}

void AmiEngine::on_leg_event(const LegEvent& event) { emit(event); }

bool AmiEngine::send(const std::string& server, std::string bytes) {
  for (auto& s : servers_) {
    if (s->name != server) continue;
    if (s->state != Server::State::ready) return false;
    s->send(std::move(bytes));
    return true;
  }
  return false;
}

void AmiEngine::originate(const OriginateRequest& request, Completion<Channel> placed) {
  const Timestamp now = context_.clock.now();
  Server* server = stopping_ ? nullptr : pick_server();
  const auto answer = [this](Completion<Channel> done, Result<Channel> result) {
    asio::post(context_.io, [done = std::move(done), result = std::move(result), alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired() && done) done(result);
    });
  };
  const bool ivr = request.leg == LegRole::a && !request.connect && request.ivr && capabilities().dialplan_ivr;
  if (request.leg != LegRole::a || (!request.connect && !ivr)) {
    // Without the plan (B from the dialplan, the limit) this engine cannot run the call.
    answer(std::move(placed), engine_error(engine_errc::unsupported,
                                           "callback.engine.ami places callbacks with their whole plan "
                                           "(OriginateRequest::connect, leg A); the step flow is not offered"));
    asio::post(context_.io, [this, request, now, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired()) return;
      emit({.call_id = request.call_id, .leg = request.leg, .type = LegEventType::ended, .at = now,
            .cause = HangupCause::engine_lost()});
    });
    return;
  }
  if (server == nullptr) {
    // No Asterisk to place it on: the call fails (after this returns), and says why.
    answer(std::move(placed), engine_error(engine_errc::unavailable, "no Asterisk server is reachable"));
    asio::post(context_.io, [this, id = request.call_id, now, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired()) return;
      emit({.call_id = id, .leg = LegRole::a, .type = LegEventType::dialing, .at = now});
      emit({.call_id = id, .leg = LegRole::a, .type = LegEventType::ended, .at = now,
            .cause = HangupCause::engine_lost()});
    });
    return;
  }
  ami::Action action("Originate");
  action.add("ActionID", request.call_id)
      .add("Channel", expand_dial_string(options_.dial_string, request.number.digits()))
      .add("Context", ivr ? options_.ivr_context : options_.context)
      .add("Exten", request.connect ? request.connect->number.digits() : std::string("s"))
      .add("Priority", "1")
      .add("Timeout", std::to_string(std::chrono::milliseconds(request.ring_timeout).count()))
      .add("CallerID", "\"" + request.caller_name + "\" <" + request.caller_id.digits() + ">")
      .add("ChannelId", request.call_id + std::string(a_suffix))
      .add("OtherChannelId", request.call_id + "-A2")
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
  // The announcements' language (prompts in sounds/<lang>/): set on A's channels, where
  // the callback dialplan runs. Checked by make_request (letters, digits, _ and -).
  if (!request.language.empty()) action.add("Variable", "CHANNEL(language)=" + request.language);
  action.add("Async", "true");
  if (ivr) ivr_[request.call_id] = {};
  tracker_.add(request.call_id, server->name,
               request.connect ? std::optional(std::chrono::milliseconds(request.connect->limit)) : std::nullopt);
  server->send(action.str());
  answer(std::move(placed), leg_channel(server->name, request.call_id, LegRole::a));
}

void AmiEngine::hangup(const Channel& channel, HangupCause cause, StatusCompletion done) {
  if (inbound_.owns(channel)) return inbound_.hangup(channel, cause, std::move(done));
  const auto leg = leg_of(channel);
  if (!leg) {
    return answer_later(std::move(done), engine_error(engine_errc::channel_gone, "no channel " + channel.id + " here"));
  }
  if (!tracker_.hangup(leg->first, leg->second, cause)) {
    return answer_later(std::move(done),
                        engine_error(engine_errc::channel_gone, "callback " + leg->first + " has ended"));
  }
  answer_later(std::move(done), ok_status());
}

namespace {
bool has_class(std::string_view events, std::string_view name) {
  for (std::size_t start = 0; start <= events.size();) {
    const auto comma = std::min(events.find(',', start), events.size());
    auto word = events.substr(start, comma - start);
    while (!word.empty() && word.front() == ' ') word.remove_prefix(1);
    while (!word.empty() && word.back() == ' ') word.remove_suffix(1);
    if (word == name || word == "all") return true;
    start = comma + 1;
  }
  return false;
}
}  // namespace

Engine::Capabilities AmiEngine::capabilities() const {
  const bool agi = has_class(options_.events, "agi");
  const bool dtmf = agi && has_class(options_.events, "dtmf");
  return {.dialplan_flow = true, .inbound_calls = agi, .collect_digits = dtmf, .dialplan_ivr = dtmf};
}

Subscription AmiEngine::route_inbound(InboundRoute route, std::function<void(const InboundCall&)> on_call) {
  if (!capabilities().inbound_calls) return {};
  return inbound_.route(std::move(route), std::move(on_call));
}

void AmiEngine::answer(const Channel& channel, StatusCompletion done) { inbound_.answer(channel, std::move(done)); }
void AmiEngine::reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first,
                       StatusCompletion done) {
  inbound_.reject(channel, cause, ring_first, std::move(done));
}
void AmiEngine::play(const Channel& channel, const Prompt& prompt, StatusCompletion done) {
  with_ivr_line(channel, [this, prompt, done = std::move(done)](Result<Channel> line) mutable {
    if (!line) return done ? done(line.error()) : void();
    inbound_.play(*line, prompt, std::move(done));
  });
}

void AmiEngine::connect_b(const Channel& a, const Connect& connect, StatusCompletion done) {
  const auto leg = leg_of(a);
  if (!leg || leg->second != LegRole::a || ivr_.count(leg->first) == 0) {
    return answer_later(std::move(done), engine_error(engine_errc::not_found, a.id + " is no A waiting in the IVR"));
  }
  with_ivr_line(a, [this, id = leg->first, connect, done = std::move(done)](Result<Channel> line) mutable {
    if (!line) return done ? done(line.error()) : void();
    tracker_.set_limit(id, std::chrono::milliseconds(connect.limit));
    const auto ms = [](auto d) { return std::to_string(std::chrono::milliseconds(d).count()); };
    inbound_.release(*line,
                     {{"CB_LIMIT", ms(connect.limit)},
                      {"CB_WARN", ms(connect.warning_before)},
                      {"CB_WARN_REPEAT", ms(connect.warning_repeat)},
                      {"CB_DIAL_TIMEOUT", std::to_string(connect.ring_timeout.count())},
                      {"CB_B_CALLERID", connect.caller_id.digits()},
                      {"CB_DIAL", expand_dial_string(options_.dial_string, connect.number.digits())},
                      {"CB_B", connect.number.digits()}},
                     std::move(done));
  });
}

void AmiEngine::with_ivr_line(const Channel& channel, std::function<void(Result<Channel>)> use) {
  if (inbound_.owns(channel)) return use(channel);
  const auto leg = leg_of(channel);
  auto it = leg && leg->second == LegRole::a ? ivr_.find(leg->first) : ivr_.end();
  if (it == ivr_.end()) {
    asio::post(context_.io, [use = std::move(use), id = channel.id, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) use(engine_error(engine_errc::channel_gone, "no channel " + id + " here"));
    });
    return;
  }
  if (it->second.line) return use(*it->second.line);
  it->second.waiting.push_back(std::move(use));  // A answered; its AsyncAGIStart is on its way
}

void AmiEngine::ivr_over(const std::string& call_id) {
  auto it = ivr_.find(call_id);
  if (it == ivr_.end()) return;
  auto waiting = std::move(it->second.waiting);
  ivr_.erase(it);
  for (auto& use : waiting) use(engine_error(engine_errc::channel_gone, "A hung up"));
}
void AmiEngine::bridge(const Channel&, const Channel&, StatusCompletion done) {
  unsupported(std::move(done), "bridge");
}
void AmiEngine::set_time_limit(const Channel&, const Channel&, const TimeLimit&, StatusCompletion done) {
  unsupported(std::move(done), "set_time_limit (the limit goes in the Originate: CB_LIMIT)");
}
void AmiEngine::collect_digits(const Channel& channel, const DigitRequest& request, Completion<Digits> done) {
  if (!capabilities().collect_digits) {
    asio::post(context_.io, [done = std::move(done), alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired() || !done) return;
      done(engine_error(engine_errc::unsupported, "callback.engine.ami collects digits with the dtmf event class "
                                                  "(add agi,dtmf to `events`)"));
    });
    return;
  }
  with_ivr_line(channel, [this, request, done = std::move(done)](Result<Channel> line) mutable {
    if (!line) return done ? done(line.error()) : void();
    inbound_.collect_digits(*line, request, std::move(done));
  });
}

void AmiEngine::on_logged_in(Server& server) {
  server.state = Server::State::ready;
  server.backoff = 0ms;
  server.detail = "connected";
  context_.log.info(component, server.name + ": logged in");
  server.booted = false;
  server.booted_id = server.next_id("booted");
  server.send(ami::Action("Command").add("ActionID", server.booted_id).add("Command", "core waitfullybooted").str());
  if (options_.check_dialplan) {
    server.dialplan_ok = false;  // until `dialplan show` says it is there
    server.detail = "checking the dialplan";
    server.check_dialplan();
  }
  // What this Asterisk offers: permissions, CDRs, the dialplan's version, the prompts.
  server.attempted = true;
  server.checks.emplace(CheckOptions{.username = options_.username, .events = options_.events,
                                     .context = options_.context, .languages = options_.languages});
  for (const auto& [id, command] : server.checks->commands()) {
    server.send(ami::Action("Command").add("ActionID", id).add("Command", command).str());
  }
  // Calls that were in flight when the connection dropped (or before a restart): ask
  // what is still up.
  if (tracker_.has_orphans(server.name)) list_channels(server);
  server.schedule_ping();
}

void AmiEngine::list_channels(Server& server) {
  server.listed.clear();
  server.channels_id = server.next_id("channels");
  server.send(ami::Action("CoreShowChannels").add("ActionID", server.channels_id).str());
}

void AmiEngine::forget(const std::string& call_id) { tracker_.forget(call_id); }

void AmiEngine::recover(const std::vector<Recovered>& calls) {
  std::vector<std::string> names;
  for (const auto& server : servers_) names.push_back(server->name);
  for (const auto& call : calls) tracker_.adopt(call, names);
  // Servers already logged in list their channels now; the others once they are.
  for (auto& server : servers_) {
    if (server->state == Server::State::ready && tracker_.has_orphans(server->name)) list_channels(*server);
  }
}

void AmiEngine::on_message(Server& server, const ami::MessageView& m) {
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
    if (action_id == server.booted_id && !action_id.empty()) {
      server.booted = true;  // whatever it says: without the command class we cannot wait
      return;
    }
    if (inbound_.on_message(server.name, m)) return;  // a reply to an AGI or inbound Hangup action
    if (server.checks && server.checks->on_reply(m)) {
      if (server.checks->done()) {
        for (const auto& check : server.checks->results()) {
          if (!check.ok) context_.log.warning(component, server.name + ": " + check.name + ": " + check.detail);
        }
      }
      return;
    }
    return tracker_.on_message(server.name, m);  // an Originate's acknowledgement
  }
  if (!m.is_event()) return;
  const auto event = m.event();

  const bool listing = !server.channels_id.empty() && server.channels_id == m.action_id();
  if (event == "CoreShowChannel" && listing) {
    server.listed.push_back(listed_channel(m));
    return;
  }
  if (event == "CoreShowChannelsComplete" && listing) {
    // Calls still up on Asterisk go on being tracked; the rest are gone.
    const auto listed = std::move(server.listed);
    server.listed.clear();
    server.channels_id.clear();  // a late duplicate of the list is not a second answer
    return tracker_.reconcile(server.name, listed);
  }
  if (inbound_.on_message(server.name, m)) return;
  tracker_.on_message(server.name, m);
}

}  // namespace callback::engine_ami
