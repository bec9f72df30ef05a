// The Asterisk fake against the recordings of a real Asterisk 23.4.1: the bytes it sends
// must be the recorded ones, up to the values that legitimately differ (times, ids).
#include "fake_asterisk.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>
#include <functional>

using namespace std::chrono_literals;
using callback::fake::FakeAsterisk;
using callback::fake::FakeAsteriskOptions;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

const std::filesystem::path recordings{CALLBACK_ASTERISK_RECORDINGS};

std::string read_file(const std::string& name) {
  std::ifstream in(recordings / name, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Messages of a client transcript or of a server transcript after its banner.
std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = text.find("\r\n\r\n", pos);
    if (end == std::string_view::npos) break;
    out.emplace_back(text.substr(pos, end + 4 - pos));
    pos = end + 4;
  }
  return out;
}

std::string header(const std::string& message, const std::string& name) {
  const std::string key = "\r\n" + name + ": ";
  const std::string padded = "\r\n" + message;
  const auto at = padded.find(key);
  if (at == std::string::npos) return {};
  const auto start = at + key.size();
  return padded.substr(start, padded.find("\r\n", start) - start);
}

// A plain blocking AMI client; reads time out instead of hanging a test.
class Client {
 public:
  explicit Client(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{5, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }

  // The banner line, then one message per call; nullopt on close or timeout.
  std::optional<std::string> banner() {
    if (!fill_until("\r\n")) return std::nullopt;
    const auto end = buffer_.find("\r\n") + 2;
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return line;
  }
  std::optional<std::string> message() {
    if (!fill_until("\r\n\r\n")) return std::nullopt;
    const auto end = buffer_.find("\r\n\r\n") + 4;
    std::string m = buffer_.substr(0, end);
    buffer_.erase(0, end);
    received_ += m;
    return m;
  }
  // Reads messages until one satisfies `pred`; all read are kept in `all`.
  std::optional<std::string> until(const std::function<bool(const std::string&)>& pred) {
    while (auto m = message()) {
      all.push_back(*m);
      if (pred(*m)) return m;
    }
    return std::nullopt;
  }
  // Everything until the server closes (true) or a timeout (false).
  bool read_to_close(std::string& out) {
    while (true) {
      char data[65536];
      boost::system::error_code ec;
      const auto n = socket_.read_some(asio::buffer(data), ec);
      if (ec == asio::error::eof) {
        out += buffer_;
        buffer_.clear();
        return true;
      }
      if (ec) return false;
      buffer_.append(data, n);
    }
  }
  std::vector<std::string> all;

 private:
  bool fill_until(std::string_view marker) {
    while (buffer_.find(marker) == std::string::npos) {
      char data[65536];
      boost::system::error_code ec;
      const auto n = socket_.read_some(asio::buffer(data), ec);
      if (ec) return false;
      buffer_.append(data, n);
    }
    return true;
  }
  asio::io_context io_;
  tcp::socket socket_;
  std::string buffer_;
  std::string received_;
};

// Ids and times that differ between runs become ordinals; CDR times become offsets.
std::string normalize(std::string text) {
  auto ordinals = [&](const std::regex& re, const std::string& tag) {
    std::map<std::string, int> seen;
    std::string out;
    auto begin = std::sregex_iterator(text.begin(), text.end(), re);
    std::size_t last = 0;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
      out.append(text, last, static_cast<std::size_t>(it->position()) - last);
      const auto [entry, added] = seen.emplace(it->str(), static_cast<int>(seen.size()));
      out += "<" + tag + std::to_string(entry->second) + ">";
      last = static_cast<std::size_t>(it->position() + it->length());
    }
    out.append(text, last);
    text = out;
  };
  ordinals(std::regex(R"(@phones-[0-9a-f]{8})"), "C");
  ordinals(std::regex(R"(\b\d{10}\.\d+\b)"), "U");
  ordinals(std::regex(R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"), "B");
  {
    const std::regex re(R"((StartTime|AnswerTime|EndTime): (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d))");
    std::string out;
    std::size_t last = 0;
    long long first = -1;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
      std::tm tm{};
      tm.tm_year = std::stoi((*it)[2]) - 1900;
      tm.tm_mon = std::stoi((*it)[3]) - 1;
      tm.tm_mday = std::stoi((*it)[4]);
      tm.tm_hour = std::stoi((*it)[5]);
      tm.tm_min = std::stoi((*it)[6]);
      tm.tm_sec = std::stoi((*it)[7]);
      const long long t = timegm(&tm);
      if (first < 0) first = t;
      out.append(text, last, static_cast<std::size_t>(it->position()) - last);
      out += (*it)[1].str() + ": +" + std::to_string(t - first);
      last = static_cast<std::size_t>(it->position() + it->length());
    }
    out.append(text, last);
    text = out;
  }
  text = std::regex_replace(text, std::regex(R"(Timestamp: \d+\.\d{6})"), "Timestamp: <T>");
  text = std::regex_replace(text, std::regex(R"((Uptime|LastReload): \d+)"), "$1: <N>");
  text = std::regex_replace(text, std::regex(R"(Output: \d+ (active channels|active calls|calls processed))"),
                            "Output: <N> $1");
  return text;
}

FakeAsteriskOptions fast_options(double scale = 0.0) {
  FakeAsteriskOptions options;
  options.time_scale = scale;
  options.recordings = recordings;
  return options;
}

std::string login(std::string_view events = "on") {
  return "Action: Login\r\nActionID: login-1\r\nUsername: callback\r\nSecret: callbacksecret\r\nEvents: " +
         std::string(events) + "\r\n\r\n";
}

// --- no call: the recorded exchanges ------------------------------------------------

class RecordedExchange : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordedExchange, FakeSendsTheRecordedBytes) {
  const std::string name = GetParam();
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  std::string received;
  const auto banner = client.banner();
  ASSERT_TRUE(banner);
  received += *banner;
  for (const auto& action : split(read_file(name + ".sent.txt"))) client.send(action);
  ASSERT_TRUE(client.read_to_close(received)) << "the fake did not close after Logoff / failed Login";
  EXPECT_EQ(normalize(received), normalize(read_file(name + ".txt")));
}

INSTANTIATE_TEST_SUITE_P(Recordings, RecordedExchange,
                         ::testing::Values("ami-login-success", "ami-login-failure", "ami-login-failure-unknown-user",
                                           "ami-ping", "ami-command", "ami-errors", "ami-unauthenticated-action",
                                           "ami-coreshowchannels-idle", "ami-originate-sync-a-busy"),
                         [](const auto& test) {
                           std::string n = test.param.substr(4);
                           for (auto& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(FakeAsterisk, FailedLoginAnswersAfterTheDelayThenCloses) {
  FakeAsterisk fake(fast_options(0.2));  // 1 s recorded -> 0.2 s
  fake.start();
  Client client(fake.port());
  ASSERT_TRUE(client.banner());
  const auto sent = std::chrono::steady_clock::now();
  client.send(read_file("ami-login-failure.sent.txt"));
  const auto reply = client.message();
  ASSERT_TRUE(reply);
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 150ms);
  EXPECT_EQ(header(*reply, "Message"), "Authentication failed");
  std::string rest;
  EXPECT_TRUE(client.read_to_close(rest));
  EXPECT_EQ(fake.connections(), 0U);
}

// --- calls: every originate recording is reproduced ---------------------------------

class RecordedCall : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordedCall, FakeReproducesTheRecording) {
  const std::string name = GetParam();
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  std::string received = *client.banner();
  const auto actions = split(read_file(name + ".sent.txt"));
  ASSERT_EQ(actions.size(), 3U);  // Login, Originate, Logoff
  client.send(actions[0]);
  client.send(actions[1]);
  ASSERT_TRUE(fake.wait_for_connections(1, 5s));
  ASSERT_TRUE(fake.wait_for_active_calls(0, 10s));
  client.send(actions[2]);
  ASSERT_TRUE(client.read_to_close(received));
  EXPECT_EQ(normalize(received), normalize(read_file(name + ".txt")));
}

INSTANTIATE_TEST_SUITE_P(
    Recordings, RecordedCall,
    ::testing::Values("ami-originate-answered-limit", "ami-originate-b-hangs-up", "ami-originate-channelid",
                      "ami-originate-b-busy", "ami-originate-b-noanswer", "ami-originate-b-congestion",
                      "ami-originate-b-unreachable", "ami-originate-b-rejected", "ami-originate-b-invalid",
                      "ami-originate-a-noanswer", "ami-originate-a-busy", "ami-originate-a-congestion",
                      "ami-originate-a-unreachable", "ami-originate-a-unallocated", "ami-originate-a-rejected",
                      "ami-originate-a-rejected-channelid", "ami-originate-a-invalid"),
    [](const auto& test) {
      std::string n = test.param.substr(14);
      for (auto& c : n) c = c == '-' ? '_' : c;
      return n;
    });

std::string originate(const std::string& id, const std::string& a, const std::string& b, const std::string& extra = {}) {
  return "Action: Originate\r\nActionID: " + id + "\r\nChannel: Local/" + a +
         "@phones\r\nContext: callback\r\nExten: " + b +
         "\r\nPriority: 1\r\nTimeout: 30000\r\nCallerID: \"Shop Hotline\" <5550>\r\n" + extra + "Variable: CB_ID=" + id +
         "\r\nVariable: CB_A=" + a + "\r\nAsync: true\r\n\r\n";
}

// Reads until every channel of the call has had its Hangup and OriginateResponse came.
void read_call(Client& client, FakeAsterisk& fake) {
  ASSERT_TRUE(fake.wait_for_active_calls(0, 10s));
  client.send("Action: Ping\r\nActionID: end-marker\r\n\r\n");
  ASSERT_TRUE(client.until([](const std::string& m) { return header(m, "ActionID") == "end-marker"; }));
}

TEST(FakeAsterisk, SubstitutedCallCarriesItsOwnNumbersAndIds) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login());
  client.send(originate("web-77", "1234", "2345", "ChannelId: my-a-77\r\nOtherChannelId: my-a2-77\r\n"));
  read_call(client, fake);
  std::string all;
  for (const auto& m : client.all) all += m;
  // Nothing of the recording's own call is left.
  for (const char* recorded : {"1004", "2004", "cb-chanid-1", "Web Callback", "<0000>", "Num: 0000"}) {
    EXPECT_EQ(all.find(recorded), std::string::npos) << recorded;
  }
  int hangups = 0;
  bool result = false;
  for (const auto& m : client.all) {
    const auto event = header(m, "Event");
    const auto channel = header(m, "Channel");
    const bool has_uniqueid = !header(m, "Uniqueid").empty();
    if (has_uniqueid && channel.starts_with("Local/1234@phones-") && channel.ends_with(";1")) {
      EXPECT_EQ(header(m, "Uniqueid"), "my-a-77") << m;
    }
    if (has_uniqueid && channel.starts_with("Local/1234@phones-") && channel.ends_with(";2")) {
      EXPECT_EQ(header(m, "Uniqueid"), "my-a2-77") << m;
    }
    if (!header(m, "Linkedid").empty()) {
      EXPECT_EQ(header(m, "Linkedid"), "my-a-77") << m;
    }
    if (event == "OriginateResponse") {
      EXPECT_EQ(header(m, "ActionID"), "web-77");
      EXPECT_EQ(header(m, "Response"), "Success");
      EXPECT_EQ(header(m, "Uniqueid"), "my-a-77");
      EXPECT_EQ(header(m, "CallerIDNum"), "5550");
      EXPECT_EQ(header(m, "CallerIDName"), "Shop Hotline");
    }
    if (event == "Hangup") ++hangups;
    if (event == "UserEvent") {
      result = true;
      EXPECT_EQ(header(m, "CallbackID"), "web-77");
      EXPECT_EQ(header(m, "A"), "1234");
      EXPECT_EQ(header(m, "B"), "2345");
      EXPECT_EQ(header(m, "DialStatus"), "ANSWER");
    }
    if (event == "Cdr") {
      EXPECT_TRUE(header(m, "UserField").empty() || header(m, "UserField") == "cb:web-77") << m;
    }
  }
  EXPECT_EQ(hangups, 4);
  EXPECT_TRUE(result);
}

TEST(FakeAsterisk, CallLimitStretchesTheTalkAndTheTimes) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login());
  client.send(originate("lim-1", "1001", "1002", "Variable: CB_LIMIT=120000\r\n"));
  read_call(client, fake);
  bool checked = false;
  for (const auto& m : client.all) {
    if (header(m, "Event") == "UserEvent") {
      EXPECT_EQ(header(m, "AnsweredTime"), "121");  // recorded 11 with a 10 s limit
      EXPECT_EQ(header(m, "DialedTime"), "122");
      checked = true;
    }
    if (header(m, "Event") == "Cdr" && header(m, "Channel").starts_with("Local/1002@") ) {
      EXPECT_EQ(header(m, "BillableSeconds"), "120") << m;  // B's talk time
    }
    if (header(m, "Event") == "Newexten" && header(m, "Application") == "Dial") {
      EXPECT_EQ(header(m, "AppData"), "Local/1002@phones,30,gL(120000:20000:20000)");
    }
  }
  EXPECT_TRUE(checked);
}

TEST(FakeAsterisk, EventsFilterDropsDialplanEvents) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login("call,user,cdr"));
  client.send(originate("flt-1", "1001", "1002", "Variable: CB_LIMIT=10000\r\n"));
  read_call(client, fake);
  std::map<std::string, int> events;
  for (const auto& m : client.all) ++events[header(m, "Event")];
  EXPECT_EQ(events["VarSet"], 0);
  EXPECT_EQ(events["Newexten"], 0);
  EXPECT_EQ(events["FullyBooted"], 0);  // system class
  EXPECT_EQ(events["UserEvent"], 1);
  EXPECT_EQ(events["Cdr"], 4);
  EXPECT_EQ(events["Hangup"], 4);
  EXPECT_EQ(events["OriginateResponse"], 1);
}

TEST(FakeAsterisk, Md5LoginWithTheChallengeSucceedsAndAWrongKeyFails) {
  FakeAsterisk fake(fast_options());
  fake.start();
  for (const bool right : {true, false}) {
    Client client(fake.port());
    client.banner();
    client.send("Action: Challenge\r\nActionID: ch-1\r\nAuthType: MD5\r\n\r\n");
    const auto challenge = client.message();
    ASSERT_TRUE(challenge);
    EXPECT_EQ(header(*challenge, "Response"), "Success");
    EXPECT_EQ(header(*challenge, "ActionID"), "ch-1");
    const auto text = header(*challenge, "Challenge");
    ASSERT_EQ(text.size(), 9U);
    // Asterisk's manager.c: Key = hex(md5(challenge + secret)).
    const std::string secret = right ? "callbacksecret" : "nope";
    const std::string input = text + secret;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(input.data(), input.size(), digest, &length, EVP_md5(), nullptr);
    std::string key;
    for (unsigned int i = 0; i < length; ++i) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", digest[i]);
      key += hex;
    }
    client.send("Action: Login\r\nActionID: l-1\r\nAuthType: MD5\r\nUsername: callback\r\nKey: " + key +
                "\r\nEvents: off\r\n\r\n");
    const auto reply = client.message();
    ASSERT_TRUE(reply);
    if (right) {
      EXPECT_EQ(header(*reply, "Message"), "Authentication accepted");
      EXPECT_TRUE(fake.wait_for_connections(1, 2s));
    } else {
      EXPECT_EQ(header(*reply, "Message"), "Authentication failed");
      std::string rest;
      EXPECT_TRUE(client.read_to_close(rest));
    }
  }
}

// --- the Hangup action ----------------------------------------------------------------

struct HangupOutcome {
  std::map<std::string, int> hangups;  // channel -> Hangup events
  std::vector<std::string> user_events;
  std::string originate_response;
};

HangupOutcome hang_up_when(Client& client, FakeAsterisk& fake, const std::function<bool(const std::string&)>& moment,
                           const std::function<std::string(const std::string&)>& target) {
  const auto trigger = client.until(moment);
  EXPECT_TRUE(trigger);
  HangupOutcome outcome;
  if (!trigger) return outcome;
  client.send("Action: Hangup\r\nActionID: hup-1\r\nChannel: " + target(*trigger) + "\r\nCause: 16\r\n\r\n");
  const auto reply = client.until([](const std::string& m) { return header(m, "ActionID") == "hup-1"; });
  EXPECT_TRUE(reply);
  if (reply) {
    EXPECT_EQ(header(*reply, "Message"), "Channel Hungup");
  }
  EXPECT_TRUE(fake.wait_for_active_calls(0, 10s));
  client.send("Action: Ping\r\nActionID: end-marker\r\n\r\n");
  EXPECT_TRUE(client.until([](const std::string& m) { return header(m, "ActionID") == "end-marker"; }));
  for (const auto& m : client.all) {
    if (header(m, "Event") == "Hangup") ++outcome.hangups[header(m, "Channel")];
    if (header(m, "Event") == "UserEvent") outcome.user_events.push_back(m);
    if (header(m, "Event") == "OriginateResponse") outcome.originate_response = m;
  }
  return outcome;
}

TEST(FakeAsterisk, HangupWhileARingsEndsBothHalvesAndFailsTheOriginate) {
  FakeAsterisk fake(fast_options(0.05));
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login());
  client.send(originate("hup-a", "4001", "1002"));
  ASSERT_TRUE(fake.wait_for_active_calls(1, 2s));
  const auto outcome = hang_up_when(
      client, fake, [](const std::string& m) { return header(m, "Event") == "DialState"; },
      [](const std::string& m) { return header(m, "DestChannel"); });
  EXPECT_EQ(outcome.hangups.size(), 2U);
  for (const auto& [channel, n] : outcome.hangups) EXPECT_EQ(n, 1) << channel;
  EXPECT_TRUE(outcome.user_events.empty());
  EXPECT_EQ(header(outcome.originate_response, "Response"), "Failure");
  EXPECT_EQ(header(outcome.originate_response, "Reason"), "0");
  EXPECT_EQ(fake.active_calls(), 0U);
}

TEST(FakeAsterisk, HangupWhileBRingsCancelsTheDialAndReportsFromH) {
  FakeAsterisk fake(fast_options(0.05));
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login());
  client.send(originate("hup-b", "1001", "4002"));
  const auto outcome = hang_up_when(
      client, fake,
      [](const std::string& m) { return header(m, "Event") == "DialState" && !header(m, "Channel").empty(); },
      [](const std::string& m) { return header(m, "Channel"); });
  EXPECT_EQ(outcome.hangups.size(), 4U);
  for (const auto& [channel, n] : outcome.hangups) EXPECT_EQ(n, 1) << channel;
  ASSERT_EQ(outcome.user_events.size(), 1U);
  EXPECT_EQ(header(outcome.user_events[0], "Where"), "h");
  EXPECT_EQ(header(outcome.user_events[0], "DialStatus"), "CANCEL");
  EXPECT_EQ(header(outcome.originate_response, "Response"), "Success");
}

TEST(FakeAsterisk, HangupWhileBridgedByUniqueidPlaysTheRecordedTail) {
  FakeAsterisk fake(fast_options(0.05));
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login());
  client.send(originate("hup-br", "1001", "1003"));
  int entered = 0;
  const auto outcome = hang_up_when(
      client, fake, [&](const std::string& m) { return header(m, "Event") == "BridgeEnter" && ++entered == 2; },
      [](const std::string& m) { return header(m, "Linkedid"); });  // A;1's Uniqueid
  EXPECT_EQ(outcome.hangups.size(), 4U);
  for (const auto& [channel, n] : outcome.hangups) EXPECT_EQ(n, 1) << channel;
  ASSERT_EQ(outcome.user_events.size(), 1U);
  EXPECT_EQ(header(outcome.user_events[0], "Where"), "h");
  EXPECT_EQ(header(outcome.user_events[0], "DialStatus"), "ANSWER");
  EXPECT_EQ(header(outcome.user_events[0], "CallbackID"), "hup-br");
}

TEST(FakeAsterisk, HangupOfAFinishedChannelIsNoSuchChannel) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login("off"));
  client.send(originate("gone", "3001", "1002"));
  ASSERT_TRUE(fake.wait_for_active_calls(0, 5s));
  client.send("Action: Hangup\r\nActionID: h\r\nChannel: Local/3001@phones-0000002a;1\r\n\r\n");
  const auto reply = client.until([](const std::string& m) { return header(m, "ActionID") == "h"; });
  ASSERT_TRUE(reply);
  EXPECT_EQ(header(*reply, "Message"), "No such channel");
}

// --- faults ---------------------------------------------------------------------------

TEST(FakeAsterisk, ClosingConnectionsDropsTheirCalls) {
  FakeAsterisk fake(fast_options(1.0));
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login("off"));
  client.send(originate("drop-1", "1001", "1002"));
  client.send(originate("drop-2", "4001", "1002"));
  ASSERT_TRUE(fake.wait_for_active_calls(2, 5s));
  EXPECT_EQ(fake.connections(), 1U);
  fake.close_all_connections();
  EXPECT_TRUE(fake.wait_for_active_calls(0, 2s));
  EXPECT_TRUE(fake.wait_for_connections(0, 2s));
  std::string rest;
  EXPECT_TRUE(client.read_to_close(rest));
}

TEST(FakeAsterisk, RefusesConnectionsWhileNotAccepting) {
  FakeAsterisk fake(fast_options());
  fake.start();
  const auto port = fake.port();
  fake.set_accepting(false);
  EXPECT_ANY_THROW(Client{port});
  fake.set_accepting(true);
  Client client(port);
  EXPECT_TRUE(client.banner());
  EXPECT_EQ(fake.port(), port);
}

TEST(FakeAsterisk, SendsRawBytesToEveryConnection) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client one(fake.port());
  Client two(fake.port());
  one.banner();
  two.banner();
  fake.send_raw_to_all("Garbage: yes\r\n\r\n");
  EXPECT_EQ(one.message(), "Garbage: yes\r\n\r\n");
  EXPECT_EQ(two.message(), "Garbage: yes\r\n\r\n");
}

TEST(FakeAsterisk, ActionsAreRecorded) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send("Action: Ping\r\nActionID: p\r\n\r\n");
  ASSERT_TRUE(client.message());
  const auto actions = fake.actions();
  ASSERT_EQ(actions.size(), 1U);
  EXPECT_EQ(actions[0], "Action: Ping\r\nActionID: p\r\n\r\n");
}

TEST(FakeAsterisk, CoreShowChannelsListsTheLiveChannels) {
  FakeAsterisk fake(fast_options(0.05));
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login("call"));
  client.send(originate("csc", "1001", "1002"));
  int entered = 0;
  ASSERT_TRUE(client.until([&](const std::string& m) { return header(m, "Event") == "BridgeEnter" && ++entered == 2; }));
  client.send("Action: CoreShowChannels\r\nActionID: list\r\n\r\n");
  const auto done = client.until([](const std::string& m) { return header(m, "Event") == "CoreShowChannelsComplete"; });
  ASSERT_TRUE(done);
  EXPECT_EQ(header(*done, "ListItems"), "4");
  client.send("Action: Hangup\r\nChannel: Local/1001@phones-0000002a;1\r\n\r\n");
  EXPECT_TRUE(fake.wait_for_active_calls(0, 5s));
}

TEST(FakeAsterisk, ManyCallsAtTimeScaleZero) {
  FakeAsterisk fake(fast_options());
  fake.start();
  Client client(fake.port());
  client.banner();
  client.send(login("call,user,cdr"));
  constexpr int kCalls = 3000;
  std::string batch;
  for (int i = 0; i < kCalls; ++i) batch += originate("bench-" + std::to_string(i), "9001", "9802");
  const auto start = std::chrono::steady_clock::now();
  std::thread writer([&] { client.send(batch); });
  int results = 0;
  EXPECT_TRUE(client.until([&](const std::string& m) { return header(m, "Event") == "UserEvent" && ++results == kCalls; }));
  writer.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ info ] %d callbacks in %.3f s: %.0f/s\n", kCalls, seconds, kCalls / seconds);
  EXPECT_TRUE(fake.wait_for_active_calls(0, 5s));
}

}  // namespace
