#pragma once
// Private to the Asterisk fake: the inbound Async AGI call of the recordings
// (tests/fixtures/asterisk/ami-inbound-asyncagi, ami-inbound-reject) as text templates.
// Every recorded value that belongs to one call (the Local channel's name, plain and
// URL-encoded, the two Uniqueids, the caller's number and name, the dialled number) is
// replaced once by a placeholder; rendering puts a call's own values back. The rest of
// each message (header order, Privilege, the ;1 half's testcallers context, Env's other
// lines) stays as recorded.
//
//   InboundScript script(recordings_dir);
//   std::string out = script.render(script.start[0], values);
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace callback::fake::detail {

struct InboundValues {
  std::string exten;     // the dialled number
  std::string counter;   // 8 hex digits of the Local channel ("00000013")
  std::string uniqueid1, uniqueid2;  // ;1 (the caller) and ;2 (the channel AGI runs on)
  std::string cid_num, cid_name;
};

struct InboundScript {
  // From AsyncAGIStart's Newchannel ;1 up to AsyncAGIStart itself, state Ring.
  std::vector<std::string> start;
  // What the ANSWER command brings, after its "queued" reply: AGIExecStart, the Newstates
  // of ;2 and ;1, DialEnd, DeviceStateChanges, AGIExecEnd, AsyncAGIExec (the caller's own
  // OriginateResponse, an artefact of the recording's test caller, is left out).
  std::vector<std::string> answer;
  // One command's events on an answered channel (WAIT FOR DIGIT's, recorded): AGIExecStart,
  // AGIExecEnd and AsyncAGIExec, with CommandId / Command / Result to set; DTMFBegin/End.
  std::string exec_start, exec_end, async_exec, dtmf_begin, dtmf_end;
  // After `Response: Success / Message: Channel Hungup` of a Hangup action: on an answered
  // channel (ami-inbound-asyncagi, Cause 16) and on a ringing one (ami-inbound-reject,
  // Cause 17; its caller's OriginateResponse left out).
  std::vector<std::string> hangup_up, hangup_ring;
  // After the AsyncAGIExec of a command that failed (STREAM FILE of a missing sound,
  // ami-inbound-missing-prompt): AsyncAGIEnd, then the dialplan's Hangup() (Cause 16).
  std::vector<std::string> failed_end;

  explicit InboundScript(const std::filesystem::path& recordings);
  [[nodiscard]] static std::string render(std::string_view text, const InboundValues& values);
};

// "Local/5000@callback-access-ami-00000013;2" -> URL-encoded as in Env (%2F, %40, %3B).
[[nodiscard]] std::string agi_url_encode(std::string_view text);

}  // namespace callback::fake::detail
