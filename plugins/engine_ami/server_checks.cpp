#include "server_checks.hpp"

#include <algorithm>
#include <charconv>

namespace callback::engine_ami {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::set<std::string> split_classes(std::string_view list) {
  std::set<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = trim(list.substr(0, comma));
    if (!item.empty()) out.emplace(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// A Command the manager user may not send: every check that needed it says so.
bool refused(const ami::MessageView& reply) {
  return reply.response() == "Error" && reply.get("Message") == "Permission denied";
}

}  // namespace

const std::vector<std::string>& callback_prompts() {
  static const std::vector<std::string> names = {
      "callback-please-wait",  "callback-time-up",     "callback-partner-hangup", "callback-partner-busy",
      "callback-partner-away", "callback-system-busy", "callback-call-failed"};
  return names;
}

const std::vector<std::string>& warning_prompts() {
  static const std::vector<std::string> names = {"vm-youhave", "queue-minutes", "queue-seconds", "digits/10"};
  return names;
}

EngineStatus::Check check_permissions(const ami::MessageView& reply, std::string_view username,
                                      std::string_view events) {
  EngineStatus::Check check{.name = "permissions"};
  std::optional<std::set<std::string>> read, write;
  for (auto line : reply.all("Output")) {
    line = trim(line);
    if (line.starts_with("read perm:")) read = split_classes(line.substr(10));
    if (line.starts_with("write perm:")) write = split_classes(line.substr(11));
  }
  if (!read || !write) {
    check.detail = "manager.conf has no user '" + std::string(username) + "' (manager show user)";
    return check;
  }
  auto has = [](const std::set<std::string>& classes, std::string_view name) {
    return classes.count("all") > 0 || classes.count(std::string(name)) > 0;
  };
  std::vector<std::string> missing;
  for (const auto& needed : split_classes(events)) {
    if (!has(*read, needed)) missing.push_back("read " + needed);
  }
  // Originate; Hangup (system or call); CoreShowChannels (system or reporting); Command.
  if (!has(*write, "originate")) missing.emplace_back("write originate");
  if (!has(*write, "system") && !has(*write, "call")) missing.emplace_back("write call");
  if (!has(*write, "system") && !has(*write, "reporting")) missing.emplace_back("write system");
  if (!has(*write, "command")) missing.emplace_back("write command");
  check.ok = missing.empty();
  check.detail = check.ok ? "user " + std::string(username) + " may read " + std::string(events) +
                                " and write originate, call, command"
                          : "user " + std::string(username) + " lacks " + join(missing) +
                                " (manager.conf read = / write =; examples/asterisk/manager.conf)";
  return check;
}

EngineStatus::Check check_cdr(const ami::MessageView& reply) {
  EngineStatus::Check check{.name = "cdr"};
  bool backends = false, logging = true;
  for (auto line : reply.all("Output")) {
    line = trim(line);
    if (line.starts_with("Logging:") && trim(line.substr(8)) != "Enabled") logging = false;
    if (line == "* Registered Backends") backends = true;
    if (!backends || !line.starts_with("cdr_manager")) continue;
    if (line.find("(suspended)") != std::string_view::npos) {
      check.detail = "cdr_manager is loaded but suspended: set enabled = yes in cdr_manager.conf "
                     "(examples/asterisk/cdr_manager.conf), then module reload cdr_manager.so";
      return check;
    }
    check.ok = logging;
    check.detail = logging ? "cdr_manager publishes CDRs (B's talk time comes from them)"
                           : "CDRs are off (cdr.conf enable = yes)";
    return check;
  }
  check.detail = "cdr_manager is not loaded: load cdr_manager.so with examples/asterisk/cdr_manager.conf; "
                 "without it B's talk time is measured by callback, not by Asterisk";
  return check;
}

EngineStatus::Check check_dialplan(const ami::MessageView& reply, std::string_view context) {
  EngineStatus::Check check{.name = "dialplan"};
  const std::string where = "examples/asterisk/extensions.conf, then dialplan reload";
  for (auto line : reply.all("Output")) {
    if (line.find("There is no existence of '" + std::string(context) + "' context") != std::string_view::npos) {
      check.detail = "context '" + std::string(context) + "' is not loaded: install " + where;
      return check;
    }
    const auto at = line.find("NoOp(callback-dialplan ");
    if (at == std::string_view::npos) continue;
    int version = 0;
    const auto digits = line.substr(at + 23);
    std::from_chars(digits.data(), digits.data() + digits.size(), version);
    check.ok = version == expected_dialplan_version;
    check.detail = check.ok ? "context '" + std::string(context) + "' version " + std::to_string(version)
                            : "context '" + std::string(context) + "' is version " + std::to_string(version) +
                                  ", this build expects " + std::to_string(expected_dialplan_version) +
                                  ": install " + where;
    return check;
  }
  check.detail = "context '" + std::string(context) + "' has no version marker (an older dialplan): install " + where;
  return check;
}

std::set<std::string> sound_languages(const ami::MessageView& reply) {
  std::set<std::string> out;
  if (reply.response() != "Success") return out;
  for (auto line : reply.all("Output")) {
    line = trim(line);
    if (line.starts_with("Language ") && line.ends_with(":")) out.emplace(line.substr(9, line.size() - 10));
  }
  return out;
}

ServerChecks::ServerChecks(CheckOptions options) : options_(std::move(options)) {
  auto add = [&](Kind kind, std::string command, std::string sound = {}) {
    const std::string id = "check-" + std::to_string(commands_.size() + 1);
    commands_.emplace_back(id, std::move(command));
    pending_.emplace(id, Pending{kind, std::move(sound)});
  };
  add(Kind::permissions, "manager show user " + options_.username);
  add(Kind::cdr, "cdr show status");
  add(Kind::dialplan, "dialplan show version@" + options_.context);
  for (const auto& name : callback_prompts()) add(Kind::sound, "core show sound " + name, name);
  for (const auto& name : warning_prompts()) add(Kind::sound, "core show sound " + name, name);
}

bool ServerChecks::on_reply(const ami::MessageView& reply) {
  auto it = pending_.find(std::string(reply.action_id()));
  if (it == pending_.end()) return false;
  Pending& p = it->second;
  if (p.answered) return true;
  p.answered = true;
  ++answered_;
  if (refused(reply)) {
    command_refused_ = "user " + options_.username + " lacks write command, so this cannot be checked";
    return true;
  }
  switch (p.kind) {
    case Kind::permissions: permissions_ = check_permissions(reply, options_.username, options_.events); break;
    case Kind::cdr: cdr_ = check_cdr(reply); break;
    case Kind::dialplan: dialplan_ = check_dialplan(reply, options_.context); break;
    case Kind::sound: sounds_[p.sound] = sound_languages(reply); break;
  }
  return true;
}

std::vector<EngineStatus::Check> ServerChecks::results() const {
  auto or_pending = [&](const std::optional<EngineStatus::Check>& c, const std::string& name) {
    if (c) return *c;
    return EngineStatus::Check{.name = name, .detail = command_refused_.empty() ? "no answer yet" : command_refused_};
  };
  std::vector<EngineStatus::Check> out{or_pending(permissions_, "permissions"), or_pending(cdr_, "cdr"),
                                       or_pending(dialplan_, "dialplan")};
  auto prompts = [&](const std::string& name, const std::vector<std::string>& names,
                     const std::vector<std::string>& languages, const std::string& what) {
    EngineStatus::Check c{.name = name};
    if (!command_refused_.empty()) {
      c.detail = command_refused_;
      return c;
    }
    std::vector<std::string> missing;
    std::size_t known = 0;
    for (const auto& sound : names) {
      auto found = sounds_.find(sound);
      if (found == sounds_.end()) continue;
      ++known;
      for (const auto& language : languages) {
        if (found->second.count(language) == 0) missing.push_back(language + "/" + sound);
      }
    }
    if (known < names.size()) {
      c.detail = "no answer yet";
    } else {
      c.ok = missing.empty();
      c.detail = c.ok ? std::to_string(names.size()) + " " + what + " in " + join(languages)
                      : "missing in Asterisk's sounds folder: " + join(missing);
    }
    return c;
  };
  auto prompt_check = prompts("prompts", callback_prompts(), options_.languages, "prompts");
  if (!prompt_check.ok && prompt_check.detail.starts_with("missing")) {
    prompt_check.detail += " (install build/share/callback/sounds/<lang>/; README, step 1)";
  }
  out.push_back(std::move(prompt_check));
  auto warnings = prompts("warning_prompts", warning_prompts(), options_.languages, "time-left warning prompts");
  if (!warnings.ok && warnings.detail.starts_with("missing")) {
    warnings.detail += " (en: Debian's asterisk-core-sounds-en-wav; zh: build/share/callback/sounds/zh/)";
  }
  out.push_back(std::move(warnings));
  return out;
}

}  // namespace callback::engine_ami
