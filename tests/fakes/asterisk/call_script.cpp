// Private to the Asterisk fake: compiling recorded transcripts into call templates.
#include "call_script.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace callback::fake::detail {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers parse_headers(std::string_view message) {
  Headers headers;
  std::size_t pos = 0;
  while (pos < message.size()) {
    auto eol = message.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = message.size();
    const auto line = message.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return headers;
}

std::string header(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

struct ChannelMatch {
  std::size_t length = 0;
  std::string number;
  std::string counter;
  int half = 0;
};

// "Local/<digits>@phones-<8 hex>;<1|2>" at `pos`.
std::optional<ChannelMatch> match_channel(std::string_view s, std::size_t pos) {
  constexpr std::string_view prefix = "Local/";
  if (s.substr(pos, prefix.size()) != prefix) return std::nullopt;
  std::size_t p = pos + prefix.size();
  const std::size_t number_start = p;
  while (p < s.size() && s[p] != '@' && s[p] != '/' && s[p] != ',' && s[p] != ' ') ++p;
  if (p == number_start) return std::nullopt;
  ChannelMatch match;
  match.number = std::string(s.substr(number_start, p - number_start));
  constexpr std::string_view context = "@phones-";
  if (s.substr(p, context.size()) != context) return std::nullopt;
  p += context.size();
  if (p + 10 > s.size()) return std::nullopt;
  for (std::size_t i = 0; i < 8; ++i) {
    if (!is_hex(s[p + i])) return std::nullopt;
  }
  match.counter = std::string(s.substr(p, 8));
  p += 8;
  if (s[p] != ';' || (s[p + 1] != '1' && s[p + 1] != '2')) return std::nullopt;
  match.half = s[p + 1] - '0';
  match.length = p + 2 - pos;
  return match;
}

// "<10 digits>.<digits>" at `pos`, not preceded by a digit.
std::size_t match_uniqueid(std::string_view s, std::size_t pos) {
  if (pos > 0 && (is_digit(s[pos - 1]) || s[pos - 1] == '.')) return 0;
  std::size_t p = pos;
  while (p < s.size() && is_digit(s[p])) ++p;
  if (p - pos != 10 || p >= s.size() || s[p] != '.') return 0;
  ++p;
  const std::size_t frac = p;
  while (p < s.size() && is_digit(s[p])) ++p;
  if (p == frac) return 0;
  return p - pos;
}

std::size_t match_uuid(std::string_view s, std::size_t pos) {
  static constexpr std::array<int, 5> groups{8, 4, 4, 4, 12};
  std::size_t p = pos;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (int i = 0; i < groups[g]; ++i, ++p) {
      if (p >= s.size() || !is_hex(s[p])) return 0;
    }
    if (g + 1 < groups.size()) {
      if (p >= s.size() || s[p] != '-') return 0;
      ++p;
    }
  }
  return p - pos;
}


std::int64_t to_int(std::string_view text) {
  std::int64_t v = 0;
  for (char c : text) v = v * 10 + (c - '0');
  return v;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_digit);
}

// Compiles one recording's messages.
class Compiler {
 public:
  Compiler(const Recording& recording, Script& script) : recording_(recording), script_(script) {
    for (const auto& [name, value] : recording.originate) {
      if (name == "ActionID") action_id_ = value;
      if (name == "Exten") num_b_ = value;
      if (name == "Channel") {
        const auto at = value.find('@');
        num_a_ = value.substr(value.find('/') + 1, at - value.find('/') - 1);
      }
      if (name == "CallerID") {
        const auto lt = value.find('<');
        const auto gt = value.find('>');
        if (lt != std::string::npos && gt != std::string::npos) cid_num_ = value.substr(lt + 1, gt - lt - 1);
        auto q1 = value.find('"');
        auto q2 = value.find('"', q1 + 1);
        if (q1 != std::string::npos && q2 != std::string::npos) cid_name_ = value.substr(q1 + 1, q2 - q1 - 1);
      }
      if (name == "ChannelId") channel_id_ = value;
      if (name == "OtherChannelId") other_channel_id_ = value;
      if (name == "Variable") {
        const auto eq = value.find('=');
        variable_names_.push_back(value.substr(0, eq));
        if (value.substr(0, eq) == "CB_ID") cb_id_ = value.substr(eq + 1);
      }
    }
    // Longest first, so "cb-chanid-1-a" is not taken for CB_ID "cb-chanid-1".
    auto add = [&](const std::string& text, Slot slot) {
      if (!text.empty()) dictionary_.emplace_back(text, slot);
    };
    add(other_channel_id_, Slot::kUniqueid);
    add(channel_id_, Slot::kUniqueid);
    add(cb_id_, Slot::kCbId);
    add(cid_name_, Slot::kCidName);
    add(num_a_, Slot::kNumA);
    add(num_b_, Slot::kNumB);
    add(cid_num_, Slot::kCidNum);
    std::stable_sort(dictionary_.begin(), dictionary_.end(),
                     [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
    if (!channel_id_.empty()) uniqueid_role_[channel_id_] = kA1;
    if (!other_channel_id_.empty()) uniqueid_role_[other_channel_id_] = kA2;
  }

  void learn(const std::vector<TimedMessage>& messages) {
    for (const auto& message : messages) {
      const auto headers = parse_headers(message.text);
      for (const auto& [name, value] : headers) {
        if (auto ch = match_channel(value, 0); ch && ch->length == value.size()) {
          if (ch->number == num_a_ && counter_a_.empty()) counter_a_ = ch->counter;
          if (ch->number == num_b_ && counter_b_.empty() && ch->counter != counter_a_) counter_b_ = ch->counter;
        }
      }
    }
    for (const auto& message : messages) {
      const auto headers = parse_headers(message.text);
      static const std::array<std::pair<std::string_view, std::string_view>, 5> pairs{{
          {"Channel", "Uniqueid"},
          {"DestChannel", "DestUniqueid"},
          {"LocalOneChannel", "LocalOneUniqueid"},
          {"LocalTwoChannel", "LocalTwoUniqueid"},
          {"Channel", "UniqueID"},
      }};
      for (const auto& [channel_header, uid_header] : pairs) {
        const auto channel = header(headers, channel_header);
        const auto uid = header(headers, uid_header);
        if (channel.empty() || uid.empty() || uid == "<unknown>") continue;
        if (auto role = channel_role(channel); role >= 0) uniqueid_role_.emplace(uid, static_cast<Role>(role));
      }
      if (header(headers, "Event") == "Cdr") {
        const auto start = parse_cdr_time(header(headers, "StartTime"));
        if (start > 0 && (origin_wall_ < 0 || start < origin_wall_)) origin_wall_ = start;
      }
    }
  }

  void compile(const std::vector<TimedMessage>& messages, std::int64_t stretch_ms, bool pivot_all) {
    std::size_t pivot = messages.size();
    if (pivot_all) {
      pivot = 0;
    } else if (stretch_ms > 0) {
      for (std::size_t i = 1; i < messages.size(); ++i) {
        if (messages[i].at_us - messages[i - 1].at_us >= 2'000'000) {
          pivot = i;
          break;
        }
      }
      if (pivot == messages.size()) throw std::runtime_error("fake asterisk: no stretchable gap in " + script_.name);
      script_.stretchable = true;
      script_.recorded_stretch_ms = stretch_ms;
    }
    script_.pivot_us = pivot < messages.size() ? messages[pivot].at_us : 0;
    // Cdr seconds after the Originate that count as "after the stretch" (see README of
    // the fake: the Originate's own second is unknown, 1.5 s of slack covers it).
    pivot_s_ = static_cast<double>(script_.pivot_us) / 1e6 - 1.5;
    Phase phase = Phase::kARinging;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const auto& text = messages[i].text;
      const auto headers = parse_headers(text);
      const auto event = header(headers, "Event");
      const auto channel = header(headers, "Channel");
      const int role = channel_role(channel);
      // Originate Variables set on A's halves: one block each, rendered from the call's own list.
      if (event == "VarSet" && (role == kA1 || role == kA2) && header(headers, "Context") == "phones" &&
          std::find(variable_names_.begin(), variable_names_.end(), header(headers, "Variable")) !=
              variable_names_.end()) {
        const auto kind = role == kA1 ? MessageKind::kVarBlockA1 : MessageKind::kVarBlockA2;
        if (!script_.messages.empty() && script_.messages.back().kind == kind) continue;
        emit(messages[i], headers, i >= pivot, kind, phase).stream = static_cast<std::int8_t>(role);
        continue;
      }
      auto kind = MessageKind::kPlain;
      if (event == "OriginateResponse") kind = MessageKind::kOriginateResponse;
      if (event == "UserEvent" && header(headers, "UserEvent") == "CallbackResult") kind = MessageKind::kCallbackResult;
      MessageTemplate& added = emit(messages[i], headers, i >= pivot, kind, phase);
      if (event == "Newchannel" && role >= 0) added.creates = role_bit(role);
      if (event == "Hangup" && role >= 0) added.hangs_up = role_bit(role);
      if (event == "OriginateResponse") {
        added.stream = kStreamOriginate;
      } else if (event == "Cdr") {
        added.stream = kStreamFree;
      } else if (event.starts_with("Dial")) {
        added.stream = static_cast<std::int8_t>(channel_role(header(headers, "DestChannel")));
      } else {
        added.stream = static_cast<std::int8_t>(role);
      }
      if (event == "Newstate" && role == kA1 && header(headers, "ChannelState") == "6" && phase == Phase::kARinging) {
        phase = Phase::kAUp;
      }
      if (event == "Newchannel" && role == kB1) phase = Phase::kBRinging;
      if (event == "BridgeEnter") phase = Phase::kBridged;
      if (event == "BridgeLeave" || (event == "Hangup" && role >= 0 && phase != Phase::kARinging)) phase = Phase::kEnding;
      if (event == "Hangup" && role >= 0 && phase == Phase::kARinging) phase = Phase::kEnding;
      added.phase_after = phase;
    }
  }

 private:
  int channel_role(std::string_view channel) const {
    auto ch = match_channel(channel, 0);
    if (!ch || ch->length != channel.size()) return -1;
    if (ch->counter == counter_a_) return ch->half == 1 ? kA1 : kA2;
    if (ch->counter == counter_b_) return ch->half == 1 ? kB1 : kB2;
    return -1;
  }

  MessageTemplate& emit(const TimedMessage& message, const Headers& headers, bool after_pivot, MessageKind kind,
                        Phase phase) {
    MessageTemplate t;
    t.at_us = message.at_us;
    t.after_pivot = after_pivot;
    t.kind = kind;
    t.phase_after = phase;
    t.first_segment = static_cast<std::uint32_t>(script_.segments.size());
    message_start_ = script_.segments.size();
    const auto privilege = header(headers, "Privilege");
    if (!privilege.empty()) {
      t.event_class = event_class_bit(privilege.substr(0, privilege.find(',')));
      if (t.event_class == kClassNone) t.event_class = kClassAll;
    }
    const auto event = header(headers, "Event");
    const auto variable = header(headers, "Variable");
    const bool block = kind == MessageKind::kVarBlockA1 || kind == MessageKind::kVarBlockA2;
    std::int64_t cdr_start = -1;
    std::int64_t cdr_answer = -1;
    std::int64_t cdr_end = -1;
    if (event == "Cdr") {
      cdr_start = parse_cdr_time(header(headers, "StartTime"));
      cdr_answer = parse_cdr_time(header(headers, "AnswerTime"));
      cdr_end = parse_cdr_time(header(headers, "EndTime"));
    }
    for (const auto& [name, value] : headers) {
      literal(name);
      literal(": ");
      if (name == "ActionID") {
        slot(Slot::kActionId);
      } else if (block && name == "Variable") {
        slot(Slot::kVarName);
      } else if (block && name == "Value") {
        slot(Slot::kVarValue);
      } else if (event == "Cdr" && (name == "StartTime" || name == "AnswerTime" || name == "EndTime") &&
                 !value.empty() && origin_wall_ > 0) {
        const auto at = parse_cdr_time(value) - origin_wall_;
        Segment s{Slot::kCdrTime, 0, static_cast<double>(at) > pivot_s_, 0, 0, at};
        script_.segments.push_back(s);
      } else if (event == "Cdr" && name == "Duration" && spans(cdr_start, cdr_end)) {
        seconds(value);
      } else if (event == "Cdr" && name == "BillableSeconds" && cdr_answer > 0 && spans(cdr_answer, cdr_end)) {
        seconds(value);
      } else if (event == "VarSet" && name == "Value" && (variable == "ANSWEREDTIME" || variable == "DIALEDTIME") &&
                 after_pivot && all_digits(value)) {
        seconds(value);
      } else if (event == "VarSet" && name == "Value" &&
                 (variable == "ANSWEREDTIME_MS" || variable == "DIALEDTIME_MS") && after_pivot && all_digits(value)) {
        Segment s{Slot::kMillis, 0, false, 0, 0, to_int(value)};
        script_.segments.push_back(s);
      } else if (event == "VarSet" && name == "Value" && variable == "CB_LIMIT") {
        slot(Slot::kLimit);
      } else if (event == "VarSet" && name == "Value" && variable == "CB_WARN") {
        slot(Slot::kWarn);
      } else if (event == "VarSet" && name == "Value" && variable == "CB_DIAL_TIMEOUT") {
        slot(Slot::kDialTimeout);
      } else if (event == "UserEvent" && (name == "AnsweredTime" || name == "DialedTime") && after_pivot &&
                 all_digits(value)) {
        seconds(value);
      } else if (event == "OriginateResponse" && name == "Uniqueid" &&
                 (value == "<unknown>" || (!channel_id_.empty() && value == channel_id_)) &&
                 header(headers, "Response") == "Failure") {
        slot(Slot::kFailUniqueid);
      } else if (event == "CoreShowChannel" && name == "Duration") {
        slot(Slot::kDuration);
      } else {
        value_text(value, after_pivot);
      }
      literal("\r\n");
    }
    literal("\r\n");
    t.segment_count = static_cast<std::uint32_t>(script_.segments.size()) - t.first_segment;
    script_.messages.push_back(t);
    return script_.messages.back();
  }

  bool spans(std::int64_t from, std::int64_t to) const {
    if (from < 0 || to < 0) return false;
    return static_cast<double>(from - origin_wall_) <= pivot_s_ && static_cast<double>(to - origin_wall_) > pivot_s_;
  }

  void seconds(std::string_view value) {
    Segment s{Slot::kSeconds, 0, false, 0, 0, to_int(value)};
    script_.segments.push_back(s);
  }

  // A header value: the CB_* Set() arguments, the Dial() string and the result texts
  // are recognised by shape; the rest by token.
  void value_text(std::string_view value, bool after_pivot) {
    static const std::array<std::pair<std::string_view, Slot>, 3> sets{{
        {"CB_LIMIT=", Slot::kLimit}, {"CB_WARN=", Slot::kWarn}, {"CB_DIAL_TIMEOUT=", Slot::kDialTimeout}}};
    for (const auto& [prefix, s] : sets) {
      if (value.starts_with(prefix) && all_digits(value.substr(prefix.size()))) {
        literal(prefix);
        slot(s);
        return;
      }
    }
    // Local/<B>@phones,<timeout>,gL(<limit>:<warn>:<warn>)
    if (const auto gl = value.find(",gL("); gl != std::string_view::npos && value.starts_with("Local/") &&
                                            value.ends_with(")")) {
      const auto comma = value.find(',');
      tokens(value.substr(0, comma + 1));
      slot(Slot::kDialTimeout);
      literal(",gL(");
      slot(Slot::kLimit);
      literal(":");
      slot(Slot::kWarn);
      literal(":");
      slot(Slot::kWarn);
      literal(")");
      return;
    }
    if (after_pivot) {
      static const std::array<std::string_view, 4> keys{"ANSWEREDTIME=", "DIALEDTIME=", "AnsweredTime: ",
                                                        "DialedTime: "};
      std::size_t pos = 0;
      while (pos < value.size()) {
        std::size_t best = std::string_view::npos;
        std::size_t key_len = 0;
        for (auto key : keys) {
          const auto at = value.find(key, pos);
          if (at < best) {
            best = at;
            key_len = key.size();
          }
        }
        if (best == std::string_view::npos) break;
        const std::size_t digits = best + key_len;
        std::size_t end = digits;
        while (end < value.size() && is_digit(value[end])) ++end;
        tokens(value.substr(pos, digits - pos));
        if (end > digits) seconds(value.substr(digits, end - digits));
        pos = end;
      }
      tokens(value.substr(pos));
      return;
    }
    tokens(value);
  }

  void tokens(std::string_view value) {
    std::size_t pos = 0;
    std::size_t literal_start = 0;
    auto flush = [&](std::size_t upto) {
      if (upto > literal_start) literal(value.substr(literal_start, upto - literal_start));
    };
    while (pos < value.size()) {
      if (auto ch = match_channel(value, pos)) {
        const int role = channel_role(value.substr(pos, ch->length));
        if (role >= 0) {
          flush(pos);
          slot(Slot::kChannel, static_cast<std::uint8_t>(role));
          pos += ch->length;
          literal_start = pos;
          continue;
        }
      }
      if (const auto n = match_uniqueid(value, pos)) {
        const auto it = uniqueid_role_.find(std::string(value.substr(pos, n)));
        if (it != uniqueid_role_.end()) {
          flush(pos);
          slot(Slot::kUniqueid, it->second);
          pos += n;
          literal_start = pos;
          continue;
        }
      }
      if (const auto n = match_uuid(value, pos)) {
        flush(pos);
        slot(Slot::kBridge);
        pos += n;
        literal_start = pos;
        continue;
      }
      bool matched = false;
      if (pos == 0 || !is_alnum(value[pos - 1])) {
        for (const auto& [text, s] : dictionary_) {
          if (value.substr(pos, text.size()) != text) continue;
          const std::size_t end = pos + text.size();
          if (end < value.size() && is_alnum(value[end])) continue;
          flush(pos);
          if (s == Slot::kUniqueid) {
            slot(s, uniqueid_role_.at(text));
          } else {
            slot(s);
          }
          pos = end;
          literal_start = pos;
          matched = true;
          break;
        }
      }
      if (!matched) ++pos;
    }
    flush(value.size());
  }

  void literal(std::string_view text) {
    if (text.empty()) return;
    if (script_.segments.size() > message_start_) {
      auto& last = script_.segments.back();
      if (last.slot == Slot::kLiteral && last.offset + last.length == script_.literals.size()) {
        script_.literals.append(text);
        last.length += static_cast<std::uint32_t>(text.size());
        return;
      }
    }
    Segment s;
    s.offset = static_cast<std::uint32_t>(script_.literals.size());
    s.length = static_cast<std::uint32_t>(text.size());
    script_.literals.append(text);
    script_.segments.push_back(s);
  }

  void slot(Slot s, std::uint8_t role = 0) {
    Segment segment;
    segment.slot = s;
    segment.role = role;
    script_.segments.push_back(segment);
  }

  const Recording& recording_;
  Script& script_;
  std::string action_id_, cb_id_, num_a_, num_b_, cid_num_, cid_name_, channel_id_, other_channel_id_;
  std::vector<std::string> variable_names_;
  std::vector<std::pair<std::string, Slot>> dictionary_;
  std::string counter_a_, counter_b_;
  std::map<std::string, Role> uniqueid_role_;
  std::int64_t origin_wall_ = -1;
  double pivot_s_ = 1e18;
  std::size_t message_start_ = 0;  // literals merge only within one message
};

void append_int(std::string& out, std::int64_t v) {
  char buffer[24];
  const int n = std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(v));
  out.append(buffer, static_cast<std::size_t>(n));
}

std::int64_t delta_seconds(std::int64_t delta_ms) {
  return static_cast<std::int64_t>(std::llround(static_cast<double>(delta_ms) / 1000.0));
}

}  // namespace

std::int64_t parse_cdr_time(std::string_view text) {
  std::tm tm{};
  if (std::sscanf(std::string(text).c_str(), "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec) != 6) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::uint32_t event_class_bit(std::string_view name) {
  static const std::array<std::pair<std::string_view, std::uint32_t>, 19> classes{{
      {"system", kClassSystem},       {"call", kClassCall},     {"log", kClassLog},
      {"verbose", kClassVerbose},     {"command", kClassCommand}, {"agent", kClassAgent},
      {"user", kClassUser},           {"config", kClassConfig}, {"dtmf", kClassDtmf},
      {"reporting", kClassReporting}, {"cdr", kClassCdr},       {"dialplan", kClassDialplan},
      {"originate", kClassOriginate}, {"agi", kClassAgi},       {"cc", kClassCc},
      {"aoc", kClassAoc},             {"test", kClassTest},     {"security", kClassSecurity},
      {"message", kClassMessage},
  }};
  for (const auto& [text, bit] : classes) {
    if (text.size() == name.size() &&
        std::equal(text.begin(), text.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return bit;
    }
  }
  return kClassNone;
}

std::vector<std::string> split_messages(std::string_view text) {
  std::vector<std::string> messages;
  std::size_t pos = text.find("\r\n");
  pos = pos == std::string_view::npos ? text.size() : pos + 2;
  while (pos < text.size()) {
    const auto end = text.find("\r\n\r\n", pos);
    if (end == std::string_view::npos) break;
    messages.emplace_back(text.substr(pos, end + 4 - pos));
    pos = end + 4;
  }
  return messages;
}

Recording load_recording(const std::filesystem::path& dir, const std::string& name) {
  Recording recording;
  recording.name = name;
  // Server bytes with the time of the read that brought each byte.
  std::string stream;
  std::vector<std::pair<std::size_t, double>> chunk_starts;  // stream offset, t
  std::vector<std::pair<double, std::string>> sent;
  std::ifstream in(dir / (name + ".timeline.jsonl"), std::ios::binary);
  if (!in) throw std::runtime_error("fake asterisk: cannot read " + (dir / (name + ".timeline.jsonl")).string());
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto json = boost::json::parse(line).as_object();
    const double t = json.at("t").to_number<double>();
    const auto& data = json.at("data").as_string();
    if (json.at("dir").as_string() == "rx") {
      chunk_starts.emplace_back(stream.size(), t);
      stream.append(data.data(), data.size());
    } else {
      sent.emplace_back(t, std::string(data.data(), data.size()));
    }
  }
  auto time_at = [&](std::size_t offset) {
    auto it = std::upper_bound(chunk_starts.begin(), chunk_starts.end(), offset,
                               [](std::size_t o, const auto& c) { return o < c.first; });
    return std::prev(it)->second;
  };
  double originate_t = -1;
  double hangup_t = -1;
  for (const auto& [t, data] : sent) {
    for (const auto& message : split_messages("\r\n" + data)) {
      const auto headers = parse_headers(message);
      const auto action = header(headers, "Action");
      if (action == "Originate") {
        originate_t = t;
        recording.originate = headers;
      } else if (action == "Hangup") {
        hangup_t = t;
      }
    }
  }
  if (originate_t < 0) throw std::runtime_error("fake asterisk: no Originate in " + name);
  std::string originate_id = header(recording.originate, "ActionID");
  std::size_t pos = stream.find("\r\n") + 2;
  bool queued_seen = false;
  bool hangup_response_seen = false;
  while (pos < stream.size()) {
    const auto end = stream.find("\r\n\r\n", pos);
    if (end == std::string::npos) break;
    std::string text = stream.substr(pos, end + 4 - pos);
    const double t = time_at(pos);
    pos = end + 4;
    const auto headers = parse_headers(text);
    const auto response = header(headers, "Response");
    if (!queued_seen) {
      queued_seen = !response.empty() && header(headers, "ActionID") == originate_id;
      continue;
    }
    if (response == "Goodbye") break;
    if (!response.empty() && header(headers, "Message") == "Channel Hungup") {
      hangup_response_seen = true;
      continue;
    }
    if (hangup_response_seen) {
      recording.after_hangup.push_back({static_cast<std::int64_t>(std::llround((t - hangup_t) * 1e6)), std::move(text)});
    } else {
      recording.main.push_back({static_cast<std::int64_t>(std::llround((t - originate_t) * 1e6)), std::move(text)});
    }
  }
  if (hangup_t >= 0) recording.hangup_at_us = static_cast<std::int64_t>(std::llround((hangup_t - originate_t) * 1e6));
  return recording;
}

Script compile(const Recording& recording, const std::vector<TimedMessage>& messages, std::int64_t stretch_ms,
               bool pivot_all, const std::vector<TimedMessage>& extra) {
  Script script;
  script.name = recording.name;
  Compiler compiler(recording, script);
  std::vector<TimedMessage> all = recording.main;
  all.insert(all.end(), recording.after_hangup.begin(), recording.after_hangup.end());
  all.insert(all.end(), messages.begin(), messages.end());
  all.insert(all.end(), extra.begin(), extra.end());
  compiler.learn(all);
  compiler.compile(messages, stretch_ms, pivot_all);
  return script;
}

void render(const Script& script, std::size_t index, const CallValues& v, std::string& out) {
  const auto& message = script.messages[index];
  const auto render_segments = [&](const std::pair<std::string, std::string>* variable) {
    for (std::uint32_t i = 0; i < message.segment_count; ++i) {
      const Segment& s = script.segments[message.first_segment + i];
      switch (s.slot) {
        case Slot::kLiteral: out.append(script.literals, s.offset, s.length); break;
        case Slot::kChannel: out.append(v.channel[s.role]); break;
        case Slot::kUniqueid: out.append(v.uniqueid[s.role]); break;
        case Slot::kActionId: out.append(v.action_id); break;
        case Slot::kCbId: out.append(v.cb_id); break;
        case Slot::kNumA: out.append(v.num_a); break;
        case Slot::kNumB: out.append(v.num_b); break;
        case Slot::kCidNum: out.append(v.cid_num); break;
        case Slot::kCidName: out.append(v.cid_name); break;
        case Slot::kBridge: out.append(v.bridge); break;
        case Slot::kLimit: out.append(v.limit); break;
        case Slot::kWarn: out.append(v.warn); break;
        case Slot::kDialTimeout: out.append(v.dial_timeout); break;
        case Slot::kSeconds: append_int(out, s.value + delta_seconds(v.delta_ms)); break;
        case Slot::kMillis: append_int(out, s.value + v.delta_ms); break;
        case Slot::kCdrTime: {
          const std::time_t at = static_cast<std::time_t>(v.start_epoch + s.value + (s.shift ? delta_seconds(v.delta_ms) : 0));
          std::tm tm{};
          gmtime_r(&at, &tm);
          char buffer[32];
          const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &tm);
          out.append(buffer, n);
          break;
        }
        case Slot::kFailUniqueid: out.append(v.channel_id.empty() ? std::string_view("<unknown>") : v.channel_id); break;
        case Slot::kVarName: if (variable) out.append(variable->first); break;
        case Slot::kVarValue: if (variable) out.append(variable->second); break;
        case Slot::kDuration: {
          char buffer[32];
          const auto d = v.duration_s;
          const int n = std::snprintf(buffer, sizeof buffer, "%02lld:%02lld:%02lld", static_cast<long long>(d / 3600),
                                      static_cast<long long>((d / 60) % 60), static_cast<long long>(d % 60));
          out.append(buffer, static_cast<std::size_t>(n));
          break;
        }
      }
    }
  };
  if (message.kind == MessageKind::kVarBlockA1) {
    for (auto it = v.variables.rbegin(); it != v.variables.rend(); ++it) render_segments(&*it);
  } else if (message.kind == MessageKind::kVarBlockA2) {
    for (const auto& variable : v.variables) render_segments(&variable);
  } else {
    render_segments(nullptr);
  }
}

namespace {
// Asterisk's extension patterns: _ then X (0-9), Z (1-9), N (2-9), '.' (one or more), '!' (zero or more).
bool extension_matches(std::string_view pattern, std::string_view exten) {
  if (pattern.empty() || pattern.front() != '_') return pattern == exten;
  std::size_t i = 1;
  std::size_t j = 0;
  for (; i < pattern.size(); ++i, ++j) {
    const char p = pattern[i];
    if (p == '.') return j < exten.size();
    if (p == '!') return true;
    if (j >= exten.size()) return false;
    const char c = exten[j];
    if (p == 'X' && !is_digit(c)) return false;
    if (p == 'Z' && (c < '1' || c > '9')) return false;
    if (p == 'N' && (c < '2' || c > '9')) return false;
    if (p != 'X' && p != 'Z' && p != 'N' && p != c) return false;
  }
  return j == exten.size();
}
}  // namespace

std::vector<std::string> dialplan_show(const std::filesystem::path& extensions_conf, std::string_view context,
                                       std::string_view exten_filter, std::string_view file_name) {
  // Not recorded: the layout follows the recorded `dialplan show 1001@phones` (pbx.c's
  // "  %-17s %-45s [%s]"), with Asterisk's order (plain extensions before patterns).
  std::ifstream in(extensions_conf);
  if (!in) return {};
  struct Priority {
    int number;
    std::string label;
    std::string app;
    int line;
  };
  std::vector<std::pair<std::string, std::vector<Priority>>> extensions;
  bool inside = false;
  bool found = false;
  bool skipping = false;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    std::string text = line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string::npos || text[first] == ';') continue;
    text = text.substr(first);
    if (text.front() == '[') {
      const std::string name = text.substr(1, text.find(']') - 1);
      inside = name == context;
      found = found || inside;
      continue;
    }
    if (!inside) continue;
    // Strip a trailing comment (";" not inside the application data's parentheses).
    int depth = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '(') ++depth;
      if (text[i] == ')') --depth;
      if (text[i] == ';' && depth == 0) {
        text.resize(i);
        break;
      }
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.pop_back();
    const auto arrow = text.find("=>");
    if (arrow == std::string::npos) continue;
    std::string keyword = text.substr(0, arrow);
    keyword.erase(keyword.find_last_not_of(" \t") + 1);
    std::string rest = text.substr(arrow + 2);
    rest.erase(0, rest.find_first_not_of(" \t"));
    std::string exten;
    if (keyword == "exten") {
      exten = rest.substr(0, rest.find(','));
      rest = rest.substr(rest.find(',') + 1);
    } else if (keyword != "same") {
      continue;
    }
    std::string priority = rest.substr(0, rest.find(','));
    std::string app = rest.substr(rest.find(',') + 1);
    std::string label;
    if (const auto paren = priority.find('('); paren != std::string::npos) {
      label = priority.substr(paren + 1, priority.find(')') - paren - 1);
      priority = priority.substr(0, paren);
    }
    if (keyword == "exten") {
      if (!exten_filter.empty() && !extension_matches(exten, exten_filter)) {
        skipping = true;
        continue;
      }
      skipping = false;
      extensions.push_back({exten, {}});
    }
    if (skipping || extensions.empty()) continue;
    auto& priorities = extensions.back().second;
    const int number = priority == "n" ? (priorities.empty() ? 1 : priorities.back().number + 1) : std::stoi(priority);
    if (app.find('(') == std::string::npos) app += "()";
    priorities.push_back({number, label, app, line_number});
  }
  if (!found || extensions.empty()) return {};
  std::stable_sort(extensions.begin(), extensions.end(), [](const auto& a, const auto& b) {
    const bool pa = !a.first.empty() && a.first.front() == '_';
    const bool pb = !b.first.empty() && b.first.front() == '_';
    if (pa != pb) return !pa;
    return a.first < b.first;
  });
  std::vector<std::string> lines;
  lines.push_back("[ Context '" + std::string(context) + "' created by 'pbx_config' ]");
  std::size_t total = 0;
  char buffer[1024];
  for (const auto& [exten, priorities] : extensions) {
    bool first = true;
    for (const auto& p : priorities) {
      std::string column = first ? "'" + exten + "' =>" : (p.label.empty() ? "" : "   [" + p.label + "]");
      const std::string step = std::to_string(p.number) + ". " + p.app;
      const std::string where = std::string(file_name) + ":" + std::to_string(p.line);
      std::snprintf(buffer, sizeof buffer, "  %-17s %-45s [%s]", column.c_str(), step.c_str(), where.c_str());
      lines.emplace_back(buffer);
      first = false;
      ++total;
    }
  }
  lines.emplace_back("");
  // pbx.c's handle_show_dialplan: singular for 1 ("-= 1 extension (1 priority) in 1 context. =-").
  lines.push_back("-= " + std::to_string(extensions.size()) + (extensions.size() == 1 ? " extension (" : " extensions (") +
                  std::to_string(total) + (total == 1 ? " priority)" : " priorities)") + " in 1 context. =-");
  return lines;
}

}  // namespace callback::fake::detail
