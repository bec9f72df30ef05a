#pragma once
// What the AMI engine checks on every Asterisk it logs in to, read from the answers to CLI
// Commands (tests/fixtures/asterisk/ami-asterisk-check*.txt show them): the manager user's
// read and write classes, that cdr_manager publishes CDRs, that the shipped dialplan is
// loaded in the version this build expects, and that the announcement prompts are there in
// each configured language. `callbackctl asterisk check` prints them; /healthz shows them.
//
//   ServerChecks checks(options);                  // after login
//   for (auto& [id, command] : checks.commands()) send Command(id, command);
//   checks.on_reply(message);                      // each Response to one of them
//   if (checks.done()) status.checks = checks.results();
#include "ami_codec.hpp"

#include <callback/engine.hpp>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callback::engine_ami {

// The version marker of examples/asterisk/extensions.conf (`exten => version,1,NoOp(
// callback-dialplan N)`) that this build's engine speaks to.
inline constexpr int expected_dialplan_version = 2;

struct CheckOptions {
  std::string username = "callback";
  std::string events = "call,user,cdr";  // the read classes the engine asks for
  std::string context = "callback";
  std::vector<std::string> languages{"en", "zh"};  // languages the prompts must be in
};

// The seven prompts the dialplan plays (examples/asterisk/sounds/prompts.tsv).
[[nodiscard]] const std::vector<std::string>& callback_prompts();
// Asterisk's core prompts that Dial's L() time-left warning speaks ("you have 19 seconds"),
// wanted in each language: en from Debian's core sounds, zh from our prompts.tsv (a zh
// channel says numbers the Chinese way, so English digits would say "ten nine").
[[nodiscard]] const std::vector<std::string>& warning_prompts();

class ServerChecks {
 public:
  explicit ServerChecks(CheckOptions options);

  // ActionID -> CLI command, each to be sent as an AMI Command action.
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& commands() const noexcept { return commands_; }
  // A Response whose ActionID is one of commands(); false if it is not ours.
  bool on_reply(const ami::MessageView& reply);
  [[nodiscard]] bool done() const noexcept { return answered_ == commands_.size(); }
  // permissions, cdr, dialplan, prompts, warning prompts (those not answered yet say so).
  [[nodiscard]] std::vector<EngineStatus::Check> results() const;

 private:
  enum class Kind { permissions, cdr, dialplan, sound };
  struct Pending {
    Kind kind;
    std::string sound;  // for Kind::sound
    bool answered = false;
  };

  CheckOptions options_;
  std::vector<std::pair<std::string, std::string>> commands_;
  std::map<std::string, Pending> pending_;  // by ActionID
  std::size_t answered_ = 0;
  std::optional<EngineStatus::Check> permissions_, cdr_, dialplan_;
  std::map<std::string, std::set<std::string>> sounds_;  // name -> languages found
  std::string command_refused_;                          // the Command action itself was refused
};

// The pieces, for tests: each reads one Command's Response.
[[nodiscard]] EngineStatus::Check check_permissions(const ami::MessageView& reply, std::string_view username,
                                                    std::string_view events);
[[nodiscard]] EngineStatus::Check check_cdr(const ami::MessageView& reply);
[[nodiscard]] EngineStatus::Check check_dialplan(const ami::MessageView& reply, std::string_view context);
// The languages `core show sound NAME` lists (empty when it is not there).
[[nodiscard]] std::set<std::string> sound_languages(const ami::MessageView& reply);

}  // namespace callback::engine_ami
