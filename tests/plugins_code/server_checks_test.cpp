// The AMI engine's checks of an Asterisk (server_checks.hpp), read from the replies a real
// Asterisk 23.4.1 gave to the same Commands (tests/fixtures/asterisk/ami-asterisk-check*).
#include "ami_engine.hpp"
#include "server_checks.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace callback::engine_ami {
namespace {

const std::filesystem::path recordings = CALLBACK_ASTERISK_RECORDINGS;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<ami::Message> parse(const std::string& bytes) {
  std::vector<ami::Message> out;
  ami::Parser parser;
  auto ok = parser.feed(bytes, [&](const ami::MessageView& m) { out.emplace_back(m); });
  EXPECT_TRUE(ok);
  return out;
}

// A recording's replies by the CLI command they answer.
std::map<std::string, ami::Message> replies(const std::string& name) {
  std::map<std::string, std::string> command_of;  // ActionID -> command
  for (const auto& m : parse("Asterisk Call Manager/12.0.0\r\n" + read_file(recordings / (name + ".sent.txt")))) {
    if (m.get("Action") == "Command") command_of[std::string(m.get("ActionID"))] = std::string(m.get("Command"));
  }
  std::map<std::string, ami::Message> out;
  for (const auto& m : parse(read_file(recordings / (name + ".txt")))) {
    if (auto it = command_of.find(std::string(m.get("ActionID"))); it != command_of.end()) out.emplace(it->second, m);
  }
  return out;
}

// The same reply with another ActionID (as if it answered ServerChecks' own Command).
ami::Message with_action_id(const ami::Message& reply, const std::string& id) {
  std::string text(reply.view().text());
  const auto at = text.find("ActionID: ");
  text.replace(at + 10, text.find("\r\n", at) - at - 10, id);
  return parse("Asterisk Call Manager/12.0.0\r\n" + text).at(0);
}

ami::Message reply_text(const std::string& text) { return parse("Asterisk Call Manager/12.0.0\r\n" + text).at(0); }

TEST(ServerChecks, WhatTheRealAsteriskSaidReadsAsPassingChecks) {
  auto r = replies("ami-asterisk-check");
  ASSERT_EQ(r.count("manager show user callback"), 1u);
  const auto permissions = check_permissions(r.at("manager show user callback").view(), "callback", "call,user,cdr");
  EXPECT_TRUE(permissions.ok) << permissions.detail;
  const auto cdr = check_cdr(r.at("cdr show status").view());
  EXPECT_TRUE(cdr.ok) << cdr.detail;
  const auto dialplan = check_dialplan(r.at("dialplan show version@callback").view(), "callback");
  EXPECT_TRUE(dialplan.ok) << dialplan.detail;
  EXPECT_EQ(dialplan.detail, "context 'callback' version 2");
  // That Asterisk had no callback prompts installed, and the English core prompts.
  EXPECT_TRUE(sound_languages(r.at("core show sound callback-please-wait").view()).empty());
  EXPECT_EQ(sound_languages(r.at("core show sound vm-youhave").view()), (std::set<std::string>{"en"}));
}

TEST(ServerChecks, CdrManagerDisabledIsNamedWithTheFix) {
  auto r = replies("ami-asterisk-check-cdr-disabled");
  const auto cdr = check_cdr(r.at("cdr show status").view());
  EXPECT_FALSE(cdr.ok);
  EXPECT_NE(cdr.detail.find("suspended"), std::string::npos) << cdr.detail;
  EXPECT_NE(cdr.detail.find("enabled = yes"), std::string::npos) << cdr.detail;
}

TEST(ServerChecks, PromptsAreFoundPerLanguage) {
  auto r = replies("ami-asterisk-check-sounds");
  EXPECT_EQ(sound_languages(r.at("core show sound callback-please-wait").view()), (std::set<std::string>{"en", "zh"}));
}

TEST(ServerChecks, MissingClassesAreListed) {
  auto r = replies("ami-asterisk-check");
  // The engine asking for more than the user may read, or a user without write command.
  auto more = check_permissions(r.at("manager show user callback").view(), "callback", "call,user,cdr,dialplan");
  EXPECT_FALSE(more.ok);
  EXPECT_NE(more.detail.find("read dialplan"), std::string::npos) << more.detail;
  std::string text(r.at("manager show user callback").view().text());
  text.replace(text.find("system,call,command,originate"), 29, "system,originate");
  auto fewer = check_permissions(reply_text(text).view(), "callback", "call,user,cdr");
  EXPECT_FALSE(fewer.ok);
  EXPECT_NE(fewer.detail.find("write command"), std::string::npos) << fewer.detail;
  EXPECT_EQ(fewer.detail.find("write call"), std::string::npos) << "system covers Hangup: " << fewer.detail;
  // "all" grants every class.
  text.replace(text.find("system,originate"), 16, "all");
  EXPECT_TRUE(check_permissions(reply_text(text).view(), "callback", "call,user,cdr").ok);
  // No such user: no perm lines at all.
  auto none = check_permissions(reply_text("Response: Success\r\nActionID: x\r\nMessage: Command output follows\r\n"
                                           "Output: There is no manager called nobody\r\n\r\n")
                                    .view(),
                                "nobody", "call");
  EXPECT_FALSE(none.ok);
  EXPECT_NE(none.detail.find("no user 'nobody'"), std::string::npos) << none.detail;
}

TEST(ServerChecks, AMissingOrOldDialplanIsNamed) {
  // Asterisk's words (main/pbx.c) for a context that is not loaded.
  auto missing = check_dialplan(reply_text("Response: Error\r\nActionID: x\r\nMessage: Command output follows\r\n"
                                           "Output: There is no existence of 'callback' context\r\n\r\n")
                                    .view(),
                                "callback");
  EXPECT_FALSE(missing.ok);
  EXPECT_NE(missing.detail.find("not loaded"), std::string::npos) << missing.detail;
  auto old = check_dialplan(reply_text("Response: Error\r\nActionID: x\r\nMessage: Command output follows\r\n"
                                       "Output: There is no existence of version@callback extension\r\n\r\n")
                                .view(),
                            "callback");
  EXPECT_FALSE(old.ok);
  EXPECT_NE(old.detail.find("no version marker"), std::string::npos) << old.detail;
  auto r = replies("ami-asterisk-check");
  std::string text(r.at("dialplan show version@callback").view().text());
  text.replace(text.find("callback-dialplan 2"), 19, "callback-dialplan 1");
  auto other = check_dialplan(reply_text(text).view(), "callback");
  EXPECT_FALSE(other.ok);
  EXPECT_NE(other.detail.find("version 1, this build expects 2"), std::string::npos) << other.detail;
}

TEST(ServerChecks, TheWholeSetFromOneLogin) {
  auto r = replies("ami-asterisk-check-sounds");
  ServerChecks checks({.languages = {"en", "zh"}});
  EXPECT_FALSE(checks.done());
  // Answer each Command with the recorded reply to the same command; the prompts not in
  // that recording are answered as "not found in index".
  for (const auto& [id, command] : checks.commands()) {
    if (auto it = r.find(command); it != r.end()) {
      EXPECT_TRUE(checks.on_reply(with_action_id(it->second, id).view())) << command;
    } else {
      const std::string name = command.substr(command.rfind(' ') + 1);
      EXPECT_TRUE(checks.on_reply(reply_text("Response: Error\r\nActionID: " + id +
                                             "\r\nMessage: Command output follows\r\nOutput: ERROR: File " + name +
                                             " not found in index\r\n\r\n")
                                      .view()));
    }
  }
  EXPECT_FALSE(checks.on_reply(reply_text("Response: Success\r\nActionID: ping-1\r\n\r\n").view())) << "not ours";
  ASSERT_TRUE(checks.done());
  const auto results = checks.results();
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[0].name, "permissions");
  EXPECT_TRUE(results[0].ok);
  EXPECT_TRUE(results[1].ok) << results[1].detail;
  EXPECT_TRUE(results[2].ok) << results[2].detail;
  EXPECT_EQ(results[3].name, "prompts");
  EXPECT_FALSE(results[3].ok);
  EXPECT_EQ(results[3].detail.find("callback-please-wait"), std::string::npos) << "it is there: " << results[3].detail;
  EXPECT_NE(results[3].detail.find("zh/callback-time-up"), std::string::npos) << results[3].detail;
  EXPECT_EQ(results[4].name, "warning_prompts");
  EXPECT_FALSE(results[4].ok) << "queue-minutes, queue-seconds and digits/10 were not asked in that recording";
  EXPECT_NE(results[4].detail.find("zh/vm-youhave"), std::string::npos) << results[4].detail;
}

TEST(ServerChecks, WithoutTheCommandClassEveryCheckSaysWhy) {
  ServerChecks checks({});
  for (const auto& [id, command] : checks.commands()) {
    checks.on_reply(reply_text("Response: Error\r\nActionID: " + id + "\r\nMessage: Permission denied\r\n\r\n").view());
  }
  ASSERT_TRUE(checks.done());
  for (const auto& c : checks.results()) {
    EXPECT_FALSE(c.ok) << c.name;
    EXPECT_NE(c.detail.find("lacks write command"), std::string::npos) << c.name << ": " << c.detail;
  }
}

}  // namespace
}  // namespace callback::engine_ami

namespace callback::engine_ami {
namespace {

TEST(AmiOptions, LanguagesAreSoundFolderNames) {
  AmiOptions options;
  options.secret = "s";
  EXPECT_TRUE(validate(options));
  options.languages = {"en", "zh\r\nX"};
  const auto bad = validate(options);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "languages[1]");
  EXPECT_NE(bad.error().message.find("letters, digits"), std::string::npos) << bad.error().message;
  options.languages = {"pt_BR", "x"};
  EXPECT_EQ(validate(options).error().field, "languages[1]") << "one letter is no language";
}

}  // namespace
}  // namespace callback::engine_ami
