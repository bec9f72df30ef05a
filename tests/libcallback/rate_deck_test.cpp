// Rate decks (callback/rate_deck.hpp), which every billing backend uses: the carriers' CSV
// (RFC 4180 records, callback/csv.hpp) read strictly, and the trie's longest-prefix match.
#include <callback/csv.hpp>
#include <callback/rate_deck.hpp>

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <sstream>

using namespace callback;
using namespace std::chrono_literals;

namespace {

const Currency cny = Currency::of("CNY").value();

// --- CSV records ----------------------------------------------------------------------------

std::vector<std::vector<std::string>> records(std::string_view text, char separator = ',') {
  CsvReader csv(text, separator);
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> fields;
  while (auto more = csv.next(fields)) {
    if (!*more) {
      out.push_back({"error at line " + std::to_string(csv.line()) + ": " + csv.error()});
      break;
    }
    out.push_back(fields);
  }
  return out;
}

TEST(Csv, QuotedFieldsHoldSeparatorsQuotesAndLineBreaks) {
  using R = std::vector<std::vector<std::string>>;
  EXPECT_EQ(records("a,b,c\n1,2,3\n"), (R{{"a", "b", "c"}, {"1", "2", "3"}}));
  EXPECT_EQ(records("\"a,b\",\"say \"\"hi\"\"\"\n"), (R{{"a,b", "say \"hi\""}}));
  // RFC 4180: a quoted field may span lines, with CRLF or LF; the record goes on.
  EXPECT_EQ(records("86,\"China\r\nmobile\",0.10\r\n1,\"two\nlines\",0.2"),
            (R{{"86", "China\r\nmobile", "0.10"}, {"1", "two\nlines", "0.2"}}));
  // Unquoted fields are trimmed of blanks (and a CR before LF); quoted ones kept whole.
  EXPECT_EQ(records("  86 ; \" Hong Kong \" ;0.10\r\n", ';'), (R{{"86", " Hong Kong ", "0.10"}}));
  // Empty fields, blank lines between records, no final line break, a BOM.
  EXPECT_EQ(records("\xEF\xBB\xBF,,\n\n  \r\nx"), (R{{"", "", ""}, {"x"}}));
  EXPECT_TRUE(records("").empty());
}

TEST(Csv, RecordsKnowTheLineTheyStartOn) {
  CsvReader csv("a\n\"b\nc\"\n\nd\n", ',');
  std::vector<std::string> fields;
  std::vector<std::size_t> starts;
  while (auto more = csv.next(fields)) {
    ASSERT_TRUE(*more);
    starts.push_back(csv.line());
  }
  EXPECT_EQ(starts, (std::vector<std::size_t>{1, 2, 5}));
}

TEST(Csv, AnOpenQuoteOrTextAfterAClosingQuoteIsAnErrorAtItsLine) {
  EXPECT_EQ(records("ok\n1,\"open\n2,3\n").back(), std::vector<std::string>{"error at line 2: a quote is not closed"});
  EXPECT_EQ(records("1,\"x\"y,2").back(), std::vector<std::string>{"error at line 1: text after a closing quote"});
  // The reader stops at the error: nothing after it is taken as data.
  EXPECT_EQ(records("1,\"x\"y\n2,3").size(), 1u);
  EXPECT_EQ(CsvReader::detect_separator("\n prefix;rate\n86,1"), ';');
  EXPECT_EQ(CsvReader::detect_separator("\"a;b\",c\n1;2"), ',') << "a quoted ; is no separator";
}

// --- rate decks -----------------------------------------------------------------------------

Result<std::vector<RateLine>> parse(const std::string& csv) {
  std::istringstream in(csv);
  return parse_rate_csv(in, cny);
}
std::string parse_error(const std::string& csv) {
  auto lines = parse(csv);
  return lines ? "no error" : lines.error().describe();
}

// --- CSV ----------------------------------------------------------------------------------

TEST(RateCsv, ADescriptionInQuotesMaySpanLinesAndErrorsNameTheRecordsFirstLine) {
  // A spreadsheet's multi-line cell: its line breaks become one space each.
  auto lines = parse("prefix,description,rate\n86,\"China,\r\nall networks\",0.10\n44,UK,0.05\n");
  ASSERT_TRUE(lines) << lines.error().describe();
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[1].rate.description, "China, all networks");
  EXPECT_EQ((*lines)[1].line, 2u);
  EXPECT_EQ((*lines)[0].line, 4u) << "the next record's line counts the one inside quotes";
  // Errors name the line the record starts on.
  EXPECT_EQ(parse_error("prefix,description,rate\n86,\"two\nlines\",x\n"),
            "line 2: rate: \"x\" is not a decimal amount (unexpected 'x' at position 1)");
  EXPECT_EQ(parse_error("prefix,rate\n86,\"0.10\n"), "line 2: row: a quote is not closed");
  EXPECT_EQ(parse_error("prefix,description,rate\n86,\"a\x01\",0.10\n"),
            "line 2: description: contains a control character");
}

TEST(RateCsv, ReadsTheSimpleFormWithOrWithoutHeaderCommaOrSemicolon) {
  for (const std::string csv : {"861;China mobile;0.10\n8610;Beijing;0.05\n",
                                "prefix;description;rate\n861;China mobile;0.10\n8610;Beijing;0.05\n",
                                "prefix,description,rate\r\n861,China mobile,0.10\r\n8610,Beijing,0.05\r\n"}) {
    auto lines = parse(csv);
    ASSERT_TRUE(lines) << lines.error().describe();
    ASSERT_EQ(lines->size(), 2u);
    EXPECT_EQ((*lines)[1].rate.prefix, "8610");
    EXPECT_EQ((*lines)[1].rate.description, "Beijing");
    EXPECT_EQ((*lines)[1].rate.price_per_minute, Money::parse("0.05", cny).value());
    EXPECT_EQ((*lines)[1].rate.initial_increment, 60s);  // 60/60 by default
    EXPECT_EQ((*lines)[1].line, csv.starts_with("prefix") ? 3u : 2u);
  }
}

TEST(RateCsv, ReadsTheRichForm) {
  auto lines = parse(
      "prefix;description;rate;increment;connection_fee;minimum_duration;effective_from;weekdays;hours\n"
      "44;\"UK; all\";0.012345;30/6;0.05;10;2026-01-01;mon-fri;08:00-20:00\n"
      "+1;USA;0.01;1/1;;;;;\n"
      "882;Satellite;BLOCKED\n");
  ASSERT_TRUE(lines) << lines.error().describe();
  auto by_prefix = [&](const std::string& p) -> const RateLine& {
    return *std::find_if(lines->begin(), lines->end(), [&](const RateLine& l) { return l.rate.prefix == p; });
  };
  const auto& uk = by_prefix("44");
  EXPECT_EQ(uk.rate.description, "UK; all");
  EXPECT_EQ(uk.rate.price_per_minute.micros(), 12345);
  EXPECT_EQ(uk.rate.initial_increment, 30s);
  EXPECT_EQ(uk.rate.subsequent_increment, 6s);
  EXPECT_EQ(uk.rate.connection_fee, Money::parse("0.05", cny).value());
  EXPECT_EQ(uk.rate.minimum_duration, 10s);
  EXPECT_EQ(uk.weekdays, 0x1f);
  EXPECT_EQ(uk.start_minute, 480);
  EXPECT_EQ(uk.end_minute, 1200);
  EXPECT_EQ(by_prefix("1").rate.initial_increment, 1s);  // "+1" read as 1
  EXPECT_EQ(by_prefix("1").line, 3u);
  EXPECT_TRUE(by_prefix("882").blocked);
}

TEST(RateCsv, BadRowsAreRefusedNamingLineAndField) {
  EXPECT_EQ(parse_error("86;China;0.10\n87;x;-0.10\n"), "line 2: rate: \"-0.10\" is negative");
  EXPECT_EQ(parse_error("86;China;5000\n"),
            "line 1: rate: \"5000\" a minute is above the limit of 100.00 (a typo?)");
  EXPECT_EQ(parse_error("86;China;0.10\n8a6;x;0.1\n"), "line 2: prefix: \"8a6\" is not 1 to 15 digits");
  EXPECT_EQ(parse_error("86;China;0.10\n\n86;again;0.2\n"), "line 3: prefix: duplicate prefix 86 (also on line 1)");
  EXPECT_EQ(parse_error("86;China;0.1234567\n"), "line 1: rate: \"0.1234567\" has more than 6 decimal places");
  EXPECT_EQ(parse_error("86;\"China;0.10\n"), "line 1: row: a quote is not closed");
  EXPECT_EQ(parse_error("prefix;cost\n86;0.1\n"), "line 1: header: unknown column \"cost\"");
  EXPECT_EQ(parse_error("86;China;0.10;90/0\n"), "line 1: increment: \"90/0\" is not like 60/60, 30/6 or 1/1");
  EXPECT_EQ(parse_error("86;China;0.10;60/60;0;0;2026-13-45\n"),
            "line 1: effective_from: \"2026-13-45\" is not YYYY-MM-DD[ HH:MM:SS]");
  EXPECT_EQ(parse_error("86;China;0.10;60/60;0;0;;someday\n"),
            "line 1: weekdays: \"someday\" is not like mon-fri, sat|sun or all");
  EXPECT_EQ(parse_error("86;China;0.10;60/60;0;0;;;8-20\n"), "line 1: hours: \"8-20\" is not like 08:00-20:00");
  EXPECT_EQ(parse_error("86;China\n"), "line 1: rate: missing");
  EXPECT_EQ(parse_error("86;China;0.1;60/60;0;0;;;;extra\n"), "line 1: row: 10 fields, at most 9 expected");
  EXPECT_EQ(parse_error(""), "line 0: the rate deck has no rates");
  // The same prefix at different times is not a duplicate.
  EXPECT_EQ(parse_error("86;day;0.10;60/60;0;0;;all;08:00-20:00\n86;night;0.05;60/60;0;0;;all;20:00-08:00\n"),
            "no error");
}

// --- the deck -----------------------------------------------------------------------------

TEST(RateDeck, LongestPrefixWins) {
  auto deck = RateDeck::build(parse("8;Asia;0.50\n86;China;0.20\n8610;Beijing;0.10\n861;Mobile;0.15\n").value());
  const Timestamp now{};
  EXPECT_EQ(deck->lookup("861055556666", now)->rate.prefix, "8610");
  EXPECT_EQ(deck->lookup("8613800138000", now)->rate.prefix, "861");
  EXPECT_EQ(deck->lookup("8620", now)->rate.prefix, "86");
  EXPECT_EQ(deck->lookup("81", now)->rate.prefix, "8");
  EXPECT_EQ(deck->lookup("44", now), nullptr);
  EXPECT_EQ(deck->lookup("86", now)->rate.prefix, "86");
  EXPECT_EQ(deck->size(), 4u);
}

// What a lookup must answer, by brute force: the longest prefix with a line in force,
// the first such line in deck order (latest effective date first).
const RateLine* scan(const RateDeck& deck, std::string_view number, Timestamp at) {
  const RateLine* best = nullptr;
  for (const auto& line : deck.lines()) {
    if (!number.starts_with(line.rate.prefix) || !line.applies_at(at)) continue;
    if (best == nullptr || line.rate.prefix.size() > best->rate.prefix.size()) best = &line;
  }
  return best;
}

// Single and batched lookups against the scan, over decks big enough for the top levels
// to be one array (level compression) and with some lines that depend on the day.
TEST(RateDeck, LookupsAgreeWithAScanOfEveryLine) {
  std::mt19937 rng(7);
  for (const bool with_periods : {false, true}) {
    std::string csv = "prefix;description;rate;weekdays\n";
    std::set<std::string> prefixes;
    while (prefixes.size() < 20000) {
      std::string p;
      for (std::size_t n = 1 + rng() % 8; n > 0; --n) p.push_back(static_cast<char>('0' + rng() % 10));
      prefixes.insert(p);
    }
    int i = 0;
    for (const auto& p : prefixes) csv += p + ";x;0.01;" + (with_periods && i++ % 3 == 0 ? "sat|sun" : "all") + "\n";
    auto deck = RateDeck::build(parse(csv).value());
    std::vector<std::string> numbers;
    for (int k = 0; k < 2000; ++k) {
      std::string n;
      for (std::size_t len = 1 + rng() % 12; len > 0; --len) n.push_back(static_cast<char>('0' + rng() % 10));
      if (k % 50 == 0) n[rng() % n.size()] = '#';  // not a digit: the match stops there
      numbers.push_back(n);
    }
    numbers.push_back("");
    std::vector<std::string_view> views(numbers.begin(), numbers.end());
    std::vector<const RateLine*> out(views.size());
    const Timestamp saturday = std::chrono::sys_days{std::chrono::November / 28 / 2026} + std::chrono::hours(12);
    for (Timestamp at : {Timestamp{}, saturday}) {
      deck->lookup_batch(views, at, out);
      std::size_t found = 0;
      for (std::size_t k = 0; k < views.size(); ++k) {
        const RateLine* expected = scan(*deck, views[k], at);
        ASSERT_EQ(deck->lookup(views[k], at), expected) << views[k];
        ASSERT_EQ(out[k], expected) << views[k];
        found += expected != nullptr;
      }
      EXPECT_GT(found, 500u);
    }
  }
}

TEST(RateDeck, PeriodsAndEffectiveDatesChooseTheLineInForce) {
  auto deck = RateDeck::build(parse("prefix;description;rate;weekdays;hours;effective_from\n"
                                    "44;peak;0.10;mon-fri;08:00-20:00;\n"
                                    "44;offpeak;0.05;mon-fri;20:00-08:00;\n"
                                    "44;weekend;0.02;sat|sun;;\n"
                                    "441;old;0.30;;;\n"
                                    "441;new;0.25;;;2026-06-01\n").value());
  using namespace std::chrono;
  const Timestamp wednesday_noon = sys_days{2026y / November / 25} + 12h;
  const Timestamp wednesday_night = sys_days{2026y / November / 25} + 23h;
  const Timestamp saturday = sys_days{2026y / November / 28} + 12h;
  EXPECT_EQ(deck->lookup("4420", wednesday_noon)->rate.description, "peak");
  EXPECT_EQ(deck->lookup("4420", wednesday_night)->rate.description, "offpeak");
  EXPECT_EQ(deck->lookup("4420", saturday)->rate.description, "weekend");
  EXPECT_EQ(deck->lookup("4412", wednesday_noon)->rate.description, "new");
  EXPECT_EQ(deck->lookup("4412", sys_days{2026y / March / 2} + 12h)->rate.description, "old");
}

}  // namespace
