#pragma once
// A real IMAP server for the e-mail trigger's tests: Debian's dovecot, on 127.0.0.1 and a
// free port, with a throwaway configuration in the test's folder (one user, a plain
// password, Maildir), stopped with the test. Mail is delivered by writing Maildir files.
// Run as root (CI), the mail processes run as the `dovecot` user.
#include "local_server.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

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
    port_ = LocalServer::free_port();
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
    process_.start({"/usr/sbin/dovecot", "-F", "-c", (dir_ / "dovecot.conf").string()}, port_,
                   "dovecot (see " + (dir_ / "dovecot.log").string() + ")");
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
  std::filesystem::path dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::uint16_t port_ = 0;
  int delivered_ = 0;
  LocalServer process_;  // last: stopped first
};

}  // namespace callback::test
