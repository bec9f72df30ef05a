#pragma once
// The mailbox the e-mail trigger polls, over IMAP with libcurl: one logged-in connection,
// kept between polls. Finds the mails not yet processed (no `keyword` flag), fetches their
// header fields without marking them read, and flags each once it is processed, so that
// a restart does not take a mail twice.
#include <callback/error.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace callback::trigger_email {

struct ImapOptions {
  std::string url;  // "imap://127.0.0.1:143/INBOX", "imaps://mail.example.com/INBOX"
  std::string username, password;
  long timeout_ms = 15'000;
};

struct FetchedHeader {
  std::uint32_t uid = 0;
  std::string header;      // From, Subject, Message-ID, as the server sent them
  bool too_large = false;  // the header fields were over the limit: not read
};

class ImapMailbox {
 public:
  explicit ImapMailbox(ImapOptions options);
  ~ImapMailbox();
  ImapMailbox(const ImapMailbox&) = delete;
  ImapMailbox& operator=(const ImapMailbox&) = delete;

  // The UIDs of mails without `keyword`, oldest first, at most `most`.
  [[nodiscard]] Result<std::vector<std::uint32_t>> unprocessed(const std::string& keyword, std::size_t most);
  // Their header fields (From, Subject, Message-ID), one round trip each; header fields
  // over `max_header` bytes are not read (too_large).
  [[nodiscard]] Result<std::vector<FetchedHeader>> headers(const std::vector<std::uint32_t>& uids,
                                                           std::size_t max_header);
  // Flags the mails with `keyword` (and \Seen), in one command.
  [[nodiscard]] Status mark(const std::vector<std::uint32_t>& uids, const std::string& keyword);

 private:
  // One IMAP command on the kept connection (`text`; empty: the FETCH the URL names, with
  // `url_suffix` after the mailbox's URL); what it wrote, at most `limit` bytes.
  Result<std::string> command(const std::string& text, const std::string& url_suffix = {},
                              std::size_t limit = 16 * 1024 * 1024);

  ImapOptions options_;
  std::string mailbox_;          // its name, as a command names it
  std::uint32_t low_water_ = 1;  // no unprocessed mail below this UID (as far as we know)
  void* curl_ = nullptr;  // CURL*
};

// A SEARCH response's numbers, for tests: "* SEARCH 3 5 8" -> {3, 5, 8}.
[[nodiscard]] std::vector<std::uint32_t> parse_search(std::string_view response);

}  // namespace callback::trigger_email
