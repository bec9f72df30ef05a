#pragma once
// callbackctl serve / call / status / cancel: run the service, place a callback and watch
// it, ask about one, cancel one — embedded (the command composes the service itself from
// --config) or against a running callbackd (--server URL --api-key KEY).
#include "commands.hpp"
#include "http_client.hpp"

#include <optional>
#include <string>
#include <vector>

namespace callback::cli {

struct CallArgs {
  std::string caller, callee, account, campaign, pin;
  long limit_seconds = 0;  // 0: as authorized
  bool wait = false;       // follow it to the end (always, embedded: the call lives in this process)
  std::string idempotency_key;
  std::string language;  // Asterisk sound language of CALLER's announcements; empty: the account's or Asterisk's
};

// Exit codes of `call --wait` and `status`, for scripts.
inline constexpr int exit_not_connected = 3;  // ended without the two talking (busy, no answer, ...)
inline constexpr int exit_refused = 4;        // not allowed (balance, campaign policy, blocked)

int serve_command(const PluginSource& source, const std::optional<std::string>& listen);
int call_command(const PluginSource& source, const Remote& remote, const CallArgs& args, const Output& output);
int status_command(const PluginSource& source, const Remote& remote, const std::string& id, bool wait,
                   const Output& output);
int cancel_command(const Remote& remote, const std::string& id, const Output& output);
// After a crash, without callbackd: reads the store's journal, finds the callbacks that were
// in flight on each Asterisk, follows those still up to their end (at most `timeout_seconds`),
// settles or releases their money and writes their CDRs; prints what it fixed.
int reconcile_command(const PluginSource& source, int timeout_seconds, const Output& output);

// callbackctl asterisk check [--call CALLER CALLEE]: what the engine finds on each Asterisk
// of the config (embedded) or of callbackd (--server, from /healthz), one line a check;
// then, with --call, one test callback followed to its end. Exit 0 when every check
// passed (and the call talked), 1 naming what failed.
struct AsteriskCheckArgs {
  std::vector<std::string> call;  // CALLER CALLEE, or empty
  CallArgs payer;                 // --account/--campaign/--pin/--language for the test call
  long timeout_seconds = 10;
};
int asterisk_check_command(const PluginSource& source, const Remote& remote, const AsteriskCheckArgs& args,
                           const Output& output);

}  // namespace callback::cli
