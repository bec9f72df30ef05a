// TEST AND DEMO DOUBLE — not Asterisk. See fake_asterisk.hpp; the call flows are the
// recordings in tests/fixtures/asterisk replayed as templates (call_script.hpp).
//
// What is replayed as recorded: every originate scenario (order, headers, causes, CDRs),
// with the call's own numbers, ids, caller ID and Variables substituted, and the Hangup
// action while A and B talk (ami-hangup-midcall's tail). What is approximated, because
// no recording shows it:
//  * stretching: the recorded 10 s L() limit, 8 s Originate timeout and 8 s Dial timeout
//    are shifted to CB_LIMIT / Timeout / CB_DIAL_TIMEOUT, and ANSWEREDTIME, DIALEDTIME,
//    CDR Duration/BillableSeconds/EndTime move by the same amount. CDR times and those
//    values are in unscaled seconds even when time_scale != 1.
//  * the Hangup action while A rings (the end of ami-originate-a-noanswer with cause 16
//    and Reason 0) and while B rings (the midcall tail without the bridge, DialEnd and
//    DIALSTATUS CANCEL, nothing answered). A Hangup action on a B channel plays the same
//    tails as one on A. A Hangup while A is up but B not yet dialled waits for the dial.
//  * the phone's behaviour text (NoOp of [phones]) is the template's: A 2XXX and 9XXX
//    behave as 1XXX, B 9XXX as 1XXX, and A 9XXX with B 98XX is b-hangs-up with every
//    delay removed (the benchmark pair).
//  * B 58XX is b-rejected with Hangup(1) / "Unallocated (unassigned) number".
//  * CoreShowChannel entries show the recorded "talking" state of each channel, except
//    that A's channels while A rings, and B's while B rings, are Ringing (5) in no bridge.
//  * calls go on when the AMI connection that placed them closes (Logoff too), as in
//    Asterisk; close_all_connections() (Asterisk died) drops them, with no `h` path and so
//    no AstDB record, and keeps the AstDB.
//  * the AstDB record's LimitReached is 1 exactly when the call plays ami-originate-
//    answered-limit (the limit ends it); A 2XXX hanging up by itself is not modelled (A 2XXX
//    behaves as 1XXX), so the fake never writes the `h` record of ami-db-record's cb-db-7.
//  * the checker's Commands (ami-asterisk-check*): `manager show user` always shows the
//    recorded ACL and flags, and the read classes are shown but filter no event;
//    `module show like` knows cdr_manager only; `core show sound` calls every file slin.
//  * inbound calls (Async AGI): see "inbound calls" below.
#include "fake_asterisk.hpp"

#include "ami_codec.hpp"
#include "call_script.hpp"
#include "inbound_script.hpp"


#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <bit>
#include <deque>
#include <limits>
#include <map>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <future>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace callback::fake {

namespace asio = boost::asio;
using asio::ip::tcp;
using detail::CallValues;
using detail::MessageKind;
using detail::Phase;
using detail::Script;
using detail::TimedMessage;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxRecordedActions = 200'000;  // actions() keeps the first ones


bool is_true(std::string_view v) {
  for (auto word : {"yes", "true", "y", "t", "1", "on"}) {
    if (ami::iequals(v, word)) return true;
  }
  return false;
}
bool is_false(std::string_view v) {
  for (auto word : {"no", "false", "n", "f", "0", "off"}) {
    if (ami::iequals(v, word)) return true;
  }
  return false;
}

// Asterisk's strings_to_mask: on/off, or a comma list of classes.
std::uint32_t events_mask(std::string_view events) {
  if (events.empty() || is_true(events)) return detail::kClassAll;
  if (is_false(events)) return detail::kClassNone;
  std::uint32_t mask = 0;
  while (!events.empty()) {
    const auto comma = events.find(',');
    auto word = events.substr(0, comma);
    while (!word.empty() && word.front() == ' ') word.remove_prefix(1);
    while (!word.empty() && word.back() == ' ') word.remove_suffix(1);
    if (ami::iequals(word, "all")) return detail::kClassAll;
    mask |= detail::event_class_bit(word);
    if (comma == std::string_view::npos) break;
    events.remove_prefix(comma + 1);
  }
  return mask;
}

// manager.c's perms[], in its order: the words of manager.conf's read = / write = (get_perm)
// and what `manager show user` lists (user_authority_to_str).
constexpr std::array<std::pair<std::string_view, std::uint32_t>, 20> kPerms{{
    {"system", detail::kClassSystem},       {"call", detail::kClassCall},       {"log", detail::kClassLog},
    {"verbose", detail::kClassVerbose},     {"command", detail::kClassCommand}, {"agent", detail::kClassAgent},
    {"user", detail::kClassUser},           {"config", detail::kClassConfig},   {"dtmf", detail::kClassDtmf},
    {"reporting", detail::kClassReporting}, {"cdr", detail::kClassCdr},         {"dialplan", detail::kClassDialplan},
    {"originate", detail::kClassOriginate}, {"agi", detail::kClassAgi},         {"cc", detail::kClassCc},
    {"aoc", detail::kClassAoc},             {"test", detail::kClassTest},       {"security", detail::kClassSecurity},
    {"message", detail::kClassMessage},     {"all", detail::kClassAll},
}};

std::uint32_t perm_mask(std::string_view list) {
  std::uint32_t mask = 0;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto word = list.substr(0, comma);
    while (!word.empty() && word.front() == ' ') word.remove_prefix(1);
    while (!word.empty() && word.back() == ' ') word.remove_suffix(1);
    for (const auto& [name, bit] : kPerms) {
      if (word == name) mask |= bit;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return mask;
}

std::string perm_names(std::uint32_t mask) {
  std::string out;
  for (const auto& [name, bit] : kPerms) {
    if ((mask & bit) != bit) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out.empty() ? "<none>" : out;
}

// The write classes an action needs, any one of them (manager.c's registrations); 0: none
// (Ping, like Login, Logoff and Challenge); nullopt: an action the fake does not know.
std::optional<std::uint32_t> action_authority(std::string_view action) {
  if (ami::iequals(action, "Originate")) return detail::kClassOriginate;
  if (ami::iequals(action, "Hangup")) return detail::kClassSystem | detail::kClassCall;
  if (ami::iequals(action, "Command")) return detail::kClassCommand;
  if (ami::iequals(action, "CoreShowChannels")) return detail::kClassSystem | detail::kClassReporting;
  // main/db.c
  if (ami::iequals(action, "DBGet")) return detail::kClassSystem | detail::kClassReporting;
  if (ami::iequals(action, "DBPut") || ami::iequals(action, "DBDel")) return detail::kClassSystem;
  if (ami::iequals(action, "Ping")) return 0;
  if (ami::iequals(action, "AGI")) return detail::kClassAgi;  // res_agi.c registers it with EVENT_FLAG_AGI
  return std::nullopt;
}

// Where the fake's dialplan file is cited in `dialplan show`: the name it is #included
// under (examples/asterisk/extensions.conf says so), as in ami-asterisk-check.txt.
constexpr std::string_view kDialplanName = "callback-extensions.conf";

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
}

// Removes the digits after every `key` ("AnsweredTime: 4" -> "AnsweredTime: ").
void clear_number_after(std::string& text, std::string_view key) {
  std::size_t pos = 0;
  while ((pos = text.find(key, pos)) != std::string::npos) {
    pos += key.size();
    std::size_t end = pos;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
    text.erase(pos, end - pos);
  }
}

std::string header_of(const std::string& text, std::string_view name) {
  const std::string key = "\r\n" + std::string(name) + ": ";
  const std::string padded = "\r\n" + text;
  const auto at = padded.find(key);
  if (at == std::string::npos) return {};
  const auto start = at + key.size();
  return padded.substr(start, padded.find("\r\n", start) - start);
}

void set_header(std::string& text, std::string_view name, std::string_view value) {
  const std::string key = std::string(name) + ": ";
  auto at = text.find("\r\n" + key);
  if (at == std::string::npos) return;
  at += 2 + key.size();
  text.replace(at, text.find("\r\n", at) - at, value);
}

// The number of a phone decides its behaviour (extensions.conf [phones]).
enum class PhoneKind { kStaysUp, kHangsUp, kBusy, kNoAnswer, kCongestion, kUnreachable, kUnallocated, kRejected,
                       kBench, kBenchHangup, kInvalid };

PhoneKind classify(std::string_view number) {
  if (number.size() != 4 || !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return PhoneKind::kInvalid;
  }
  switch (number[0]) {
    case '1': return PhoneKind::kStaysUp;
    case '2': return PhoneKind::kHangsUp;
    case '3': return PhoneKind::kBusy;
    case '4': return PhoneKind::kNoAnswer;
    case '5':
      if (number[1] == '5') return PhoneKind::kUnreachable;
      if (number[1] == '8') return PhoneKind::kUnallocated;
      return PhoneKind::kCongestion;
    case '6': return PhoneKind::kRejected;
    case '9': return number[1] == '8' ? PhoneKind::kBenchHangup : PhoneKind::kBench;
    default: return PhoneKind::kInvalid;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The compiled templates, loaded once per fake.
struct Templates {
  Script a_busy, a_noanswer, a_congestion, a_unreachable, a_unallocated, a_rejected, a_rejected_channelid, a_invalid;
  Script answered_limit, b_hangs_up, channelid, b_busy, b_noanswer, b_congestion, b_unreachable, b_rejected,
      b_unallocated, b_invalid;
  Script tail_a_ringing, tail_b_ringing, tail_bridged;
  Script core_show_channel;  // the 4 CoreShowChannel entries, in the recorded order B;2, B;1, A;1, A;2
  std::vector<int> core_show_channel_roles;
  // The IVR (ami-outbound-ivr). `ivr`: the call without its AGI commands' events, A held
  // after message `ivr_hold` (AsyncAGIStart); the gap the IVR took is its stretch.
  // `ivr_agi`: one of each AGI event, by IvrAgi. `ivr_end`: A hung up while it waits
  // (ami-outbound-ivr-hangup).
  // `ivr_ring`: A up to its AsyncAGIStart (`ivr_ring_hold`) for a phone that rings 1 s
  // first (ami-outbound-ivr-hangup's 1006; ami-outbound-ivr's 7005 answers at once).
  Script ivr, ivr_agi, ivr_end, ivr_ring;
  std::size_t ivr_hold = 0, ivr_ring_hold = 0;
  enum IvrAgi : std::uint8_t { kExecStart, kExecEnd, kAsyncExec, kDtmfBegin, kDtmfEnd, kAsyncEnd, kIvrAgiCount };
  // Where each B script's [callback] part starts: A;1's first message in context callback.
  std::unordered_map<const Script*, std::size_t> resume_at;

  explicit Templates(const std::filesystem::path& dir) {
    using detail::compile;
    using detail::load_recording;
    auto plain = [&](const std::string& name, std::int64_t stretch_ms = 0) {
      const auto recording = load_recording(dir, name);
      return compile(recording, recording.main, stretch_ms, false);
    };
    a_busy = plain("ami-originate-a-busy");
    a_noanswer = plain("ami-originate-a-noanswer", 8000);
    a_congestion = plain("ami-originate-a-congestion");
    a_unreachable = plain("ami-originate-a-unreachable");
    a_unallocated = plain("ami-originate-a-unallocated");
    a_rejected = plain("ami-originate-a-rejected");
    a_rejected_channelid = plain("ami-originate-a-rejected-channelid");
    a_invalid = plain("ami-originate-a-invalid");
    answered_limit = plain("ami-originate-answered-limit", 10000);
    b_hangs_up = plain("ami-originate-b-hangs-up");
    channelid = plain("ami-originate-channelid");
    b_busy = plain("ami-originate-b-busy");
    b_noanswer = plain("ami-originate-b-noanswer", 8000);
    b_congestion = plain("ami-originate-b-congestion");
    b_unreachable = plain("ami-originate-b-unreachable");
    b_rejected = plain("ami-originate-b-rejected");
    b_invalid = plain("ami-originate-b-invalid");

    // Not recorded: B 58XX is b-rejected with Hangup(1) instead of Hangup(21).
    {
      auto recording = load_recording(dir, "ami-originate-b-rejected");
      for (auto& m : recording.main) {
        replace_all(m.text, "Cause: 21\r\n", "Cause: 1\r\n");
        replace_all(m.text, "Cause-txt: Call Rejected", "Cause-txt: Unallocated (unassigned) number");
        replace_all(m.text, "HANGUPCAUSE=21", "HANGUPCAUSE=1");
        replace_all(m.text, "HangupCause: 21", "HangupCause: 1");
        replace_all(m.text, "AppData: 21\r\n", "AppData: 1\r\n");
        replace_all(m.text, "LastData: 21\r\n", "LastData: 1\r\n");
        replace_all(m.text, ": rejected\r\n", ": unallocated number\r\n");
      }
      b_unallocated = compile(recording, recording.main, 0, false);
      b_unallocated.name = "b-unallocated (derived from ami-originate-b-rejected)";
    }

    // Recorded: the AMI Hangup action on A while A and B talk (ami-hangup-midcall).
    const auto midcall = load_recording(dir, "ami-hangup-midcall");
    tail_bridged = compile(midcall, midcall.after_hangup, 0, true);
    tail_bridged.tail = true;

    // Not recorded: Hangup action while B rings. Built from the midcall tail the way
    // Asterisk ends a Dial() whose caller goes away: DialEnd CANCEL, B's halves hung up
    // while still ringing, nothing answered, and the `h` UserEvent with DialStatus CANCEL.
    {
      std::string num_b;
      for (const auto& [name, value] : midcall.originate) {
        if (name == "Exten") num_b = value;
      }
      const std::string b_prefix = "Local/" + num_b + "@phones-";
      auto is_b = [&](const std::string& channel, char half) {
        return channel.starts_with(b_prefix) && !channel.empty() && channel.back() == half;
      };
      std::vector<TimedMessage> tail;
      for (const auto& m : midcall.main) {
        if (header_of(m.text, "Event") == "DialEnd" && is_b(header_of(m.text, "DestChannel"), '1')) {
          std::string text = m.text;
          replace_all(text, "DialStatus: ANSWER", "DialStatus: CANCEL");
          replace_all(text, "DestChannelState: 6\r\nDestChannelStateDesc: Up",
                      "DestChannelState: 5\r\nDestChannelStateDesc: Ringing");
          replace_all(text, "DestExten: \r\n", "DestExten: " + num_b + "\r\n");
          tail.push_back({midcall.after_hangup.front().at_us, text});
        }
      }
      for (const auto& m : midcall.after_hangup) {
        const auto event = header_of(m.text, "Event");
        const auto variable = header_of(m.text, "Variable");
        if (event == "BridgeLeave" || event == "BridgeDestroy") continue;
        if (event == "VarSet" && (variable == "BRIDGEPEER" || variable.starts_with("ANSWEREDTIME") ||
                                  variable.starts_with("DIALEDTIME"))) {
          continue;
        }
        std::string text = m.text;
        const auto channel = header_of(text, "Channel");
        if (event != "Cdr" && is_b(channel, '1')) {
          replace_all(text, "ChannelState: 6\r\nChannelStateDesc: Up", "ChannelState: 5\r\nChannelStateDesc: Ringing");
          replace_all(text, "Exten: \r\n", "Exten: " + num_b + "\r\n");
        }
        if (event != "Cdr" && is_b(channel, '2')) {
          replace_all(text, "ChannelState: 6\r\nChannelStateDesc: Up", "ChannelState: 4\r\nChannelStateDesc: Ring");
          replace_all(text, "Priority: 5\r\n", "Priority: 3\r\n");
        }
        if (event == "Cdr" && (is_b(channel, '2') || is_b(header_of(text, "DestinationChannel"), '1'))) {
          set_header(text, "Disposition", "NO ANSWER");
          set_header(text, "AnswerTime", "");
          set_header(text, "BillableSeconds", "0");
          if (is_b(channel, '2')) {
            set_header(text, "LastApplication", "Wait");
            set_header(text, "LastData", "1");
          }
        }
        replace_all(text, "DialStatus: ANSWER", "DialStatus: CANCEL");
        replace_all(text, "DIALSTATUS=ANSWER", "DIALSTATUS=CANCEL");
        if (event == "VarSet" && variable == "DIALSTATUS") set_header(text, "Value", "CANCEL");
        clear_number_after(text, "ANSWEREDTIME=");
        clear_number_after(text, "AnsweredTime: ");
        clear_number_after(text, "DialedTime: ");
        tail.push_back({m.at_us, text});
      }
      tail_b_ringing = compile(midcall, tail, 0, true);
      tail_b_ringing.tail = true;
    }

    // Not recorded: Hangup action while A rings. The end of ami-originate-a-noanswer (the
    // Originate timeout hanging A up), with the cause the Hangup action gives (16) and
    // OriginateResponse Reason 0 instead of 3.
    {
      auto recording = load_recording(dir, "ami-originate-a-noanswer");
      std::size_t pivot = recording.main.size();
      for (std::size_t i = 1; i < recording.main.size(); ++i) {
        if (recording.main[i].at_us - recording.main[i - 1].at_us >= 2'000'000) {
          pivot = i;
          break;
        }
      }
      std::vector<TimedMessage> tail(recording.main.begin() + static_cast<std::ptrdiff_t>(pivot), recording.main.end());
      for (auto& m : tail) {
        replace_all(m.text, "Cause: 19\r\nCause-txt: User alerting, no answer", "Cause: 16\r\nCause-txt: Normal Clearing");
        replace_all(m.text, "Cause: 19\r\n", "Cause: 16\r\n");
        replace_all(m.text, "Reason: 3\r\n", "Reason: 0\r\n");
      }
      tail_a_ringing = compile(recording, tail, 0, true);
      tail_a_ringing.tail = true;
    }

    build_ivr(dir);
    for (const Script* script : {&answered_limit, &b_hangs_up, &channelid, &b_busy, &b_noanswer, &b_congestion,
                                 &b_unreachable, &b_rejected, &b_unallocated, &b_invalid}) {
      const auto at = find_message(*script, [](const std::string& m) {
        return header_of(m, "Channel") == kMarkA1 && header_of(m, "Context") == "callback";
      });
      if (at == std::string::npos) throw std::runtime_error("fake asterisk: " + script->name + " never enters [callback]");
      resume_at[script] = at;
    }

    // CoreShowChannel entries, recorded during the midcall call (ami-coreshowchannels).
    {
      std::ifstream in(dir / "ami-coreshowchannels.txt", std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::vector<TimedMessage> entries;
      for (auto& m : detail::split_messages(text)) {
        if (header_of(m, "Event") == "CoreShowChannel") {
          const auto channel = header_of(m, "Channel");
          const bool is_a = channel.find("Local/1001@") == 0;
          core_show_channel_roles.push_back((is_a ? 0 : 2) + (channel.back() == '2' ? 1 : 0));
          entries.push_back({0, std::move(m)});
        }
      }
      core_show_channel = compile(midcall, entries, 0, false);
    }
  }

  static constexpr std::string_view kMarkA1 = "\x01" "A1";

  // The first message of `script` whose text (A;1 rendered as kMarkA1) satisfies `pred`.
  template <class Pred>
  static std::size_t find_message(const Script& script, Pred pred) {
    CallValues v;
    v.channel = {std::string(kMarkA1), "\x01" "A2", "\x01" "B1", "\x01" "B2"};
    std::string out;
    for (std::size_t i = 0; i < script.messages.size(); ++i) {
      out.clear();
      detail::render(script, i, v, out);
      if (pred(out)) return i;
    }
    return std::string::npos;
  }

  void build_ivr(const std::filesystem::path& dir) {
    auto recording = detail::load_recording(dir, "ami-outbound-ivr");
    // The Originate names no B (Exten s): the AGI's SET VARIABLE CB_B does, and stands for it.
    std::string num_b;
    for (const auto& m : recording.main) {
      const auto command = header_of(m.text, "Command");
      if (header_of(m.text, "Event") == "AGIExecStart" && command.starts_with("SET VARIABLE CB_B ")) {
        num_b = command.substr(18);
      }
    }
    for (auto& [name, value] : recording.originate) {
      if (name == "Exten") value = num_b;
    }
    if (num_b.empty()) throw std::runtime_error("fake asterisk: ami-outbound-ivr sets no CB_B");
    std::vector<TimedMessage> flow;
    std::array<std::optional<TimedMessage>, kIvrAgiCount> agi;
    for (const auto& m : recording.main) {
      const auto event = header_of(m.text, "Event");
      if (event.empty()) continue;  // the AGI actions' responses
      int which = -1;
      if (event == "AGIExecStart") which = kExecStart;
      if (event == "AGIExecEnd") which = kExecEnd;
      if (event == "AsyncAGIExec") which = kAsyncExec;
      if (event == "DTMFBegin") which = kDtmfBegin;
      if (event == "DTMFEnd") which = kDtmfEnd;
      if (event == "AsyncAGIEnd") which = kAsyncEnd;
      if (which >= 0) {
        if (!agi[static_cast<std::size_t>(which)]) agi[static_cast<std::size_t>(which)] = m;
        continue;
      }
      flow.push_back(m);
    }
    std::vector<TimedMessage> agi_messages;
    for (auto& m : agi) {
      if (!m) throw std::runtime_error("fake asterisk: ami-outbound-ivr lacks an AGI event the fake needs");
      agi_messages.push_back(*m);
    }
    ivr = detail::compile(recording, flow, 1, false);
    // A waits after the last message before the IVR's gap (AsyncAGIStart and what came with it).
    const auto agi_start = find_message(ivr, [](const std::string& m) { return header_of(m, "Event") == "AsyncAGIStart"; });
    ivr_hold = agi_start;
    while (ivr_hold + 1 < ivr.messages.size() && !ivr.messages[ivr_hold + 1].after_pivot) ++ivr_hold;
    if (agi_start == std::string::npos || ivr_hold + 1 >= ivr.messages.size() ||
        ivr.messages[ivr_hold + 1].at_us != ivr.pivot_us) {
      throw std::runtime_error("fake asterisk: ami-outbound-ivr has no wait after its AsyncAGIStart");
    }
    ivr_agi = detail::compile(recording, agi_messages, 0, false);

    // A hung up while it waits (ami-outbound-ivr-hangup: the Hangup action on A;1 in Async
    // AGI): AsyncAGIEnd, then [callback-ivr-ami]'s h extension with its UserEvent.
    const auto hangup = detail::load_recording(dir, "ami-outbound-ivr-hangup");
    ivr_end = detail::compile(hangup, hangup.after_hangup, 0, true);
    ivr_end.tail = true;
    // Up to the first AGI action's reply (the device states may follow AsyncAGIStart).
    std::vector<TimedMessage> ringing;
    bool agi_started = false;
    for (const auto& m : hangup.main) {
      const auto event = header_of(m.text, "Event");
      if (event.empty() && agi_started) break;
      if (event.empty()) continue;
      agi_started = agi_started || event == "AsyncAGIStart";
      ringing.push_back(m);
    }
    if (!agi_started) throw std::runtime_error("fake asterisk: ami-outbound-ivr-hangup has no AsyncAGIStart");
    ivr_ring = detail::compile(hangup, ringing, 0, false);
    ivr_ring_hold = ivr_ring.messages.size() - 1;
  }
};

// ---------------------------------------------------------------------------------------
class Connection;

struct Call {
  Call(asio::io_context& io, std::uint64_t key_) : key(key_), timer(io) {}
  std::uint64_t key;
  std::weak_ptr<Connection> origin;  // who sent the Originate (a sync reply goes there only)
  const Script* script = nullptr;
  std::size_t next = 0;
  CallValues values;
  Clock::time_point base;         // offsets count from here
  std::int64_t last_offset_us = 0;
  bool sync = false;
  bool originate_fails = false;
  bool instant = false;           // every delay removed (benchmark numbers)
  bool hangup_pending = false;
  bool ivr_hold = false;          // placed into [callback-ivr-ami]: A waits in Async AGI once up
  std::size_t resume_from = 0;    // messages before this one (and the OriginateResponse) are not sent
  std::uint8_t live = 0;          // channels created and not hung up
  std::vector<std::uint16_t> order;  // interleaved: the script's message indexes in sending order
  std::int64_t phase_index = -1;     // the latest recorded message sent: its phase is the call's
  Phase phase = Phase::kARinging;
  Clock::time_point originated;
  asio::steady_timer timer;
};

// An inbound call in [callback-access-ami]: the Local channel's ;2 half runs AGI(agi:async).
struct InboundLine {
  explicit InboundLine(asio::io_context& io) : command_timer(io), dtmf_timer(io) {}
  detail::InboundValues values;
  std::string channel;  // the ;2 half: what AGI and Hangup actions name
  std::string language = "en";
  bool up = false;
  std::int64_t start_epoch = 0, answer_epoch = 0;
  Clock::time_point started, command_started;
  struct Command {
    std::string text;     // as sent
    std::string id;       // the action's CommandID ("" if none)
    std::string escape;   // digits that stop it (STREAM FILE, SAY NUMBER); WAIT FOR DIGIT: any
    bool any_digit = false;
    bool fails = false;  // RESULT_FAILURE: the Async AGI ends after it (a missing sound)
    bool breaks = false;  // ASYNCAGI BREAK: the dialplan goes on
    // GET DATA: digits up to `#` or max_digits; digit_timeout_ms after the prompt and
    // between keys ends it with what came ("200 result=<digits> (timeout)").
    bool get_data = false;
    std::size_t max_digits = 0;
    std::int64_t digit_timeout_ms = 0;
    std::string collected;
    std::uint32_t agi_number = 0;  // Asterisk's own CommandId in AGIExecStart/End
  };
  std::optional<Command> running;
  std::deque<Command> queue;
  asio::steady_timer command_timer;
  asio::steady_timer dtmf_timer;
  std::string dtmf;  // the caller's digits, sent once answered
  std::size_t next_digit = 0;
  std::int64_t dtmf_delay_ms = 0, dtmf_interval_ms = 0;
  std::int64_t hangup_after_ms = -1;
  std::uint64_t ivr_call = 0;  // not 0: A of this outbound call, waiting in [callback-ivr-ami]
  std::map<std::string, std::string> variables;  // SET VARIABLE's
};

struct ServerState {
  explicit ServerState(FakeAsteriskOptions o)
      : options(std::move(o)),
        templates(options.recordings),
        inbound_script(options.recordings),
        acceptor(io),
        rng(options.seed != 0 ? options.seed : std::random_device{}()),
        write_mask(perm_mask(options.write_classes)),
        callback_dialplan(detail::dialplan_show(options.dialplan_file, "callback", {}, kDialplanName)) {}

  FakeAsteriskOptions options;
  Templates templates;
  detail::InboundScript inbound_script;
  std::unordered_map<std::string, std::unique_ptr<InboundLine>> inbound;  // by the ;2 channel name (io thread)
  std::map<std::string, InboundEnd> inbound_ends;  // by channel; under `mutex`
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::thread thread;
  std::uint16_t port = 0;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  bool answering_pings = true;  // on the fake's thread

  // Observed by tests (any thread).
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::size_t logged_in = 0;
  std::size_t active = 0;
  std::vector<std::string> actions;
  std::map<std::string, std::string> astdb;  // "/<family>/<key>" -> value, as main/db.c keys it

  // io thread only.
  std::unordered_set<std::shared_ptr<Connection>> connections;
  std::unordered_map<std::uint64_t, Call*> calls;           // key -> call
  // Calls belong to the server, not to the connection that placed them: as in Asterisk,
  // a call goes on when that AMI client disconnects, and its events reach every
  // logged-in connection whose Events mask takes them.
  std::unordered_map<std::uint64_t, std::unique_ptr<Call>> owned;
  std::string rendered;  // scratch for broadcasting
  std::unordered_map<std::string, std::uint64_t> by_channel_id;
  std::uint64_t next_key = 0x15;
  std::uint64_t calls_processed = 0;
  bool accepting = true;
  std::mt19937_64 rng;
  std::uint32_t write_mask;                     // options.write_classes
  std::vector<std::string> callback_dialplan;  // `dialplan show callback`, read once (as a dialplan reload)

  void accept();
  void open_acceptor();
  void call_finished(Call& call);
  void advance(Call& call);
  void start_tail(Call& call);
  void drop_all_calls();  // Asterisk died
  void record_result(const Call& call, std::size_t index);
  // Inbound calls (Async AGI), fake_asterisk_inbound below.
  std::string start_inbound(const AmiInboundCallOptions& call);
  void broadcast(const std::string& message);
  std::string inbound_message(const InboundLine& line, std::string_view text);
  void agi_next(InboundLine& line);
  void agi_finish(InboundLine& line, const std::string& result);
  void inbound_digit(InboundLine& line);
  void caller_hangs_up_later(InboundLine& line);
  // `script`: what follows (default: a Hangup action's, by whether the line is up).
  void end_inbound(const std::string& channel, int cause, const std::vector<std::string>* script = nullptr);
  static std::string db_key(std::string_view family, std::string_view key) {
    return "/" + std::string(family) + "/" + std::string(key);
  }
  std::optional<std::string> db_get(std::string_view family, std::string_view key) const {
    std::lock_guard lock(mutex);
    const auto it = astdb.find(db_key(family, key));
    if (it == astdb.end()) return std::nullopt;
    return it->second;
  }
  void db_put(std::string_view family, std::string_view key, std::string value) {
    std::lock_guard lock(mutex);
    astdb[db_key(family, key)] = std::move(value);
  }
  bool db_del(std::string_view family, std::string_view key) {
    std::lock_guard lock(mutex);
    return astdb.erase(db_key(family, key)) == 1;
  }
  [[nodiscard]] std::int64_t offset_us(const Call& call, std::size_t index) const;
  void set_script(Call& call, const Script& script, bool interleave = true);
  // The IVR: A waits in Async AGI; the BREAK lets the dialplan dial B; a hangup ends A there.
  void hold_ivr(Call& call);
  void release_ivr(const std::string& channel);
  void end_held(std::uint64_t key);
  void start_keys(InboundLine& line);
  void key_after(InboundLine& line, std::int64_t ms);
  // Ends the running AGI command with `result` in `seconds` (scaled); GET DATA's empty result: its timeout.
  void command_after(InboundLine& line, double seconds, std::string result);
  std::string agi_event(const InboundLine& line, std::uint8_t which, const std::string& inbound_template);
  template <class F>
  void run_sync(F&& f) {
    if (!thread.joinable()) {
      f();
      return;
    }
    // Runs on the io thread and waits; an exception (a failed rebind) comes back here.
    std::promise<void> done;
    asio::post(io, [&] {
      try {
        f();
        done.set_value();
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    });
    done.get_future().get();
  }
  void add_active(long n) {
    {
      std::lock_guard lock(mutex);
      active = static_cast<std::size_t>(static_cast<long>(active) + n);
    }
    changed.notify_all();
  }
  void add_logged_in(long n) {
    {
      std::lock_guard lock(mutex);
      logged_in = static_cast<std::size_t>(static_cast<long>(logged_in) + n);
    }
    changed.notify_all();
  }
};

// ---------------------------------------------------------------------------------------
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerState& impl, tcp::socket socket)
      : impl_(impl), socket_(std::move(socket)), login_timer_(impl.io) {}

  void start() {
    (void)parser_.feed("Asterisk Call Manager/12.0.0\r\n", [](const ami::MessageView&) {});
    send("Asterisk Call Manager/12.0.0\r\n");
    read();
  }

  void send(std::string_view bytes) {
    if (closed_) return;
    pending_.append(bytes);
    flush();
  }

  // Closes the socket now. Calls go on (Asterisk keeps them when a client leaves).
  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    login_timer_.cancel();
    if (logged_in_) impl_.add_logged_in(-1);
    logged_in_ = false;
    impl_.connections.erase(shared_from_this());
  }

  [[nodiscard]] std::uint32_t mask() const { return mask_; }
  [[nodiscard]] bool logged_in() const { return logged_in_ && !closed_; }
  std::string& out() { return pending_; }
  void flush() {
    if (closed_ || writing_active_ || pending_.empty()) {
      if (!writing_active_ && pending_.empty() && close_after_write_) close();
      return;
    }
    writing_.swap(pending_);
    pending_.clear();
    writing_active_ = true;
    asio::async_write(socket_, asio::buffer(writing_), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      self->writing_active_ = false;
      self->writing_.clear();
      if (ec) {
        self->close();
        return;
      }
      self->flush();
    });
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (self->closed_) return;
      if (ec) {
        self->close();
        return;
      }
      auto ok = self->parser_.feed(std::string_view(self->buffer_.data(), n),
                                   [&](const ami::MessageView& m) { self->on_action(m); });
      if (!ok) {
        self->close();
        return;
      }
      if (!self->closed_) self->read();
    });
  }

  static std::string response(const ami::MessageView& m, std::string_view status, std::string_view message) {
    std::string out = "Response: ";
    out += status;
    out += "\r\n";
    if (m.has("ActionID")) {
      out += "ActionID: ";
      out += m.action_id();
      out += "\r\n";
    }
    out += "Message: ";
    out += message;
    out += "\r\n\r\n";
    return out;
  }

  void on_action(const ami::MessageView& m) {
    {
      std::lock_guard lock(impl_.mutex);
      if (impl_.actions.size() < kMaxRecordedActions) impl_.actions.emplace_back(m.text());
    }
    if (closed_ || login_failing_ || close_after_write_) return;
    const auto action = m.get("Action");
    if (ami::iequals(action, "Login")) return login(m);
    if (ami::iequals(action, "Challenge")) return challenge(m);
    if (ami::iequals(action, "Logoff")) {
      send(response(m, "Goodbye", "Thanks for all the fish."));
      close_after_write_ = true;
      flush();
      return;
    }
    if (!logged_in_) return send(response(m, "Error", "Permission denied"));
    const auto authority = action_authority(action);
    if (!authority) {
      return send(response(m, "Error", "Invalid/unknown command: " + std::string(action) +
                                           ". Use Action: ListCommands to show available commands."));
    }
    // manager.c's process_message: the user's write classes must share one with the action's.
    if (*authority != 0 && !(impl_.write_mask & *authority)) return send(response(m, "Error", "Permission denied"));
    if (ami::iequals(action, "Ping")) {
      if (!impl_.answering_pings) return;
      return ping(m);
    }
    if (ami::iequals(action, "Command")) return command(m);
    if (ami::iequals(action, "CoreShowChannels")) return core_show_channels(m);
    if (ami::iequals(action, "DBGet") || ami::iequals(action, "DBPut") || ami::iequals(action, "DBDel")) {
      return db(m, action);
    }
    if (ami::iequals(action, "Originate")) return originate(m);
    if (ami::iequals(action, "AGI")) return agi(m);
    hangup(m);
  }

  void login(const ami::MessageView& m) {
    if (logged_in_) return send(response(m, "Success", "Already authenticated"));
    bool ok = m.get("Username") == impl_.options.username;
    if (ami::iequals(m.get("AuthType"), "MD5")) {
      // Not in the recordings: manager.c's MD5 login, Key = hex(md5(challenge + secret)).
      ok = ok && !challenge_.empty() && ami::iequals(m.get("Key"), ami::md5_login_key(challenge_, impl_.options.secret));
    } else {
      ok = ok && m.get("Secret") == impl_.options.secret;
    }
    if (!ok) {
      // Recorded: the error comes about 1 s later, then the server closes the socket.
      login_failing_ = true;
      std::string reply = response(m, "Error", "Authentication failed");
      login_timer_.expires_after(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(1.0 * impl_.options.time_scale)));
      login_timer_.async_wait([self = shared_from_this(), reply](boost::system::error_code ec) {
        if (ec || self->closed_) return;
        self->send(reply);
        self->close_after_write_ = true;
        self->flush();
      });
      return;
    }
    logged_in_ = true;
    mask_ = events_mask(m.get("Events"));
    impl_.add_logged_in(1);
    send(response(m, "Success", "Authentication accepted"));
    if (mask_ & detail::kClassSystem) {
      const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - impl_.started).count();
      send("Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: " + std::to_string(uptime) +
           "\r\nLastReload: " + std::to_string(uptime) + "\r\nStatus: Fully Booted\r\n\r\n");
    }
  }

  void challenge(const ami::MessageView& m) {
    // Not in the recordings: manager.c's action_challenge.
    if (!ami::iequals(m.get("AuthType"), "MD5")) return send(response(m, "Error", "Must specify AuthType"));
    if (challenge_.empty()) challenge_ = std::to_string(100'000'000 + impl_.rng() % 900'000'000);
    std::string out = "Response: Success\r\n";
    if (m.has("ActionID")) out += "ActionID: " + std::string(m.action_id()) + "\r\n";
    out += "Challenge: " + challenge_ + "\r\n\r\n";
    send(out);
  }

  void ping(const ami::MessageView& m) {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%lld.%06lld", static_cast<long long>(now / 1'000'000),
                  static_cast<long long>(now % 1'000'000));
    std::string out = "Response: Success\r\n";
    if (m.has("ActionID")) out += "ActionID: " + std::string(m.action_id()) + "\r\n";
    out += "Ping: Pong\r\nTimestamp: " + std::string(stamp) + "\r\n\r\n";
    send(out);
  }

  void command(const ami::MessageView& m) {
    // manager.c's action_command: the CLI's output, one Output: header per line, and
    // Response: Error when the CLI command failed. A handler that fails (CLI_FAILURE) gets
    // cli.c's "Command '<command>' failed." after its own lines (ami-asterisk-check.txt).
    const std::string raw(m.get("Command"));
    if (raw.empty()) return send(response(m, "Error", "No command provided"));
    std::string cmd = raw;
    while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
    const auto& options = impl_.options;
    std::vector<std::string> output;
    bool ok = true;
    auto failed = [&] {
      ok = false;
      output.push_back("Command '" + raw + "' failed.");
    };
    // The one word after `prefix` ("manager show user callback" -> "callback").
    auto argument = [&](std::string_view prefix) -> std::optional<std::string> {
      const bool one_word = cmd.size() > prefix.size() && cmd.find(' ', prefix.size()) == std::string::npos;
      if (!cmd.starts_with(prefix) || !one_word) return std::nullopt;
      return cmd.substr(prefix.size());
    };
    if (cmd == "core show version") {
      output.push_back("Asterisk 23.4.1 built by root @ vm on a x86_64 running Linux on 2026-11-26 05:43:34 UTC");
    } else if (cmd == "core show channels count") {
      std::size_t channels = 0;
      for (const auto& [key, call] : impl_.calls) channels += static_cast<std::size_t>(std::popcount(call->live));
      output.push_back(std::to_string(channels) + " active channel" + (channels == 1 ? "" : "s"));
      output.push_back(std::to_string(impl_.calls.size()) + " active call" + (impl_.calls.size() == 1 ? "" : "s"));
      output.push_back(std::to_string(impl_.calls_processed) + " call" + (impl_.calls_processed == 1 ? "" : "s") +
                       " processed");
    } else if (const auto user = argument("manager show user ")) {
      // manager.c's handle_showmanager (names compared ignoring case); the ACL is the one of
      // examples/asterisk/manager.conf, as recorded.
      if (!ami::iequals(*user, options.username)) {
        output.push_back("There is no manager called " + *user);
      } else {
        output = {"",
                  "          username: " + options.username,
                  "            secret: " + std::string(options.secret.empty() ? "(N/A)" : "<Set>"),
                  "               ACL: yes",
                  "         read perm: " + perm_names(perm_mask(options.read_classes)),
                  "        write perm: " + perm_names(impl_.write_mask),
                  "   displayconnects: yes",
                  "allowmultiplelogin: yes",
                  "         Variables: ",
                  "ACL: (unnamed)",
                  "---------------------------------------------",
                  "  0:  deny - 0.0.0.0/0.0.0.0",
                  "  1: allow - 127.0.0.1/255.255.255.255"};
      }
    } else if (cmd == "cdr show status") {
      // cdr.c: a backend with enabled = no is listed "<name> (suspended) ", trailing space included.
      output = {"",
                "Call Detail Record (CDR) settings",
                "----------------------------------",
                "  Logging:                    Enabled",
                "  Mode:                       Simple",
                "  Log calls by default:       Yes",
                "  Log unanswered calls:       Yes",
                "  Log congestion:             Yes",
                "",
                "  Ignore bridging changes:    No",
                "",
                "  Ignore dial state changes:  No",
                "",
                "  Cancel disposition enabled: No",
                "",
                "* Registered Backends",
                "  -------------------",
                options.cdr_manager_enabled ? "    cdr_manager" : "    cdr_manager (suspended) ",
                ""};
    } else if (const auto like = argument("module show like ")) {
      // Only cdr_manager is modelled; it says Running whether enabled or suspended (README).
      output.push_back("Module                         Description                              Use Count  Status      Support Level");
      const bool match = std::string_view("cdr_manager.so").find(*like) != std::string_view::npos;
      if (match) {
        output.push_back("cdr_manager.so                 Asterisk Manager Interface CDR Backend   0          Running              core");
      }
      output.push_back(std::string(match ? "1" : "0") + " modules loaded");
    } else if (const auto what = argument("dialplan show ")) {
      // pbx.c's handle_show_dialplan: `dialplan show <context>` / `<exten>@<context>`. The
      // callback context (and any other the dialplan file has) comes from dialplan_file,
      // the phones from the fixtures' etc/extensions.conf. The recorded forms are
      // `dialplan show 1001@phones`, `version@callback` and `callback`.
      const auto at = what->find('@');
      const std::string context = at == std::string::npos ? *what : what->substr(at + 1);
      const std::string exten = at == std::string::npos ? "" : what->substr(0, at);
      std::filesystem::path file = options.dialplan_file;
      std::string_view file_name = kDialplanName;
      std::vector<std::string> whole;
      if (context == "callback") {
        if (options.callback_dialplan_loaded) whole = impl_.callback_dialplan;
      } else {
        whole = detail::dialplan_show(file, context, {}, file_name);
        if (whole.empty()) {
          file = options.recordings / "etc" / "extensions.conf";
          file_name = "extensions.conf";
          whole = detail::dialplan_show(file, context);
        }
      }
      if (whole.empty()) {
        output.push_back("There is no existence of '" + context + "' context");
        failed();
      } else if (exten.empty()) {
        output = whole;
      } else {
        output = detail::dialplan_show(file, context, exten, file_name);
        if (output.empty()) {
          output.push_back("There is no existence of " + exten + "@" + context + " extension");
          failed();
        }
      }
    } else if (cmd == "core waitfullybooted") {
      // cli.c's handle_waitfullybooted: the fake is up as soon as it listens.
      output.push_back("Asterisk has fully booted.");
    } else if (const auto sound = argument("core show sound ")) {
      // sounds.c's handle_cli_sound_show; the sounds are WAV files, which it calls slin.
      const auto found = options.sounds.find(*sound);
      if (found == options.sounds.end() || found->second.empty()) {
        output.push_back("ERROR: File " + *sound + " not found in index");
        failed();
      } else {
        output.push_back("Indexed Information for " + *sound + ":");
        for (const auto& language : found->second) {
          output.push_back("  Language " + language + ":");
          output.push_back("    Format: slin");
        }
      }
    } else {
      ok = false;
      // Asterisk names the words it got furthest with; here simply the first two.
      std::string best;
      std::size_t words = 0;
      for (std::size_t i = 0; i < cmd.size() && words < 2; ++i) {
        if (cmd[i] == ' ') ++words;
        if (words < 2) best += cmd[i];
      }
      output.push_back("No such command '" + cmd + "' (type 'core show help " + best + "' for other possible commands)");
    }
    std::string out = "Response: ";
    out += ok ? "Success" : "Error";
    out += "\r\n";
    if (m.has("ActionID")) out += "ActionID: " + std::string(m.action_id()) + "\r\n";
    out += "Message: Command output follows\r\n";
    for (const auto& line : output) out += "Output: " + line + "\r\n";
    out += "\r\n";
    send(out);
  }

  void core_show_channels(const ami::MessageView& m) {
    std::string id(m.action_id());
    std::string out = "Response: Success\r\n";
    if (m.has("ActionID")) out += "ActionID: " + id + "\r\n";
    out += "EventList: start\r\nMessage: Channels will follow\r\n\r\n";
    std::size_t items = 0;
    const auto& t = impl_.templates;
    for (const auto& [key, call] : impl_.calls) {
      CallValues values = call->values;
      values.action_id = id;
      const double scale = impl_.options.time_scale;
      const auto real = std::chrono::duration<double>(Clock::now() - call->originated).count();
      values.duration_s = scale > 0 ? static_cast<std::int64_t>(real / scale) : 0;
      // The recording shows the talking state. While a phone rings, Asterisk lists
      // (ami-coreshowchannels-ringing-a/-b): its ;1 Ringing (5), its ;2 Ring (4), and no
      // BridgeId on any channel of the call; a ringing A;1 is still in AppDial2 in [phones]
      // and comes after A;2; a ringing B;1 still shows its Exten.
      const bool a_ringing = call->phase == Phase::kARinging;
      const bool b_ringing = call->phase == Phase::kBRinging;
      std::string a1_entry;
      for (std::size_t i = 0; i < t.core_show_channel.messages.size(); ++i) {
        const int role = t.core_show_channel_roles[i];
        if (!(call->live & detail::role_bit(role))) continue;
        std::string entry;
        detail::render(t.core_show_channel, i, values, entry);
        const bool is_a = role == detail::kA1 || role == detail::kA2;
        if ((a_ringing && is_a) || (b_ringing && !is_a)) {
          const bool half1 = role == detail::kA1 || role == detail::kB1;
          set_header(entry, "ChannelState", half1 ? "5" : "4");
          set_header(entry, "ChannelStateDesc", half1 ? "Ringing" : "Ring");
        }
        set_header(entry, "AccountCode", values.account);
        if (a_ringing || b_ringing) set_header(entry, "BridgeId", "");
        if (b_ringing && role == detail::kB1) set_header(entry, "Exten", values.num_b);  // emptied once B answers
        ++items;
        if (a_ringing && role == detail::kA1) {
          set_header(entry, "Context", "phones");
          set_header(entry, "Exten", values.num_a);
          set_header(entry, "Priority", "1");
          set_header(entry, "Application", "AppDial2");
          set_header(entry, "ApplicationData", "(Outgoing Line)");
          a1_entry = std::move(entry);
          continue;
        }
        out += entry;
      }
      out += a1_entry;
    }
    out += "Event: CoreShowChannelsComplete\r\n";
    if (m.has("ActionID")) out += "ActionID: " + id + "\r\n";
    out += "EventList: Complete\r\nListItems: " + std::to_string(items) + "\r\n\r\n";
    send(out);
  }

  // main/db.c's manager_dbget, manager_dbput and manager_dbdel (ami-db-record.txt).
  void db(const ami::MessageView& m, std::string_view action) {
    const auto family = m.get("Family");
    const auto key = m.get("Key");
    const bool put = ami::iequals(action, "DBPut");
    const std::string stop = put ? "" : ".";  // DBGet's and DBDel's messages end in a full stop
    if (family.empty()) return send(response(m, "Error", "No family specified" + stop));
    if (key.empty()) return send(response(m, "Error", "No key specified" + stop));
    if (put) {
      impl_.db_put(family, key, std::string(m.get("Val")));
      return send(response(m, "Success", "Updated database successfully"));
    }
    if (ami::iequals(action, "DBDel")) {
      return send(impl_.db_del(family, key) ? response(m, "Success", "Key deleted successfully")
                                            : response(m, "Error", "Database entry could not be deleted"));
    }
    const auto value = impl_.db_get(family, key);
    if (!value) return send(response(m, "Error", "Database entry not found"));
    // A list of one: the listack, DBGetResponse (ActionID last), DBGetComplete.
    const std::string id = m.action_id().empty() ? "" : "ActionID: " + std::string(m.action_id()) + "\r\n";
    send("Response: Success\r\n" + id + "EventList: start\r\nMessage: Result will follow\r\n\r\n" +
         "Event: DBGetResponse\r\nFamily: " + std::string(family) + "\r\nKey: " + std::string(key) +
         "\r\nVal: " + *value + "\r\n" + id + "\r\n" +
         "Event: DBGetComplete\r\n" + id + "EventList: Complete\r\nListItems: 1\r\n\r\n");
  }

  void originate(const ami::MessageView& m);
  void hangup(const ami::MessageView& m);
  void agi(const ami::MessageView& m);

 private:
  ServerState& impl_;
  tcp::socket socket_;
  ami::Parser parser_;
  std::array<char, 16384> buffer_{};
  std::string pending_;
  std::string writing_;
  bool writing_active_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
  bool logged_in_ = false;
  bool login_failing_ = false;
  std::uint32_t mask_ = detail::kClassAll;
  std::string challenge_;
  asio::steady_timer login_timer_;
};

// ---------------------------------------------------------------------------------------
// The script of a call whose A answers, by B's number; sets the stretch it needs.
const Script* b_script(const Templates& t, Call& call, PhoneKind b, bool with_id) {
  auto& v = call.values;
  const std::int64_t limit_ms = std::atoll(v.limit.c_str());
  switch (b) {
    case PhoneKind::kStaysUp:
    case PhoneKind::kBench:
      v.delta_ms = limit_ms - t.answered_limit.recorded_stretch_ms;
      return &t.answered_limit;
    case PhoneKind::kHangsUp:
      if (limit_ms < 5000) {
        v.delta_ms = limit_ms - t.answered_limit.recorded_stretch_ms;
        return &t.answered_limit;
      }
      return with_id ? &t.channelid : &t.b_hangs_up;
    case PhoneKind::kBenchHangup:
      call.instant = classify(v.num_a) == PhoneKind::kBench;
      return &t.b_hangs_up;
    case PhoneKind::kBusy: return &t.b_busy;
    case PhoneKind::kNoAnswer:
      v.delta_ms = std::atoll(v.dial_timeout.c_str()) * 1000 - t.b_noanswer.recorded_stretch_ms;
      return &t.b_noanswer;
    case PhoneKind::kCongestion: return &t.b_congestion;
    case PhoneKind::kUnreachable: return &t.b_unreachable;
    case PhoneKind::kUnallocated: return &t.b_unallocated;
    case PhoneKind::kRejected: return &t.b_rejected;
    default: return &t.b_invalid;
  }
}

void Connection::originate(const ami::MessageView& m) {
  const auto channel = m.get("Channel");
  if (channel.empty()) return send(response(m, "Error", "Channel not specified"));
  const bool async = is_true(m.get("Async"));
  auto& impl = impl_;
  const auto key = impl.next_key++;
  auto call = std::make_unique<Call>(impl.io, key);
  call->origin = weak_from_this();
  auto& v = call->values;
  v.action_id = std::string(m.action_id());
  // Local/<A>@phones: the A number; anything else is taken whole (and is invalid).
  const auto slash = channel.find('/');
  const auto at = channel.find('@');
  v.num_a = std::string(slash != std::string_view::npos && at != std::string_view::npos && at > slash
                            ? channel.substr(slash + 1, at - slash - 1)
                            : channel);
  v.num_b = std::string(m.get("Exten"));
  const auto cid = m.get("CallerID");
  if (const auto lt = cid.find('<'), gt = cid.find('>'); lt != std::string_view::npos && gt != std::string_view::npos) {
    v.cid_num = std::string(cid.substr(lt + 1, gt - lt - 1));
    auto name = cid.substr(0, lt);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    v.cid_name = std::string(name);
  } else {
    v.cid_num = std::string(cid);
  }
  for (const auto variable : m.all("Variable")) {
    const auto eq = variable.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(variable.substr(0, eq));
    std::string value(variable.substr(eq + 1));
    if (name == "CB_ID") v.cb_id = value;
    if (name == "CB_LIMIT" && !value.empty()) v.limit = value;
    if (name == "CB_WARN" && !value.empty()) v.warn = value;
    if (name == "CB_DIAL_TIMEOUT" && !value.empty()) v.dial_timeout = value;
    v.variables.emplace_back(std::move(name), std::move(value));
  }
  v.channel_id = std::string(m.get("ChannelId"));
  v.account = std::string(m.get("Account"));
  const std::string other_channel_id(m.get("OtherChannelId"));
  const auto now_epoch = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  v.start_epoch = now_epoch;
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08llx", static_cast<unsigned long long>((key * 2) & 0xffffffffULL));
  v.channel[detail::kA1] = "Local/" + v.num_a + "@phones-" + hex + ";1";
  v.channel[detail::kA2] = "Local/" + v.num_a + "@phones-" + hex + ";2";
  std::snprintf(hex, sizeof hex, "%08llx", static_cast<unsigned long long>((key * 2 + 1) & 0xffffffffULL));
  v.channel[detail::kB1] = "Local/" + v.num_b + "@phones-" + hex + ";1";
  v.channel[detail::kB2] = "Local/" + v.num_b + "@phones-" + hex + ";2";
  for (int r = 0; r < 4; ++r) {
    v.uniqueid[static_cast<std::size_t>(r)] = std::to_string(now_epoch) + "." + std::to_string(key * 4 + static_cast<std::uint64_t>(r));
  }
  if (!v.channel_id.empty()) v.uniqueid[detail::kA1] = v.channel_id;
  if (!other_channel_id.empty()) v.uniqueid[detail::kA2] = other_channel_id;
  {
    const auto r1 = impl.rng();
    const auto r2 = impl.rng();
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "%08llx-%04llx-4%03llx-%04llx-%012llx", static_cast<unsigned long long>(r1 >> 32),
                  static_cast<unsigned long long>((r1 >> 16) & 0xffff), static_cast<unsigned long long>(r1 & 0xfff),
                  static_cast<unsigned long long>(0x8000 | ((r2 >> 48) & 0x3fff)),
                  static_cast<unsigned long long>(r2 & 0xffffffffffffULL));
    v.bridge = uuid;
  }

  // The scenario, by number (extensions.conf [phones]).
  const auto& t = impl.templates;
  const auto a = classify(v.num_a);
  const auto b = classify(v.num_b);
  const bool with_id = !v.channel_id.empty();
  std::int64_t timeout_ms = m.has("Timeout") ? std::atoll(std::string(m.get("Timeout")).c_str()) : 30000;
  if (timeout_ms <= 0) timeout_ms = 30000;
  const Script* script = nullptr;
  bool fails = true;
  switch (a) {
    case PhoneKind::kBusy: script = &t.a_busy; break;
    case PhoneKind::kNoAnswer:
      script = &t.a_noanswer;
      v.delta_ms = timeout_ms - t.a_noanswer.recorded_stretch_ms;
      break;
    case PhoneKind::kCongestion: script = &t.a_congestion; break;
    case PhoneKind::kUnreachable: script = &t.a_unreachable; break;
    case PhoneKind::kUnallocated: script = &t.a_unallocated; break;
    case PhoneKind::kRejected: script = with_id ? &t.a_rejected_channelid : &t.a_rejected; break;
    case PhoneKind::kInvalid: script = &t.a_invalid; break;
    default: fails = false; break;
  }
  const bool ivr = m.get("Context") == "callback-ivr-ami";
  if (ivr && v.num_a.size() == 4 && v.num_a[0] == '7' && a == PhoneKind::kInvalid) {
    fails = false;  // the test phones that key a number once they answer
    script = nullptr;
  }
  if (!script && ivr) {
    // A answers (a 7XXX at once, the others after 1 s of ringing) and waits in Async AGI;
    // B comes with ASYNCAGI BREAK.
    script = v.num_a[0] == '7' ? &t.ivr : &t.ivr_ring;
    call->ivr_hold = true;
  } else if (!script) {
    script = b_script(t, *call, b, with_id);
  }
  impl.set_script(*call, *script, !call->ivr_hold);
  call->originate_fails = fails;
  call->sync = !async;
  call->base = call->originated = Clock::now();

  ++impl.calls_processed;
  impl.calls.emplace(key, call.get());
  if (with_id) impl.by_channel_id.emplace(v.channel_id, key);
  if (!other_channel_id.empty()) impl.by_channel_id.emplace(other_channel_id, key);
  Call& ref = *call;
  impl.owned.emplace(key, std::move(call));
  impl.add_active(1);
  if (async) send(response(m, "Success", "Originate successfully queued"));
  impl.advance(ref);
}

std::int64_t ServerState::offset_us(const Call& call, std::size_t index) const {
  if (call.instant) return 0;
  const Script& s = *call.script;
  const auto& m = s.messages[index];
  std::int64_t at = s.tail ? m.at_us - s.pivot_us
                           : m.at_us + (s.stretchable && m.after_pivot ? call.values.delta_ms * 1000 : 0);
  return std::max<std::int64_t>(at, 0);
}

void ServerState::set_script(Call& call, const Script& script, bool interleave) {
  call.script = &script;
  call.next = 0;
  call.phase_index = -1;
  call.resume_from = 0;
  call.order.clear();
  if (options.interleave_window_ms <= 0 || !interleave) return;
  // A random merge of the streams (tests/fakes/asterisk/call_script.hpp): at each step,
  // any stream whose next message is due within the window of the earliest unsent one.
  std::map<int, std::deque<std::uint16_t>> streams;
  for (std::size_t i = 0; i < script.messages.size(); ++i) {
    const int stream = script.messages[i].stream;
    streams[stream == detail::kStreamFree ? 1000 + static_cast<int>(i) : stream].push_back(static_cast<std::uint16_t>(i));
  }
  const std::int64_t window_us = options.interleave_window_ms * 1000;
  std::vector<std::deque<std::uint16_t>*> due;
  call.order.reserve(script.messages.size());
  while (call.order.size() < script.messages.size()) {
    std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
    for (auto& [key, queue] : streams) {
      if (!queue.empty()) earliest = std::min(earliest, offset_us(call, queue.front()));
    }
    due.clear();
    for (auto& [key, queue] : streams) {
      if (!queue.empty() && offset_us(call, queue.front()) <= earliest + window_us) due.push_back(&queue);
    }
    auto& pick = *due[std::uniform_int_distribution<std::size_t>(0, due.size() - 1)(rng)];
    call.order.push_back(pick.front());
    pick.pop_front();
  }
}

void ServerState::advance(Call& call) {
  const double scale = options.time_scale;
  const auto now = Clock::now();
  const Script& s = *call.script;
  std::vector<Connection*> touched;
  auto flush_touched = [&] {
    for (auto* c : touched) c->flush();
  };
  while (call.next < s.messages.size()) {
    const std::size_t index = call.order.empty() ? call.next : call.order[call.next];
    if (index < call.resume_from ||
        (call.resume_from > 0 && s.messages[index].kind == MessageKind::kOriginateResponse)) {
      ++call.next;  // sent before A went into the IVR
      continue;
    }
    const auto offset = std::max(offset_us(call, index), call.last_offset_us);
    if (scale > 0) {
      const auto due = call.base + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double, std::micro>(static_cast<double>(offset) * scale));
      if (due > now) {
        call.timer.expires_at(due);
        call.timer.async_wait([this, key = call.key](boost::system::error_code ec) {
          if (ec) return;
          const auto it = owned.find(key);
          if (it != owned.end()) advance(*it->second);
        });
        flush_touched();
        return;
      }
    }
    call.last_offset_us = offset;
    const auto& message = s.messages[index];
    if (message.kind == MessageKind::kCallbackResult) record_result(call, index);
    if (message.kind == MessageKind::kOriginateResponse && call.sync) {
      // Without Async the Originate's only answer is this late response (ami-originate-sync-a-busy).
      if (auto origin = call.origin.lock()) {
        std::string& out = origin->out();
        out += "Response: ";
        out += call.originate_fails ? "Error" : "Success";
        out += "\r\n";
        if (!call.values.action_id.empty()) out += "ActionID: " + call.values.action_id + "\r\n";
        out += call.originate_fails ? "Message: Originate failed\r\n\r\n" : "Message: Originate successfully queued\r\n\r\n";
        touched.push_back(origin.get());
      }
    } else if (message.event_class == detail::kClassCdr && !options.cdr_manager_enabled) {
      // cdr_manager.conf enabled = no: no Cdr event at all (only Cdr events have class cdr).
    } else {
      // Rendered once, sent to every logged-in connection that takes this class.
      rendered.clear();
      for (const auto& c : connections) {
        if (!c->logged_in() || !(message.event_class == detail::kClassNone || (message.event_class & c->mask()))) continue;
        if (rendered.empty()) detail::render(s, index, call.values, rendered);
        c->out() += rendered;
        if (std::find(touched.begin(), touched.end(), c.get()) == touched.end()) touched.push_back(c.get());
      }
    }
    call.live = static_cast<std::uint8_t>((call.live | message.creates) & ~message.hangs_up);
    if (static_cast<std::int64_t>(index) > call.phase_index) {
      call.phase_index = static_cast<std::int64_t>(index);
      call.phase = message.phase_after;
    }
    ++call.next;
    if (call.hangup_pending && (call.phase == Phase::kBRinging || call.phase == Phase::kBridged)) {
      call.hangup_pending = false;
      flush_touched();
      start_tail(call);
      return;
    }
    if (call.ivr_hold && ((call.script == &templates.ivr && index == templates.ivr_hold) ||
                          (call.script == &templates.ivr_ring && index == templates.ivr_ring_hold))) {
      flush_touched();
      hold_ivr(call);
      return;
    }
  }
  flush_touched();
  // The call is over: every channel has had its Hangup.
  const auto key = call.key;
  calls.erase(key);
  if (!call.values.channel_id.empty()) {
    by_channel_id.erase(call.values.uniqueid[detail::kA1]);
    by_channel_id.erase(call.values.uniqueid[detail::kA2]);
  }
  owned.erase(key);  // destroys `call`
  add_active(-1);
}

// The dialplan's Set(DB(callback/${CB_ID})=...) right after its UserEvent CallbackResult
// (examples/asterisk/extensions.conf), from the values that UserEvent carries; written
// whether or not any client is connected. Without a CB_ID the real Set() fails: no entry.
void ServerState::record_result(const Call& call, std::size_t index) {
  if (call.values.cb_id.empty()) return;
  std::string event;
  detail::render(*call.script, index, call.values, event);
  const bool h = header_of(event, "Where") == "h";
  std::string value = header_of(event, "DialStatus") + "|" + header_of(event, "HangupCause") + "|" +
                      header_of(event, "AnsweredTime") + "|";
  if (!h) value += call.script == &templates.answered_limit ? "1" : "0";
  value += h ? "|h" : "|end";
  db_put("callback", call.values.cb_id, std::move(value));
}

void ServerState::drop_all_calls() {
  const auto count = owned.size();
  for (auto& [key, call] : owned) call->timer.cancel();
  owned.clear();
  calls.clear();
  by_channel_id.clear();
  if (count) add_active(-static_cast<long>(count));
  for (auto& [channel, line] : inbound) {
    line->command_timer.cancel();
    line->dtmf_timer.cancel();
  }
  inbound.clear();
}

void ServerState::start_tail(Call& call) {
  const auto& t = templates;
  const Script* tail = nullptr;
  switch (call.phase) {
    case Phase::kARinging:
      tail = &t.tail_a_ringing;
      call.originate_fails = true;
      break;
    case Phase::kBRinging: tail = &t.tail_b_ringing; break;
    case Phase::kBridged: tail = &t.tail_bridged; break;
    default: break;
  }
  if (!tail) {
    call.hangup_pending = call.phase == Phase::kAUp;
    advance(call);
    return;
  }
  call.timer.cancel();
  const double scale = options.time_scale;
  const auto now = Clock::now();
  // Times in the tail (CDR durations, ANSWEREDTIME) follow how long the call really lasted.
  const std::int64_t elapsed_ms =
      scale > 0 ? static_cast<std::int64_t>(std::chrono::duration<double, std::milli>(now - call.originated).count() / scale)
                : tail->pivot_us / 1000;
  call.values.delta_ms = elapsed_ms - tail->pivot_us / 1000;
  set_script(call, *tail);
  call.base = now;
  call.last_offset_us = 0;
  advance(call);
}

void Connection::hangup(const ami::MessageView& m) {
  const std::string channel(m.get("Channel"));
  if (impl_.inbound.count(channel) != 0) {
    send(response(m, "Success", "Channel Hungup"));
    const auto cause = std::atoi(std::string(m.get("Cause")).c_str());
    return impl_.end_inbound(channel, cause > 0 && cause <= 127 ? cause : 16);
  }
  Call* call = nullptr;
  int role = -1;
  auto find_key = [&](std::uint64_t key) -> Call* {
    const auto it = impl_.calls.find(key);
    return it == impl_.calls.end() ? nullptr : it->second;
  };
  // Local/<num>@phones-<counter>;<half>: counter = key*2 (A) or key*2+1 (B).
  if (const auto dash = channel.rfind("@phones-"); dash != std::string::npos && channel.size() == dash + 8 + 8 + 2) {
    const auto counter = std::strtoull(channel.substr(dash + 8, 8).c_str(), nullptr, 16);
    call = find_key(counter / 2);
    role = static_cast<int>((counter % 2) * 2 + (channel.back() == '2' ? 1 : 0));
    if (call && call->values.channel[static_cast<std::size_t>(role)] != channel) call = nullptr;
  } else if (const auto it = impl_.by_channel_id.find(channel); it != impl_.by_channel_id.end()) {
    call = find_key(it->second);
    role = call && call->values.uniqueid[detail::kA2] == channel ? detail::kA2 : detail::kA1;
  } else if (const auto dot = channel.find('.'); dot != std::string::npos) {
    const auto seq = std::strtoull(channel.c_str() + dot + 1, nullptr, 10);
    call = find_key(seq / 4);
    role = static_cast<int>(seq % 4);
    if (call && call->values.uniqueid[static_cast<std::size_t>(role)] != channel) call = nullptr;
  }
  if (!call || !(call->live & detail::role_bit(role))) return send(response(m, "Error", "No such channel"));
  send(response(m, "Success", "Channel Hungup"));
  if (call->ivr_hold && impl_.inbound.count(call->values.channel[detail::kA1]) != 0) {
    return impl_.end_inbound(call->values.channel[detail::kA1], 16);
  }
  // Already being hung up (a Hangup for A and then for B): the tail under way covers it.
  if (call->script->tail || call->hangup_pending) return;
  impl_.start_tail(*call);
}

// --- inbound calls (Async AGI) -------------------------------------------------------------
// As ami-inbound-asyncagi / ami-inbound-reject show them (inbound_script.hpp). Approximated:
// a command starts at once (Asterisk polls its queue, ~100 ms), DTMFBegin and DTMFEnd of a
// key come together, STREAM FILE of a sound not in `sounds` answers `result=-1 endpos=0`
// and ends the AGI, after which the dialplan hangs up (ami-inbound-missing-prompt),
// SAY NUMBER takes 0.9 s, SET VARIABLE answers result=1, any other command 510.

namespace {

std::string cdr_time(std::int64_t epoch) {
  if (epoch == 0) return {};
  const std::time_t at = static_cast<std::time_t>(epoch);
  std::tm tm{};
  gmtime_r(&at, &tm);
  char buffer[32];
  const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buffer, n);
}

std::string cause_txt(int cause) {
  switch (cause) {
    case 16: return "Normal Clearing";
    case 17: return "User busy";
    case 19: return "User alerting, no answer";
    case 21: return "Call Rejected";
    case 34: return "Circuit/channel congestion";
    case 38: return "Network out of order";
    default: return "Unknown";
  }
}

std::int64_t epoch_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// `"0123456789#*"` or `0123456789` -> the digits; `""` -> none.
std::string unquote(std::string_view word) {
  if (word.size() >= 2 && word.front() == '"' && word.back() == '"') word = word.substr(1, word.size() - 2);
  return std::string(word);
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto start = text.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    text.remove_prefix(start);
    const auto end = std::min(text.find(' '), text.size());
    out.push_back(text.substr(0, end));
    text.remove_prefix(end);
  }
  return out;
}

}  // namespace

void ServerState::broadcast(const std::string& message) {
  const auto privilege = header_of(message, "Privilege");
  const auto cls = detail::event_class_bit(privilege.substr(0, privilege.find(',')));
  if (cls == detail::kClassCdr && !options.cdr_manager_enabled) return;
  for (const auto& c : connections) {
    if (!c->logged_in() || !(cls == detail::kClassNone || (cls & c->mask()))) continue;
    c->out() += message;
    c->flush();
  }
}

std::string ServerState::inbound_message(const InboundLine& line, std::string_view text) {
  return detail::InboundScript::render(text, line.values);
}

std::string ServerState::start_inbound(const AmiInboundCallOptions& call) {
  auto line = std::make_unique<InboundLine>(io);
  const auto key = next_key++;
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08llx", static_cast<unsigned long long>((key * 2) & 0xffffffffULL));
  line->start_epoch = epoch_now();
  line->started = Clock::now();
  line->values = {.exten = call.to, .counter = hex,
                  .uniqueid1 = std::to_string(line->start_epoch) + "." + std::to_string(key * 4),
                  .uniqueid2 = std::to_string(line->start_epoch) + "." + std::to_string(key * 4 + 1),
                  .cid_num = call.from, .cid_name = call.name};
  line->channel = "Local/" + call.to + "@callback-access-ami-" + hex + ";2";
  line->dtmf = call.dtmf;
  line->dtmf_delay_ms = call.dtmf_delay_ms;
  line->dtmf_interval_ms = call.dtmf_interval_ms;
  line->hangup_after_ms = call.hangup_after_ms;
  for (const auto& m : inbound_script.start) broadcast(inbound_message(*line, m));
  const std::string channel = line->channel;
  inbound.emplace(channel, std::move(line));
  return channel;
}

void Connection::agi(const ami::MessageView& m) {
  const std::string channel(m.get("Channel"));
  const std::string command(m.get("Command"));
  if (channel.empty() || command.empty()) return send(response(m, "Error", "Both, Channel and Command are *required*"));
  const auto it = impl_.inbound.find(channel);
  if (it == impl_.inbound.end()) return send(response(m, "Error", "Channel " + channel + " does not exist."));
  send(response(m, "Success", "Added AGI command to queue"));
  InboundLine::Command c{.text = command, .id = std::string(m.get("CommandID")), .escape = {}, .any_digit = false,
                         .agi_number = static_cast<std::uint32_t>(impl_.rng() % 2'000'000'000U)};
  it->second->queue.push_back(std::move(c));
  if (!it->second->running) impl_.agi_next(*it->second);
}

void ServerState::agi_next(InboundLine& line) {
  if (line.running || line.queue.empty()) return;
  line.running = std::move(line.queue.front());
  line.queue.pop_front();
  auto& c = *line.running;
  line.command_started = Clock::now();
  const auto w = words(c.text);
  const std::string verb = w.empty() ? std::string() : std::string(w[0]);
  auto exec_start = [&](const std::string& templ) {
    std::string out = agi_event(line, Templates::kExecStart, templ);
    set_header(out, "CommandId", std::to_string(c.agi_number));
    set_header(out, "Command", c.text);
    if (!line.up) {
      set_header(out, "ChannelState", "4");
      set_header(out, "ChannelStateDesc", "Ring");
    }
    broadcast(out);
  };
  auto after = [&](double seconds, std::string result) { command_after(line, seconds, std::move(result)); };
  if (verb == "ANSWER" && w.size() == 1) {
    // The recorded ANSWER: AGIExecStart, the Newstates (;2 then ;1), DialEnd, the device
    // states at once; AGIExecEnd and AsyncAGIExec 0.5 s later.
    if (line.up) {
      exec_start(inbound_script.exec_start);
      return after(0, "200 result=0\n");
    }
    for (const auto& m : inbound_script.answer) {
      if (m.starts_with("Event: AGIExecEnd")) break;
      std::string out = inbound_message(line, m);
      if (m.starts_with("Event: AGIExecStart")) set_header(out, "CommandId", std::to_string(c.agi_number));
      broadcast(out);
    }
    line.up = true;
    line.answer_epoch = epoch_now();
    start_keys(line);
    return after(0.5, "200 result=0\n");
  }
  exec_start(inbound_script.exec_start);
  if (verb == "STREAM" && w.size() >= 3 && w[1] == "FILE") {
    c.escape = w.size() >= 4 ? unquote(w[3]) : std::string();
    const std::string name(w[2]);
    const auto sound = options.sounds.find(name);
    const bool installed = sound != options.sounds.end() &&
                           std::find(sound->second.begin(), sound->second.end(), line.language) != sound->second.end();
    if (!installed) {  // res_agi's handle_streamfile: RESULT_FAILURE, which ends the Async AGI
      c.fails = true;
      return after(0, "200 result=-1 endpos=0\n");
    }
    return after(options.sound_seconds, "200 result=0 endpos=" +
                                            std::to_string(static_cast<std::int64_t>(options.sound_seconds * 8000)) + "\n");
  }
  if (verb == "GET" && w.size() >= 3 && w[1] == "DATA") {
    // app.c's ast_app_getdata: the prompt (any key cuts it), then ast_readstring with the
    // timeout before each key (res_agi's default 6 s when none is given) and `#` as the end.
    c.get_data = true;
    c.digit_timeout_ms = w.size() >= 4 ? std::atoll(std::string(w[3]).c_str()) : 0;
    if (c.digit_timeout_ms <= 0) c.digit_timeout_ms = 6000;
    c.max_digits = w.size() >= 5 ? static_cast<std::size_t>(std::atoll(std::string(w[4]).c_str())) : 1024;
    if (c.max_digits == 0) c.max_digits = 1024;
    const auto sound = options.sounds.find(std::string(w[2]));
    const bool installed = sound != options.sounds.end() &&
                           std::find(sound->second.begin(), sound->second.end(), line.language) != sound->second.end();
    const double prompt = installed ? options.sound_seconds : 0.0;
    return after(prompt + static_cast<double>(c.digit_timeout_ms) / 1000.0, {});
  }
  if (verb == "WAIT" && w.size() == 4 && w[1] == "FOR" && w[2] == "DIGIT") {
    c.any_digit = true;
    const auto ms = std::atoll(std::string(w[3]).c_str());
    if (ms < 0) return;  // until a key
    return after(static_cast<double>(ms) / 1000.0, "200 result=0\n");
  }
  if (verb == "SAY" && w.size() >= 3 && w[1] == "NUMBER") {
    c.escape = w.size() >= 4 ? unquote(w[3]) : std::string();
    return after(0.9, "200 result=0\n");
  }
  if (verb == "SET" && w.size() >= 4 && w[1] == "VARIABLE") {
    const auto value = unquote(std::string_view(w[3].data(), static_cast<std::size_t>(c.text.data() + c.text.size() - w[3].data())));
    if (w[2] == "CHANNEL(language)") line.language = value;
    line.variables[std::string(w[2])] = value;
    return after(0, "200 result=1\n");
  }
  if (line.ivr_call != 0 && verb == "ASYNCAGI" && w.size() == 2 && w[1] == "BREAK") {
    c.breaks = true;
    return after(0, "200 result=0\n");
  }
  after(0, "510 Invalid or unknown command\n");
}

void ServerState::command_after(InboundLine& line, double seconds, std::string result) {
  line.command_timer.expires_after(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(seconds * options.time_scale)));
  line.command_timer.async_wait([this, channel = line.channel, result = std::move(result)](boost::system::error_code ec) {
    if (ec) return;
    const auto it = inbound.find(channel);
    if (it == inbound.end() || !it->second->running) return;
    // GET DATA's timeout: what came so far.
    const auto& c = *it->second->running;
    agi_finish(*it->second, c.get_data && result.empty() ? "200 result=" + c.collected + " (timeout)\n" : result);
  });
}

void ServerState::agi_finish(InboundLine& line, const std::string& result) {
  if (!line.running) return;
  line.command_timer.cancel();
  const auto c = std::move(*line.running);
  line.running.reset();
  std::string end = agi_event(line, Templates::kExecEnd, inbound_script.exec_end);
  set_header(end, "CommandId", std::to_string(c.agi_number));
  set_header(end, "Command", c.text);
  const auto code = result.substr(0, 3);
  set_header(end, "ResultCode", c.fails ? "-1" : code);  // RESULT_FAILURE (ami-inbound-missing-prompt)
  if (c.fails) {
    set_header(end, "Result", "Failure");
  } else if (code != "200") {
    set_header(end, "Result", "Usage");
  }
  std::string exec = agi_event(line, Templates::kAsyncExec, inbound_script.async_exec);
  set_header(exec, "Result", detail::agi_url_encode(result));
  if (c.id.empty()) {
    const auto at = exec.find("CommandId: ");
    exec.erase(at, exec.find("\r\n", at) + 2 - at);
  } else {
    set_header(exec, "CommandId", c.id);
  }
  if (!line.up) {
    for (auto* m : {&end, &exec}) {
      set_header(*m, "ChannelState", "4");
      set_header(*m, "ChannelStateDesc", "Ring");
    }
  }
  broadcast(end);
  broadcast(exec);
  if (c.fails) {
    // ami-inbound-missing-prompt: AsyncAGIEnd, then the dialplan's next priority, Hangup().
    return end_inbound(line.channel, 16, &inbound_script.failed_end);
  }
  if (c.breaks) return release_ivr(line.channel);
  agi_next(line);
}

// The caller presses its next key: DTMFBegin, DTMFEnd; a command waiting for it ends.
void ServerState::inbound_digit(InboundLine& line) {
  if (line.next_digit >= line.dtmf.size()) return;
  const char digit = line.dtmf[line.next_digit++];
  for (const auto* templ : {&inbound_script.dtmf_begin, &inbound_script.dtmf_end}) {
    std::string out = agi_event(line, templ == &inbound_script.dtmf_begin ? Templates::kDtmfBegin : Templates::kDtmfEnd,
                                *templ);
    set_header(out, "Digit", std::string(1, digit));
    broadcast(out);
  }
  if (line.running && line.running->get_data) {
    auto& c = *line.running;
    if (digit != '#') c.collected.push_back(digit);
    if (digit == '#' || c.collected.size() >= c.max_digits) {
      agi_finish(line, "200 result=" + c.collected + "\n");
    } else {
      command_after(line, static_cast<double>(c.digit_timeout_ms) / 1000.0, {});
    }
  } else if (line.running && (line.running->any_digit || line.running->escape.find(digit) != std::string::npos)) {
    std::string result = "200 result=" + std::to_string(static_cast<int>(digit));
    if (!line.running->any_digit) {
      const auto played = std::chrono::duration<double>(Clock::now() - line.command_started).count() /
                          (options.time_scale > 0 ? options.time_scale : 1.0);
      result += " endpos=" + std::to_string(static_cast<std::int64_t>(played * 8000));
    }
    agi_finish(line, result + "\n");
  }
  if (line.next_digit >= line.dtmf.size()) return caller_hangs_up_later(line);
  key_after(line, line.dtmf_interval_ms);
}

// The caller's next key in `ms` (scaled).
void ServerState::key_after(InboundLine& line, std::int64_t ms) {
  line.dtmf_timer.expires_after(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(static_cast<double>(ms) * options.time_scale)));
  line.dtmf_timer.async_wait([this, channel = line.channel](boost::system::error_code ec) {
    if (ec) return;
    const auto it = inbound.find(channel);
    if (it != inbound.end()) inbound_digit(*it->second);
  });
}

// The caller's own hang-up, hangup_after_ms after its last key (the dtmf timer is free then).
void ServerState::caller_hangs_up_later(InboundLine& line) {
  if (line.hangup_after_ms < 0) return;
  line.dtmf_timer.expires_after(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(static_cast<double>(line.hangup_after_ms) * options.time_scale)));
  line.dtmf_timer.async_wait([this, channel = line.channel](boost::system::error_code ec) {
    if (!ec) end_inbound(channel, 16);
  });
}

// A Hangup action on the ;2 half: the recorded end of an answered call (its Cause 16) or
// of a ringing one (the reject, its Cause 17), with this cause; the caller gets it.
void ServerState::end_inbound(const std::string& channel, int cause, const std::vector<std::string>* script) {
  const auto it = inbound.find(channel);
  if (it == inbound.end()) return;
  auto line = std::move(it->second);
  inbound.erase(it);
  line->command_timer.cancel();
  line->dtmf_timer.cancel();
  if (line->ivr_call != 0) return end_held(line->ivr_call);  // the recorded Cause 16, whatever `cause`
  const auto now = epoch_now();
  const double scale = options.time_scale > 0 ? options.time_scale : 1.0;
  const auto lasted = [&](Clock::time_point since) {
    return static_cast<std::int64_t>(std::chrono::duration<double>(Clock::now() - since).count() / scale);
  };
  const auto duration = lasted(line->started);
  if (script == nullptr) script = line->up ? &inbound_script.hangup_up : &inbound_script.hangup_ring;
  for (const auto& m : *script) {
    std::string out = inbound_message(*line, m);
    if (m.starts_with("Event: Hangup\r") || m.starts_with("Event: HangupRequest\r")) {
      set_header(out, "Cause", std::to_string(cause));
      set_header(out, "Cause-txt", cause_txt(cause));
    }
    if (m.starts_with("Event: Cdr\r")) {
      set_header(out, "StartTime", cdr_time(line->start_epoch));
      set_header(out, "EndTime", cdr_time(now));
      set_header(out, "Duration", std::to_string(duration));
      if (line->up) {
        set_header(out, "AnswerTime", cdr_time(line->answer_epoch));
        set_header(out, "BillableSeconds", std::to_string(std::max<std::int64_t>(0, now - line->answer_epoch)));
      } else {
        set_header(out, "Disposition", cause == 17 ? "BUSY" : cause == 34 ? "CONGESTION" : "NO ANSWER");
      }
    }
    broadcast(out);
  }
  {
    std::lock_guard lock(mutex);
    inbound_ends[channel] = InboundEnd{.answered = line->up, .cause = cause};
  }
  changed.notify_all();
}

// ---------------------------------------------------------------------------------------
// An inbound line's AGI event from its template; an IVR line's from ami-outbound-ivr's,
// with its call's values.
std::string ServerState::agi_event(const InboundLine& line, std::uint8_t which, const std::string& inbound_template) {
  if (line.ivr_call == 0) return inbound_message(line, inbound_template);
  std::string out;
  if (const auto it = owned.find(line.ivr_call); it != owned.end()) {
    detail::render(templates.ivr_agi, which, it->second->values, out);
  }
  return out;
}

// The caller's keys start dtmf_delay_ms after now; without keys, its own hang-up may follow.
void ServerState::start_keys(InboundLine& line) {
  if (line.dtmf.empty()) return caller_hangs_up_later(line);
  key_after(line, line.dtmf_delay_ms);
}

// A answered an Originate into [callback-ivr-ami] and its ;1 half now waits in Async AGI.
void ServerState::hold_ivr(Call& call) {
  auto line = std::make_unique<InboundLine>(io);
  const auto& v = call.values;
  line->channel = v.channel[detail::kA1];
  line->ivr_call = call.key;
  line->up = true;
  line->started = call.originated;
  line->start_epoch = v.start_epoch;
  line->answer_epoch = epoch_now();
  for (const auto& [name, value] : v.variables) {
    if (name == "CHANNEL(language)") line->language = value;
  }
  if (const auto keys = options.phone_dtmf.find(v.num_a); keys != options.phone_dtmf.end()) {
    line->dtmf = keys->second;
  } else if (v.num_a.size() == 4 && v.num_a[0] == '7') {
    line->dtmf = "2" + v.num_a.substr(1) + "#";  // the real test phones (ami-outbound-ivr: 7005 keys 2005#)
  }
  line->dtmf_delay_ms = 1200;
  line->dtmf_interval_ms = 350;
  line->hangup_after_ms = -1;
  auto& ref = *line;
  inbound[line->channel] = std::move(line);
  start_keys(ref);
}

// ASYNCAGI BREAK: AsyncAGIEnd, then [callback-ivr-ami] goes to [callback] with CB_B (an
// empty CB_B: Hangup(16)). The rest of the call is the recording's after the BREAK for a
// 2XXX B, otherwise B's own recording from where A;1 enters [callback].
void ServerState::release_ivr(const std::string& channel) {
  const auto it = inbound.find(channel);
  if (it == inbound.end()) return;
  auto line = std::move(it->second);
  inbound.erase(it);
  line->command_timer.cancel();
  line->dtmf_timer.cancel();
  const auto found = owned.find(line->ivr_call);
  if (found == owned.end()) return;
  Call& call = *found->second;
  auto& v = call.values;
  std::string end;
  detail::render(templates.ivr_agi, Templates::kAsyncEnd, v, end);
  broadcast(end);
  call.ivr_hold = false;
  for (const auto& [name, value] : line->variables) {
    if (name == "CB_B" && !value.empty()) v.num_b = value;
    if (name == "CB_LIMIT" && !value.empty()) v.limit = value;
    if (name == "CB_WARN" && !value.empty()) v.warn = value;
    if (name == "CB_DIAL_TIMEOUT" && !value.empty()) v.dial_timeout = value;
  }
  if (line->variables["CB_B"].empty()) return end_held(call.key);  // [callback-ivr-ami] nob: Hangup(16)
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08llx", static_cast<unsigned long long>((call.key * 2 + 1) & 0xffffffffULL));
  v.channel[detail::kB1] = "Local/" + v.num_b + "@phones-" + hex + ";1";
  v.channel[detail::kB2] = "Local/" + v.num_b + "@phones-" + hex + ";2";
  const double scale = options.time_scale;
  const auto now = Clock::now();
  const auto elapsed_ms = scale > 0 ? static_cast<std::int64_t>(
                                          std::chrono::duration<double, std::milli>(now - call.originated).count() / scale)
                                    : templates.ivr.pivot_us / 1000;
  const auto b = classify(v.num_b);
  const Script* script = nullptr;
  std::size_t from = 0;
  if (b == PhoneKind::kHangsUp && std::atoll(v.limit.c_str()) >= 5000) {
    script = &templates.ivr;
    from = templates.ivr_hold + 1;
    v.delta_ms = elapsed_ms - templates.ivr.pivot_us / 1000;  // the wait after AsyncAGIStart lasted this long
  } else {
    script = b_script(templates, call, b, !v.channel_id.empty());
    from = templates.resume_at.at(script);
  }
  set_script(call, *script);
  call.resume_from = from;
  call.phase_index = static_cast<std::int64_t>(from) - 1;
  call.phase = Phase::kAUp;
  call.last_offset_us = 0;
  if (script == &templates.ivr) {
    call.base = call.originated;
  } else {
    call.base = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::micro>(
                          static_cast<double>(offset_us(call, from)) * scale));
  }
  advance(call);
}

// A ends while it waits in [callback-ivr-ami] (a Hangup action, a failed prompt, no B).
void ServerState::end_held(std::uint64_t key) {
  const auto found = owned.find(key);
  if (found == owned.end()) return;
  Call& call = *found->second;
  if (const auto it = inbound.find(call.values.channel[detail::kA1]); it != inbound.end()) {
    it->second->command_timer.cancel();
    it->second->dtmf_timer.cancel();
    inbound.erase(it);
  }
  call.ivr_hold = false;
  call.timer.cancel();
  const double scale = options.time_scale;
  const auto now = Clock::now();
  const auto& tail = templates.ivr_end;
  const std::int64_t elapsed_ms =
      scale > 0 ? static_cast<std::int64_t>(std::chrono::duration<double, std::milli>(now - call.originated).count() / scale)
                : tail.pivot_us / 1000;
  call.values.delta_ms = elapsed_ms - tail.pivot_us / 1000;
  set_script(call, tail);
  call.base = now;
  call.last_offset_us = 0;
  advance(call);
}

void ServerState::open_acceptor() {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  try {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
  } catch (...) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    throw;
  }
  port = acceptor.local_endpoint().port();
}

void ServerState::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;  // closed (set_accepting(false) or stop)
    socket.set_option(tcp::no_delay(true));
    auto connection = std::make_shared<Connection>(*this, std::move(socket));
    connections.insert(connection);
    connection->start();
    accept();
  });
}

struct FakeAsterisk::Impl : ServerState {
  using ServerState::ServerState;
};

std::map<std::string, std::vector<std::string>> default_sounds() {
  std::map<std::string, std::vector<std::string>> sounds;
  for (const char* name : {"callback-please-wait", "callback-time-up", "callback-partner-hangup",
                           "callback-partner-busy", "callback-partner-away", "callback-system-busy",
                           "callback-call-failed", "callback-enter-number"}) {
    sounds[name] = {"en", "zh"};
  }
  // The time-left warning's core prompts: Debian's English ones and the project's Chinese.
  for (const char* name : {"vm-youhave", "queue-seconds", "queue-minutes", "digits/10"}) sounds[name] = {"en", "zh"};
  return sounds;
}

FakeAsterisk::FakeAsterisk(FakeAsteriskOptions options) {
  if (options.recordings.empty()) options.recordings = CALLBACK_ASTERISK_RECORDINGS;
  if (options.dialplan_file.empty()) options.dialplan_file = CALLBACK_ASTERISK_DIALPLAN;
  port_ = options.port;
  impl_ = std::make_unique<Impl>(std::move(options));
  impl_->port = port_;
}

FakeAsterisk::~FakeAsterisk() { stop(); }

void FakeAsterisk::start() {
  if (impl_->thread.joinable()) return;
  impl_->open_acceptor();
  port_ = impl_->port;
  impl_->accept();
  impl_->work.emplace(impl_->io.get_executor());
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void FakeAsterisk::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->run_sync([this] {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    auto connections = impl_->connections;
    for (const auto& c : connections) c->close();
    impl_->drop_all_calls();
  });
  impl_->work.reset();  // everything is closed: run() returns once the aborted handlers ran
  impl_->thread.join();
}

std::size_t FakeAsterisk::connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->logged_in;
}

std::size_t FakeAsterisk::active_calls() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->active;
}

std::vector<std::string> FakeAsterisk::actions() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->actions;
}

std::optional<std::string> FakeAsterisk::db_get(const std::string& family, const std::string& key) const {
  return impl_->db_get(family, key);
}

void FakeAsterisk::db_put(const std::string& family, const std::string& key, const std::string& value) {
  impl_->db_put(family, key, value);
}

bool FakeAsterisk::wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->logged_in == n; });
}

bool FakeAsterisk::wait_for_active_calls(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->active == n; });
}

void FakeAsterisk::close_all_connections() {
  impl_->run_sync([this] {
    auto connections = impl_->connections;
    for (const auto& c : connections) c->close();
    impl_->drop_all_calls();  // Asterisk died: its calls are gone
  });
}

void FakeAsterisk::send_raw_to_all(std::string bytes) {
  impl_->run_sync([this, &bytes] {
    for (const auto& c : impl_->connections) c->send(bytes);
  });
}

void FakeAsterisk::set_answering_pings(bool answering) {
  impl_->run_sync([this, answering] { impl_->answering_pings = answering; });
}

std::string FakeAsterisk::inbound(const AmiInboundCallOptions& call) {
  std::string channel;
  impl_->run_sync([&] { channel = impl_->start_inbound(call); });
  return channel;
}

std::optional<InboundEnd> FakeAsterisk::inbound_end(const std::string& channel) const {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->inbound_ends.find(channel);
  if (it == impl_->inbound_ends.end()) return std::nullopt;
  return it->second;
}

bool FakeAsterisk::wait_for_inbound_end(const std::string& channel, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->inbound_ends.count(channel) != 0; });
}

void FakeAsterisk::set_accepting(bool accepting) {
  impl_->run_sync([this, accepting] {
    if (accepting == impl_->accepting) return;
    if (!accepting) {
      impl_->accepting = false;
      boost::system::error_code ignored;
      impl_->acceptor.close(ignored);
    } else {
      impl_->open_acceptor();  // the same port again; throws if it is taken meanwhile
      impl_->accepting = true;
      impl_->accept();
    }
  });
}

}  // namespace callback::fake
