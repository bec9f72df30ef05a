// Waiting for a condition in tests that watch another process (callbackd over HTTP, a
// database): the condition is checked every `interval` until it holds or `deadline`
// passes. The interval only paces the checks; what the test waits for is the condition.
#pragma once

#include <chrono>
#include <thread>

namespace callback::test {

// True once `check()` returned true; false if it never did within `deadline`.
template <class Check>
bool poll_until(std::chrono::milliseconds deadline, Check&& check,
                std::chrono::milliseconds interval = std::chrono::milliseconds{20}) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (check()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(interval);  // poll interval, not a synchronization
  }
}

}  // namespace callback::test
