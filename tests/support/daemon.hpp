#pragma once
// A callbackd process for the tests that kill it (crash recovery, several nodes):
// `callbackctl --config FILE serve` started with `env` added, its port read from its
// first line, stopped by kill -9 or SIGTERM. CALLBACKCTL_PATH names the binary.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poll.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace callback::test {

// A callbackd process: started with `env` added, stopped by kill -9 or SIGTERM.
class Daemon {
 public:
  Daemon(const std::string& config, const std::vector<std::string>& env) {
    std::fflush(stdout);  // not fflush(nullptr): another Daemon's drain thread holds its stream
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
      execl(CALLBACKCTL_PATH, CALLBACKCTL_PATH, "--config", config.c_str(), "serve", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    // Its first line says where it listens.
    FILE* stream = fdopen(out[0], "r");
    char line[512];
    while (stream != nullptr && fgets(line, sizeof line, stream) != nullptr) {
      const std::string text(line);
      if (auto at = text.find("listening on http://127.0.0.1:"); at != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + 30)));
        break;
      }
    }
    // The rest of its output is drained so it never blocks on a full pipe.
    drain_ = std::thread([stream] {
      char buffer[512];
      while (stream != nullptr && fgets(buffer, sizeof buffer, stream) != nullptr) {
      }
      if (stream != nullptr) fclose(stream);
    });
  }
  ~Daemon() {
    if (pid_ > 0 && !reaped_) kill9();
    if (drain_.joinable()) drain_.join();
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  // How it ended: the signal that killed it, or 128 + exit code.
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 128 + WEXITSTATUS(status);
  }
  // The same, if it ends within `limit`; -1 if it did not (it is killed when the Daemon
  // goes, so a test fails instead of hanging).
  int wait(std::chrono::milliseconds limit) {
    int status = 0;
    if (!poll_until(limit, [&] { return waitpid(pid_, &status, WNOHANG) == pid_; })) return -1;
    reaped_ = true;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 128 + WEXITSTATUS(status);
  }
  void kill9() {
    kill(pid_, SIGKILL);
    wait();
  }
  void signal(int sig) { kill(pid_, sig); }
  void terminate() {
    kill(pid_, SIGTERM);
    wait();
  }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  bool reaped_ = false;
  std::thread drain_;
};

}  // namespace callback::test
