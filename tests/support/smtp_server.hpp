#pragma once
// A real SMTP server for the e-mail trigger's replies: Debian's aiosmtpd
// (python3-aiosmtpd), on 127.0.0.1 and a free port, storing what it receives in a
// Maildir in the test's folder (its Mailbox handler), stopped with the test.
#include "local_server.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace callback::test {

class SmtpServer {
 public:
  explicit SmtpServer(std::filesystem::path dir) : maildir_(std::move(dir) / "smtp-maildir") {
    if (!std::filesystem::exists("/usr/lib/python3/dist-packages/aiosmtpd")) {
      throw std::runtime_error("aiosmtpd is not installed (apt-get install python3-aiosmtpd)");
    }
    std::filesystem::create_directories(maildir_.parent_path());
    port_ = LocalServer::free_port();
    process_.start({"/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port_), "-c",
                    "aiosmtpd.handlers.Mailbox", maildir_.string()},
                   port_, "aiosmtpd");
  }

  [[nodiscard]] std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  // Every mail received, as stored (its headers, with X-MailFrom and X-RcptTo: the
  // envelope), in the order they came.
  [[nodiscard]] std::vector<std::string> mails() const {
    std::vector<std::pair<long, std::filesystem::path>> files;
    if (std::filesystem::exists(maildir_ / "new")) {
      for (const auto& entry : std::filesystem::directory_iterator(maildir_ / "new")) {
        // Python's Maildir names: "<time>.M<usec>P<pid>Q<count>.<host>": Q counts the mails.
        const std::string name = entry.path().filename().string();
        const auto q = name.find('Q');
        files.emplace_back(q == std::string::npos ? 0 : std::stol(name.substr(q + 1)), entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> out;
    for (const auto& [count, path] : files) {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      out.push_back(text.str());
    }
    return out;
  }
  // Waits until `n` mails have come (10 s at most); false if they did not.
  [[nodiscard]] bool wait_for(std::size_t n) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (mails().size() < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // between two looks at the folder
    }
    return true;
  }

 private:
  std::filesystem::path maildir_;
  std::uint16_t port_ = 0;
  LocalServer process_;
};

}  // namespace callback::test
