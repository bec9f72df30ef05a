#pragma once
// The fakes' executables (callback-fake-asterisk, callback-fake-ari): start the fake, say
// where it listens, serve until SIGINT or SIGTERM, stop it.
//
//   return callback::fake::serve_until_signal<FakeAri>(options, "callback-fake-ari",
//                                                      "fake ari listening on 127.0.0.1:");
#include <pthread.h>

#include <csignal>
#include <exception>
#include <iostream>
#include <string_view>

namespace callback::fake {

template <typename Fake, typename Options>
int serve_until_signal(const Options& options, std::string_view program, std::string_view listening) {
  try {
    // Block the signals before the fake's thread starts (it inherits the mask), then
    // wait for them here: no handler runs on the fake's thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    Fake fake(options);
    fake.start();
    std::cout << listening << fake.port() << std::endl;
    int signal = 0;
    sigwait(&signals, &signal);
    fake.stop();
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace callback::fake
