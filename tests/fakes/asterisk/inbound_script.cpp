#include "inbound_script.hpp"

#include "call_script.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace callback::fake::detail {
namespace {

// Placeholders: no recorded byte is \x01.
constexpr std::string_view kCounter = "\x01" "C";
constexpr std::string_view kUnique1 = "\x01" "U";
constexpr std::string_view kUnique2 = "\x01" "V";
constexpr std::string_view kName = "\x01" "N";
constexpr std::string_view kNameEncoded = "\x01" "M";
constexpr std::string_view kCallerNum = "\x01" "P";
constexpr std::string_view kExten = "\x01" "E";

void replace_every(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) {
    text.replace(pos, from.size(), to);
  }
}

std::string header(const std::string& message, std::string_view name) {
  const std::string key = "\r\n" + std::string(name) + ": ";
  const auto at = message.find(key);
  if (at == std::string::npos) return {};
  const auto start = at + key.size();
  return message.substr(start, message.find("\r\n", start) - start);
}

bool is(const std::string& message, std::string_view first_line) {
  return message.starts_with(first_line) && message.size() > first_line.size() && message[first_line.size()] == '\r';
}

// The recording's messages with its call's values turned into placeholders.
std::vector<std::string> load(const std::filesystem::path& dir, const std::string& name) {
  std::ifstream in(dir / (name + ".txt"), std::ios::binary);
  if (!in) throw std::runtime_error("fake asterisk: cannot read " + (dir / (name + ".txt")).string());
  std::stringstream text;
  text << in.rdbuf();
  auto messages = split_messages(text.str());
  std::string start;
  for (const auto& m : messages) {
    if (is(m, "Event: AsyncAGIStart")) start = m;
  }
  if (start.empty()) throw std::runtime_error("fake asterisk: no AsyncAGIStart in " + name);
  const std::string channel = header(start, "Channel");  // Local/5000@callback-access-ami-00000013;2
  const auto dash = channel.rfind('-');
  const std::string counter = channel.substr(dash + 1, 8);
  const std::string exten = header(start, "Exten");
  const std::string unique2 = header(start, "Uniqueid"), unique1 = header(start, "Linkedid");
  const std::string cid = header(start, "CallerIDNum"), cid_name = header(start, "CallerIDName");
  for (auto& m : messages) {
    replace_every(m, "-" + counter + ";", "-" + std::string(kCounter) + ";");
    replace_every(m, "-" + counter + "%3B", "-" + std::string(kCounter) + "%3B");
    replace_every(m, unique1, kUnique1);
    replace_every(m, unique2, kUnique2);
    replace_every(m, agi_url_encode(cid_name), kNameEncoded);
    replace_every(m, cid_name, kName);
    replace_every(m, ": " + cid + "\r\n", ": " + std::string(kCallerNum) + "\r\n");
    replace_every(m, "<" + cid + ">", "<" + std::string(kCallerNum) + ">");
    replace_every(m, "%20" + cid + "%0A", "%20" + std::string(kCallerNum) + "%0A");
    replace_every(m, exten, kExten);
  }
  return messages;
}

// The messages after `Message: Channel Hungup` up to the Logoff's Goodbye, without the
// test caller's OriginateResponse.
std::vector<std::string> after_hangup(const std::vector<std::string>& messages) {
  std::vector<std::string> out;
  bool on = false;
  for (const auto& m : messages) {
    if (is(m, "Response: Goodbye")) break;
    if (on && !is(m, "Event: OriginateResponse")) out.push_back(m);
    if (is(m, "Response: Success") && m.find("\r\nMessage: Channel Hungup\r\n") != std::string::npos) on = true;
  }
  return out;
}

}  // namespace

std::string agi_url_encode(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    // ast_uri_encode with ast_uri_http: RFC 2396's unreserved marks stay as they are
    // (ami-inbound-getdata-timeout: `200%20result%3D%20(timeout)%0A`).
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~' || c == '!' || c == '*' || c == '\'' || c == '(' || c == ')') {
      out.push_back(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", u);
      out += hex;
    }
  }
  return out;
}

InboundScript::InboundScript(const std::filesystem::path& recordings) {
  const auto agi = load(recordings, "ami-inbound-asyncagi");
  std::size_t i = 0;
  for (; i < agi.size() && !is(agi[i], "Event: Newchannel"); ++i) {}
  for (; i < agi.size(); ++i) {
    start.push_back(agi[i]);
    if (is(agi[i], "Event: AsyncAGIStart")) break;
  }
  // ANSWER: everything after its queued reply up to its AsyncAGIExec.
  for (++i; i < agi.size() && !is(agi[i], "Response: Success"); ++i) {}
  for (++i; i < agi.size(); ++i) {
    if (!is(agi[i], "Event: OriginateResponse")) answer.push_back(agi[i]);
    if (is(agi[i], "Event: AsyncAGIExec")) break;
  }
  for (const auto& m : agi) {
    const bool waits = m.find("\r\nCommand: WAIT FOR DIGIT") != std::string::npos;
    if (exec_start.empty() && is(m, "Event: AGIExecStart") && waits) exec_start = m;
    if (exec_end.empty() && is(m, "Event: AGIExecEnd") && waits) exec_end = m;
    if (async_exec.empty() && !exec_end.empty() && is(m, "Event: AsyncAGIExec")) async_exec = m;
    if (dtmf_begin.empty() && is(m, "Event: DTMFBegin")) dtmf_begin = m;
    if (dtmf_end.empty() && is(m, "Event: DTMFEnd")) dtmf_end = m;
  }
  hangup_up = after_hangup(agi);
  hangup_ring = after_hangup(load(recordings, "ami-inbound-reject"));
  bool failed = false;
  for (const auto& m : load(recordings, "ami-inbound-missing-prompt")) {
    if (is(m, "Response: Goodbye")) break;
    if (failed && !is(m, "Event: OriginateResponse")) failed_end.push_back(m);
    if (is(m, "Event: AsyncAGIExec") && m.find("\r\nResult: 200%20result%3D-1%20") != std::string::npos) failed = true;
  }
  if (start.empty() || answer.empty() || exec_start.empty() || exec_end.empty() || async_exec.empty() ||
      dtmf_begin.empty() || dtmf_end.empty() || hangup_up.empty() || hangup_ring.empty() || failed_end.empty()) {
    throw std::runtime_error("fake asterisk: the ami-inbound-* recordings lack a message the fake needs");
  }
}

std::string InboundScript::render(std::string_view text, const InboundValues& values) {
  std::string out(text);
  replace_every(out, kCounter, values.counter);
  replace_every(out, kUnique1, values.uniqueid1);
  replace_every(out, kUnique2, values.uniqueid2);
  replace_every(out, kNameEncoded, agi_url_encode(values.cid_name));
  replace_every(out, kName, values.cid_name);
  replace_every(out, kCallerNum, values.cid_num);
  replace_every(out, kExten, values.exten);
  return out;
}

}  // namespace callback::fake::detail
