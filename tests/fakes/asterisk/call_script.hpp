#pragma once
// Private to the Asterisk fake: recorded call transcripts compiled into templates.
//
// A recording (tests/fixtures/asterisk/ami-originate-*.txt with its .timeline.jsonl) is
// cut to the messages that follow the Originate's "queued" response, and every message
// is compiled once into literal segments and slots (channel names, Uniqueids, the
// Originate's ActionID, CB_ID, the A and B numbers, the caller ID, the bridge id, CDR
// times, CB_LIMIT/CB_WARN/CB_DIAL_TIMEOUT and the time values that stretch with them).
// Rendering a call appends the segments with that call's values: no parsing, no regex.
//
//   auto script = compile_recording(dir, "ami-originate-b-busy");
//   CallValues values = ...;  // from the client's Originate
//   for (std::size_t i = 0; i < script.messages.size(); ++i) render(script, i, values, out);
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callback::fake::detail {

// The four channels of a callback: A;1 (originated), A;2, B;1 (dialled by Dial()), B;2.
enum Role : std::uint8_t { kA1 = 0, kA2 = 1, kB1 = 2, kB2 = 3 };
inline constexpr std::uint8_t role_bit(int role) { return static_cast<std::uint8_t>(1U << role); }

enum class Slot : std::uint8_t {
  kLiteral,
  kChannel,       // role: Local/<num>@phones-<counter>;<half>
  kUniqueid,      // role
  kActionId,      // the Originate's ActionID (or the CoreShowChannels ActionID)
  kCbId,          // CB_ID
  kNumA,
  kNumB,
  kCidNum,        // CallerID number of the Originate
  kCidName,       // CallerID name of the Originate
  kBridge,        // bridge UUID
  kLimit,         // effective CB_LIMIT
  kWarn,          // effective CB_WARN
  kDialTimeout,   // effective CB_DIAL_TIMEOUT
  kSeconds,       // value + delta (s)
  kMillis,        // value + delta (ms)
  kCdrTime,       // value: seconds after the Originate; shift: add delta
  kFailUniqueid,  // "<unknown>", or the ChannelId when the Originate had one
  kVarName,       // in a VarSet block: the variable's name
  kVarValue,      // in a VarSet block: the variable's value
  kDuration,      // CoreShowChannel Duration (HH:MM:SS of the call so far)
};

struct Segment {
  Slot slot = Slot::kLiteral;
  std::uint8_t role = 0;
  bool shift = false;
  std::uint32_t offset = 0;  // literal: into Script::literals
  std::uint32_t length = 0;
  std::int64_t value = 0;
};

// Where a call is when a message has gone out (decides the tail after a Hangup action).
enum class Phase : std::uint8_t { kARinging, kAUp, kBRinging, kBridged, kEnding };

enum class MessageKind : std::uint8_t {
  kPlain,
  kOriginateResponse,  // replaced by the late Response for a synchronous Originate
  kVarBlockA1,         // one VarSet per Originate Variable on A;1, last variable first
  kVarBlockA2,         // the same on A;2, first variable first
  kCallbackResult,     // UserEvent CallbackResult: the dialplan writes its AstDB record here
};

// Event classes (the first class in Privilege:), as bits for the Events: filter.
enum EventClass : std::uint32_t {
  kClassNone = 0,
  kClassSystem = 1U << 0,
  kClassCall = 1U << 1,
  kClassLog = 1U << 2,
  kClassVerbose = 1U << 3,
  kClassCommand = 1U << 4,
  kClassAgent = 1U << 5,
  kClassUser = 1U << 6,
  kClassConfig = 1U << 7,
  kClassDtmf = 1U << 8,
  kClassReporting = 1U << 9,
  kClassCdr = 1U << 10,
  kClassDialplan = 1U << 11,
  kClassOriginate = 1U << 12,
  kClassAgi = 1U << 13,
  kClassCc = 1U << 14,
  kClassAoc = 1U << 15,
  kClassTest = 1U << 16,
  kClassSecurity = 1U << 17,
  kClassMessage = 1U << 18,
  kClassAll = 0xFFFFFFFFU,
};
// "call" -> kClassCall; unknown -> kClassNone.
std::uint32_t event_class_bit(std::string_view name);

inline constexpr std::int8_t kStreamInOrder = -1;
inline constexpr std::int8_t kStreamOriginate = 4;
inline constexpr std::int8_t kStreamFree = 5;

struct MessageTemplate {
  std::int64_t at_us = 0;     // recorded offset after the Originate
  bool after_pivot = false;   // shifted by the stretch delta
  MessageKind kind = MessageKind::kPlain;
  std::uint32_t event_class = kClassNone;  // kClassNone: not an event, never filtered
  std::uint8_t creates = 0;   // role bits whose Newchannel this is
  std::uint8_t hangs_up = 0;  // role bits whose Hangup this is
  Phase phase_after = Phase::kARinging;
  // Whose order this message keeps when the fake interleaves (FakeAsteriskOptions::
  // interleave_window_ms): a channel's role (Dial* events: the dialled channel's),
  // kStreamOriginate for the OriginateResponse, kStreamFree for a Cdr (any place), or
  // kStreamInOrder for the rest.
  std::int8_t stream = -1;
  std::uint32_t first_segment = 0;
  std::uint32_t segment_count = 0;
};

struct Script {
  std::string name;
  std::string literals;
  std::vector<Segment> segments;
  std::vector<MessageTemplate> messages;
  std::int64_t recorded_stretch_ms = 0;  // what the stretchable part lasted when recorded
  std::int64_t pivot_us = 0;             // recorded offset of the first stretched message
  bool stretchable = false;
  bool tail = false;  // offsets count from the Hangup action (pivot_us), not from the Originate
};

// What one call substitutes into the templates.
struct CallValues {
  std::string action_id;
  std::string cb_id;
  std::string num_a;
  std::string num_b;
  std::string cid_num;
  std::string cid_name;
  std::string channel_id;  // the Originate's ChannelId ("" if none)
  std::string account;     // the Originate's Account (only CoreShowChannel shows it so far)
  std::array<std::string, 4> channel;
  std::array<std::string, 4> uniqueid;
  std::string bridge;
  std::string limit = "300000";
  std::string warn = "20000";
  std::string dial_timeout = "30";
  std::vector<std::pair<std::string, std::string>> variables;  // Originate Variable: in order
  std::int64_t delta_ms = 0;     // stretch: new length - recorded length
  std::int64_t start_epoch = 0;  // wall clock second of the Originate
  std::int64_t duration_s = 0;   // for CoreShowChannel
};

// One recorded message and its arrival offset.
struct TimedMessage {
  std::int64_t at_us = 0;
  std::string text;
};

// A transcript cut around its Originate: the client's Originate headers, the messages
// after the "queued" response (main), and the Hangup action's tail if it had one.
struct Recording {
  std::string name;
  std::vector<std::pair<std::string, std::string>> originate;  // header name, value
  std::vector<TimedMessage> main;
  std::vector<TimedMessage> after_hangup;  // offsets relative to the Hangup action
  std::int64_t hangup_at_us = 0;           // Hangup action, after the Originate
};

// Reads <dir>/<name>.sent.txt and .timeline.jsonl. Throws std::runtime_error.
Recording load_recording(const std::filesystem::path& dir, const std::string& name);

// Compiles messages in the context of `recording` (its Originate gives the values to
// turn into slots; `extra` are further messages of the same call, used only to learn
// which Uniqueid belongs to which channel). `stretch_ms` > 0 marks the first gap of 2 s
// or more as the stretchable part that lasted stretch_ms. `pivot_all`: every message is
// after the pivot (a tail that starts when the Hangup action arrives).
Script compile(const Recording& recording, const std::vector<TimedMessage>& messages, std::int64_t stretch_ms,
               bool pivot_all, const std::vector<TimedMessage>& extra = {});

// Appends message `index` of `script` rendered with `values`.
void render(const Script& script, std::size_t index, const CallValues& values, std::string& out);

// The `dialplan show [<exten>@]<context>` output lines from an extensions.conf, as
// Asterisk prints them; empty if the context (or a matching extension) is not there.
// `file_name` is what the lines cite ([<file_name>:<line>]): the name Asterisk loaded the
// file under, which may differ from the path's (callback-extensions.conf).
std::vector<std::string> dialplan_show(const std::filesystem::path& extensions_conf, std::string_view context,
                                       std::string_view exten = {}, std::string_view file_name = "extensions.conf");

// A Cdr time ("2026-12-02 04:48:23", UTC) as seconds since the epoch; -1 if it is not one.
std::int64_t parse_cdr_time(std::string_view text);

// Splits a server transcript into messages (after the banner line).
std::vector<std::string> split_messages(std::string_view text);

}  // namespace callback::fake::detail
