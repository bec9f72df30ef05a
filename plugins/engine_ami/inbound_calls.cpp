#include "inbound_calls.hpp"

#include <callback/callback_request.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>

namespace callback::engine_ami {
namespace {

constexpr std::string_view component = "callback.engine.ami";
constexpr std::string_view escape_digits = "\"0123456789*#\"";
constexpr std::size_t max_typeahead = 64;

int to_int(std::string_view text, int fallback = 0) {
  int value = fallback;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} ? value : fallback;
}

// The cause a Hangup action carries (Q.850, 1..127).
std::string cause_text(HangupCause cause) {
  return std::to_string(cause.code() > 0 && cause.code() <= 127 ? cause.code() : 16);
}

bool safe_prompt_name(std::string_view name) {
  return !name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/") ==
                              std::string_view::npos;
}

// A printable copy of untrusted text for the log.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 80)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

// "agi_extension: 5000" lines of a decoded Env -> the value of `key`.
std::string env_value(std::string_view env, std::string_view key) {
  for (std::size_t start = 0; start < env.size();) {
    const auto end = std::min(env.find('\n', start), env.size());
    const auto line = env.substr(start, end - start);
    if (line.size() > key.size() + 1 && line.starts_with(key) && line[key.size()] == ':') {
      auto value = line.substr(key.size() + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      return std::string(value);
    }
    start = end + 1;
  }
  return {};
}

std::string known(std::string value) {
  return value == "unknown" || value == "<unknown>" ? std::string() : value;
}

}  // namespace

std::optional<AgiReply> parse_agi_reply(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  const auto space = line.find(' ');
  const auto code_text = line.substr(0, space);
  if (code_text.size() != 3 || !std::all_of(code_text.begin(), code_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  AgiReply reply{.code = to_int(code_text), .result = {}, .rest = {}};
  if (space == std::string_view::npos) return reply.code == 200 ? std::nullopt : std::optional(reply);
  auto tail = line.substr(space + 1);
  if (!tail.starts_with("result=")) {
    if (reply.code == 200) return std::nullopt;  // success always says result=
    reply.rest = std::string(tail);
    return reply;
  }
  tail.remove_prefix(7);
  const auto end = tail.find(' ');
  reply.result = std::string(tail.substr(0, end));
  if (end != std::string_view::npos) reply.rest = std::string(tail.substr(end + 1));
  return reply;
}

std::string url_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() + 0 && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else if (text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// --- one inbound channel -------------------------------------------------------------------

struct InboundCalls::Collection {
  DigitRequest request;
  Completion<Digits> done;
  std::string digits;
  TimerHandle timer;
  bool prompting = false;  // the prompt's commands run; a digit stops what is left of them
};

struct InboundCalls::Line {
  std::string key;
  std::string server;
  std::string name;  // the channel's name: its handle, and what AGI and Hangup actions name
  std::string uniqueid;
  std::string language;  // the channel's, as Asterisk said (Language:) or we set it
  bool answered = false;
  bool agi_over = false;  // AsyncAGIEnd: no command runs any more
  bool held = false;      // an outbound A in the IVR (is_ivr_leg), not an inbound call
  // It ended while its claim was asked (cause; unobserved: the connection went).
  std::optional<std::pair<HangupCause, bool>> gone_while_claimed;
  std::optional<HangupCause> hung_up_by_us;
  std::string typeahead;  // DTMF that came while no collection ran
  struct Command {
    std::string text;
    AgiDone done;
    std::function<bool()> skip;  // true: not sent any more (its sequence stopped)
  };
  std::deque<Command> queue;
  std::string running_id;  // the CommandID waiting for its AsyncAGIExec
  AgiDone running;
  std::shared_ptr<Collection> collection;
  std::shared_ptr<bool> reject_pending;  // a reject waiting out ring_first
  StatusCompletion reject_done;
  TimerHandle reject_timer;
};

InboundCalls::InboundCalls(Context& context, CallTracker::Sink& sink) : context_(context), sink_(sink) {}

InboundCalls::~InboundCalls() {
  *alive_ = false;
  for (auto& [key, line] : channels_) {
    line->reject_timer.cancel();
    if (line->collection) line->collection->timer.cancel();
  }
}

Subscription InboundCalls::route(InboundRoute route, std::function<void(const InboundCall&)> on_call) {
  return routes_.add(std::make_shared<Route>(Route{std::move(route), std::move(on_call)}));
}

void InboundCalls::later(std::function<void()> f) {
  boost::asio::post(context_.io, [f = std::move(f), alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) f();
  });
}

template <class T>
void InboundCalls::later(std::function<void(T)> done, T value) {
  if (!done) return;
  later([done = std::move(done), value = std::move(value)] { done(value); });
}

std::shared_ptr<InboundCalls::Line> InboundCalls::find(const Channel& channel) const {
  const auto it = channels_.find(channel.server + '\n' + channel.id);
  return it == channels_.end() ? nullptr : it->second;
}

bool InboundCalls::owns(const Channel& channel) const { return find(channel) != nullptr; }

bool InboundCalls::on_message(const std::string& server, const ami::MessageView& m) {
  if (m.is_response()) {
    if (replies_.empty()) return false;
    const auto it = replies_.find(std::string(m.action_id()));
    if (it == replies_.end()) return false;
    auto handler = std::move(it->second.handler);
    replies_.erase(it);
    handler(&m);
    return true;
  }
  if (!m.is_event()) return false;
  const auto event = m.event();
  if (event == "AsyncAGIStart") {
    started(server, m);
    return true;
  }
  if (!claiming_.empty()) {
    // A call waiting for its claim: what happens to it meanwhile is kept for its node.
    const auto pending = claiming_.find(server + '\n' + std::string(m.get("Channel")));
    if (pending != claiming_.end()) {
      Line& line = *pending->second;
      if (event == "Newstate" && m.get("ChannelState") == "6") line.answered = true;
      if (event == "AsyncAGIEnd") line.agi_over = true;
      if (event == "Hangup" && !line.gone_while_claimed) {
        const int cause = to_int(m.get("Cause"));
        line.gone_while_claimed = {HangupCause{cause > 0 ? cause : 16}, false};
      }
      return true;
    }
  }
  if (channels_.empty()) return false;
  const auto it = channels_.find(server + '\n' + std::string(m.get("Channel")));
  if (it == channels_.end()) return false;
  auto line = it->second;  // kept while its handlers run
  if (line->held && event != "AsyncAGIExec" && event != "AsyncAGIEnd" && event != "DTMFEnd") {
    // The call tracker's: A's states, its Dial, its end (which ends the line quietly).
    if (event == "Hangup") finish(line->key, HangupCause{16}, false);
    return false;
  }
  if (event == "AsyncAGIExec") {
    on_exec(*line, m);
  } else if (event == "DTMFEnd") {
    const auto digit = m.get("Digit");
    if (digit.size() == 1 && m.get("Direction") != "Sent") feed_digit(*line, digit[0]);
  } else if (event == "AsyncAGIEnd") {
    line->agi_over = true;
    auto running = std::exchange(line->running, nullptr);
    line->running_id.clear();
    auto queue = std::exchange(line->queue, {});
    if (running) running(engine_error(engine_errc::channel_gone, "the channel left AGI (hung up)"));
    for (auto& command : queue) {
      if (command.done) command.done(engine_error(engine_errc::channel_gone, "the channel left AGI (hung up)"));
    }
    // A held A is let go: what it does next is the dialplan's, and the tracker's to follow.
    if (line->held) finish(line->key, HangupCause{16}, false);
  } else if (event == "Newstate") {
    if (m.get("ChannelState") == "6") line->answered = true;
  } else if (event == "Hangup") {
    ended(*line, m);
  }
  return true;
}

void InboundCalls::started(const std::string& server, const ami::MessageView& m) {
  const std::string name(m.get("Channel"));
  const std::string key = server + '\n' + name;
  if (name.empty() || !ami::Action::is_safe_value(name) || channels_.count(key) != 0 || claiming_.count(key) != 0) {
    return;  // a duplicate
  }
  const std::string env = url_decode(m.get("Env"));
  auto line = std::make_shared<Line>();
  line->key = key;
  line->server = server;
  line->name = name;
  line->uniqueid = std::string(m.get("Uniqueid"));
  line->language = std::string(m.get("Language"));
  line->answered = m.get("ChannelState") == "6";
  if (is_ivr_leg && is_ivr_leg(line->uniqueid)) {
    channels_[key] = line;
    line->held = true;
    context_.log.debug(component, server + ": " + printable(name) + " waits in the IVR");
    if (held) held(line->uniqueid, Channel{server, name});
    return;
  }
  if (is_other_nodes_leg && is_other_nodes_leg(line->uniqueid)) {
    context_.log.debug(component, server + ": " + printable(name) + " waits in another node's IVR");
    return;
  }
  InboundCall call{.channel = {server, name}, .name = name, .caller = {}, .dialed = {}, .context = {},
                   .at = context_.clock.now()};
  // agi_dnid is "unknown" on Local channels: the extension is the number dialled.
  call.dialed = known(env_value(env, "agi_extension"));
  if (call.dialed.empty()) call.dialed = known(std::string(m.get("Exten")));
  call.caller = env.empty() ? known(std::string(m.get("CallerIDNum"))) : known(env_value(env, "agi_callerid"));
  call.context = known(env_value(env, "agi_context"));
  if (call.context.empty()) call.context = std::string(m.get("Context"));
  if (!claim) return take(line, std::move(call));
  claiming_[key] = line;
  claim(server, line->uniqueid, [this, alive = std::weak_ptr<bool>(alive_), line, call](Result<bool> mine) mutable {
    if (alive.expired() || claiming_.erase(line->key) == 0) return;  // gone, or the engine stopped meanwhile
    const std::string what = line->server + ": inbound call " + printable(line->name);
    if (!mine) {
      context_.log.error(component, what + " left to the other nodes: cannot ask who takes it: " +
                                        escape_control(mine.error().message));
      context_.metrics.counter("callback_inbound_unclaimed_total", "inbound calls left alone: the database could not "
                                                                   "say which node takes them").add();
      return;
    }
    if (!*mine) {
      context_.log.debug(component, what + " is another node's");
      return;
    }
    take(line, std::move(call));
  });
}

void InboundCalls::take(const std::shared_ptr<Line>& line, InboundCall call) {
  const std::string& server = line->server;
  const std::string& name = line->name;
  channels_[line->key] = line;
  // The most specific route: one naming this number, else one taking any.
  std::shared_ptr<Route> best;
  routes_.visit([&](const std::shared_ptr<Route>& r) {
    if (!r->route.context.empty() && r->route.context != call.context) return;
    const bool named = std::find(r->route.dialed.begin(), r->route.dialed.end(), call.dialed) != r->route.dialed.end();
    if (named && (best == nullptr || best->route.dialed.empty())) best = r;
    if (r->route.dialed.empty() && best == nullptr) best = r;
  });
  if (best == nullptr) {
    context_.log.warning(component, server + ": inbound call to " + printable(call.dialed) + " (" +
                                        printable(call.context) + ") has no route; rejected (congestion)");
    line->hung_up_by_us = HangupCause{34};
    send_hangup(*line, HangupCause{34}, nullptr);
  } else {
    context_.log.info(component, server + ": inbound call " + printable(name) + " from " + printable(call.caller) +
                                     " to " + printable(call.dialed));
    best->on_call(call);
  }
  // Gone while its claim was asked: the trigger still heard of it (a missed call is one
  // that hung up); now it ends as its Hangup, or the lost connection, said.
  if (line->gone_while_claimed) finish(line->key, line->gone_while_claimed->first, line->gone_while_claimed->second);
}

void InboundCalls::ended(Line& line, const ami::MessageView& m) {
  int cause = to_int(m.get("Cause"));
  if (cause <= 0 && line.hung_up_by_us) cause = line.hung_up_by_us->code();
  finish(line.key, HangupCause{cause > 0 ? cause : 16}, false);
}

void InboundCalls::finish(const std::string& key, HangupCause cause, bool unobserved) {
  const auto it = channels_.find(key);
  if (it == channels_.end()) return;
  auto line = it->second;
  channels_.erase(it);
  line->reject_timer.cancel();
  // Operations still waiting on it learn that it went.
  const auto gone = engine_error(unobserved ? engine_errc::unavailable : engine_errc::channel_gone,
                                 unobserved ? "the connection to Asterisk was lost" : "the channel hung up");
  auto running = std::exchange(line->running, nullptr);
  auto queue = std::exchange(line->queue, {});
  if (running) running(gone);
  for (auto& command : queue) {
    if (command.done) command.done(gone);
  }
  if (line->collection) end_collection(*line, gone);
  if (auto done = std::exchange(line->reject_done, nullptr)) done(gone);
  if (line->held) return;  // A's end is the call tracker's to tell
  LegEvent event{.call_id = {}, .type = LegEventType::ended, .at = context_.clock.now(),
                 .handle = {line->server, line->name}, .channel = line->name, .uniqueid = line->uniqueid,
                 .cause = unobserved ? HangupCause::engine_lost() : cause, .server = line->server};
  event.far_end_hung_up = !unobserved && !line->hung_up_by_us;
  event.unobserved = unobserved;
  sink_.on_leg_event(event);
}

void InboundCalls::agi(Line& line, std::string command, AgiDone done, std::function<bool()> skip) {
  if (line.agi_over) {
    later<Result<AgiReply>>(std::move(done), engine_error(engine_errc::channel_gone, "the channel left AGI"));
    return;
  }
  line.queue.push_back({std::move(command), std::move(done), std::move(skip)});
  pump(line);
}

void InboundCalls::pump(Line& line) {
  while (!line.queue.empty() && line.queue.front().skip && line.queue.front().skip()) line.queue.pop_front();
  if (line.running || line.queue.empty()) return;
  auto command = std::move(line.queue.front());
  line.queue.pop_front();
  const std::string id = "agi-" + std::to_string(++sequence_);
  line.running_id = id;
  line.running = std::move(command.done);
  if (!line.running) line.running = [](Result<AgiReply>) {};
  const bool sent = sink_.send(line.server, ami::Action("AGI")
                                                .add("ActionID", id)
                                                .add("Channel", line.name)
                                                .add("Command", command.text)
                                                .add("CommandID", id)
                                                .str());
  if (!sent) {
    auto running = std::exchange(line.running, nullptr);
    line.running_id.clear();
    later<Result<AgiReply>>(std::move(running), engine_error(engine_errc::unavailable, "the server is not connected"));
    return later([this, key = line.key] {
      if (auto it = channels_.find(key); it != channels_.end()) pump(*it->second);
    });
  }
  replies_[id] = {line.server, [this, key = line.key, id](const ami::MessageView* reply) {
    if (reply != nullptr && reply->get("Response") == "Success") return;  // queued: the result comes as AsyncAGIExec
    const auto it = channels_.find(key);
    if (it == channels_.end() || it->second->running_id != id) return;
    auto kept = it->second;
    auto running = std::exchange(kept->running, nullptr);
    kept->running_id.clear();
    const std::string message(reply != nullptr ? reply->get("Message") : "the connection was lost");
    // res_agi.c: "Channel <name> does not exist."
    const bool gone = message.find("does not exist") != std::string::npos;
    running(engine_error(gone ? engine_errc::channel_gone : engine_errc::refused,
                         "Asterisk refused the AGI command: " + printable(message)));
    pump(*kept);
  }};
}

void InboundCalls::on_exec(Line& line, const ami::MessageView& m) {
  if (line.running_id.empty() || m.get("CommandId") != line.running_id) return;  // not ours, or late
  replies_.erase(line.running_id);
  auto running = std::exchange(line.running, nullptr);
  line.running_id.clear();
  const std::string result = url_decode(m.get("Result"));
  auto reply = parse_agi_reply(result);
  if (!reply) {
    context_.log.warning(component, line.server + ": unreadable AGI result \"" + printable(result) + "\" on " +
                                        printable(line.name));
    running(engine_error(engine_errc::refused, "unreadable AGI result \"" + printable(result) + "\""));
  } else if (reply->code != 200) {
    running(engine_error(engine_errc::refused, "AGI said " + printable(result)));
  } else {
    running(std::move(*reply));
  }
  // The handler may have ended the line (it is still held by on_message's caller).
  if (channels_.count(line.key) != 0) pump(line);
}

void InboundCalls::release(const Channel& channel, const std::vector<std::pair<std::string, std::string>>& variables,
                           StatusCompletion done) {
  auto line = find(channel);
  if (!line) return later<Status>(std::move(done), engine_error(engine_errc::channel_gone, "the channel is gone"));
  std::vector<std::string> commands;
  for (const auto& [name, value] : variables) {
    const bool plain = std::all_of(value.begin(), value.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != '"' && c != '\\';
    });
    if (!plain || !ami::Action::is_safe_value(name)) {
      return later<Status>(std::move(done), engine_error(engine_errc::invalid, "cannot set " + printable(name) +
                                                                                   " to " + printable(value)));
    }
    commands.push_back("SET VARIABLE " + name + " \"" + value + "\"");
  }
  commands.push_back("ASYNCAGI BREAK");
  sequence(line, std::move(commands), nullptr, std::move(done));
}

void InboundCalls::sequence(const std::shared_ptr<Line>& line, std::vector<std::string> commands,
                            std::function<bool()> cut, StatusCompletion done) {
  if (commands.empty()) return later<Status>(std::move(done), ok_status());
  // All queued now, so that another operation's commands do not come in between (a
  // language set for one prompt would play another); the rest are skipped once one fails
  // or `cut` says so.
  struct State {
    std::function<bool()> cut;
    StatusCompletion done;
    bool stopped = false;
  };
  auto state = std::make_shared<State>(State{std::move(cut), std::move(done), false});
  const std::size_t last = commands.size() - 1;
  for (std::size_t i = 0; i <= last; ++i) {
    auto step = [state, is_last = i == last](Result<AgiReply> reply) {
      if (state->stopped) return;
      auto finish = [&](Status status) {
        state->stopped = true;
        if (auto d = std::exchange(state->done, nullptr)) d(std::move(status));
      };
      if (!reply) return finish(reply.error());
      // STREAM FILE, SAY NUMBER: -1 is a failure (a missing file, or the channel went).
      if (reply->result == "-1") {
        return finish(engine_error(engine_errc::not_found, "Asterisk could not play the prompt (missing sound?)"));
      }
      if (is_last || (state->cut && state->cut())) finish(ok_status());
    };
    agi(*line, std::move(commands[i]), std::move(step), [state] { return state->stopped; });
  }
}

void InboundCalls::answer(const Channel& channel, StatusCompletion done) {
  auto line = find(channel);
  if (!line) return later<Status>(std::move(done), engine_error(engine_errc::channel_gone, "no inbound channel " + printable(channel.id)));
  std::weak_ptr<Line> weak = line;
  agi(*line, "ANSWER", [weak, done = std::move(done)](Result<AgiReply> reply) {
    Status status = ok_status();
    if (!reply) {
      status = reply.error();
    } else if (reply->result != "0") {
      status = engine_error(engine_errc::refused, "ANSWER failed (result=" + printable(reply->result) + ")");
    } else if (auto answered = weak.lock()) {
      answered->answered = true;
    }
    if (done) done(status);
  });
}

void InboundCalls::send_hangup(Line& line, HangupCause cause, StatusCompletion done) {
  const std::string id = "inhangup-" + std::to_string(++sequence_);
  const bool sent = sink_.send(line.server,
                               ami::Action("Hangup").add("ActionID", id).add("Channel", line.name).add("Cause", cause_text(cause)).str());
  if (!sent) return later<Status>(std::move(done), engine_error(engine_errc::unavailable, "the server is not connected"));
  replies_[id] = {line.server, [done = std::move(done)](const ami::MessageView* reply) {
    if (!done) return;
    if (reply == nullptr) return done(engine_error(engine_errc::unavailable, "the connection was lost"));
    if (reply->get("Response") == "Success") return done(ok_status());
    done(engine_error(engine_errc::channel_gone, "Asterisk: " + printable(reply->get("Message"))));
  }};
}

void InboundCalls::reject(const Channel& channel, HangupCause cause, std::chrono::milliseconds ring_first,
                          StatusCompletion done) {
  auto line = find(channel);
  if (!line) return later<Status>(std::move(done), engine_error(engine_errc::channel_gone, "no inbound channel " + printable(channel.id)));
  if (line->answered) {
    return later<Status>(std::move(done), engine_error(engine_errc::refused, "channel " + printable(channel.id) +
                                                                                 " is answered: hang it up instead"));
  }
  if (line->reject_done || line->hung_up_by_us) {
    return later<Status>(std::move(done), engine_error(engine_errc::refused, "the channel is being hung up already"));
  }
  line->hung_up_by_us = cause;
  // AGI(agi:async) does not answer: the caller hears ringing meanwhile.
  line->reject_done = done ? std::move(done) : [](Status) {};
  auto hang_up = [this, key = line->key, cause] {
    const auto it = channels_.find(key);
    if (it == channels_.end()) return;
    send_hangup(*it->second, cause, std::exchange(it->second->reject_done, nullptr));
  };
  if (ring_first.count() <= 0) return hang_up();
  line->reject_timer = context_.clock.schedule(ring_first, [hang_up, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) hang_up();
  });
}

void InboundCalls::hangup(const Channel& channel, HangupCause cause, StatusCompletion done) {
  auto line = find(channel);
  if (!line) return later<Status>(std::move(done), engine_error(engine_errc::channel_gone, "no inbound channel " + printable(channel.id)));
  if (!line->hung_up_by_us) line->hung_up_by_us = cause;
  send_hangup(*line, cause, std::move(done));
}

void InboundCalls::play(const Channel& channel, const Prompt& prompt, StatusCompletion done) {
  auto line = find(channel);
  if (!line) return later<Status>(std::move(done), engine_error(engine_errc::channel_gone, "no inbound channel " + printable(channel.id)));
  std::vector<std::string> commands;
  if (!prompt.language.empty() && !check_language(prompt.language)) {
    return later<Status>(std::move(done), engine_error(engine_errc::invalid, "bad prompt language"));
  }
  // The sounds' language is the channel's (sounds/<lang>/): set it when the prompt asks
  // for another one.
  if (!prompt.language.empty() && prompt.language != line->language) {
    commands.push_back("SET VARIABLE CHANNEL(language) " + prompt.language);
    line->language = prompt.language;
  }
  if (prompt.time_left) {
    // "You have N seconds", as Asterisk's own time-left warning says it.
    commands.push_back("STREAM FILE vm-youhave \"\"");
    commands.push_back("SAY NUMBER " + std::to_string(prompt.time_left->count()) + " \"\"");
    commands.push_back("STREAM FILE queue-seconds \"\"");
  } else if (safe_prompt_name(prompt.name)) {
    commands.push_back("STREAM FILE " + prompt.name + " \"\"");
  } else {
    return later<Status>(std::move(done), engine_error(engine_errc::invalid, "a prompt name is letters, digits, '_', '-' and '/'"));
  }
  sequence(line, std::move(commands), nullptr, std::move(done));
}

void InboundCalls::feed_digit(Line& line, char digit) {
  auto collection = line.collection;
  if (!collection) {
    // Typed ahead (before a collection, or between two): kept for the next one.
    if (line.typeahead.size() < max_typeahead) line.typeahead.push_back(digit);
    return;
  }
  const auto& r = collection->request;
  if (r.terminator != '\0' && digit == r.terminator) {
    return end_collection(line, Digits{collection->digits, Digits::Stop::terminator});
  }
  collection->digits.push_back(digit);
  if (collection->digits.size() >= r.max_digits) {
    return end_collection(line, Digits{collection->digits, Digits::Stop::max_digits});
  }
  collection->timer.cancel();
  collection->timer = context_.clock.schedule(r.inter_digit_timeout, [this, key = line.key, collection,
                                                                       alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    const auto it = channels_.find(key);
    if (it == channels_.end() || it->second->collection != collection) return;
    end_collection(*it->second, Digits{collection->digits, Digits::Stop::inter_digit_timeout});
  });
}

void InboundCalls::end_collection(Line& line, Result<Digits> result) {
  auto collection = std::exchange(line.collection, nullptr);
  if (!collection) return;
  collection->timer.cancel();
  later<Result<Digits>>(std::move(collection->done), std::move(result));
}

void InboundCalls::collect_digits(const Channel& channel, const DigitRequest& request, Completion<Digits> done) {
  auto line = find(channel);
  if (!line) {
    return later<Result<Digits>>(std::move(done), engine_error(engine_errc::channel_gone, "no inbound channel " + printable(channel.id)));
  }
  if (request.max_digits == 0 || request.max_digits > max_typeahead) {
    return later<Result<Digits>>(std::move(done), engine_error(engine_errc::invalid, "max_digits is 1 to 64"));
  }
  if (line->collection) {
    return later<Result<Digits>>(std::move(done), engine_error(engine_errc::refused, "digits are being collected already"));
  }
  if (request.prompt) {
    if (request.prompt->time_left || !safe_prompt_name(request.prompt->name)) {
      return later<Result<Digits>>(std::move(done), engine_error(engine_errc::invalid, "a digit prompt is a sound by name"));
    }
    if (!request.prompt->language.empty() && !check_language(request.prompt->language)) {
      return later<Result<Digits>>(std::move(done), engine_error(engine_errc::invalid, "bad prompt language"));
    }
  }
  auto c = std::make_shared<Collection>();
  c->request = request;
  c->done = std::move(done);
  line->collection = c;
  auto arm_first = [this, key = line->key, c, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired() || !c->digits.empty()) return;
    const auto it = channels_.find(key);
    if (it == channels_.end() || it->second->collection != c) return;
    c->timer = context_.clock.schedule(c->request.first_digit_timeout, [this, key, c, alive] {
      if (alive.expired()) return;
      const auto found = channels_.find(key);
      if (found == channels_.end() || found->second->collection != c) return;
      end_collection(*found->second, Digits{c->digits, c->digits.empty() ? Digits::Stop::first_digit_timeout
                                                                          : Digits::Stop::inter_digit_timeout});
    });
  };
  // Digits typed ahead count first; they may complete the collection at once.
  for (const char digit : std::exchange(line->typeahead, {})) {
    if (line->collection != c) {
      line->typeahead.push_back(digit);  // the rest waits for the next collection
      continue;
    }
    feed_digit(*line, digit);
  }
  if (line->collection != c) return;
  if (!request.prompt || !c->digits.empty()) return arm_first();
  // The prompt stops at the first key (STREAM FILE's escape digits); the first digit's
  // wait starts when it has played or was cut.
  std::vector<std::string> commands;
  if (!request.prompt->language.empty() && request.prompt->language != line->language) {
    commands.push_back("SET VARIABLE CHANNEL(language) " + request.prompt->language);
    line->language = request.prompt->language;
  }
  commands.push_back("STREAM FILE " + request.prompt->name + " " + std::string(escape_digits));
  c->prompting = true;
  sequence(line, std::move(commands), [c] { return !c->digits.empty(); }, [c, arm_first](Status) {
    c->prompting = false;
    arm_first();
  });
}

void InboundCalls::connection_lost(const std::string& server) {
  std::vector<std::string> keys;
  for (const auto& [key, line] : channels_) {
    if (line->server == server) keys.push_back(key);
  }
  for (const auto& key : keys) finish(key, HangupCause::engine_lost(), true);
  for (auto& [key, line] : claiming_) {
    if (line->server == server && !line->gone_while_claimed) line->gone_while_claimed = {HangupCause::engine_lost(), true};
  }
  // Replies that will never come now.
  std::vector<std::function<void(const ami::MessageView*)>> orphans;
  std::erase_if(replies_, [&](auto& entry) {
    if (entry.second.server != server) return false;
    orphans.push_back(std::move(entry.second.handler));
    return true;
  });
  for (auto& handler : orphans) handler(nullptr);
}

void InboundCalls::stop_all() {
  std::vector<std::string> keys;
  for (const auto& [key, line] : channels_) {
    keys.push_back(key);
    if (!line->hung_up_by_us) line->hung_up_by_us = HangupCause::normal();
    sink_.send(line->server, ami::Action("Hangup").add("Channel", line->name).add("Cause", "16").str());
  }
  for (const auto& key : keys) finish(key, HangupCause::engine_lost(), false);
  claiming_.clear();  // their answers find nothing to take
}

}  // namespace callback::engine_ami
