// The AMI parser against every byte a real Asterisk 23.4.1 sent (tests/fixtures/asterisk).
#include "ami_codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

using namespace callback;
namespace fs = std::filesystem;

namespace {

const fs::path recordings{CALLBACK_ASTERISK_RECORDINGS};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every server transcript (not the client's .sent.txt).
std::vector<fs::path> transcripts() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(recordings)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with("ami-") && name.ends_with(".txt") && !name.ends_with(".sent.txt")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Parsed {
  std::vector<std::string> messages;  // raw text of each
  std::string banner;
  bool ok = true;
};

Parsed parse_in_pieces(std::string_view bytes, const std::vector<std::size_t>& cuts) {
  ami::Parser parser;
  Parsed parsed;
  std::size_t from = 0;
  auto on_message = [&](const ami::MessageView& m) { parsed.messages.emplace_back(m.text()); };
  for (std::size_t cut : cuts) {
    parsed.ok = parsed.ok && parser.feed(bytes.substr(from, cut - from), on_message).ok();
    from = cut;
  }
  parsed.ok = parsed.ok && parser.feed(bytes.substr(from), on_message).ok();
  parsed.banner = parser.banner();
  return parsed;
}

std::size_t count_messages(std::string_view bytes) {
  std::size_t n = 0;
  for (auto at = bytes.find("\r\n\r\n"); at != std::string_view::npos; at = bytes.find("\r\n\r\n", at + 4)) ++n;
  return n;
}

TEST(AmiCodec, ParsesEveryRecordedTranscriptWhole) {
  const auto files = transcripts();
  ASSERT_GE(files.size(), 28u);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string bytes = read_file(file);
    const auto parsed = parse_in_pieces(bytes, {});
    ASSERT_TRUE(parsed.ok);
    EXPECT_EQ(parsed.banner, "Asterisk Call Manager/12.0.0");
    EXPECT_EQ(parsed.messages.size(), count_messages(bytes));
    // Nothing lost or added: the messages and the banner are the file.
    std::string joined = "Asterisk Call Manager/12.0.0\r\n";
    for (const auto& m : parsed.messages) joined += m;
    EXPECT_EQ(joined, bytes);
  }
}

TEST(AmiCodec, ByteByByteFeedingGivesTheSameMessages) {
  for (const auto& file : transcripts()) {
    SCOPED_TRACE(file.filename().string());
    const std::string bytes = read_file(file);
    std::vector<std::size_t> every_byte(bytes.size() > 0 ? bytes.size() - 1 : 0);
    std::iota(every_byte.begin(), every_byte.end(), std::size_t{1});
    EXPECT_EQ(parse_in_pieces(bytes, every_byte).messages, parse_in_pieces(bytes, {}).messages);
  }
}

TEST(AmiCodec, TwoPieceSplitAtEveryBytePosition) {
  // Every position of the small transcripts; the large ones (originate scenarios,
  // 20-56 KB) get 2,000 random positions each, and the bursts (up to 3.7 MB) as many as
  // 40 MB of parsing allows (at least 20), to keep the run in seconds under ASan.
  std::mt19937 random(20261126);
  for (const auto& file : transcripts()) {
    SCOPED_TRACE(file.filename().string());
    const std::string bytes = read_file(file);
    const auto whole = parse_in_pieces(bytes, {}).messages;
    std::vector<std::size_t> positions;
    if (bytes.size() <= 4096) {
      for (std::size_t i = 1; i < bytes.size(); ++i) positions.push_back(i);
    } else {
      std::uniform_int_distribution<std::size_t> any(1, bytes.size() - 1);
      const auto count = std::clamp<std::size_t>(40'000'000 / bytes.size(), 20, 2000);
      for (std::size_t i = 0; i < count; ++i) positions.push_back(any(random));
    }
    for (std::size_t at : positions) {
      const auto split = parse_in_pieces(bytes, {at});
      ASSERT_TRUE(split.ok) << "split at " << at;
      ASSERT_EQ(split.messages, whole) << "split at " << at;
    }
  }
}

TEST(AmiCodec, ReadsHeadersAndMultiLineCommandOutput) {
  const std::string bytes = read_file(recordings / "ami-command.txt");
  ami::Parser parser;
  std::vector<ami::Message> messages;
  ASSERT_TRUE(parser.feed(bytes, [&](const ami::MessageView& m) { messages.emplace_back(m); }));
  ASSERT_GE(messages.size(), 4u);
  const auto& show = messages[2].view();  // dialplan show 1001@phones
  EXPECT_EQ(show.response(), "Success");
  EXPECT_EQ(show.action_id(), "cmd-2");
  const auto output = show.all("Output");
  ASSERT_EQ(output.size(), 9u);
  EXPECT_EQ(output[0], "[ Context 'phones' created by 'pbx_config' ]");
  EXPECT_EQ(output[7], "");  // "Output: " is an empty line of output
  EXPECT_EQ(messages[4].view().response(), "Error");
  EXPECT_EQ(messages[4].get("message"), "Command output follows");  // names are case-insensitive
}

TEST(AmiCodec, OwningMessagesOutliveTheParser) {
  std::vector<ami::Message> kept;
  {
    ami::Parser parser;
    ASSERT_TRUE(parser.feed("Asterisk Call Manager/12.0.0\r\nEvent: Hangup\r\nUniqueid: 1.2\r\nCause: 17\r\n\r\n",
                            [&](const ami::MessageView& m) { kept.emplace_back(m); }));
  }
  ami::Message copy = kept.at(0);
  kept.clear();
  EXPECT_EQ(copy.view().event(), "Hangup");
  EXPECT_EQ(copy.get("Cause"), "17");
}

TEST(AmiCodec, RefusesAPeerThatIsNotAsterisk) {
  ami::Parser parser;
  auto ok = parser.feed("HTTP/1.1 400 Bad Request\r\n\r\n", [](const ami::MessageView&) {});
  ASSERT_FALSE(ok);
  EXPECT_NE(ok.error().message.find("not an Asterisk manager"), std::string::npos);
  EXPECT_FALSE(parser.feed("Event: x\r\n\r\n", [](const ami::MessageView&) {}));  // spent after an error
}

TEST(AmiCodec, RefusesGarbageLinesAndOversizedInput) {
  const std::string banner = "Asterisk Call Manager/12.0.0\r\n";
  int delivered = 0;
  auto count = [&](const ami::MessageView&) { ++delivered; };
  {
    ami::Parser parser;
    auto ok = parser.feed(banner + "Event: Newchannel\r\n\x01\x02garbage without colon\r\n\r\n", count);
    ASSERT_FALSE(ok);
    EXPECT_NE(ok.error().message.find("malformed AMI line \"??garbage without colon\""), std::string::npos)
        << ok.error().message;
  }
  {
    ami::Parser parser({.max_line = 1024});
    auto ok = parser.feed(banner + "Event: x\r\nBig: " + std::string(5000, 'a'), count);
    ASSERT_FALSE(ok);  // refused before the line even ends
    EXPECT_NE(ok.error().message.find("longer than 1024"), std::string::npos);
  }
  {
    ami::Parser parser({.max_line = 1024, .max_message = 4096});
    Status last = ok_status();
    for (int i = 0; i < 100 && last; ++i) last = parser.feed("Output: " + std::string(100, 'x') + "\r\n", count);
    EXPECT_FALSE(parser.feed(banner, count));  // never saw a banner first: garbage
  }
  {
    ami::Parser parser({.max_line = 1024, .max_message = 4096});
    Status last = parser.feed(banner + "Response: Success\r\n", count);
    for (int i = 0; i < 100 && last; ++i) last = parser.feed("Output: " + std::string(100, 'x') + "\r\n", count);
    ASSERT_FALSE(last);
    EXPECT_NE(last.error().message.find("message longer than 4096"), std::string::npos);
  }
  EXPECT_EQ(delivered, 0);
}

// Found by tests/fuzz/fuzz_ami: a banner longer than max_line was refused when it came in
// pieces and accepted when it came in one read.
TEST(AmiCodec, OverlongBannerIsRefusedHoweverItArrives) {
  const std::string banner = "Asterisk Call Manager/" + std::string(100, '9') + "\r\n";
  auto count = [](const ami::MessageView&) {};
  ami::Parser whole({.max_line = 64});
  EXPECT_FALSE(whole.feed(banner, count));
  ami::Parser pieces({.max_line = 64});
  Status last = ok_status();
  for (std::size_t i = 0; i < banner.size() && last; i += 10) last = pieces.feed(banner.substr(i, 10), count);
  EXPECT_FALSE(last);
}

TEST(AmiCodec, TruncatedFrameIsHeldUntilItCompletes) {
  ami::Parser parser;
  int delivered = 0;
  auto count = [&](const ami::MessageView&) { ++delivered; };
  ASSERT_TRUE(parser.feed("Asterisk Call Manager/12.0.0\r\nEvent: Hangup\r\nCause: 1", count));
  EXPECT_EQ(delivered, 0);
  ASSERT_TRUE(parser.feed("7\r\n\r\nEvent: Ne", count));
  EXPECT_EQ(delivered, 1);
}

TEST(AmiCodec, ActionsAreFormattedAndRefuseInjection) {
  const std::string wire = ami::Action("Originate").add("ActionID", "cb-1").add("Async", "true").str();
  EXPECT_EQ(wire, "Action: Originate\r\nActionID: cb-1\r\nAsync: true\r\n\r\n");
  EXPECT_THROW(ami::Action("Originate").add("CallerID", "x\r\n\r\nAction: Command"), std::logic_error);
  EXPECT_THROW(ami::Action("Ping").add("Bad:Name", "x"), std::logic_error);
  EXPECT_FALSE(ami::Action::is_safe_value("a\nb"));
}

}  // namespace
