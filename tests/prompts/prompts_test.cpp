// The announcements: the prompt table (examples/asterisk/sounds/prompts.tsv) names every
// prompt the dialplan and the engines play, in every language, once; and the files the build spoke from it
// are what Asterisk's wav format reads (RIFF/WAVE, PCM, 8000 Hz, mono, 16-bit), long
// enough to be words and not silent.
#include <callback/engine.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path source_dir = CALLBACK_SOURCE_DIR;
const std::string prompts_dir = CALLBACK_PROMPTS_DIR;  // empty: espeak-ng or sox was missing

struct Row {
  std::string language, name, voice, text;
  int line = 0;
};

std::vector<Row> table() {
  std::ifstream in(source_dir / "examples/asterisk/sounds/prompts.tsv");
  EXPECT_TRUE(in) << "cannot read prompts.tsv";
  std::vector<Row> rows;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty() || line.starts_with('#') || line.starts_with("language\t")) continue;
    std::vector<std::string> fields;
    std::istringstream split(line);
    for (std::string field; std::getline(split, field, '\t');) fields.push_back(field);
    EXPECT_EQ(fields.size(), 4u) << "prompts.tsv line " << line_no << ": " << line;
    fields.resize(4);
    rows.push_back({fields[0], fields[1], fields[2], fields[3], line_no});
  }
  return rows;
}

// Every callback-* name inside a Playback(...) of the dialplan (comment lines left out).
std::set<std::string> played_by_dialplan() {
  std::ifstream in(source_dir / "examples/asterisk/extensions.conf");
  EXPECT_TRUE(in) << "cannot read extensions.conf";
  const std::regex prompt(R"(callback-[a-z]+(-[a-z]+)*)");
  std::set<std::string> names;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == ';') continue;
    const auto playback = line.find("Playback(");
    if (playback == std::string::npos) continue;
    const std::string args = line.substr(playback);
    for (std::sregex_iterator it(args.begin(), args.end(), prompt), end; it != end; ++it) names.insert(it->str());
  }
  return names;
}

struct Wav {
  std::uint16_t format = 0, channels = 0, block_align = 0, bits = 0;
  std::uint32_t rate = 0, byte_rate = 0;
  std::vector<std::int16_t> samples;
};

std::uint32_t le32(const std::string& b, std::size_t at) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(b[at])) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 1])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 2])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 3])) << 24;
}
std::uint16_t le16(const std::string& b, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(b[at]) | static_cast<unsigned char>(b[at + 1]) << 8);
}

// The chunks as Asterisk's format_wav walks them: "fmt " then "data", others skipped.
// Empty, with `why` set, when the file is not a WAV file at all.
std::optional<Wav> parse_wav(const std::string& bytes, std::string& why) {
  auto fail = [&why](std::string reason) {
    why = std::move(reason);
    return std::optional<Wav>{};
  };
  if (bytes.size() < 12 || bytes.compare(0, 4, "RIFF") != 0 || bytes.compare(8, 4, "WAVE") != 0) {
    return fail("not RIFF/WAVE");
  }
  if (le32(bytes, 4) != bytes.size() - 8) return fail("the RIFF size is not the file's");
  Wav wav;
  bool have_fmt = false;
  for (std::size_t at = 12; at + 8 <= bytes.size();) {
    const std::string id = bytes.substr(at, 4);
    const std::uint32_t size = le32(bytes, at + 4);
    const std::size_t body = at + 8;
    if (body + size > bytes.size()) return fail("chunk " + id + " runs past the end");
    if (id == "fmt ") {
      if (size < 16) return fail("fmt chunk shorter than 16 bytes");
      wav.format = le16(bytes, body);
      wav.channels = le16(bytes, body + 2);
      wav.rate = le32(bytes, body + 4);
      wav.byte_rate = le32(bytes, body + 8);
      wav.block_align = le16(bytes, body + 12);
      wav.bits = le16(bytes, body + 14);
      have_fmt = true;
    } else if (id == "data") {
      if (!have_fmt) return fail("data before fmt");
      if (size % 2 != 0) return fail("odd data size");
      for (std::size_t i = 0; i < size; i += 2) wav.samples.push_back(static_cast<std::int16_t>(le16(bytes, body + i)));
      return wav;
    }
    at = body + size + (size % 2);  // chunks are padded to even sizes
  }
  return fail("no data chunk");
}

std::string le_bytes(std::uint32_t value, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}

// A WAV file's bytes: an extra chunk before "fmt ", then `samples` 16-bit samples.
std::string make_wav(std::uint16_t channels, std::uint32_t rate, std::vector<std::int16_t> samples) {
  std::string body = "WAVE";
  body += "LIST" + le_bytes(4, 4) + "INFO";
  body += "fmt " + le_bytes(16, 4) + le_bytes(1, 2) + le_bytes(channels, 2) + le_bytes(rate, 4) +
          le_bytes(rate * channels * 2, 4) + le_bytes(channels * 2, 2) + le_bytes(16, 2);
  body += "data" + le_bytes(static_cast<std::uint32_t>(samples.size() * 2), 4);
  for (std::int16_t s : samples) body += le_bytes(static_cast<std::uint16_t>(s), 2);
  return "RIFF" + le_bytes(static_cast<std::uint32_t>(body.size()), 4) + body;
}

// The header check itself tells formats apart (else the file checks below prove nothing).
TEST(Prompts, TheWavReaderSkipsOtherChunksAndReadsTheFormat) {
  std::string why;
  const auto stereo = parse_wav(make_wav(2, 44100, {1, -2, 3, -4}), why);
  ASSERT_TRUE(stereo) << why;
  EXPECT_EQ(stereo->channels, 2);
  EXPECT_EQ(stereo->rate, 44100u);
  EXPECT_EQ(stereo->samples, (std::vector<std::int16_t>{1, -2, 3, -4}));
  EXPECT_FALSE(parse_wav("RIFF" + le_bytes(4, 4) + "WAVE", why));
  EXPECT_EQ(why, "no data chunk");
  std::string cut = make_wav(1, 8000, {1, 2, 3});
  cut.resize(cut.size() - 2);
  EXPECT_FALSE(parse_wav(cut, why));
}

TEST(Prompts, TheTableHasEachLanguageAndNameOnceWithAVoiceAndAText) {
  std::set<std::pair<std::string, std::string>> seen;
  const auto rows = table();
  ASSERT_FALSE(rows.empty());
  for (const auto& row : rows) {
    EXPECT_TRUE(seen.emplace(row.language, row.name).second)
        << "prompts.tsv line " << row.line << ": " << row.language << "/" << row.name << " again";
    EXPECT_TRUE(std::regex_match(row.language, std::regex("[A-Za-z0-9_-]{2,16}"))) << "line " << row.line;
    EXPECT_FALSE(row.voice.empty()) << "line " << row.line;
    EXPECT_FALSE(row.text.empty()) << "line " << row.line;
  }
}

// The Asterisk core prompts Dial's L() time-left warning speaks for a channel in Chinese
// ("you have 19 seconds": vm-youhave, digits/10, digits/9, queue-seconds): Debian has them in
// English only, so the table speaks them in zh (numbers up to 999).
std::set<std::string> zh_warning_prompts() {
  std::set<std::string> names = {"vm-youhave", "queue-minutes", "queue-seconds", "digits/hundred"};
  for (int i = 0; i <= 9; ++i) names.insert("digits/" + std::to_string(i));
  for (int i = 10; i <= 90; i += 10) names.insert("digits/" + std::to_string(i));
  return names;
}

TEST(Prompts, EveryPromptTheDialplanPlaysIsInTheTableInEnglishAndChineseAndNoOther) {
  auto played = played_by_dialplan();
  // The seven of the dialplan's comment: a parse that finds none would prove nothing.
  EXPECT_EQ(played, (std::set<std::string>{"callback-please-wait", "callback-time-up", "callback-partner-hangup",
                                           "callback-partner-busy", "callback-partner-away", "callback-system-busy",
                                           "callback-call-failed"}));
  // And every announcement the engines play by name (Prompt::announcement -> sound_name):
  // "callback-enter-number" was missing, and the real Asterisk said "File
  // callback-enter-number does not exist" to the IVR's first caller. vm-youhave is the
  // core prompt of "you have N seconds".
  for (int i = 0; i <= static_cast<int>(callback::Announcement::enter_number); ++i) {
    const std::string name(callback::sound_name(static_cast<callback::Announcement>(i)));
    if (name != "vm-youhave") played.insert(name);
  }
  EXPECT_TRUE(played.contains("callback-enter-number"));
  std::map<std::string, std::set<std::string>> by_language;
  for (const auto& row : table()) by_language[row.language].insert(row.name);
  EXPECT_TRUE(by_language.contains("en"));
  EXPECT_TRUE(by_language.contains("zh"));
  const auto warning = zh_warning_prompts();
  for (const auto& [language, names] : by_language) {
    for (const auto& name : played) EXPECT_TRUE(names.contains(name)) << language << " has no " << name;
    for (const auto& name : names) {
      EXPECT_TRUE(played.contains(name) || (language == "zh" && warning.contains(name)))
          << language << "/" << name << " is never played";
    }
  }
  for (const auto& name : warning) EXPECT_TRUE(by_language["zh"].contains(name)) << "zh has no " << name;
}

TEST(Prompts, EveryFileIsEightKilohertzMonoSixteenBitPcmOfSpeech) {
  if (prompts_dir.empty()) GTEST_SKIP() << "the prompts were not generated (espeak-ng or sox missing at configure time)";
  for (const auto& row : table()) {
    const fs::path file = fs::path(prompts_dir) / row.language / (row.name + ".wav");
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    ASSERT_TRUE(in) << "missing";
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string why;
    const auto wav = parse_wav(bytes, why);
    ASSERT_TRUE(wav) << why;
    EXPECT_EQ(wav->format, 1) << "PCM (not WAVE_FORMAT_EXTENSIBLE: Asterisk refuses it)";
    EXPECT_EQ(wav->channels, 1);
    EXPECT_EQ(wav->rate, 8000u);
    EXPECT_EQ(wav->bits, 16);
    EXPECT_EQ(wav->block_align, 2);
    EXPECT_EQ(wav->byte_rate, 16000u);
    const double seconds = static_cast<double>(wav->samples.size()) / 8000.0;
    // A sentence lasts half a second at least; a number or "seconds" is one syllable or two.
    EXPECT_GE(seconds, row.name.starts_with("callback-") ? 0.5 : 0.15);
    EXPECT_LE(seconds, 8.0);
    double sum = 0;
    int peak = 0;
    for (std::int16_t s : wav->samples) {
      sum += static_cast<double>(s) * s;
      peak = std::max(peak, std::abs(static_cast<int>(s)));
    }
    const double rms = wav->samples.empty() ? 0 : std::sqrt(sum / static_cast<double>(wav->samples.size())) / 32768.0;
    EXPECT_GT(rms, 0.02) << "silent";
    // Normalized a little below full scale: loud, and never clipped.
    EXPECT_GT(peak, 32768 / 2);
    EXPECT_LT(peak, 32767);
  }
}

}  // namespace
