// The AMI engine's call tracker, fed straight from real Asterisk traffic: the burst
// recordings of tests/fixtures/asterisk (many callbacks at once on a real Asterisk
// 23.4.1, with the project's own dialplan) and the single-call recordings rendered with
// our ids and merged. Every call's outcome, B's talk time and its cost must equal what
// Asterisk's own Cdr events and the dialplan's UserEvent say for that call, whatever
// order the events come in (each channel's own order kept), with duplicates, with events
// after the end, and with foreign events mixed in.
#include "call_tracker.hpp"
#include "call_script.hpp"

#include <callback/rate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace callback::engine_ami {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
const fs::path recordings = CALLBACK_ASTERISK_RECORDINGS;
const std::string server = "ast";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<ami::Message> parse(std::string_view bytes) {
  std::vector<ami::Message> out;
  ami::Parser parser;
  std::string text = "Asterisk Call Manager/12.0.0\r\n";  // the parser wants a banner first
  text.append(bytes);
  auto ok = parser.feed(text, [&](const ami::MessageView& m) { out.emplace_back(m); });
  if (!ok) throw std::runtime_error("unparsable traffic: " + ok.error().message);
  return out;
}

// What the engine asked for, as the sent side of a recording shows it.
struct Placed {
  std::string id;
  std::optional<std::chrono::milliseconds> limit;
  bool canceled = false;
};

struct Traffic {
  std::string name;
  std::vector<Placed> calls;
  std::vector<ami::Message> received;  // in the order Asterisk sent them
};

std::vector<Placed> placed_calls(const std::vector<ami::Message>& sent) {
  std::vector<Placed> calls;
  std::map<std::string, std::size_t> index;
  for (const auto& m : sent) {
    const auto action = m.get("Action");
    if (action == "Originate") {
      Placed p{.id = std::string(m.get("ActionID"))};
      for (auto v : m.view().all("Variable")) {
        if (v.starts_with("CB_LIMIT=")) p.limit = std::chrono::milliseconds(std::stoll(std::string(v.substr(9))));
      }
      index[p.id] = calls.size();
      calls.push_back(p);
    } else if (action == "Hangup" && m.get("ActionID").starts_with("hangup-")) {
      auto id = std::string(m.get("ActionID").substr(7));
      if (auto it = index.find(id); it != index.end()) calls[it->second].canceled = true;
    }
  }
  return calls;
}

Traffic recorded(const std::string& name) {
  Traffic t{.name = name};
  t.calls = placed_calls(parse(read_file(recordings / (name + ".sent.txt"))));
  auto text = read_file(recordings / (name + ".txt"));
  text.erase(0, text.find("\r\n") + 2);  // its own banner line
  t.received = parse(text);
  return t;
}

// The single-call recordings, each rendered as the fake does for a call of ours (ids
// "<id>-A1"/"-A2"), all placed at once and sent one after the other.
Traffic rendered_single_calls(const std::vector<std::string>& ids) {
  const std::vector<std::string> names = {
      "ami-originate-answered-limit", "ami-originate-b-hangs-up",     "ami-originate-b-busy",
      "ami-originate-b-noanswer",     "ami-originate-b-congestion",   "ami-originate-b-unreachable",
      "ami-originate-b-rejected",     "ami-originate-b-invalid",      "ami-originate-a-noanswer",
      "ami-originate-a-busy",         "ami-originate-a-congestion",   "ami-originate-a-unreachable",
      "ami-originate-a-unallocated",  "ami-originate-a-rejected-channelid", "ami-originate-a-invalid",
      "ami-originate-channelid"};
  Traffic t{.name = "single calls rendered"};
  std::string all;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto recording = fake::detail::load_recording(recordings, names[i % names.size()]);
    const auto script = fake::detail::compile(recording, recording.main, 0, false);
    fake::detail::CallValues v;
    v.action_id = v.cb_id = ids[i];
    for (const auto& [name, value] : recording.originate) {
      if (name == "Channel") v.num_a = value.substr(6, value.find('@') - 6);
      if (name == "Exten") v.num_b = value;
      if (name == "Variable" && value.starts_with("CB_LIMIT=")) v.limit = value.substr(9);
      if (name == "Variable") v.variables.emplace_back(value.substr(0, value.find('=')), value.substr(value.find('=') + 1));
    }
    v.cid_num = v.num_b;
    v.cid_name = "Callback";
    v.channel_id = ids[i] + "-A1";
    const std::string counter = std::to_string(10000000 + 2 * i);
    const std::string counter_b = std::to_string(10000000 + 2 * i + 1);
    v.channel = {"Local/" + v.num_a + "@phones-" + counter + ";1", "Local/" + v.num_a + "@phones-" + counter + ";2",
                 "Local/" + v.num_b + "@phones-" + counter_b + ";1", "Local/" + v.num_b + "@phones-" + counter_b + ";2"};
    v.uniqueid = {ids[i] + "-A1", ids[i] + "-A2", "1800000000." + std::to_string(4 * i + 2),
                  "1800000000." + std::to_string(4 * i + 3)};
    v.bridge = "00000000-0000-4000-8000-" + std::to_string(100000000000 + i);
    v.start_epoch = 1'800'000'000;
    for (std::size_t m = 0; m < script.messages.size(); ++m) fake::detail::render(script, m, v, all);
    std::optional<std::chrono::milliseconds> limit;
    if (!v.limit.empty()) limit = std::chrono::milliseconds(std::stoll(v.limit));
    t.calls.push_back({.id = ids[i], .limit = limit});
  }
  t.received = parse(all);
  return t;
}

// --- what Asterisk itself says about each call (read with the whole recording at hand) ---

struct Truth {
  bool originate_ok = false;
  int reason = -1;
  int a_hangup_cause = 0;
  bool user_event = false;
  std::string dial_status;
  int hangup_cause = 0;
  std::optional<std::chrono::seconds> b_billsec;  // B's own ANSWERED record
  std::optional<std::chrono::seconds> a_billsec;  // A;2's own record
};

int number(std::string_view text) { return text.empty() ? 0 : std::stoi(std::string(text)); }

std::map<std::string, Truth> truth(const Traffic& t) {
  std::map<std::string, Truth> out;
  std::map<std::string, std::string> b_channel_call;  // B Uniqueid -> id
  for (const auto& c : t.calls) out[c.id];
  auto call_of_linkedid = [&](std::string_view linkedid) -> Truth* {
    if (!linkedid.ends_with("-A1")) return nullptr;
    auto it = out.find(std::string(linkedid.substr(0, linkedid.size() - 3)));
    return it == out.end() ? nullptr : &it->second;
  };
  for (const auto& m : t.received) {
    const auto event = m.get("Event");
    if (event == "Newchannel") {
      const std::string linkedid(m.get("Linkedid")), uid(m.get("Uniqueid"));
      if (call_of_linkedid(linkedid) && uid != linkedid && !uid.ends_with("-A2")) {
        b_channel_call[uid] = linkedid.substr(0, linkedid.size() - 3);
      }
    }
  }
  for (const auto& m : t.received) {
    const auto event = m.get("Event");
    if (event == "OriginateResponse") {
      if (auto it = out.find(std::string(m.get("ActionID"))); it != out.end()) {
        it->second.originate_ok = m.get("Response") == "Success";
        it->second.reason = number(m.get("Reason"));
      }
    } else if (event == "Hangup") {
      const auto uid = m.get("Uniqueid");
      if (Truth* c = call_of_linkedid(m.get("Linkedid")); c && (uid.ends_with("-A1") || uid.ends_with("-A2"))) {
        c->a_hangup_cause = std::max(c->a_hangup_cause, number(m.get("Cause")));
      }
    } else if (event == "UserEvent" && m.get("UserEvent") == "CallbackResult") {
      auto it = out.find(std::string(m.get("CallbackID")));
      if (it == out.end() || it->second.user_event || m.get("Linkedid") != it->first + "-A1") continue;
      it->second.user_event = true;
      it->second.dial_status = std::string(m.get("DialStatus"));
      it->second.hangup_cause = number(m.get("HangupCause"));
    } else if (event == "Cdr" && m.get("DestinationChannel").empty()) {
      const std::string uid(m.get("UniqueID"));
      Truth* c = nullptr;
      if (uid.ends_with("-A2")) {
        if (auto it = out.find(uid.substr(0, uid.size() - 3)); it != out.end()) it->second.a_billsec = std::chrono::seconds(number(m.get("BillableSeconds")));
        continue;
      }
      if (uid.ends_with("-A1")) continue;
      if (auto b = b_channel_call.find(uid); b != b_channel_call.end()) c = &out[b->second];
      if (c && m.get("Disposition") == "ANSWERED") {
        const std::chrono::seconds billsec(number(m.get("BillableSeconds")));
        c->b_billsec = std::max(c->b_billsec.value_or(0s), billsec);
      }
    }
  }
  return out;
}

// --- the tracker under test ---------------------------------------------------------------

class NullLogger final : public Logger {
 public:
  bool enabled(LogLevel) const noexcept override { return false; }

 protected:
  void write_line(LogLevel, std::string_view, std::string_view) override {}
};

struct Sink final : CallTracker::Sink {
  std::map<std::string, std::vector<LegEvent>> events;
  std::vector<std::string> sent;
  std::vector<std::string> sent_to;  // the server of each of `sent`
  std::size_t after_end = 0;  // events for a call whose A had already ended
  void on_leg_event(const LegEvent& e) override {
    auto& list = events[e.call_id];
    if (!list.empty() && list.back().leg == LegRole::a && list.back().type == LegEventType::ended) ++after_end;
    list.push_back(e);
  }
  bool send(const std::string& to, std::string bytes) override {
    sent_to.push_back(to);
    sent.push_back(std::move(bytes));
    return true;
  }
};

struct Replay {
  ManualClock clock;
  NullLogger log;
  Sink sink;
  CallTracker tracker{clock, log, sink, {}};
  std::size_t finished_before_any_wait = 0;

  explicit Replay(const Traffic& t) {
    for (const auto& c : t.calls) tracker.add(c.id, server, c.limit);
    for (const auto& c : t.calls) {
      if (c.canceled) tracker.hangup(c.id, LegRole::a, HangupCause{16});
    }
  }
  void feed(const std::vector<const ami::Message*>& order) {
    for (const auto* m : order) tracker.on_message(server, m->view());
  }
  // The same, with time passing: `span` spread evenly over the messages, so timers fire
  // between them as they would on a loaded link. A span under every wait the tracker
  // may legitimately take (channel_grace 2 s, cdr_wait 15 s) changes no answer.
  void feed(const std::vector<const ami::Message*>& order, std::chrono::milliseconds span) {
    const auto step = std::chrono::microseconds(span) / std::max<std::size_t>(order.size(), 1);
    std::chrono::microseconds owed{0};
    for (const auto* m : order) {
      tracker.on_message(server, m->view());
      owed += step;
      if (owed >= 1ms) {
        const auto whole = std::chrono::duration_cast<std::chrono::milliseconds>(owed);
        clock.advance(whole);
        owed -= whole;
      }
    }
  }
  void settle() {
    finished_before_any_wait = sink.events.size() - tracker.size();
    clock.advance(120s);  // every wait (records, channels) is over
  }
};

// Where a message keeps its order: a channel's stream (Dial* by the dialled channel),
// the Originate's replies, or nowhere (a Cdr may come at any point).
std::string stream_of(const ami::Message& m, std::size_t index) {
  const auto event = m.get("Event");
  if (m.view().is_response() || event == "OriginateResponse") return "originate:" + std::string(m.get("ActionID"));
  if (event == "Cdr") return "free:" + std::to_string(index);
  if (event.starts_with("Dial")) return "channel:" + std::string(m.get("DestUniqueid"));
  if (m.view().has("Uniqueid")) return "channel:" + std::string(m.get("Uniqueid"));
  return "other";
}

// A random merge of the streams; with `duplicates`, some messages come twice (the copy
// later in the same stream).
std::vector<const ami::Message*> interleave(const std::vector<ami::Message>& messages, std::mt19937_64& rng,
                                            double duplicates = 0) {
  std::map<std::string, std::deque<const ami::Message*>> streams;
  std::bernoulli_distribution twice(duplicates);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto& s = streams[stream_of(messages[i], i)];
    s.push_back(&messages[i]);
    if (duplicates > 0 && twice(rng)) s.push_back(&messages[i]);
  }
  std::vector<std::deque<const ami::Message*>*> open;
  for (auto& [key, s] : streams) open.push_back(&s);
  std::vector<const ami::Message*> out;
  while (!open.empty()) {
    const auto pick = std::uniform_int_distribution<std::size_t>(0, open.size() - 1)(rng);
    out.push_back(open[pick]->front());
    open[pick]->pop_front();
    if (open[pick]->empty()) open.erase(open.begin() + static_cast<std::ptrdiff_t>(pick));
  }
  return out;
}

std::vector<const ami::Message*> in_order(const std::vector<ami::Message>& messages) {
  std::vector<const ami::Message*> out;
  for (const auto& m : messages) out.push_back(&m);
  return out;
}

const LegEvent* ended(const std::vector<LegEvent>& events, LegRole leg) {
  for (const auto& e : events) {
    if (e.leg == leg && e.type == LegEventType::ended) return &e;
  }
  return nullptr;
}

// Checks one run's events against what Asterisk said. `label` names the order.
void check(const Traffic& t, const Replay& run, const std::string& label) {
  SCOPED_TRACE(t.name + ", " + label);
  const auto expected = truth(t);
  const Rate rate{.prefix = "86",
                  .price_per_minute = Money::parse("0.10", Currency::of("CNY").value()).value(),
                  .initial_increment = 6s,
                  .subsequent_increment = 6s};
  EXPECT_EQ(run.tracker.size(), 0u) << "calls still open";
  EXPECT_EQ(run.sink.after_end, 0u) << "events after a call's end";
  for (const auto& c : t.calls) {
    SCOPED_TRACE(c.id);
    const auto& want = expected.at(c.id);
    auto it = run.sink.events.find(c.id);
    ASSERT_NE(it, run.sink.events.end()) << "no events";
    const auto& events = it->second;
    // Exactly one end per leg, A's last; each leg's events in a call's order; B only
    // once A answered.
    std::size_t a_ends = 0, b_ends = 0;
    int last_a = -1, last_b = -1;
    bool a_up = false;
    for (const auto& e : events) {
      const int rank = e.type == LegEventType::dialing   ? 0
                       : e.type == LegEventType::ringing ? 1
                       : e.type == LegEventType::ended   ? 3
                                                         : 2;
      if (e.leg == LegRole::a) {
        EXPECT_GT(rank, last_a) << "A " << to_string(e.type) << " out of order";
        last_a = rank;
        a_ends += e.type == LegEventType::ended;
        a_up = a_up || e.type == LegEventType::answered;
      } else {
        EXPECT_TRUE(a_up) << "B " << to_string(e.type) << " before A answered";
        EXPECT_GT(rank, last_b) << "B " << to_string(e.type) << " out of order";
        last_b = rank;
        b_ends += e.type == LegEventType::ended;
      }
    }
    ASSERT_EQ(a_ends, 1u);
    EXPECT_EQ(events.back().leg, LegRole::a);
    EXPECT_EQ(events.back().type, LegEventType::ended);
    const LegEvent* a = ended(events, LegRole::a);
    const LegEvent* b = ended(events, LegRole::b);
    EXPECT_EQ(a_up, want.originate_ok) << "A answered as the OriginateResponse says";
    if (want.originate_ok) {
      EXPECT_EQ(a->billsec, want.a_billsec) << "A's talk time as A;2's Cdr says";
    } else {
      EXPECT_EQ(a->billsec, std::optional(0s)) << "A never answered";
      EXPECT_EQ(want.a_billsec.value_or(0s), 0s) << "the recording says A talked, yet its Originate failed";
    }
    if (!want.originate_ok) {
      EXPECT_EQ(b_ends, 0u);
      if (!c.canceled) {
        const int cause = want.reason == 3 ? 19 : want.reason == 5 ? 17 : want.reason == 8 ? 34
                          : want.a_hangup_cause != 0 ? want.a_hangup_cause : 3;
        EXPECT_EQ(a->cause.code(), cause) << "A's failure as the OriginateResponse and Hangup say";
      }
      continue;
    }
    ASSERT_TRUE(want.user_event) << "the recording has no CallbackResult for an answered A";
    if (want.dial_status.empty()) {
      // Canceled before the Dial (during "please wait"): `h` reports no DialStatus. B was
      // never dialed, so it has no end (and no record).
      EXPECT_TRUE(c.canceled) << "only a cancel ends a call before its Dial";
      EXPECT_EQ(b_ends, 0u);
      continue;
    }
    ASSERT_EQ(b_ends, 1u);
    EXPECT_EQ(b->dial_status, want.dial_status) << "B's outcome as the UserEvent says";
    if (c.canceled) {
      EXPECT_EQ(b->cause.code(), 16) << "canceled: the cause asked for";
    } else if (want.hangup_cause != 0) {
      EXPECT_EQ(b->cause.code(), want.hangup_cause) << "B's cause as the UserEvent says";
    }
    if (want.dial_status == "ANSWER") {
      ASSERT_TRUE(want.b_billsec) << "the recording has no ANSWERED Cdr for B";
      EXPECT_EQ(b->billsec, want.b_billsec) << "B's talk time as B's Cdr says";
      ASSERT_TRUE(b->billsec);
      EXPECT_EQ(rate.cost(*b->billsec), rate.cost(*want.b_billsec));
    } else {
      EXPECT_EQ(b->billsec, std::optional(0s)) << "B never answered: nothing to bill";
    }
  }
}

// The burst recordings present in the fixtures (ami-burst-*.txt).
std::vector<std::string> burst_recordings() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(recordings)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with("ami-burst-") && name.ends_with(".txt") && !name.ends_with(".sent.txt")) {
      names.push_back(name.substr(0, name.size() - 4));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> prefix_ids(std::size_t n) {
  // Ids that are prefixes of one another: cb-x-1, cb-x-10, cb-x-100, cb-x-11, ...
  std::vector<std::string> ids;
  for (std::size_t i = 1; ids.size() < n; ++i) ids.push_back("cb-x-" + std::to_string(i));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<Traffic> all_traffic() {
  std::vector<Traffic> out;
  for (const auto& name : burst_recordings()) out.push_back(recorded(name));
  out.push_back(rendered_single_calls(prefix_ids(120)));
  return out;
}

const std::vector<Traffic>& traffic() {
  static const std::vector<Traffic> t = all_traffic();
  return t;
}

TEST(CallTracker, TheBurstRecordingsArePresent) {
  // The recordings this suite is about: 20 and 200 at once, a cancel storm, prefix ids.
  const auto names = burst_recordings();
  for (const auto* want : {"ami-burst-20", "ami-burst-200", "ami-burst-cancel", "ami-burst-prefix-ids"}) {
    EXPECT_TRUE(std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.starts_with(want); }))
        << want;
  }
}

TEST(CallTracker, RecordedOrderGivesWhatAsteriskSaid) {
  for (const auto& t : traffic()) {
    Replay run(t);
    run.feed(in_order(t.received));
    run.settle();
    check(t, run, "recorded order");
  }
}

TEST(CallTracker, AnyInterleavingGivesTheSameAnswers) {
  // Each channel's events in order, everything else in any order: the answers never
  // change. Some messages come twice, and the whole traffic comes again at the end.
  const auto seed = std::random_device{}();
  std::cout << "interleaving seed " << seed << "\n";
  std::mt19937_64 rng(seed);
  for (const auto& t : traffic()) {
    const int rounds = t.calls.size() > 100 ? 12 : 60;
    for (int round = 0; round < rounds; ++round) {
      Replay run(t);
      // 1.8 s pass while they arrive: longer than the 1 s wait that once ended talking
      // calls as failed, shorter than any wait the tracker may take.
      run.feed(interleave(t.received, rng, round % 2 == 0 ? 0.0 : 0.05), 1800ms);
      run.feed(in_order(t.received));  // events after every call ended change nothing
      run.settle();
      check(t, run, "seed " + std::to_string(seed) + " round " + std::to_string(round));
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(CallTracker, ARecordedBurstNeedsNoWaitingWhenEveryRecordArrived) {
  // With cdr_manager's LinkedID mapping every record names its call, so every call of a
  // burst ends as soon as its last message is in: no timer stands in for a missing one.
  // Only an Originate that failed without making a channel (ami-burst-nochannel) waits,
  // for channels that might still come.
  for (const auto& name : burst_recordings()) {
    const auto t = recorded(name);
    std::set<std::string> with_channel;
    for (const auto& m : t.received) {
      if (m.get("Event") == "Newchannel") with_channel.insert(std::string(m.get("Uniqueid")));
    }
    std::size_t without_channel = 0;
    for (const auto& [id, want] : truth(t)) without_channel += !want.originate_ok && with_channel.count(id + "-A1") == 0;
    Replay run(t);
    run.feed(in_order(t.received));
    EXPECT_EQ(run.tracker.size(), without_channel) << name;
  }
}

TEST(CallTracker, ForeignAndUnknownEventsChangeNothing) {
  const Traffic t = rendered_single_calls(prefix_ids(16));
  std::vector<ami::Message> noisy;
  auto add = [&](const std::string& text) {
    for (auto& m : parse(text)) noisy.push_back(std::move(m));
  };
  const auto& ids = t.calls;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string& id = ids[i].id;
    const std::string& other = ids[(i + 1) % ids.size()].id;
    // Events for channels and calls nobody placed.
    add("Event: Newchannel\r\nChannel: Local/1@phones-x;1\r\nUniqueid: 99.1\r\nLinkedid: cb-zzz-A1\r\n\r\n");
    add("Event: Hangup\r\nChannel: Local/1@phones-x;1\r\nUniqueid: " + id + "-A9\r\nLinkedid: 99.1\r\nCause: 3\r\n\r\n");
    add("Event: OriginateResponse\r\nActionID: " + id + "0\r\nResponse: Failure\r\nReason: 0\r\nUniqueid: <unknown>\r\n\r\n");
    add("Event: Cdr\r\nUniqueID: " + id + "-A2x\r\nDestinationChannel: \r\nDisposition: ANSWERED\r\nBillableSeconds: 99\r\n\r\n");
    add("Event: Cdr\r\nUniqueID: 77.7\r\nLinkedID: cb-zzz-A1\r\nDestinationChannel: \r\nDisposition: ANSWERED\r\nBillableSeconds: 99\r\n\r\n");
    // A UserEvent naming this call from another call's channel, and ones without an id.
    add("Event: UserEvent\r\nChannel: Local/1@phones-y;1\r\nUniqueid: " + other + "-A1\r\nLinkedid: " + other +
        "-A1\r\nUserEvent: CallbackResult\r\nCallbackID: " + id + "\r\nDialStatus: BUSY\r\nHangupCause: 17\r\n\r\n");
    add("Event: UserEvent\r\nUniqueid: " + id + "-A1\r\nLinkedid: " + id +
        "-A1\r\nUserEvent: CallbackResult\r\nDialStatus: BUSY\r\nHangupCause: 17\r\n\r\n");
    add("Event: UserEvent\r\nUniqueid: " + id + "-A1\r\nLinkedid: " + id +
        "-A1\r\nUserEvent: CallbackResult\r\nCallbackID: cb-nobody\r\nDialStatus: BUSY\r\n\r\n");
  }
  std::mt19937_64 rng(7);
  for (int round = 0; round < 10; ++round) {
    Replay run(t);
    // The noise first (it must not start or end anything), then the calls, noise again.
    run.feed(in_order(noisy));
    EXPECT_TRUE(run.sink.events.empty());
    run.feed(interleave(t.received, rng));
    run.feed(in_order(noisy));
    run.settle();
    check(t, run, "with foreign events, round " + std::to_string(round));
    EXPECT_EQ(run.sink.events.count("cb-zzz"), 0u);
  }
}

TEST(CallTracker, ASuccessfulOriginateBeforeAsChannelsIsNotAFailure) {
  // The burst misreport: OriginateResponse Success came before A's Newchannel, a timer
  // meant for Originates that create no channel fired, and a call that was talking was
  // reported as failed (cause 3) and billed nothing.
  const Traffic t = rendered_single_calls({"cb-order-1", "cb-order-10"});  // answered-limit, b-hangs-up
  std::vector<const ami::Message*> order;
  for (const auto& m : t.received) {
    if (m.get("Event") == "OriginateResponse") order.push_back(&m);
  }
  for (const auto& m : t.received) {
    if (m.get("Event") != "OriginateResponse") order.push_back(&m);
  }
  Replay run(t);
  // Time passes between the OriginateResponse and the rest, as on a loaded server.
  run.feed({order[0], order[1]});
  run.clock.advance(5s);
  run.feed(std::vector<const ami::Message*>(order.begin() + 2, order.end()));
  run.settle();
  check(t, run, "OriginateResponse first");
}

TEST(CallTracker, AFailedOriginateWithoutChannelsEndsAfterTheChannelGrace) {
  // A channel driver that cannot make the channel (Nope/123, PJSIP/123 without pjsip):
  // Failure, Reason 0, and no channel event ever. The Failure looks like one that came
  // before its channels, so the call waits channel_grace for them, then ends. (The
  // recording's last call is an ordinary busy A, which ends at once.)
  const auto t = recorded("ami-burst-nochannel");
  std::set<std::string> with_channel;
  for (const auto& m : t.received) {
    if (m.get("Event") == "Newchannel") with_channel.insert(std::string(m.get("Uniqueid")));
  }
  std::vector<std::string> without;
  for (const auto& c : t.calls) {
    if (with_channel.count(c.id + "-A1") == 0) without.push_back(c.id);
  }
  ASSERT_EQ(without.size(), 2u);
  Replay run(t);
  run.feed(in_order(t.received));
  EXPECT_EQ(run.tracker.size(), without.size()) << "ended before the grace: their channels could still come";
  run.clock.advance(1999ms);
  EXPECT_EQ(run.tracker.size(), without.size());
  run.clock.advance(1ms);
  EXPECT_EQ(run.tracker.size(), 0u);
  for (const auto& id : without) {
    const auto* a = ended(run.sink.events[id], LegRole::a);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->cause.code(), 3) << id;
    EXPECT_EQ(ended(run.sink.events[id], LegRole::b), nullptr);
  }
}

TEST(CallTracker, RecordsThatNeverComeEndTheCallAfterTheWait) {
  // CDR events off on this server: an answered call ends cdr_grace after its last
  // event, with the Dial's ANSWEREDTIME as B's talk time.
  const Traffic full = rendered_single_calls({"cb-nocdr-1"});  // answered-limit
  Traffic t{.name = "no Cdr events", .calls = full.calls};
  for (const auto& m : full.received) {
    if (m.get("Event") != "Cdr") t.received.push_back(m);
  }
  Replay run(t);
  run.feed(in_order(t.received));
  EXPECT_EQ(run.tracker.size(), 1u);
  run.clock.advance(999ms);
  EXPECT_EQ(run.tracker.size(), 1u);
  run.clock.advance(1ms);
  ASSERT_EQ(run.tracker.size(), 0u);
  const auto* b = ended(run.sink.events["cb-nocdr-1"], LegRole::b);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dial_status, "ANSWER");
  std::optional<std::chrono::seconds> answered;
  for (const auto& m : t.received) {
    if (m.get("UserEvent") == "CallbackResult") answered = std::chrono::seconds(number(m.get("AnsweredTime")));
  }
  EXPECT_EQ(b->billsec, answered);
  EXPECT_TRUE(b->limit_reached);
}

TEST(CallTracker, ACancelBeforeTheChannelExistsGoesOutWhenItAppears) {
  const Traffic t = rendered_single_calls({"cb-cancel-1"});
  Replay run(t);
  run.tracker.hangup("cb-cancel-1", LegRole::a, HangupCause{16});
  EXPECT_TRUE(run.sink.sent.empty()) << "nothing to hang up yet";
  for (const auto& m : t.received) {
    run.tracker.on_message(server, m.view());
    if (m.get("Event") == "Newchannel") break;
  }
  ASSERT_EQ(run.sink.sent.size(), 1u);
  EXPECT_NE(run.sink.sent[0].find("Action: Hangup\r\nActionID: hangup-cb-cancel-1\r\nChannel: Local/"), std::string::npos)
      << run.sink.sent[0];
  // Once is enough, whatever comes next.
  run.feed(in_order(t.received));
  EXPECT_EQ(std::count_if(run.sink.sent.begin(), run.sink.sent.end(),
                          [](const std::string& a) { return a.starts_with("Action: Hangup\r\n"); }),
            1);
}


// --- a lost connection, the AstDB record, recover() (issue 10) ----------------------------

// The messages of a recording after its banner, in the order Asterisk sent them.
std::vector<ami::Message> received(const std::string& name) {
  auto text = read_file(recordings / (name + ".txt"));
  text.erase(0, text.find("\r\n") + 2);
  return parse(text);
}

// The recorded action with this ActionID, byte for byte as it was sent.
std::string sent_action(const std::string& name, const std::string& action_id) {
  const auto text = read_file(recordings / (name + ".sent.txt"));
  const auto at = text.find("ActionID: " + action_id + "\r\n");
  if (at == std::string::npos) throw std::runtime_error("no " + action_id + " in " + name);
  const auto begin = text.rfind("Action: ", at);
  return text.substr(begin, text.find("\r\n\r\n", at) + 4 - begin);
}

// Asterisk's answers to one action (ActionID), in order.
std::vector<const ami::Message*> answers(const std::vector<ami::Message>& messages, const std::string& action_id) {
  std::vector<const ami::Message*> out;
  for (const auto& m : messages) {
    if (m.get("ActionID") == action_id) out.push_back(&m);
  }
  return out;
}

std::size_t count_ends(const std::vector<LegEvent>& events, LegRole leg) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const LegEvent& e) {
    return e.leg == leg && e.type == LegEventType::ended;
  }));
}

bool emitted(const std::vector<LegEvent>& events, LegRole leg, LegEventType type) {
  return std::any_of(events.begin(), events.end(), [&](const LegEvent& e) { return e.leg == leg && e.type == type; });
}

// Feeds a rendered call up to (and with) the first message `stop` says yes to.
void feed_until(Replay& run, const Traffic& t, const std::function<bool(const ami::Message&)>& stop) {
  for (const auto& m : t.received) {
    run.tracker.on_message(server, m.view());
    if (stop(m)) return;
  }
  FAIL() << "the recording never got there";
}

bool b_bridged(const ami::Message& m) {
  return m.get("Event") == "BridgeEnter" && !m.get("Uniqueid").ends_with("-A1");
}

// A rendered call fed until B is in the bridge, `talk` of talking, then the connection goes.
void talk_then_lose(Replay& run, const Traffic& t, std::chrono::seconds talk) {
  feed_until(run, t, b_bridged);
  ASSERT_TRUE(emitted(run.sink.events[t.calls.at(0).id], LegRole::b, LegEventType::connected));
  run.clock.advance(talk);
  run.tracker.connection_lost(server);
}

// Ended as engine lost, unseen, both legs billed `talk`: up to the loss.
void expect_lost(const std::vector<LegEvent>& events, std::chrono::seconds talk) {
  ASSERT_EQ(count_ends(events, LegRole::a), 1u);
  ASSERT_EQ(count_ends(events, LegRole::b), 1u);
  for (const auto leg : {LegRole::a, LegRole::b}) {
    const auto* e = ended(events, leg);
    EXPECT_EQ(e->cause, HangupCause::engine_lost());
    EXPECT_TRUE(e->unobserved);
    EXPECT_EQ(e->billsec, std::optional(talk));
    EXPECT_FALSE(e->limit_reached);
    EXPECT_FALSE(e->far_end_hung_up);
  }
}

TEST(CallTrackerLost, TheReconnectsListingReadsAsAsteriskSentIt) {
  std::vector<ListedChannel> listed;
  for (const auto& m : received("ami-db-get-missing")) {
    if (m.get("Event") == "CoreShowChannel" && m.get("ActionID") == "channels-1") listed.push_back(listed_channel(m.view()));
  }
  ASSERT_EQ(listed.size(), 8u);
  for (const std::string id : {"cb-rc-1", "cb-rc-2"}) {
    const auto a1 = std::find_if(listed.begin(), listed.end(), [&](const auto& c) { return c.uniqueid == id + "-A1"; });
    ASSERT_NE(a1, listed.end());
    EXPECT_EQ(a1->linkedid, id + "-A1");
    EXPECT_EQ(a1->state, 6);
    EXPECT_EQ(a1->duration, 3s);
    EXPECT_FALSE(a1->bridge_id.empty());
    // B;1 is in the same bridge, and every channel of the call names it by Linkedid.
    EXPECT_EQ(std::count_if(listed.begin(), listed.end(), [&](const auto& c) {
                return c.linkedid == id + "-A1" && c.channel.ends_with(";1") && c.bridge_id == a1->bridge_id;
              }),
              2);
    EXPECT_EQ(std::count_if(listed.begin(), listed.end(), [&](const auto& c) { return c.linkedid == id + "-A1"; }), 4);
  }
}

TEST(CallTrackerLost, RecordsParseAsTheDialplanWroteThemAndNothingElseDoes) {
  for (const auto& m : received("ami-db-record")) {
    if (m.get("Event") != "DBGetResponse") continue;
    SCOPED_TRACE(std::string(m.get("Val")));
    const auto record = parse_call_record(m.get("Val"));
    ASSERT_TRUE(record);
    const std::string val(m.get("Val"));
    EXPECT_EQ(record->dial_status, val.substr(0, val.find('|')));
    EXPECT_EQ(record->where_h, val.ends_with("|h"));
  }
  for (const std::string_view bad : {"", "ANSWER|16|8|0", "ANSWER|16|8|0|end|x", "ANSWER|16|8|0|later", "ANSWER|x|8|0|end",
                                     "ANSWER|16|-8|0|end", "ANSWER|16|8|2|end", "answer|16|8|0|end"}) {
    EXPECT_FALSE(parse_call_record(bad)) << bad;
  }
}

TEST(CallTrackerLost, ARecordReadAfterAReconnectEndsTheCallAsItsUserEventWould) {
  // The seven outcomes of ami-db-record, each for a call whose connection was lost with
  // the call bridged and found gone on the reconnect: the DBGet's recorded answer ends it.
  const auto replies = received("ami-db-record");
  for (int n = 1; n <= 7; ++n) {
    const std::string id = "cb-db-" + std::to_string(n);
    SCOPED_TRACE(id);
    const auto got = answers(replies, "dbget-" + id);
    ASSERT_EQ(got.size(), 3u);  // the list's start, DBGetResponse, DBGetComplete
    const std::string val(got[1]->get("Val"));
    std::vector<std::string> f;
    for (std::size_t at = 0;; at = val.find('|', at) + 1) {
      f.push_back(val.substr(at, val.find('|', at) - at));
      if (val.find('|', at) == std::string::npos) break;
    }
    ASSERT_EQ(f.size(), 5u);
    Replay run(Traffic{});
    run.tracker.add(id, server, 8s);
    run.tracker.connection_lost(server);
    EXPECT_TRUE(run.tracker.has_orphans(server));
    run.tracker.reconcile(server, {});
    ASSERT_EQ(run.sink.sent.size(), 1u);
    EXPECT_EQ(run.sink.sent[0], sent_action("ami-db-record", "dbget-" + id)) << "what the real Asterisk answered";
    for (const auto* m : got) run.tracker.on_message(server, m->view());
    ASSERT_EQ(run.tracker.size(), 0u) << "ended by the record";
    const auto& events = run.sink.events[id];
    ASSERT_EQ(count_ends(events, LegRole::a), 1u);
    ASSERT_EQ(count_ends(events, LegRole::b), 1u);
    const auto* a = ended(events, LegRole::a);
    const auto* b = ended(events, LegRole::b);
    EXPECT_TRUE(a->unobserved);
    EXPECT_TRUE(b->unobserved);
    EXPECT_EQ(b->dial_status, f[0]);
    const int cause = f[1] != "0" ? std::stoi(f[1]) : f[0] == "BUSY" ? 17 : f[0] == "NOANSWER" ? 19 : 3;
    EXPECT_EQ(b->cause.code(), cause);
    EXPECT_EQ(b->billsec, std::chrono::seconds(f[0] == "ANSWER" ? std::stoi(f[2]) : 0)) << "ANSWEREDTIME";
    EXPECT_EQ(b->limit_reached, f[3] == "1");
    EXPECT_EQ(b->far_end_hung_up, f[0] == "ANSWER" && f[4] == "end" && f[3] == "0");
    EXPECT_EQ(a->far_end_hung_up, f[4] == "h");
    EXPECT_EQ(emitted(events, LegRole::b, LegEventType::connected), f[0] == "ANSWER");
    // Read, so deleted once the service has the end on disk: exactly the DBDel the real
    // Asterisk answered "Key deleted successfully".
    ASSERT_EQ(run.sink.sent.size(), 1u) << "the DBGet only, until forget()";
    run.tracker.forget(id);
    ASSERT_EQ(run.sink.sent.size(), 2u);
    EXPECT_EQ(run.sink.sent[1], sent_action("ami-db-record", "dbdel-" + id));
    EXPECT_EQ(answers(replies, "dbdel-" + id).at(0)->get("Message"), "Key deleted successfully");
  }
}

TEST(CallTrackerLost, LostAndNeverBackBillsUpToTheLastMomentItWasKnownUpNotTheGrace) {
  const Traffic t = rendered_single_calls({"cb-lost-1"});  // answered-limit
  Replay run(t);
  talk_then_lose(run, t, 2s);
  run.clock.advance(29'999ms);
  EXPECT_EQ(run.tracker.size(), 1u) << "ended before lost_call_grace";
  run.clock.advance(1ms);
  ASSERT_EQ(run.tracker.size(), 0u);
  expect_lost(run.sink.events["cb-lost-1"], 2s);  // the grace is not talk
}

TEST(CallTrackerLost, AStopDuringTheOutageBillsUpToTheLossToo) {
  const Traffic t = rendered_single_calls({"cb-lost-2"});
  Replay run(t);
  talk_then_lose(run, t, 4s);
  run.clock.advance(1s);
  run.tracker.stop_all();
  ASSERT_EQ(run.tracker.size(), 0u);
  expect_lost(run.sink.events["cb-lost-2"], 4s);
  EXPECT_TRUE(run.sink.sent.empty()) << "no connection to send a Hangup on";
}

TEST(CallTrackerLost, NoRecordAfterTheReconnectEndsAsLostBilledUpToTheLastMomentKnownUp) {
  // The recorded "Database entry not found" (ami-db-get-missing) for a call named as in
  // the recording, bridged 3 s before the connection went and gone on the reconnect.
  const auto replies = received("ami-db-get-missing");
  const auto not_found = answers(replies, "dbget-cb-rc-missing");
  ASSERT_EQ(not_found.size(), 1u);
  ASSERT_EQ(not_found[0]->get("Message"), "Database entry not found");
  for (const bool answered : {true, false}) {
    SCOPED_TRACE(answered ? "not found" : "no answer");
    const Traffic t = rendered_single_calls({"cb-rc-missing"});
    Replay run(t);
    talk_then_lose(run, t, 3s);
    run.clock.advance(10s);  // reconnecting
    run.tracker.reconcile(server, {});
    ASSERT_EQ(run.sink.sent.size(), 1u);
    EXPECT_EQ(run.sink.sent[0], sent_action("ami-db-get-missing", "dbget-cb-rc-missing"));
    if (answered) {
      run.tracker.on_message(server, not_found[0]->view());
    } else {
      run.clock.advance(4'999ms);
      EXPECT_EQ(run.tracker.size(), 1u) << "record_wait is 5 s";
      run.clock.advance(1ms);
    }
    ASSERT_EQ(run.tracker.size(), 0u);
    expect_lost(run.sink.events["cb-rc-missing"], 3s);  // up to the loss, not the reconnect
    EXPECT_EQ(run.sink.sent.size(), 1u) << "no record: nothing to delete";
  }
}

TEST(CallTrackerLost, ACallStillListedOnTheReconnectIsFollowedAsBefore) {
  const Traffic t = rendered_single_calls({"cb-kept-1"});  // answered-limit
  Replay run(t);
  std::size_t fed = 0;
  for (; fed < t.received.size(); ++fed) {
    run.tracker.on_message(server, t.received[fed].view());
    if (b_bridged(t.received[fed])) break;
  }
  run.tracker.connection_lost(server);
  std::vector<ListedChannel> listed;
  for (const auto& m : t.received) {
    if (m.get("Event") == "Newchannel") {
      listed.push_back({.channel = std::string(m.get("Channel")), .uniqueid = std::string(m.get("Uniqueid")),
                        .linkedid = std::string(m.get("Linkedid")), .state = 6});
    }
  }
  run.tracker.reconcile(server, listed);
  EXPECT_TRUE(run.sink.sent.empty()) << "no DBGet for a call that is still up";
  std::vector<const ami::Message*> rest;
  for (std::size_t i = fed + 1; i < t.received.size(); ++i) rest.push_back(&t.received[i]);
  run.feed(rest);
  run.settle();
  check(t, run, "reconnected while bridged");
  EXPECT_FALSE(ended(run.sink.events["cb-kept-1"], LegRole::b)->unobserved);
}

TEST(CallTrackerLost, ANormalEndDeletesTheRecordAndAFailedAOrAnUnansweredOneHasNoneToDelete) {
  const Traffic t = rendered_single_calls(prefix_ids(16));
  Replay run(t);
  run.feed(in_order(t.received));
  run.settle();
  check(t, run, "in order");
  const auto expected = truth(t);
  EXPECT_TRUE(std::none_of(run.sink.sent.begin(), run.sink.sent.end(),
                           [](const std::string& a) { return a.starts_with("Action: DBDel"); }))
      << "no record deleted before the service has the end on disk";
  for (const auto& c : t.calls) run.tracker.forget(c.id);
  for (const auto& c : t.calls) {
    SCOPED_TRACE(c.id);
    const auto del = "Action: DBDel\r\nActionID: dbdel-" + c.id + "\r\nFamily: callback\r\nKey: " + c.id + "\r\n\r\n";
    EXPECT_EQ(std::count(run.sink.sent.begin(), run.sink.sent.end(), del), expected.at(c.id).user_event ? 1 : 0);
  }
  // The same shape as the action the real Asterisk answered.
  const auto recorded = sent_action("ami-db-record", "dbdel-cb-db-1");
  EXPECT_EQ(recorded, "Action: DBDel\r\nActionID: dbdel-cb-db-1\r\nFamily: callback\r\nKey: cb-db-1\r\n\r\n");
  // Its answers (and the list of a DBGet nobody asked for) are ignored.
  const auto before = run.sink.events.size();
  for (const auto& m : received("ami-db-record")) run.tracker.on_message(server, m.view());
  EXPECT_EQ(run.sink.events.size(), before);
  EXPECT_EQ(run.tracker.size(), 0u);
}

TEST(CallTrackerRecover, AdoptedCallsAreFollowedFromTheListingOrEndedFromWhatTheServerKept) {
  // ami-db-get-missing from the reconnect on, as a restarted engine sees it: two calls
  // bridged (cb-rc-2's B hangs up, cb-rc-1 is hung up by us), one the server never had.
  const auto messages = received("ami-db-get-missing");
  Replay run(Traffic{});
  run.tracker.adopt({.call_id = "cb-rc-1", .server = server, .limit = 60s, .b_dialed = true}, {server});
  run.tracker.adopt({.call_id = "cb-rc-2", .server = "", .limit = 60s, .b_dialed = false}, {server});
  run.tracker.adopt({.call_id = "cb-rc-missing", .server = "", .limit = 60s, .b_dialed = true}, {server});
  run.tracker.adopt({.call_id = "cb-rc-missing", .server = server, .limit = 60s}, {server});  // once is enough
  EXPECT_EQ(run.tracker.size(), 3u);
  EXPECT_TRUE(run.tracker.has_orphans(server));
  std::vector<ListedChannel> listed;
  std::map<std::string, std::chrono::seconds> b_cdr;  // B's own ANSWERED record, by call
  for (const auto& m : messages) {
    if (m.get("Event") == "Cdr" && m.get("DestinationChannel").empty() && m.get("Disposition") == "ANSWERED" &&
        !m.get("UniqueID").ends_with("-A1") && !m.get("UniqueID").ends_with("-A2")) {
      const std::string linked(m.get("LinkedID"));
      b_cdr[linked.substr(0, linked.size() - 3)] = std::chrono::seconds(std::stoi(std::string(m.get("BillableSeconds"))));
    }
  }
  ASSERT_EQ(b_cdr.size(), 2u);
  for (const auto& m : messages) {
    if (m.get("Event") == "CoreShowChannel") {
      listed.push_back(listed_channel(m.view()));
      continue;
    }
    if (m.get("Event") == "CoreShowChannelsComplete") {
      if (m.get("ActionID") == "channels-1") {
        run.tracker.reconcile(server, listed);
        for (const std::string id : {"cb-rc-1", "cb-rc-2"}) {
          const auto& events = run.sink.events[id];
          EXPECT_TRUE(emitted(events, LegRole::a, LegEventType::answered)) << id;
          EXPECT_TRUE(emitted(events, LegRole::b, LegEventType::connected)) << id << ": B is listed in the bridge";
          EXPECT_EQ(count_ends(events, LegRole::a), 0u) << id;
        }
        ASSERT_EQ(run.sink.sent.size(), 1u);
        EXPECT_EQ(run.sink.sent[0], sent_action("ami-db-get-missing", "dbget-cb-rc-missing"));
      }
      continue;
    }
    if (m.get("ActionID") == "hangup-cb-rc-1") run.tracker.hangup("cb-rc-1", LegRole::a, HangupCause{16});
    run.tracker.on_message(server, m.view());
  }
  EXPECT_EQ(run.tracker.size(), 0u);
  for (const std::string id : {"cb-rc-1", "cb-rc-2"}) {
    SCOPED_TRACE(id);
    const auto& events = run.sink.events[id];
    ASSERT_EQ(count_ends(events, LegRole::a), 1u);
    ASSERT_EQ(count_ends(events, LegRole::b), 1u);
    EXPECT_EQ(events.back().leg, LegRole::a);
    const auto* b = ended(events, LegRole::b);
    EXPECT_FALSE(b->unobserved) << "followed to its end";
    EXPECT_EQ(b->dial_status, "ANSWER");
    EXPECT_EQ(b->billsec, b_cdr.at(id)) << "B's own Cdr";
    EXPECT_EQ(b->server, server);
    EXPECT_EQ(b->channel.substr(0, 13), id == "cb-rc-1" ? "Local/1001@ph" : "Local/2002@ph");
  }
  EXPECT_TRUE(ended(run.sink.events["cb-rc-2"], LegRole::b)->far_end_hung_up);
  EXPECT_EQ(ended(run.sink.events["cb-rc-1"], LegRole::b)->cause.code(), 16);
  const auto& missing = run.sink.events["cb-rc-missing"];
  ASSERT_EQ(count_ends(missing, LegRole::a), 1u);
  ASSERT_EQ(count_ends(missing, LegRole::b), 1u) << "b_dialed: B's end is reported too";
  for (const auto leg : {LegRole::a, LegRole::b}) {
    const auto* e = ended(missing, leg);
    EXPECT_EQ(e->cause, HangupCause::engine_lost());
    EXPECT_TRUE(e->unobserved);
    EXPECT_EQ(e->billsec, std::optional(0s));
  }
}

// What a restarted engine sees of a callback whose A, or B, still rings, as Asterisk 23.4.1
// listed it (ami-coreshowchannels-ringing-a/-b: ;1 Ringing, ;2 Ring, no BridgeId): from the
// listing on, then our Hangup of A. Ringing is not Up: A rings on (no answer, no B), or A
// is up and B is being dialed (not connected); each ends as it was seen to end.
TEST(CallTrackerRecover, AnAdoptedCallStillRingingIsFollowedAsRingingNotAsAnswered) {
  for (const std::string leg : {"a", "b"}) {
    SCOPED_TRACE(leg);
    const std::string name = "ami-coreshowchannels-ringing-" + leg;
    const std::string id = "cb-ring-" + leg;
    Replay run(Traffic{});
    run.tracker.adopt({.call_id = id, .server = server, .limit = 60s, .b_dialed = leg == "b"}, {server});
    std::vector<ListedChannel> listed;
    bool listing = false;
    for (const auto& m : received(name)) {
      if (m.get("ActionID") == "channels-1") listing = true;
      if (!listing) continue;  // before the listing: what the old process saw
      if (m.get("Event") == "CoreShowChannel") {
        listed.push_back(listed_channel(m.view()));
        continue;
      }
      if (m.get("Event") == "CoreShowChannelsComplete") {
        run.tracker.reconcile(server, listed);
        const auto& events = run.sink.events[id];
        EXPECT_EQ(emitted(events, LegRole::a, LegEventType::answered), leg == "b") << "A;1 is listed Up only in -b";
        EXPECT_FALSE(emitted(events, LegRole::b, LegEventType::connected)) << "B rings: not in a bridge";
        EXPECT_EQ(count_ends(events, LegRole::a), 0u);
        EXPECT_TRUE(run.sink.sent.empty()) << "listed: no record to ask for";
        EXPECT_EQ(run.tracker.size(), 1u);
        run.tracker.hangup(id, LegRole::a, HangupCause{16});
        ASSERT_EQ(run.sink.sent.size(), 1u);
        const auto a1 = std::find_if(listed.begin(), listed.end(), [&](const auto& c) { return c.uniqueid == id + "-A1"; });
        ASSERT_NE(a1, listed.end());
        EXPECT_EQ(run.sink.sent[0], "Action: Hangup\r\nActionID: hangup-" + id + "\r\nChannel: " + a1->channel +
                                        "\r\nCause: 16\r\n\r\n")
            << "A;1 by the name it was listed under";
        continue;
      }
      run.tracker.on_message(server, m.view());
    }
    ASSERT_TRUE(listing);
    EXPECT_EQ(run.tracker.size(), 0u);
    const auto& events = run.sink.events[id];
    ASSERT_EQ(count_ends(events, LegRole::a), 1u);
    EXPECT_FALSE(ended(events, LegRole::a)->unobserved) << "seen to end";
    // A's talk as Asterisk counted it: A;2's Cdr (ANSWERED 2 s in -b, NO ANSWER 0 s in -a).
    std::optional<std::chrono::seconds> a2_cdr;
    for (const auto& m : received(name)) {
      if (m.get("Event") == "Cdr" && m.get("UniqueID") == id + "-A2") {
        a2_cdr = std::chrono::seconds(std::stoi(std::string(m.get("BillableSeconds"))));
      }
    }
    ASSERT_TRUE(a2_cdr);
    EXPECT_EQ(ended(events, LegRole::a)->billsec.value_or(0s), *a2_cdr);
    EXPECT_EQ(*a2_cdr > 0s, leg == "b");
    if (leg == "a") {
      EXPECT_EQ(count_ends(events, LegRole::b), 0u) << "B was never dialed";
    } else {
      ASSERT_EQ(count_ends(events, LegRole::b), 1u);
      EXPECT_EQ(ended(events, LegRole::b)->billsec.value_or(0s), 0s) << "B never answered";
      EXPECT_FALSE(ended(events, LegRole::b)->unobserved);
    }
  }
}

TEST(CallTrackerRecover, ACallOnAnUnknownServerIsGoneOnlyWhenNoServerHasIt) {
  const auto replies = received("ami-db-record");
  Replay run(Traffic{});
  run.tracker.adopt({.call_id = "cb-db-1", .server = "", .b_dialed = true}, {"ast-1", "ast-2"});
  run.tracker.adopt({.call_id = "cb-db-missing", .server = "ast-9", .b_dialed = false}, {"ast-1", "ast-2"});
  EXPECT_TRUE(run.tracker.has_orphans("ast-1"));
  EXPECT_TRUE(run.tracker.has_orphans("ast-2"));
  // ast-1 has neither call, nor a record of one.
  run.tracker.reconcile("ast-1", {});
  ASSERT_EQ(run.sink.sent.size(), 2u);
  for (const auto* m : answers(replies, "dbget-cb-db-missing")) run.tracker.on_message("ast-1", m->view());
  const auto not_found = parse("Response: Error\r\nActionID: dbget-cb-db-1\r\nMessage: Database entry not found\r\n\r\n");
  run.tracker.on_message("ast-1", not_found[0].view());
  EXPECT_EQ(run.tracker.size(), 2u) << "ast-2 may still have them";
  // An answer from a server that was not asked changes nothing.
  for (const auto* m : answers(replies, "dbget-cb-db-1")) run.tracker.on_message("ast-3", m->view());
  EXPECT_EQ(run.tracker.size(), 2u);
  run.tracker.reconcile("ast-2", {});
  for (const auto* m : answers(replies, "dbget-cb-db-1")) run.tracker.on_message("ast-2", m->view());
  for (const auto* m : answers(replies, "dbget-cb-db-missing")) run.tracker.on_message("ast-2", m->view());
  ASSERT_EQ(run.tracker.size(), 0u);
  const auto& found = run.sink.events["cb-db-1"];
  ASSERT_EQ(count_ends(found, LegRole::b), 1u);
  EXPECT_EQ(ended(found, LegRole::b)->server, "ast-2");
  EXPECT_EQ(ended(found, LegRole::b)->billsec, std::optional(8s));  // ANSWER|16|8|0|end
  EXPECT_TRUE(ended(found, LegRole::b)->unobserved);
  EXPECT_EQ(run.sink.sent_to.back(), "ast-2") << "its record is deleted where it was";
  const auto& missing = run.sink.events["cb-db-missing"];
  EXPECT_EQ(count_ends(missing, LegRole::a), 1u);
  EXPECT_EQ(count_ends(missing, LegRole::b), 0u) << "B was not dialed";
  EXPECT_TRUE(ended(missing, LegRole::a)->unobserved);
}

TEST(CallTrackerRecover, NoServerAnsweringWithinTheGraceEndsTheAdoptedCallAsLost) {
  Replay run(Traffic{});
  run.tracker.adopt({.call_id = "cb-nobody", .server = server, .b_dialed = true}, {server});
  run.clock.advance(29'999ms);
  EXPECT_EQ(run.tracker.size(), 1u);
  run.clock.advance(1ms);
  ASSERT_EQ(run.tracker.size(), 0u);
  EXPECT_EQ(count_ends(run.sink.events["cb-nobody"], LegRole::b), 1u);
  EXPECT_EQ(ended(run.sink.events["cb-nobody"], LegRole::a)->billsec, std::optional(0s));
  EXPECT_TRUE(ended(run.sink.events["cb-nobody"], LegRole::a)->unobserved);
}

}  // namespace
}  // namespace callback::engine_ami
