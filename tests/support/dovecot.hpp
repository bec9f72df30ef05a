#pragma once
// A real IMAP server for the e-mail trigger's tests: Debian's dovecot, on 127.0.0.1 and a
// free port, with a throwaway configuration in the test's folder (one user, a plain
// password, Maildir), stopped with the test. Mail is delivered by writing Maildir files.
// Run as root (CI), the mail processes run as the `dovecot` user.
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

extern char** environ;

namespace callback::test {

class Dovecot {
 public:
  static constexpr const char* user = "callback";
  static constexpr const char* password = "mailpass";

  explicit Dovecot(std::filesystem::path dir) : dir_(std::move(dir)) {
    namespace fs = std::filesystem;
    if (!fs::exists("/usr/sbin/dovecot")) throw std::runtime_error("dovecot is not installed (apt-get install dovecot-imapd)");
    const passwd* mail_user = geteuid() == 0 ? getpwnam("dovecot") : getpwuid(geteuid());
    if (mail_user == nullptr) throw std::runtime_error("no user for the mail processes");
    uid_ = mail_user->pw_uid;
    gid_ = mail_user->pw_gid;
    for (const char* sub : {"run", "state", "mail", "home"}) fs::create_directories(dir_ / sub);
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    port_ = free_port();
    std::ofstream(dir_ / "passwd") << user << ":{PLAIN}" << password << "\n";
    std::ofstream(dir_ / "dovecot.conf")
        << "base_dir = " << (dir_ / "run").string() << "\nstate_dir = " << (dir_ / "state").string()
        << "\nlog_path = " << (dir_ / "dovecot.log").string() << "\nprotocols = imap\nlisten = 127.0.0.1\nssl = no\n"
        << "disable_plaintext_auth = no\nauth_mechanisms = plain login\nmail_location = maildir:"
        << (dir_ / "mail").string() << "/%u\nfirst_valid_uid = 0\nmail_uid = " << uid_ << "\nmail_gid = " << gid_
        << "\npassdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u " << (dir_ / "passwd").string()
        << "\n}\nuserdb {\n  driver = static\n  args = home=" << (dir_ / "home").string() << "/%u\n}\n"
        << "service imap-login {\n  chroot =\n  inet_listener imap {\n    address = 127.0.0.1\n    port = " << port_
        << "\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\nservice anvil {\n  chroot =\n}\n";
    maildir();
    const std::string conf = (dir_ / "dovecot.conf").string();
    const char* argv[] = {"/usr/sbin/dovecot", "-F", "-c", conf.c_str(), nullptr};
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
      throw std::runtime_error("cannot start dovecot");
    }
    // Ready once it accepts a connection on its port.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!accepts()) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        throw std::runtime_error("dovecot exited at start; see " + (dir_ / "dovecot.log").string());
      }
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("dovecot did not listen in 15 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // between two looks at the port
    }
  }
  ~Dovecot() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  Dovecot(const Dovecot&) = delete;
  Dovecot& operator=(const Dovecot&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const { return "imap://127.0.0.1:" + std::to_string(port_) + "/INBOX"; }

  // A new mail in the user's INBOX (a Maildir file dovecot picks up at its next look).
  void deliver(const std::string& message) {
    const auto name = std::to_string(++delivered_) + ".M" + std::to_string(getpid()) + ".test";
    const auto tmp = dir_ / "mail" / user / "tmp" / name;
    std::ofstream(tmp, std::ios::binary) << message;
    if (geteuid() == 0 && chown(tmp.c_str(), uid_, gid_) != 0) throw std::runtime_error("chown " + tmp.string());
    std::filesystem::rename(tmp, dir_ / "mail" / user / "new" / name);
  }

 private:
  void maildir() {
    for (const char* sub : {"", "/new", "/cur", "/tmp"}) {
      const auto path = dir_ / "mail" / (std::string(user) + sub);
      std::filesystem::create_directories(path);
    }
    if (geteuid() == 0) {
      for (const auto& path : {dir_ / "mail", dir_ / "home", dir_ / "mail" / user, dir_ / "mail" / user / "new",
                               dir_ / "mail" / user / "cur", dir_ / "mail" / user / "tmp"}) {
        if (chown(path.c_str(), uid_, gid_) != 0) throw std::runtime_error("chown " + path.string());
      }
    }
  }
  static std::uint16_t free_port() {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    bind(s, reinterpret_cast<sockaddr*>(&address), sizeof address);
    getsockname(s, reinterpret_cast<sockaddr*>(&address), &size);
    close(s);
    return ntohs(address.sin_port);
  }
  bool accepts() const {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(s, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(s);
    return ok;
  }

  std::filesystem::path dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::uint16_t port_ = 0;
  pid_t pid_ = 0;
  int delivered_ = 0;
};

}  // namespace callback::test
