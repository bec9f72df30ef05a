// The peer for issue 9: a minimal raw AMI originate loop against a REAL Asterisk, to
// compare callback_load's throughput (CallbackService + the AMI engine) with. It sends the
// Originate our engine sends (AmiEngine::originate: same dialplan, numbers and variables)
// and does NOTHING else: no correlation (no ChannelId, no channel tracking), no billing,
// no CDR store, no state machine. It logs in as our engine does (plain Login, Events:
// call,user,cdr, so Asterisk sends it the same events), keeps --in-flight Originates going
// and counts a callback as finished when its end is seen, without knowing whose it is:
//   --until hangup (default): the Hangup of an originated channel (Uniqueid = Linkedid,
//     the root of a call's channels): the callback is over on Asterisk, as when our engine
//     ends a call (which also waits for its Cdr records); or
//   --until user-event: the dialplan's UserEvent CallbackResult (or an OriginateResponse
//     Failure): earlier, while A still hears the closing announcement and hangs up, so
//     more than --in-flight callbacks are then up on Asterisk at times.
// failed = OriginateResponse Failure, an Originate refused with Response: Error, or a
// CallbackResult whose DialStatus is not ANSWER. Each finished one lets it send another.
// A = --a-first + i % 800 (9XXX: answer, stay up), B = --b-first + i % 100 (98XX: answer,
// hang up at once; with CB_LIMIT 300000 the callback ends when B hangs up).
//   raw_ami_loop --calls 2000 --in-flight 200          (Asterisk on 127.0.0.1:5038)
// Options: --host --port --calls --in-flight --a-first --b-first --secret --time-limit (s)
// --until hangup|user-event.
#include "ami_codec.hpp"

#include <boost/asio.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

using namespace callback;
using boost::asio::ip::tcp;

namespace {

int fail(const std::string& why) {
  std::cerr << "raw_ami_loop: " << why << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", secret = "callbacksecret";
  std::string port = "5038";
  std::size_t calls = 2000, in_flight = 200;
  int a_first = 9000, b_first = 9800, time_limit = 600;
  std::string until = "hangup";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!std::strcmp(argv[i], "--port")) port = argv[i + 1];
    else if (!std::strcmp(argv[i], "--calls")) calls = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--in-flight")) in_flight = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--a-first")) a_first = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--b-first")) b_first = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--secret")) secret = argv[i + 1];
    else if (!std::strcmp(argv[i], "--time-limit")) time_limit = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--until") && (!std::strcmp(argv[i + 1], "hangup") || !std::strcmp(argv[i + 1], "user-event")))
      until = argv[i + 1];
    else {
      std::cerr << "raw_ami_loop: unknown option " << argv[i] << "\n";
      return 2;
    }
  }

  boost::asio::io_context io;
  tcp::socket socket{io};
  boost::system::error_code ec;
  boost::asio::connect(socket, tcp::resolver{io}.resolve(host, port, ec), ec);
  if (ec) return fail("cannot connect to Asterisk at " + host + ":" + port + ": " + ec.message());

  // Writes: one pending async_write at a time, everything sent meanwhile goes out with the
  // next one (the engine batches the same way).
  std::string out, writing;
  auto flush = [&](auto&& self) -> void {
    if (!writing.empty() || out.empty()) return;
    writing.swap(out);
    boost::asio::async_write(socket, boost::asio::buffer(writing), [&, self](boost::system::error_code e, std::size_t) {
      writing.clear();
      if (!e) self(self);
    });
  };
  auto send = [&](const std::string& bytes) {
    out += bytes;
    flush(flush);
  };

  std::size_t sent = 0, finished = 0, failed = 0;
  const bool until_hangup = until == "hangup";
  bool logged_in = false;
  std::string error;  // set when the run must stop
  std::chrono::steady_clock::time_point t0;
  auto originate_more = [&] {
    while (sent < calls && sent - finished < in_flight) {
      const std::string id = "raw-" + std::to_string(sent);
      const std::string a = std::to_string(a_first + static_cast<int>(sent % 800));
      const std::string b = std::to_string(b_first + static_cast<int>(sent % 100));
      // As AmiEngine::originate with callback_load's campaign (limit 300 s, warnings 20 s,
      // A rings 30 s, B 45 s), minus ChannelId/OtherChannelId (its correlation).
      send(ami::Action("Originate")
               .add("ActionID", id)
               .add("Channel", "Local/" + a + "@phones")
               .add("Context", "callback")
               .add("Exten", b)
               .add("Priority", "1")
               .add("Timeout", "30000")
               .add("CallerID", "\"Callback\" <" + b + ">")
               .add("Account", "free")
               .add("Variable", "CB_ID=" + id)
               .add("Variable", "CB_A=" + a)
               .add("Variable", "CB_LIMIT=300000")
               .add("Variable", "CB_WARN=20000")
               .add("Variable", "CB_WARN_REPEAT=20000")
               .add("Variable", "CB_DIAL_TIMEOUT=45")
               .add("Variable", "CB_B_CALLERID=" + a)
               .add("Variable", "CB_DIAL=Local/" + b + "@phones")
               .add("Async", "true")
               .str());
      ++sent;
    }
  };
  // A callback's outcome (failed or not) and the end of its slot; in --until hangup mode
  // the slot ends with the root channel's Hangup instead.
  auto free_slot = [&] {
    ++finished;
    if (finished >= calls) io.stop();
    else originate_more();
  };
  auto outcome = [&](bool ok, bool ends_slot) {
    if (!ok) ++failed;
    if (ends_slot) free_slot();
  };

  ami::Parser parser;
  auto on_message = [&](const ami::MessageView& m) {
    if (m.is_response() && m.action_id() == "login") {
      if (m.response() != "Success") {
        error = "login refused: " + std::string(m.get("Message"));
        io.stop();
        return;
      }
      logged_in = true;
      t0 = std::chrono::steady_clock::now();
      originate_more();
    } else if (m.is_response()) {
      if (m.response() == "Error") outcome(false, true);  // an Originate refused outright: no events follow
    } else if (m.event() == "OriginateResponse") {
      if (m.get("Response") == "Failure") outcome(false, !until_hangup);
    } else if (m.event() == "UserEvent" && m.get("UserEvent") == "CallbackResult") {
      outcome(m.get("DialStatus") == "ANSWER", !until_hangup);
    } else if (until_hangup && m.event() == "Hangup" && m.get("Uniqueid") == m.get("Linkedid")) {
      free_slot();
    }
  };
  std::array<char, 65536> buffer;
  auto read = [&](auto&& self) -> void {
    socket.async_read_some(boost::asio::buffer(buffer), [&, self](boost::system::error_code e, std::size_t n) {
      if (e) {
        error = "connection to Asterisk lost: " + e.message();
        io.stop();
        return;
      }
      if (auto ok = parser.feed(std::string_view(buffer.data(), n), on_message); !ok) {
        error = "AMI protocol error: " + ok.error().message;
        io.stop();
        return;
      }
      self(self);
    });
  };
  read(read);
  send(ami::Action("Login")
           .add("ActionID", "login")
           .add("Username", "callback")
           .add("Secret", secret)
           .add("Events", "call,user,cdr")
           .str());

  boost::asio::steady_timer login_timer{io, std::chrono::seconds(10)};
  login_timer.async_wait([&](boost::system::error_code e) {
    if (!e && !logged_in) {
      error = "no answer to Login within 10 s";
      io.stop();
    }
  });
  boost::asio::steady_timer limit{io, std::chrono::seconds(time_limit)};
  limit.async_wait([&](boost::system::error_code e) {
    if (!e) {
      error = "stopped after the time limit of " + std::to_string(time_limit) + " s: " + std::to_string(finished) +
              " of " + std::to_string(calls) + " callbacks finished";
      io.stop();
    }
  });
  io.run();

  if (!logged_in) return fail(error.empty() ? "not logged in" : error);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("raw AMI loop: %zu callbacks in %.2f s = %.0f callbacks/s with %zu in flight; %zu failed\n", finished,
              seconds, static_cast<double>(finished - failed) / seconds, in_flight, failed);
  if (!error.empty()) return fail(error);
  boost::asio::write(socket, boost::asio::buffer(ami::Action("Logoff").add("ActionID", "logoff").str()), ec);
  return failed == 0 ? 0 : 1;
}
