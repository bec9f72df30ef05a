// Embedding callback: an application runs the service itself (callback/embedded.hpp) and
// does what an operator's program does with it: a rate deck, an account and a top-up, one
// callback followed event by event to its cost, one canceled, then the records.
// Usage: embed_callbacks CONFIG (a callback.json with billing enabled and an Asterisk, or
// callback-fake-asterisk, in "engines").
#include <callback/embedded.hpp>

#include <condition_variable>
#include <iostream>
#include <mutex>

namespace {
int fail(const callback::Error& error) {
  std::cerr << "embed_callbacks: " << error.describe() << '\n';
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: embed_callbacks CONFIG\n";
    return 2;
  }
  auto opened = callback::EmbeddedService::open(argv[1]);
  if (!opened) return fail(opened.error());
  auto& service = **opened;

  // Money: a rate deck (1002 matches "10" at 0.30 a minute) and a prepaid account.
  if (auto deck = service.import_rates("default", "prefix;description;rate\n1;ones;0.60\n10;tens;0.30\n4;fours;0.10\n");
      !deck) {
    return fail(deck.error());
  }
  if (auto account = service.create_account({.id = "123", .balance = "5.00", .pin = "2468"}); !account) {
    return fail(account.error());
  }
  if (auto topped = service.top_up("123", "1.00", "receipt 1"); !topped) return fail(topped.error());

  if (auto started = service.start(); !started) return fail(started.error());

  // A callback, each event printed as it comes (on the service thread).
  std::mutex print;
  auto talked = service.submit(
      {.caller = "1001", .callee = "1002", .payer = callback::AccountId{"123"}, .limit = std::chrono::seconds(2),
       .secret = "2468"},
      [&](const callback::CallEvent& event) {
        std::lock_guard lock(print);
        std::cout << "event " << to_string(event.call.state()) << '\n';
      });
  if (!talked) return fail(talked.error());
  auto ended = (*talked)->wait(std::chrono::minutes(1));
  if (!ended) return fail({"timeout", "the callback did not end within a minute", "wait"});
  std::cout << "outcome " << ended->outcome << " cost " << (ended->cost ? ended->cost->format() : "none") << '\n';

  // One that rings forever (4XXX on the fake), canceled once B is being dialed (or not, if
  // it ended before: refused, A unreachable).
  std::mutex m;
  std::condition_variable dialing_b;
  bool reached = false;
  auto ringing = service.submit(
      {.caller = "1001", .callee = "4001", .payer = callback::AccountId{"123"}, .secret = "2468"},
      [&](const callback::CallEvent& event) {
        std::lock_guard lock(m);
        reached = reached || event.call.state() == callback::CallState::dialing_b || is_final(event.call.state());
        dialing_b.notify_all();
      });
  if (!ringing) return fail(ringing.error());
  {
    std::unique_lock lock(m);
    dialing_b.wait(lock, [&] { return reached; });
  }
  if (auto canceled = service.cancel((*ringing)->id()); !canceled) std::cerr << canceled.error().describe() << '\n';
  auto canceled = (*ringing)->wait(std::chrono::minutes(1));
  std::cout << "canceled " << (canceled ? canceled->outcome : "(still running)") << '\n';

  // What the service and the store know now.
  std::cout << "listed " << service.list().size() << '\n';
  auto got = service.get((*talked)->id());
  if (!got) return fail(got.error());
  auto cdrs = service.cdrs({.callback_id = (*talked)->id()});
  if (!cdrs) return fail(cdrs.error());
  std::cout << "cdrs " << cdrs->size() << '\n';
  auto account = service.account("123");
  if (!account) return fail(account.error());
  std::cout << "balance " << account->balance.format() << '\n';
  service.stop(std::chrono::seconds(5));
  return 0;
}
