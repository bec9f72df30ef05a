// E-mail figure of issue 12: mails processed per second from a mailbox of N (default
// 10,000), by callback.trigger.email's poll against a real dovecot on 127.0.0.1 (the
// tests' throwaway one, tests/support/dovecot.hpp). Every mail is from the registered
// sender with a good subject, so each is read, parsed, checked, submitted (to a sink that
// only counts) and flagged. Needs root (dovecot's mail processes run as `dovecot`).
//
//   build-release/bin/email_load [N]
//   build-release/bin/email_load --latency [N=100] [POLL_MS=1000]
// The second: the trigger polls on its own thread every POLL_MS; one mail at a time is
// delivered at a random moment, and the time from its delivery (the Maildir file in place)
// to its callback's submission is measured, N times: p50, p99, max. What follows the
// submission (the service places A) is the SMS figure's "to A dialed" (benchmarks/README.md).
#include "dovecot.hpp"
#include "email_trigger.hpp"
#include "sqlite_store.hpp"
#include "temp_dir.hpp"
#include "test_context.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace callback;

namespace {
// Counts what reached it and accepts it.
struct CountingSink final : TriggerSink {
  std::size_t requests = 0;
  void submit(CallbackRequest, std::function<void(Result<std::string>)> done) override { done(std::string("x")); }
  void track(CallbackRequest, Tracking tracking) override {
    ++requests;
    tracking.accepted(Error{"counted", "counted only", {}});
  }
};
// Notes when each submission came.
struct TimingSink final : TriggerSink {
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t requests = 0;
  std::chrono::steady_clock::time_point last;
  void submit(CallbackRequest, std::function<void(Result<std::string>)> done) override { done(std::string("x")); }
  void track(CallbackRequest, Tracking tracking) override {
    {
      std::lock_guard lock(mutex);
      ++requests;
      last = std::chrono::steady_clock::now();
    }
    changed.notify_all();
    tracking.accepted(Error{"counted", "counted only", {}});
  }
};

std::string mail(int i) {
  return "From: Li Lei <li.lei@example.com>\r\nTo: callback@example.com\r\nSubject: 5551234#139" +
         std::to_string(10'000'000 + i) + "\r\nMessage-ID: <m" + std::to_string(i) +
         "@example.com>\r\nDate: Tue, 01 Dec 2026 22:00:00 +0000\r\n\r\nplease call\r\n";
}
}  // namespace

int main(int argc, char** argv) {
  const bool latency = argc > 1 && std::strcmp(argv[1], "--latency") == 0;
  if (latency) {
    ++argv;
    --argc;
  }
  const int n = argc > 1 ? std::atoi(argv[1]) : (latency ? 100 : 10'000);
  test::TestContext ctx;
  test::TempDir dir;
  test::Dovecot dovecot(dir / "dovecot");
  auto store = store_sqlite::SqliteStore::open({.path = dir / "callback.db"}).value();
  const NumberingPlan plan{.country_code = "86", .trunk_prefix = "0", .international_prefixes = {"00"}};
  Account li{.id = "li", .currency = Currency::of("CNY").value(),
             .caller_numbers = {PhoneNumber::parse("13800138000", plan).value()}};
  li.emails = {"li.lei@example.com"};
  if (!store->accounts().create(li)) return 1;
  if (latency) {
    const int poll_ms = argc > 2 ? std::atoi(argv[2]) : 1000;
    TimingSink sink;
    trigger_email::EmailOptions options;
    options.imap.url = dovecot.url();
    options.imap.username = test::Dovecot::user;
    options.imap.password = test::Dovecot::password;
    options.poll_interval = std::chrono::milliseconds{poll_ms};
    options.access_numbers = {"861055551234"};
    trigger_email::EmailTrigger trigger(ctx.context, *store, plan, options);
    trigger.start(sink);
    std::mt19937 random{std::random_device{}()};
    std::uniform_int_distribution<int> pause(0, poll_ms);
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause(random)));  // a random moment of the poll cycle
      const auto delivered = std::chrono::steady_clock::now();
      dovecot.deliver(mail(i));
      std::unique_lock lock(sink.mutex);
      if (!sink.changed.wait_for(lock, std::chrono::seconds(30), [&] { return sink.requests == static_cast<std::size_t>(i + 1); })) {
        std::fprintf(stderr, "mail %d was not taken within 30 s\n", i);
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(sink.last - delivered).count());
    }
    trigger.stop();
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ms.size())))]; };
    std::printf("email_load --latency: %d mails, poll every %d ms: delivery to submission p50 %.1f ms, p99 %.1f ms, "
                "max %.1f ms\n", n, poll_ms, at(0.5), at(0.99), ms.back());
    return 0;
  }
  const auto delivering = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) dovecot.deliver(mail(i));
  const double delivered_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - delivering).count();
  CountingSink sink;
  trigger_email::EmailOptions options;
  options.imap.url = dovecot.url();
  options.imap.username = test::Dovecot::user;
  options.imap.password = test::Dovecot::password;
  options.poll_interval = std::chrono::milliseconds{0};  // this one poll only
  options.access_numbers = {"861055551234"};
  trigger_email::EmailTrigger trigger(ctx.context, *store, plan, options);
  trigger.start(sink);
  const auto polling = std::chrono::steady_clock::now();
  auto processed = trigger.poll_once();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - polling).count();
  if (!processed) {
    std::fprintf(stderr, "poll failed: %s\n", processed.error().describe().c_str());
    return 1;
  }
  std::printf("email_load: %d mails delivered in %.2f s; one poll processed %zu (%zu callbacks submitted) in %.2f s = "
              "%.0f mails/s\n",
              n, delivered_s, *processed, sink.requests, took, static_cast<double>(*processed) / took);
  return *processed == static_cast<std::size_t>(n) && sink.requests == static_cast<std::size_t>(n) ? 0 : 1;
}
